"""The wire codec: what goes into the apply script and what comes out of Redis rows.

`APPLY_ARGV` names apply_batch.lua's fixed ARGV positions; the script reads
each into a local of the same name (`local expected_fence = ARGV[1]`), and a
unit test holds the two together, so a reorder on one side fails a test
instead of silently corrupting state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from statestore.metrics import (
    BREAKDOWNS,
    BY_BREAKDOWN_PREFIX,
    BY_COUNTER_FIELD,
    COUNTERS,
    HLLS,
    LATE_EVENT,
    OVERFLOW_FIELD,
    REFUSED_BY_CAP,
    SORTED_SETS,
)
from statestore.types import NO_FENCE, NOT_SEALED, Emission, PartitionState, WindowDelta

# apply_batch.lua's KEYS: these two, then each window's keys (keys.Keys.window).
APPLY_KEYS = ("partition", "window_index")
# apply_batch.lua's fixed ARGV, in order (ARGV[1] is the first); then the window
# starts, each window's data (encode_delta) and the dead letters (encode_dead_letters).
APPLY_ARGV = (
    "expected_fence",
    "first_offset",
    "last_offset",
    "watermark_s",
    "now_ms",
    "ttl_s",
    "owner",
    "sorted_set_cap",
    "hll_keys",
    "sorted_set_keys",
    "windows",
)
# The other scripts' KEYS and ARGV, in order.
CLAIM_KEYS = ("emission",)
# commit_revision.lua: the emission hash alone (a bare commit), or with the published
# keys after it (statestore.published keeps a copy for readers in the same step).
COMMIT_KEYS = ("emission", "published", "published_index", "published_latest", "rollup_due")
CLAIM_ARGV = ("last_revision", "record", "version", "final", "ttl_s")
COMMIT_ARGV = ("revision", "ttl_s", "window_start", "retention_s", "revisions_kept")
BARE_COMMIT_ARGV = COMMIT_ARGV[:2]
# keep_sketches.lua: these keys, then one rollup HLL per HLL metric and the scratch keys;
# these arguments, then one scratch-key count per HLL metric.
KEEP_KEYS = ("published", "rollup_index", "rollup_due")
KEEP_ARGV = ("window_start", "retention_s", "summary", "kinds")
LEASE_KEYS = ("lease",)
LEASE_ARGV = ("owner", "ttl_ms")
SEAL_KEYS = ("partition",)
SEAL_ARGV = ("threshold", "min_fence")
# Joins a packed list of members; a list with a member that holds it goes unpacked.
MEMBER_SEPARATOR = "\n"
DEAD_LETTER_PREFIX = "dlq:"  # partition hash fields counting dead letters by reason


def script_args(names: Sequence[str], **values: object) -> list:
    """A script's ARGV from named values, in the order `names` gives."""
    if set(values) != set(names):
        raise TypeError(f"script arguments {sorted(values)} are not {sorted(names)}")
    return [values[name] for name in names]


def apply_header(
    expected_fence: int,
    first_offset: int,
    last_offset: int,
    watermark_s: float | None,
    now_ms: int,
    ttl_s: int,
    owner: str,
    sorted_set_cap: int,
    windows: int,
) -> list:
    return script_args(
        APPLY_ARGV,
        expected_fence=expected_fence,
        first_offset=first_offset,
        last_offset=last_offset,
        watermark_s="" if watermark_s is None else f"{watermark_s:.3f}",
        now_ms=now_ms,
        ttl_s=ttl_s,
        owner=owner,
        sorted_set_cap=sorted_set_cap,
        hll_keys=len(HLLS),
        sorted_set_keys=len(SORTED_SETS),
        windows=windows,
    )


def encode_delta(delta: WindowDelta) -> list:
    """One window's data in apply_batch.lua's layout: the counters (a list of fields,
    then their increments), each HLL (a list of members), each sorted set (its overflow
    counter field, a list of members in first-occurrence order, then their increments).

    A list of strings is packed into one argument where it can be (see encode_members)
    and a list of increments always is (see encode_numbers): redis-py's packing and
    Redis' parsing cost per argument, and a batch holds thousands of members."""
    fields: list = []
    increments: list = []
    for metric in COUNTERS:
        if metric.source == REFUSED_BY_CAP:
            continue  # the script counts these, as it admits members
        value = getattr(delta, metric.name)
        # Most windows never see a late event: no `late` field until one does.
        if value or metric.source != LATE_EVENT:
            fields.append(metric.field)
            increments.append(value)
    for metric in BREAKDOWNS:
        counts = getattr(delta, metric.name)
        fields += [f"{metric.field}:{name}" for name in counts]
        increments += counts.values()
    args = [*encode_members(fields), encode_numbers(increments)]
    for metric in HLLS:
        args += encode_members(getattr(delta, metric.name))
    for metric in SORTED_SETS:
        counts = getattr(delta, metric.name)
        args.append(OVERFLOW_FIELD[metric.name])
        args += encode_members(counts)
        args.append(encode_numbers(counts.values()))
    return args


def encode_members(members: Iterable) -> list:
    """A list of strings as apply_batch.lua's take_list reads it: -n and one argument of
    the n members joined by MEMBER_SEPARATOR, or, when a member holds the separator
    itself (or is not a string), n and then the n members one argument each."""
    members = list(members)
    if not members:
        return [0]
    try:
        packed = MEMBER_SEPARATOR.join(members)
    except TypeError:
        return [len(members), *members]
    if packed.count(MEMBER_SEPARATOR) != len(members) - 1:
        return [len(members), *members]
    return [-len(members), packed]


def encode_numbers(numbers: Iterable[int]) -> str:
    """Integers as one argument, space-separated, as apply_batch.lua's take_numbers reads it."""
    return " ".join(map(str, numbers))


def encode_dead_letters(dead_letters: Mapping[str, int]) -> list:
    args: list = [len(dead_letters)]
    for reason, count in dead_letters.items():
        args += (reason, count)
    return args


def add_counters(totals, row: Mapping[bytes, bytes]) -> None:
    """Add a window's counters hash (HGETALL) to a WindowTotals."""
    for raw_field, raw_value in row.items():
        name, value = raw_field.decode(), int(raw_value)
        counter = BY_COUNTER_FIELD.get(name)
        if counter is not None:
            setattr(totals, counter.name, getattr(totals, counter.name) + value)
        else:
            prefix, _, label = name.partition(":")
            getattr(totals, BY_BREAKDOWN_PREFIX[prefix].name)[label] += value


def add_sorted_set(totals, name: str, members: Sequence[tuple[bytes, float]]) -> None:
    """Add a sorted set's members and scores (ZREVRANGE WITHSCORES) to a WindowTotals."""
    counts = getattr(totals, name)
    for member, score in members:
        counts[member.decode()] += int(score)


def partition_state(partition: int, row: Mapping[bytes, bytes]) -> PartitionState:
    """A PartitionState from the partition hash (HGETALL); see keys.Keys.partition."""

    def number(name: bytes, default=None, kind=int):
        return kind(row[name]) if name in row else default

    prefix = DEAD_LETTER_PREFIX.encode()
    return PartitionState(
        partition=partition,
        fence=number(b"fence", NO_FENCE),
        watermark_s=number(b"watermark", None, float),
        applied_at_ms=number(b"applied_at"),
        caught_up_offset=number(b"caught_up_offset"),
        sealed_before=number(b"sealed_before", NOT_SEALED),
        owner=row.get(b"owner", b"").decode(),
        dead_letters={
            name[len(prefix) :].decode(): int(value)
            for name, value in row.items()
            if name.startswith(prefix)
        },
    )


def emission(row: Mapping[bytes, bytes]) -> Emission:
    """An Emission from a window's emission hash (HGETALL); see keys.Keys.emission."""
    return Emission(
        revision=int(row.get(b"revision", 0)),
        version=int(row.get(b"version", 0)),
        final=row.get(b"final") == b"1",
        pending_record=row.get(b"pending_record"),
        pending_revision=int(row.get(b"pending_revision", 0)),
        pending_final=row.get(b"pending_final") == b"1",
    )


def pending_claim(reply: Sequence) -> Emission:
    """The pending claim claim_revision.lua returns: {0, record, version, final, revision}."""
    return Emission(
        revision=int(reply[4]) - 1,
        pending_record=reply[1],
        pending_revision=int(reply[4]),
        pending_final=reply[3] == b"1",
    )
