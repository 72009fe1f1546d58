"""What the dashboard lets through from the metrics topic, and how it shows a name.

The metrics topic is written by the processor, but anything with produce rights
can write to it, and the names in a record (pages, referrers, categories,
countries, devices, event types) come from strangers' events. So:

1. `admit` decodes a record with the typed schema (WindowRecord's bounds) and
   checks what the schema cannot: window bounds that are real UTC times, an end
   after the start, and a start no further ahead of this host's clock than
   `max_future_s` (a window from 2099 must not pin itself as "latest"). A record
   that fails is an `Invalid` with a countable reason, never an exception.
2. `printable` makes a name safe for a terminal or a log: control characters
   (C0, C1, DEL), invisible format characters (bidi overrides, zero-width
   marks) and line separators become visible escapes (\\x1b, \\u202e), and a
   backslash is doubled so an escape cannot be forged.
3. `json_line` is a record as JSON for --json output: msgspec already escapes
   C0 characters; the other unsafe ones become \\uXXXX, so the line decodes to
   the published record and still cannot drive a terminal.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import msgspec

from services.common.schema import (
    INVALID_VALUE,
    MISSING_FIELD,
    NOT_JSON,
    TOO_LARGE,
    WRONG_TYPE,
    validation_reason,
)
from services.common.window_record import WindowRecord, decode_record, encode_record

# The broker's default message.max.bytes: a larger value cannot be an honest record.
MAX_RECORD_BYTES: Final = 1024 * 1024

# Reasons a record is skipped: label values of clickstream_dashboard_invalid_records_total.
# The first five are the processor's reject vocabulary (services.common.schema).
INVALID_WINDOW: Final = "invalid_window"
FUTURE_WINDOW: Final = "future_window"
INVALID_REASONS: Final = (
    TOO_LARGE,
    NOT_JSON,
    MISSING_FIELD,
    WRONG_TYPE,
    INVALID_VALUE,
    INVALID_WINDOW,
    FUTURE_WINDOW,
)

_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


@dataclass(frozen=True)
class Invalid:
    """Why a record is not shown: `reason` is a stable label, `detail` is printable."""

    reason: str
    detail: str


def admit(raw: bytes, now: float, max_future_s: float) -> WindowRecord | Invalid:
    """The record in `raw` if the dashboard may show it, else why not (never raises)."""
    if len(raw) > MAX_RECORD_BYTES:
        return Invalid(TOO_LARGE, f"{len(raw)} bytes > {MAX_RECORD_BYTES}")
    try:
        record = decode_record(raw)
    except msgspec.ValidationError as error:
        return Invalid(validation_reason(str(error)), printable(str(error)))
    except (msgspec.DecodeError, RecursionError) as error:  # msgspec raises the latter
        return Invalid(NOT_JSON, printable(str(error) or type(error).__name__))
    except Exception as error:  # the decoder is C code fed by strangers: no input may crash us
        return Invalid(NOT_JSON, printable(f"{type(error).__name__}: {error}"))
    try:
        start, end = _utc_seconds(record.window_start), _utc_seconds(record.window_end)
    except ValueError as error:  # the pattern passed, the calendar did not (month 13, Feb 30)
        return Invalid(INVALID_WINDOW, printable(str(error)))
    if end <= start:
        return Invalid(INVALID_WINDOW, f"window_end {record.window_end} <= {record.window_start}")
    if start - now > max_future_s:
        ahead = int(start - now)
        return Invalid(
            FUTURE_WINDOW,
            f"window_start {record.window_start} is {ahead}s ahead of this host's clock "
            f"(bound {max_future_s:g}s)",
        )
    return record


def _utc_seconds(window_time: str) -> float:
    return datetime.strptime(window_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def printable(text: str) -> str:
    """`text` with every character a terminal could act on made visible; injective."""
    if text.isprintable() and "\\" not in text:
        return text  # the common case; isprintable() is False for every unsafe character
    return "".join(_escape(char) for char in text)


def printable_keys(counts: dict[str, int]) -> dict[str, int]:
    """A breakdown with printable names (no two names collide: `printable` is injective)."""
    return {printable(name): count for name, count in counts.items()}


def json_line(record: WindowRecord) -> str:
    """The record as one line of JSON, unsafe characters as \\u escapes."""
    text = encode_record(record).decode()
    if text.isascii():
        return text
    return "".join(_json_escape(char) if ord(char) > 0x7E else char for char in text)


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if not _unsafe(char):
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _json_escape(char: str) -> str:
    """Inside a JSON string (the only place a non-ASCII character can be), as \\uXXXX."""
    if not _unsafe(char):
        return char
    units = char.encode("utf-16-be")
    return "".join(f"\\u{int.from_bytes(units[i : i + 2]):04x}" for i in range(0, len(units), 2))
