"""Clean shutdown on SIGINT and SIGTERM: a flag the service's loop checks between steps."""

from __future__ import annotations

import signal
import threading


class Stopper:
    """Installs the handlers; `requested` turns true once a signal arrived."""

    def __init__(self) -> None:
        self.event = threading.Event()
        signal.signal(signal.SIGINT, self._request)
        signal.signal(signal.SIGTERM, self._request)

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def _request(self, signum: int, _frame: object) -> None:
        self.event.set()
