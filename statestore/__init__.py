"""Window state in Redis: the only package that knows Redis keys and scripts.

It owns the per-window metrics table (metrics), the value types callers pass
and get back (types), the wire codec between them and the Lua scripts (codec),
the key layout (keys), the scripts (scripts/*.lua), the store itself (store)
and the record built from a window's state (record).

Layer: it may import services.common and third-party libraries only; never
services.producer/processor/consumer, load or tests.
"""

from statestore.metrics import METRICS, Display, Kind, Metric
from statestore.record import build_record, encode_window_record
from statestore.store import StateStore
from statestore.types import (
    NO_FENCE,
    ApplyResult,
    ApplyStatus,
    Claim,
    Emission,
    PartitionState,
    WindowDelta,
    WindowTotals,
)

__all__ = [
    "METRICS",
    "NO_FENCE",
    "ApplyResult",
    "ApplyStatus",
    "Claim",
    "Display",
    "Emission",
    "Kind",
    "Metric",
    "PartitionState",
    "StateStore",
    "WindowDelta",
    "WindowTotals",
    "build_record",
    "encode_window_record",
]
