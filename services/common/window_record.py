"""The per-window metrics record: what the processor publishes and consumers read.

One record per window revision on the metrics topic, key = window_start. It
carries the original example's fields, plus what a consumer needs to trust it
(`revision`, `final`, `late_events`) and the breakdowns users ask for next.
statestore.record builds it from a window's state, one field per row of
statestore.metrics; this module is below the state store, so it only holds the
record's shape and codec.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec

from services.common.schema import MAX_DURATION_MS

TOP_N = 10
# Breakdowns (countries, categories: values that come from input) keep their
# BREAKDOWN_TOP_N largest counts, ties by name, and sum the rest under OTHER, so
# their counts still add up to total_events. OTHER is the empty name: the event
# schema gives every country (^[A-Z]{2}$) and category (1-128 characters) at least
# one character, so it never collides with a real value.
BREAKDOWN_TOP_N: Final = 50
OTHER: Final = ""
# The largest encoded record the processor publishes: well under the broker's
# default message.max.bytes (1 MB). A record over it is trimmed further (fewer
# breakdown and top entries) before its revision is claimed.
MAX_RECORD_BYTES: Final = 256 * 1024

# Bounds a decoded record must meet (they are checked when decoding, not when the
# processor builds a record). They hold for everything the processor publishes and
# keep a hostile record on the topic from reaching a consumer's views.
MAX_COUNT: Final = 2**53  # counts stay exact in any JSON reader
MAX_ENTRIES: Final = 1000  # names per breakdown; every country code fits
MAX_NAME_CHARS: Final = 2048  # the event schema's longest field (page_url)
# Whole seconds, fixed width, always Z: the form iso_utc gives a window bound, so
# the text order of two window_starts is their time order.
WINDOW_TIME_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"

WindowTime = Annotated[str, msgspec.Meta(pattern=WINDOW_TIME_PATTERN)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
Ratio = Annotated[float, msgspec.Meta(ge=0, le=MAX_COUNT)]  # HLL ratios may pass 1 a little
Counts = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)], Count],
    msgspec.Meta(max_length=MAX_ENTRIES),
]


class WindowRecord(msgspec.Struct, kw_only=True, omit_defaults=False):
    window_start: WindowTime  # RFC 3339 UTC, e.g. 2024-10-26T10:30:00Z
    window_end: WindowTime
    total_events: Count
    unique_users: Count
    unique_sessions: Count
    event_types: Counts
    devices: Counts
    top_referrers: Counts  # at most TOP_N, highest first
    top_pages: Counts  # at most TOP_N, highest first
    avg_duration_ms: Annotated[float, msgspec.Meta(ge=0, le=MAX_DURATION_MS)]  # one decimal
    countries: Counts = {}
    categories: Counts = {}
    cart_sessions: Count = 0  # sessions with at least one add_to_cart (HLL estimate)
    purchase_sessions: Count = 0  # sessions with at least one purchase (HLL estimate)
    cart_conversion: Ratio = 0.0  # cart_sessions / unique_sessions, 4 decimals
    purchase_conversion: Ratio = 0.0  # purchase_sessions / unique_sessions, 4 decimals
    revision: Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)] = 1  # 1, 2, ... as late events amend
    final: bool = False  # no further revision will follow
    late_events: Count = 0  # events applied after the window had closed
    pages_overflow: Count = 0  # events whose page a partition's distinct-page cap refused
    referrers_overflow: Count = 0  # the same for referrers
    published_at: Annotated[str, msgspec.Meta(max_length=64)] = ""  # wall clock, ISO 8601 UTC

    def content(self) -> tuple:
        """Everything but publication metadata: two records with equal content show the same."""
        fields = msgspec.structs.asdict(self)
        fields.pop("published_at")
        return tuple(sorted((key, repr(value)) for key, value in fields.items()))


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WindowRecord)


def encode_record(record: WindowRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(raw: bytes) -> WindowRecord:
    return _decoder.decode(raw)


def iso_utc(epoch_s: float) -> str:
    """Seconds since the epoch as ISO 8601 UTC with a Z, milliseconds only when present."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    if moment.microsecond:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
