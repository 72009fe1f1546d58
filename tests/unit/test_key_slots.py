"""Every script, transaction and multi-key command of the store touches one cluster slot.

The key layout promises it (statestore.keys); this checks the promise with the
slot function Redis Cluster uses, for the keys each call is given.
"""

from __future__ import annotations

from redis.crc import key_slot

from statestore.keys import Keys

KEYS = Keys("prod-eu", "clickstream-events")


def slots(keys) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def test_a_partition_batch_touches_one_slot_whatever_its_windows():
    for partition in range(12):
        keys = [KEYS.partition(partition), KEYS.window_index(partition)]
        for window_start in (0, 300, 1_767_225_600):
            keys += KEYS.window(partition, window_start)
        assert len(slots(keys)) == 1, partition


def test_emission_published_rollup_and_scratch_keys_share_the_emission_slot():
    keys = [KEYS.emission(0), KEYS.emission(300), KEYS.emitter_lease(), KEYS.topology()]
    keys += [KEYS.scratch("a1b2c3", index) for index in range(20)]
    keys += [KEYS.published(0), KEYS.published_index(), KEYS.published_latest()]
    keys += [KEYS.rollup_index(), KEYS.rollup_due(), *KEYS.rollup_sketches(300)]
    assert len(slots(keys)) == 1


def test_partitions_spread_over_slots_so_a_cluster_shares_the_load():
    assert len(slots(KEYS.partition(p) for p in range(6))) == 6


def test_every_key_of_a_namespace_matches_its_reset_pattern():
    import fnmatch

    keys = [KEYS.partition(3), *KEYS.window(3, 0), KEYS.emission(0), KEYS.scratch("t", 0)]
    assert all(fnmatch.fnmatchcase(key, KEYS.namespace_pattern()) for key in keys)
