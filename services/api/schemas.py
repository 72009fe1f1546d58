"""Response shapes for the OpenAPI document.

Responses are written with msgspec (published records are returned as the
very bytes on the metrics topic), so these models document the shapes and are
never used to validate a response on the hot path.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Window(BaseModel):
    """A metrics record as published on the metrics topic (same field names)."""

    window_start: str = Field(examples=["2026-11-29T13:05:00Z"])
    window_end: str
    total_events: int
    unique_users: int
    unique_sessions: int
    event_types: dict[str, int]
    devices: dict[str, int]
    top_referrers: dict[str, int]
    top_pages: dict[str, int]
    avg_duration_ms: float
    countries: dict[str, int] = {}
    categories: dict[str, int] = {}
    cart_sessions: int = 0
    purchase_sessions: int = 0
    cart_conversion: float = 0.0
    purchase_conversion: float = 0.0
    revision: int
    final: bool
    late_events: int
    published_at: str


class Progress(BaseModel):
    watermark: str | None = Field(description="furthest event time applied by any partition")
    elapsed_seconds: float
    fraction: float = Field(description="elapsed share of the window, 0..1")


class CurrentWindow(Window):
    """The in-progress window merged live from Redis; revision 0, not yet published."""

    partial: bool = True
    progress: Progress


class WindowPage(BaseModel):
    windows: list[Window]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page")


class Bucket(BaseModel):
    """Windows merged over [window_start, window_end): counters summed, unique counts
    the cardinality of the union of the windows' HyperLogLogs."""

    window_start: str
    window_end: str
    total_events: int
    unique_users: int
    unique_sessions: int
    event_types: dict[str, int]
    devices: dict[str, int]
    top_referrers: dict[str, int]
    top_pages: dict[str, int]
    avg_duration_ms: float
    countries: dict[str, int]
    categories: dict[str, int]
    cart_sessions: int
    purchase_sessions: int
    cart_conversion: float
    purchase_conversion: float
    late_events: int
    final: bool = Field(description="every merged window is final: the bucket will not change")
    windows: int = Field(description="windows merged into the bucket")
    top_pages_max_undercount: int = Field(
        description="a listed page count is below the true count by at most this"
    )
    top_referrers_max_undercount: int


class Rollup(BaseModel):
    resolution_seconds: int
    buckets: list[Bucket]


class Error(BaseModel):
    error: str
    status: int
