from __future__ import annotations

from collections import Counter, defaultdict

from services.common.schema import decode_event, encode_event
from services.producer.generator import COUNTRIES, SESSION_TIMEOUT_S, TrafficGenerator

START = 1_700_000_000.0


def stream(seed, n=20_000, users=100, step=0.1):
    generator = TrafficGenerator(users=users, seed=seed)
    return [generator.next_event(START + i * step) for i in range(n)]


def test_same_seed_gives_the_same_stream():
    assert stream(7, 2000) == stream(7, 2000)
    assert stream(7, 2000) != stream(8, 2000)


def test_every_generated_event_passes_the_schema():
    for event in stream(1, 2000):
        assert decode_event(encode_event(event)) == event


def test_funnel_views_outnumber_clicks_carts_and_purchases():
    counts = Counter(event.event_type for event in stream(3))
    assert counts["page_view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0
    assert counts["search"] > 0


def test_purchases_only_follow_an_add_to_cart_in_the_same_session():
    carted = set()
    for event in stream(4):
        if event.event_type == "add_to_cart":
            carted.add(event.session_id)
        if event.event_type == "purchase":
            assert event.session_id in carted


def test_shares_are_skewed_like_real_traffic():
    events = stream(5, users=1000)
    devices = Counter(event.device_type for event in events)
    assert devices["mobile"] > devices["desktop"] > devices["tablet"]
    countries = Counter(event.country for event in events)
    assert set(countries) <= set(COUNTRIES)
    assert countries.most_common(1)[0][0] == "US"
    users = Counter(event.user_id for event in events)
    top_decile = sum(count for _, count in users.most_common(100))
    assert top_decile > 0.2 * len(events)  # heavy users, not a uniform population


def test_a_user_keeps_device_and_country():
    seen = defaultdict(set)
    for event in stream(6):
        seen[event.user_id].add((event.device_type, event.country))
    assert all(len(traits) == 1 for traits in seen.values())


def test_sessions_rotate_at_about_one_in_five_events_and_after_inactivity():
    events = stream(9)
    new_sessions = len({event.session_id for event in events})
    assert 0.15 < new_sessions / len(events) < 0.30
    generator = TrafficGenerator(users=1, seed=1)
    first = generator.next_event(START)
    later = generator.next_event(START + SESSION_TIMEOUT_S + 1)
    assert first.session_id != later.session_id


def test_session_referrer_is_stable_within_a_session():
    referrers = defaultdict(set)
    for event in stream(10):
        referrers[event.session_id].add(event.referrer)
    assert all(len(values) == 1 for values in referrers.values())
