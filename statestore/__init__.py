"""Window state in Redis: the only package that knows keys and scripts."""

from statestore.store import (
    ApplyResult,
    ApplyStatus,
    Claim,
    Emission,
    PartitionState,
    StateStore,
    WindowDelta,
    WindowTotals,
)

__all__ = [
    "ApplyResult",
    "ApplyStatus",
    "Claim",
    "Emission",
    "PartitionState",
    "StateStore",
    "WindowDelta",
    "WindowTotals",
]
