"""The consumer's view of the metrics topic: the newest revision of each window.

Every record on the topic is one revision of one window. `WindowBook.offer`
decides what a record means to someone watching: a window seen for the first
time, an amendment that replaces the figures shown before, the final revision,
or nothing at all (a duplicate of a revision already shown, or an older
revision arriving after a newer one). Duplicates are expected: a processor that
crashes while publishing may publish the same revision twice with identical
content, and the dashboard must show it once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from services.common.window_record import WindowRecord


class Change(enum.Enum):
    NEW = "new"  # first revision seen of this window
    AMENDED = "amended"  # a later revision whose figures differ from the one shown
    FINAL = "final"  # a later revision marked final with the same figures
    CORRECTED = "corrected"  # same revision number, different content (should not happen)


@dataclass(frozen=True)
class Update:
    """A record that changes what is shown, and what it replaces."""

    record: WindowRecord
    change: Change
    previous: WindowRecord | None = None

    @property
    def added_events(self) -> int | None:
        """Events the amendment added, when the replaced revision was seen."""
        if self.previous is None:
            return None
        return self.record.total_events - self.previous.total_events

    def describe(self) -> str:
        """One phrase for status and text: 'revision 2, amended: +37 late events'."""
        return describe_revision(self.record, self.change, self.added_events)


def describe_revision(
    record: WindowRecord, change: Change | None = None, added_events: int | None = None
) -> str:
    parts = [f"revision {record.revision}"]
    if change is Change.AMENDED:
        if added_events is not None:
            parts.append(f"amended: {added_events:+,} late events")
        else:
            parts.append(f"amended: {record.late_events:,} late events in all")
    elif change is Change.CORRECTED:
        parts.append("corrected")
    elif record.late_events and record.revision > 1:
        parts.append(f"{record.late_events:,} late events")
    if record.final:
        parts.append("final")
    return ", ".join(parts)


class WindowBook:
    """The newest revision of each window seen, bounded to the `keep` most recent windows."""

    def __init__(self, keep: int = 100):
        self.keep = max(keep, 1)
        self._windows: dict[str, WindowRecord] = {}

    def offer(self, record: WindowRecord) -> Update | None:
        """Fold one record in; the Update to show, or None when nothing visible changed."""
        shown = self._windows.get(record.window_start)
        if shown is None:
            if self._windows and len(self._windows) >= self.keep:
                oldest = min(self._windows)
                if record.window_start < oldest:
                    return None  # older than everything kept: history we chose to drop
            self._store(record)
            return Update(record, Change.NEW)
        if record.revision < shown.revision:
            return None  # an old revision after a newer one: the newer figures stand
        if record.revision == shown.revision:
            if record.content() == shown.content():
                return None  # the same revision published twice
            self._store(record)
            return Update(record, Change.CORRECTED, shown)
        self._store(record)
        if _figures(record) == _figures(shown):
            return Update(record, Change.FINAL if record.final else Change.AMENDED, shown)
        return Update(record, Change.AMENDED, shown)

    def _store(self, record: WindowRecord) -> None:
        self._windows[record.window_start] = record
        while len(self._windows) > self.keep:
            del self._windows[min(self._windows)]

    def latest(self) -> WindowRecord | None:
        """The newest completed window (greatest window_start), newest revision."""
        return self._windows[max(self._windows)] if self._windows else None

    def recent(self, count: int) -> list[WindowRecord]:
        """The `count` newest windows, oldest first."""
        return [self._windows[start] for start in sorted(self._windows)[-count:]] if count else []

    def __len__(self) -> int:
        return len(self._windows)

    def __iter__(self) -> Iterator[WindowRecord]:
        return (self._windows[start] for start in sorted(self._windows))


def _figures(record: WindowRecord) -> tuple:
    """Content without the revision bookkeeping: did the numbers change?"""
    return tuple(
        item for item in record.content() if item[0] not in ("revision", "final", "published_at")
    )
