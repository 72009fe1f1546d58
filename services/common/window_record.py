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

import msgspec

TOP_N = 10


class WindowRecord(msgspec.Struct, kw_only=True, omit_defaults=False):
    window_start: str  # ISO 8601 UTC, e.g. 2024-10-26T10:30:00Z
    window_end: str
    total_events: int
    unique_users: int
    unique_sessions: int
    event_types: dict[str, int]
    devices: dict[str, int]
    top_referrers: dict[str, int]  # at most TOP_N, highest first
    top_pages: dict[str, int]  # at most TOP_N, highest first
    avg_duration_ms: float  # one decimal
    countries: dict[str, int] = {}
    categories: dict[str, int] = {}
    cart_sessions: int = 0  # sessions with at least one add_to_cart (HLL estimate)
    purchase_sessions: int = 0  # sessions with at least one purchase (HLL estimate)
    cart_conversion: float = 0.0  # cart_sessions / unique_sessions, 4 decimals
    purchase_conversion: float = 0.0  # purchase_sessions / unique_sessions, 4 decimals
    revision: int = 1  # 1, 2, ... as late events amend a published window
    final: bool = False  # no further revision will follow
    late_events: int = 0  # events applied after the window had closed
    published_at: str = ""  # wall clock of publication, ISO 8601 UTC

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
