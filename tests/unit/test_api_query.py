from __future__ import annotations

import pytest

from services.api.query import (
    BadQuery,
    TimeRange,
    bucket_range,
    parse_cursor,
    parse_instant,
    parse_limit,
    parse_resolution,
    time_range,
)

NOW = 1_767_225_600.5  # 2026-01-01T00:00:00.5Z


def test_instants_accept_rfc3339_with_a_zone_and_epoch_seconds():
    assert parse_instant("2026-01-01T00:00:00Z", "from") == 1_767_225_600
    assert parse_instant("2026-01-01T01:00:00+01:00", "from") == 1_767_225_600
    assert parse_instant("1767225600", "from") == 1_767_225_600
    assert parse_instant("1767225600.9", "from") == 1_767_225_600


@pytest.mark.parametrize("text", ["2026-01-01T00:00:00", "yesterday", "nan", "-5", "1e20"])
def test_instants_without_a_zone_or_out_of_range_are_refused(text):
    with pytest.raises(BadQuery):
        parse_instant(text, "from")


def test_range_defaults_to_the_last_day_up_to_now():
    assert time_range(None, None, NOW, 8 * 86400, 86400) == TimeRange(
        1_767_225_601 - 86400, 1_767_225_601
    )


def test_range_must_be_ordered_and_bounded():
    with pytest.raises(BadQuery, match="before"):
        time_range("10", "10", NOW, 100, 50)
    with pytest.raises(BadQuery, match="too long"):
        time_range("0", "101", NOW, 100, 50)


def test_resolution_is_a_multiple_of_the_window():
    assert parse_resolution("1h", 300) == 3600
    assert parse_resolution("1d", 300) == 86400
    assert parse_resolution("15m", 300) == 900
    with pytest.raises(BadQuery, match="multiple"):
        parse_resolution("7m", 300)
    for text in ("0m", "1w", "h", "99999999m"):
        with pytest.raises(BadQuery):
            parse_resolution(text, 300)


def test_bucket_range_widens_to_whole_buckets_and_caps_their_number():
    assert bucket_range(TimeRange(3601, 7201), 3600, 10) == TimeRange(3600, 10800)
    with pytest.raises(BadQuery, match="too many buckets"):
        bucket_range(TimeRange(0, 3600 * 11), 3600, 10)


def test_cursor_and_limit_are_checked():
    assert parse_cursor(None) is None and parse_cursor("") is None
    assert parse_cursor("1767225600") == 1_767_225_600
    assert parse_limit(None, 50, 500) == 50
    for bad in ("abc", "-1"):
        with pytest.raises(BadQuery):
            parse_cursor(bad)
    for bad in ("0", "501", "x"):
        with pytest.raises(BadQuery):
            parse_limit(bad, 50, 500)
