"""`clickstream process`: poll -> decode -> fold -> apply -> emit, one module per step.

May import services.common and statestore; never the consumer, load or tests.
"""
