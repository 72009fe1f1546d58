from services.common.windowing import Windowing

W = Windowing(size_s=300, grace_s=10, allowed_lateness_s=3600)


def test_an_event_belongs_to_the_window_that_holds_its_time():
    assert W.start_of(0) == 0
    assert W.start_of(299.999) == 0
    assert W.start_of(300) == 300
    assert W.start_of(1_729_936_812.5) == 1_729_936_800


def test_times_before_the_epoch_fall_in_the_window_below_them():
    assert W.start_of(-0.5) == -300


def test_a_window_closes_after_grace_and_seals_after_allowed_lateness():
    assert W.end_of(600) == 900
    assert W.closes_at(600) == 910
    assert W.seals_at(600) == 910 + 3600


def test_latest_closed_start_is_the_last_start_whose_close_time_has_passed():
    stream_time = 910.0
    assert W.closes_at(W.start_of(W.latest_closed_start(stream_time))) <= stream_time
    assert W.closes_at(W.start_of(W.latest_closed_start(stream_time)) + 300) > stream_time
