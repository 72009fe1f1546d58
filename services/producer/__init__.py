"""`clickstream produce`: the traffic generator and its produce loop.

May import services.common (and statestore, though it needs none); never the
other services' internals, load or tests.
"""
