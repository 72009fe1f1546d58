"""`clickstream consume`: the metrics reader and the dashboard's live, text and JSON views.

May import services.common and statestore (the live view reads the window in
progress); never the processor's internals, load or tests.
"""
