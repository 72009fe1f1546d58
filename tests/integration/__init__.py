"""Integration tests against the real Kafka broker and Redis, processors as subprocesses."""
