"""Unit tests: no broker, no Redis server (state logic on fakeredis). May import every layer."""
