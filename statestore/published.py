"""Published windows kept for readers: each committed revision, an index, rollup sketches.

The emitter commits a revision with `PublishedStore.commit` instead of the bare
`StateStore.commit_revision`: the same script (commit_revision.lua) then also
keeps the published record (latest and the last KEEP_REVISIONS revisions) and
the index of published windows, and lists a final window as due for its
sketches; `keep_due_sketches` (at the start of the next emitter tick) then
keeps one merged copy of the window's HyperLogLogs plus its rollup summary.
Everything is on the emission slot and retained for `retention_s`, so readers
never touch the per-partition working keys of a final window.

`PublishedReader` is the read side, on redis.asyncio, for the HTTP API.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis

from services.common.logging import get_logger
from statestore.codec import COMMIT_ARGV, KEEP_ARGV, script_args
from statestore.keys import HLL_KINDS, Keys
from statestore.sketches import WindowSummary, stage_sketches
from statestore.store import StateStore, script_source

log = get_logger("statestore.published")

KEEP_REVISIONS = 20  # older revisions of a window are dropped from its published hash
DEFAULT_RETENTION_S = 7 * 86400


class PublishedStore:
    """Write side, used by the emitter (sync redis-py, like the rest of the processor)."""

    def __init__(
        self,
        store: StateStore,
        retention_s: int = DEFAULT_RETENTION_S,
        keep_revisions: int = KEEP_REVISIONS,
    ):
        self.store = store
        self.redis = store.redis
        self.keys: Keys = store.keys
        self.retention_s = retention_s
        self.keep_revisions = keep_revisions
        self._commit = store._commit  # the same script as the bare commit, loaded once
        self._keep = self.redis.register_script(script_source("keep_sketches.lua"))
        # The store's retry: transient Redis faults are waited out on its time budget.
        self._retrying = store._call

    def commit(self, window_start: int, revision: int) -> bool:
        """Commit a delivered revision and keep its published copy, atomically.

        One script call, as the bare commit: it commits the revision, keeps the
        record, indexes the window and, when the revision is final, lists the
        window as due for its rollup sketches (`keep_due_sketches`). A retry after a
        lost reply is a no-op: the pending revision is gone by then.
        """
        keys = [
            self.keys.emission(window_start),
            self.keys.published(window_start),
            self.keys.published_index(),
            self.keys.published_latest(),
            self.keys.rollup_due(),
        ]
        args = script_args(
            COMMIT_ARGV,
            revision=revision,
            ttl_s=self.store.ttl_s,
            window_start=window_start,
            retention_s=self.retention_s,
            revisions_kept=self.keep_revisions,
        )
        return bool(self._retrying(lambda: self._commit(keys=keys, args=args)))

    def keep_due_sketches(self, partitions: Iterable[int], limit: int = 8) -> int:
        """Keep the rollup sketches of up to `limit` final windows listed as due.

        Kept apart from the commit so that it never delays the next window's
        publication, and safe wherever it stops: the due list is written with the
        commit, and an entry leaves it only in the script that keeps the sketches.
        1. Merge the window's state (sealed: it cannot change any more) into its
           summary: counters, top pages and referrers.
        2. Restore its per-partition HLLs into scratch keys on the emission slot.
        3. keep_sketches.lua PFMERGEs them into one sketch per kind, stores the
           summary, indexes the window for rollups and drops it from the due list.
        Returns how many windows it kept.
        """
        partitions = list(partitions)
        due = self._retrying(lambda: self.redis.zrange(self.keys.rollup_due(), 0, limit - 1))
        for member in due:
            window_start = int(member)
            totals = self.store.read_window(window_start, partitions)
            if totals.events == 0:
                log.warning(
                    "final window's state expired before its sketches were kept",
                    window_start=window_start,
                )
            scratch = self._retrying(
                lambda ws=window_start: stage_sketches(self.redis, self.keys, ws, partitions)
            )
            keys = [
                self.keys.published(window_start),
                self.keys.rollup_index(),
                self.keys.rollup_due(),
                *self.keys.rollup_sketches(window_start),
            ]
            for kind in HLL_KINDS:
                keys += scratch[kind]
            args = script_args(
                KEEP_ARGV,
                window_start=window_start,
                retention_s=self.retention_s,
                summary=WindowSummary.from_totals(totals).encode(),
                kinds=len(HLL_KINDS),
            )
            args += [len(scratch[kind]) for kind in HLL_KINDS]
            self._retrying(lambda keys=keys, args=args: self._keep(keys=keys, args=args))
        return len(due)


class PublishedReader:
    """Read side for the HTTP API (redis.asyncio); every call is one round trip."""

    def __init__(self, client: aioredis.Redis, keys: Keys):
        self.redis = client
        self.keys = keys

    async def latest(self) -> bytes | None:
        return await self.redis.hget(self.keys.published_latest(), "record")

    async def window(self, window_start: int, revision: int | None = None) -> bytes | None:
        """The window's latest record, or revision `revision` while it is kept."""
        field = "latest" if revision is None else f"r:{revision}"
        return await self.redis.hget(self.keys.published(window_start), field)

    async def window_starts(
        self, newest: float, oldest: float, limit: int, newest_inclusive: bool = True
    ) -> list[int]:
        """Published window starts in [oldest, newest], newest first, at most `limit`."""
        top = f"{newest}" if newest_inclusive else f"({newest}"
        members = await self.redis.zrevrangebyscore(
            self.keys.published_index(), top, oldest, start=0, num=limit
        )
        return [int(member) for member in members]

    async def records(self, window_starts: Iterable[int]) -> list[bytes | None]:
        pipe = self.redis.pipeline(transaction=False)
        for window_start in window_starts:
            pipe.hget(self.keys.published(window_start), "latest")
        return await pipe.execute()
