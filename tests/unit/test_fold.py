from __future__ import annotations

from datetime import UTC, datetime

from services.common.schema import ClickEvent
from services.common.windowing import Windowing
from services.processor.fold import fold

WINDOWING = Windowing(size_s=60, grace_s=10, allowed_lateness_s=120)
T0 = 1_700_000_040  # a window start: 1_700_000_040 % 60 == 0


def event(at: float, user="u1", session="s1", event_type="page_view", page="/", duration=100):
    return ClickEvent(
        event_id=f"e{at}",
        timestamp=datetime.fromtimestamp(at, UTC),
        user_id=user,
        session_id=session,
        event_type=event_type,
        page_url=page,
        page_category="home",
        referrer="google.com",
        device_type="mobile",
        country="US",
        duration_ms=duration,
    )


def test_events_split_into_tumbling_windows_with_exact_aggregates():
    events = [
        event(T0 + 1, "u1", "s1", "page_view", "/a", 100),
        event(T0 + 59.999, "u2", "s2", "add_to_cart", "/b", 300),
        event(T0 + 60, "u1", "s3", "purchase", "/a", 50),
    ]
    folded = fold(events, None, -1, WINDOWING)
    first, second = folded.deltas
    assert (first.window_start, second.window_start) == (T0, T0 + 60)
    assert first.events == 2 and first.duration_ms == 400
    assert first.users == {"u1", "u2"} and first.sessions == {"s1", "s2"}
    assert first.cart_sessions == {"s2"} and first.purchase_sessions == set()
    assert first.pages == {"/a": 1, "/b": 1}
    assert second.purchase_sessions == {"s3"}
    assert folded.watermark_s == T0 + 60 and folded.too_late == [] and folded.late == 0


def test_out_of_order_within_grace_is_on_time():
    events = [event(T0 + 65), event(T0 + 59)]  # window T0 closes at T0 + 70
    folded = fold(events, None, -1, WINDOWING)
    assert folded.late == 0
    assert [d.window_start for d in folded.deltas] == [T0, T0 + 60]


def test_event_after_its_window_closed_is_late_but_counts():
    events = [event(T0 + 71), event(T0 + 30)]
    folded = fold(events, None, -1, WINDOWING)
    (late_window,) = [d for d in folded.deltas if d.window_start == T0]
    assert late_window.events == 1 and late_window.late == 1 and folded.late == 1


def test_event_beyond_allowed_lateness_is_too_late_and_not_counted():
    folded = fold(
        [event(T0 + 30)], watermark_s=T0 + 30 + 121, sealed_before=-1, windowing=WINDOWING
    )
    assert folded.too_late == [0] and folded.deltas == []
    assert folded.watermark_s == T0 + 30 + 121  # a dropped event does not move the watermark


def test_event_in_a_sealed_window_is_too_late_even_when_recent():
    folded = fold(
        [event(T0 + 30), event(T0 + 61)], None, sealed_before=T0 + 60, windowing=WINDOWING
    )
    assert folded.too_late == [0]
    assert [d.window_start for d in folded.deltas] == [T0 + 60]


def test_watermark_is_carried_from_the_previous_batch():
    first = fold([event(T0 + 100)], None, -1, WINDOWING)
    second = fold([event(T0 + 30)], first.watermark_s, -1, WINDOWING)
    assert second.late == 1 and second.watermark_s == T0 + 100


def test_page_urls_are_counted_without_query_string_and_fragment_in_first_seen_order():
    pages = ["/p?id=1#x", "/q#top", "/p", "/p?id=2", "/r?a=1?b=2", "/q"]
    events = [event(T0 + n, page=page) for n, page in enumerate(pages)]
    (delta,) = fold(events, None, -1, WINDOWING).deltas
    assert list(delta.pages.items()) == [("/p", 3), ("/q", 2), ("/r", 1)]


def test_page_url_normalisation_switched_off_counts_urls_as_sent():
    events = [event(T0 + 1, page="/p?id=1"), event(T0 + 2, page="/p#x")]
    (delta,) = fold(events, None, -1, WINDOWING, normalize_page_urls=False).deltas
    assert delta.pages == {"/p?id=1": 1, "/p#x": 1}
