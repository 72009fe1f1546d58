"""Tumbling event-time windows: the only place that does window arithmetic.

In Kafka Streams' vocabulary: a window [start, end) closes (may be published)
once stream time passes `end + grace`, and is sealed (final: later events go
to the dead-letter topic) once stream time passes `end + grace + allowed
lateness`. Callers compare times with these methods and never inline
`t // size * size`. Every time here is in epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Windowing:
    size_s: int
    grace_s: int = 0
    allowed_lateness_s: int = 0

    def start_of(self, event_time_s: float) -> int:
        """Start of the window holding `event_time_s`."""
        return int(event_time_s // self.size_s) * self.size_s

    def end_of(self, window_start_s: int) -> int:
        return window_start_s + self.size_s

    def closes_at(self, window_start_s: int) -> int:
        """Stream time from which the window is published (end + grace)."""
        return window_start_s + self.size_s + self.grace_s

    def seals_at(self, window_start_s: int) -> int:
        """Stream time from which the window is final (end + grace + allowed lateness)."""
        return self.closes_at(window_start_s) + self.allowed_lateness_s

    def latest_closed_start(self, stream_time_s: float) -> float:
        """Every window starting at or before this has closed at `stream_time_s`."""
        return stream_time_s - self.size_s - self.grace_s
