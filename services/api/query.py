"""Query parameters of the HTTP API: time ranges, resolutions and cursors.

Pure functions of their input (and an injected `now`), so every rule about
what a caller may ask is unit-tested without a server. Each raises BadQuery
with a message fit for the caller; the API answers it with 400.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

DEFAULT_SPAN_S = 24 * 3600


class BadQuery(ValueError):
    """A request the API refuses with 400; the message is shown to the caller."""


def parse_instant(text: str, name: str) -> int:
    """RFC 3339 (with a zone) or epoch seconds, as whole epoch seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        value = _rfc3339(text, name).timestamp()
    if not math.isfinite(value) or not 0 <= value < 253402300800:  # year 10000
        raise BadQuery(f"{name}: out of range")
    return int(value)


def _rfc3339(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadQuery(f"{name}: expected RFC 3339 or epoch seconds, got {text!r}") from None
    if moment.tzinfo is None:
        raise BadQuery(f"{name}: an RFC 3339 timestamp needs a zone (Z or +hh:mm)")
    return moment


@dataclass(frozen=True)
class TimeRange:
    start: int  # inclusive, epoch seconds
    end: int  # exclusive


def time_range(
    start: str | None, end: str | None, now: float, max_span_s: int, default_span_s: int
) -> TimeRange:
    """[from, to) of a request; `to` defaults to now, `from` to `to` - default span."""
    end_s = parse_instant(end, "to") if end is not None else int(now) + 1
    start_s = parse_instant(start, "from") if start is not None else end_s - default_span_s
    if start_s >= end_s:
        raise BadQuery("from must be before to")
    if end_s - start_s > max_span_s:
        raise BadQuery(f"range too long: at most {max_span_s} seconds")
    return TimeRange(start_s, end_s)


_RESOLUTION = re.compile(r"^(\d{1,6})([mhd])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}


def parse_resolution(text: str, window_s: int | None) -> int:
    """`1h`, `1d` or `<N>m` (also `<N>h`, `<N>d`) as seconds, a multiple of the window size."""
    match = _RESOLUTION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise BadQuery(f"resolution: expected 1h, 1d or <N>m, got {text!r}")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds > 31 * 86400:
        raise BadQuery("resolution: at most 31 days")
    if window_s and seconds % window_s:
        raise BadQuery(f"resolution: must be a multiple of the window size ({window_s} s)")
    return seconds


def bucket_range(requested: TimeRange, resolution_s: int, max_buckets: int) -> TimeRange:
    """The range widened to whole buckets; refused when it holds too many."""
    start = requested.start // resolution_s * resolution_s
    end = -(-requested.end // resolution_s) * resolution_s
    if (end - start) // resolution_s > max_buckets:
        raise BadQuery(f"too many buckets: at most {max_buckets}; use a coarser resolution")
    return TimeRange(start, end)


def parse_cursor(text: str | None) -> int | None:
    """A cursor is the window start the next page begins with, as returned by the API."""
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 12:
        raise BadQuery("cursor: not a cursor this API returned")
    return int(text)


def parse_limit(text: str | None, default: int, maximum: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise BadQuery(f"limit: expected 1..{maximum}")
    return int(text)


def parse_revision(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) < 1_000_000:
        raise BadQuery("revision: expected a positive integer")
    return int(text)
