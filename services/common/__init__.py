"""What every layer shares: config, logging, errors, Kafka factories and the bounded
produce, the event schema, window arithmetic, the window record, topics, metrics.

The bottom layer: imports only the standard library and third-party packages,
never statestore, the services, load or tests.
"""
