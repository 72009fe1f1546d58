"""The per-window metrics record: what the processor publishes and consumers read.

One record per window revision on the metrics topic, key = window_start. It
carries the original example's fields, plus what a consumer needs to trust it
(`revision`, `final`, `late_events`) and the breakdowns users ask for next.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec

from services.common.schema import MAX_DURATION_MS

TOP_N = 10

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


def build_record(
    totals,
    window_seconds: int,
    *,
    revision: int,
    final: bool,
    published_at: float,
) -> WindowRecord:
    """A WindowRecord from a window's merged state (statestore.WindowTotals)."""
    sessions = totals.unique_sessions
    return WindowRecord(
        window_start=iso_utc(totals.window_start),
        window_end=iso_utc(totals.window_start + window_seconds),
        total_events=totals.events,
        unique_users=totals.unique_users,
        unique_sessions=sessions,
        event_types=_ranked(totals.event_types),
        devices=_ranked(totals.devices),
        top_referrers=_ranked(totals.referrers, TOP_N),
        top_pages=_ranked(totals.pages, TOP_N),
        avg_duration_ms=round(totals.duration_ms / totals.events, 1) if totals.events else 0.0,
        countries=_ranked(totals.countries),
        categories=_ranked(totals.categories),
        cart_sessions=totals.cart_sessions,
        purchase_sessions=totals.purchase_sessions,
        cart_conversion=round(totals.cart_sessions / sessions, 4) if sessions else 0.0,
        purchase_conversion=round(totals.purchase_sessions / sessions, 4) if sessions else 0.0,
        revision=revision,
        final=final,
        late_events=totals.late,
        published_at=iso_utc(published_at),
    )


def _ranked(counts, limit: int | None = None) -> dict[str, int]:
    """Highest count first, ties by name; zero counts left out."""
    ranked = sorted(
        ((name, count) for name, count in counts.items() if count), key=lambda kv: (-kv[1], kv[0])
    )
    return dict(ranked[:limit])
