"""Redis key layout: the only place that knows key names.

Every key of one source partition shares the hash tag `{<namespace>:<topic>:p<N>}`,
so a partition batch is one script call on one Redis Cluster slot. Emission
metadata shares `{<namespace>:<topic>:emit}`. The namespace keeps deployments,
test runs and benchmarks apart on one Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from statestore.metrics import HLLS, WINDOW_KEY_SUFFIXES

# Key suffixes of a window's HyperLogLogs, in the metrics table's order.
HLL_KINDS = tuple(metric.field for metric in HLLS)


@dataclass(frozen=True)
class Keys:
    namespace: str
    topic: str

    def _partition_tag(self, partition: int) -> str:
        return f"cs:{{{self.namespace}:{self.topic}:p{partition}}}"

    def _emit_tag(self) -> str:
        return f"cs:{{{self.namespace}:{self.topic}:emit}}"

    def partition(self, partition: int) -> str:
        """Hash: fence, watermark (epoch s), applied_at (epoch ms), owner, caught_up_at
        (epoch ms), caught_up_offset, sealed_before, dlq:<reason>."""
        return f"{self._partition_tag(partition)}:part"

    def window_index(self, partition: int) -> str:
        """Zset of the window starts this partition holds state for."""
        return f"{self._partition_tag(partition)}:windows"

    def window(self, partition: int, window_start: int) -> tuple[str, ...]:
        """A window's keys in apply_batch.lua's order: counters hash, HLLs, sorted sets."""
        tag = self._partition_tag(partition)
        return tuple(f"{tag}:w:{window_start}:{kind}" for kind in WINDOW_KEY_SUFFIXES)

    def emission(self, window_start: int) -> str:
        """Hash: revision, version, final and the pending (claimed) record of a window."""
        return f"{self._emit_tag()}:win:{window_start}"

    def emitter_lease(self) -> str:
        return f"{self._emit_tag()}:lease"

    def topology(self) -> str:
        """Hash: partitions of the source topic and window size, for readers like the dashboard."""
        return f"{self._emit_tag()}:topology"

    def scratch(self, token: str, index: int) -> str:
        return f"{self._emit_tag()}:scratch:{token}:{index}"

    def namespace_pattern(self) -> str:
        return f"cs:{{{self.namespace}:*"

    # -- published windows and rollup sketches, for readers such as the HTTP API ----
    # All on the emission slot, so one script (commit_revision.lua) keeps them and a
    # reader merges any set of them with one PFCOUNT.

    def published(self, window_start: int) -> str:
        """Hash: latest (record), revision, final, r:<N> (kept revisions), rollup (summary)."""
        return f"{self._emit_tag()}:pub:{window_start}"

    def published_index(self) -> str:
        """Zset of published window starts (member and score = window start)."""
        return f"{self._emit_tag()}:pub:index"

    def published_latest(self) -> str:
        """Hash: window_start and record of the newest published window."""
        return f"{self._emit_tag()}:pub:latest"

    def rollup_index(self) -> str:
        """Zset of final windows whose merged sketches are kept for rollups."""
        return f"{self._emit_tag()}:rollup:index"

    def rollup_due(self) -> str:
        """Zset of final windows whose sketches are still to be kept (score = window start)."""
        return f"{self._emit_tag()}:rollup:due"

    def rollup_sketches(self, window_start: int) -> tuple[str, ...]:
        """One merged HLL per kind of HLL_KINDS (users, sessions, cart, purchase sessions)."""
        tag = self._emit_tag()
        return tuple(f"{tag}:rollup:{window_start}:{kind}" for kind in HLL_KINDS)
