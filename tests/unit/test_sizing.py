"""The bench's Redis-side sizing figures: CPU over primaries, commands per hash tag."""

from __future__ import annotations

from collections import Counter

from load.sizing import SlotLoad, hash_tag_of, redis_cpu_seconds


class SingleRedis:
    def info(self, section):
        assert section == "cpu"
        return {"used_cpu_sys": 1.5, "used_cpu_user": 2.0}


class ClusterOfTwo:
    PRIMARIES = "primaries"

    def get_primaries(self):
        return ["a", "b"]

    def info(self, section, target_nodes=None):
        assert (section, target_nodes) == ("cpu", self.PRIMARIES)
        return {
            "10.0.0.1:6379": {"used_cpu_sys": 1.0, "used_cpu_user": 2.0},
            "10.0.0.2:6379": {"used_cpu_sys": 0.5, "used_cpu_user": 0.25},
        }


def test_redis_cpu_is_system_plus_user_summed_over_every_primary():
    assert redis_cpu_seconds(SingleRedis()) == 3.5
    assert redis_cpu_seconds(ClusterOfTwo()) == 3.75


def test_monitor_lines_count_for_their_first_keys_hash_tag_in_scripts_too():
    script = '1700000000.1 [0 127.0.0.1:5000] "evalsha" "ab12" "2" "cs:{bench-1-x:t:p3}:part" "k"'
    inner = '1700000000.2 [0 lua] "HINCRBY" "cs:{bench-1-x:t:emit}:win:0" "revision" "1"'
    other = '1700000000.3 [0 127.0.0.1:5001] "GET" "cs:{someone-else:t:p3}:part"'
    assert hash_tag_of(script, "{bench-1-") == "bench-1-x:t:p3"
    assert hash_tag_of(inner, "{bench-1-") == "bench-1-x:t:emit"
    assert hash_tag_of(other, "{bench-1-") is None
    assert hash_tag_of("OK", "{bench-1-") is None


def test_slot_load_sets_the_emission_tag_apart_from_the_busiest_partition():
    load = SlotLoad(2.0, Counter({"n:t:emit": 10, "n:t:p0": 40, "n:t:p1": 100}))
    assert load.rate(":emit") == 5.0
    assert load.busiest(":emit") == ("n:t:p1", 50.0)
