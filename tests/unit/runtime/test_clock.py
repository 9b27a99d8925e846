"""Timestamps as Kubernetes writes them: RFC 3339 in UTC, whole seconds for `Time` fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from notebook_controller.runtime.clock import parse_rfc3339, rfc3339


def test_a_time_field_is_utc_in_whole_seconds_whatever_the_zone() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 890_123, tzinfo=UTC)
    assert rfc3339(moment) == "2026-03-04T05:06:07Z"
    east = moment.astimezone(timezone(timedelta(hours=8)))
    assert rfc3339(east) == "2026-03-04T05:06:07Z"
    west = moment.astimezone(timezone(timedelta(hours=-10)))  # the day before, there
    assert rfc3339(west) == "2026-03-04T05:06:07Z"


def test_a_time_field_reads_back_as_the_same_second() -> None:
    moment = datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert parse_rfc3339(rfc3339(moment)) == moment.replace(microsecond=0)
    assert rfc3339(moment + timedelta(microseconds=1)) == "2027-01-01T00:00:00Z"
