from datetime import UTC, datetime, timedelta

from orchestrator.models.specs import CronSchedule, DeltaSchedule
from orchestrator.scheduling.timetables import (
    manual_data_interval,
    next_logical_date,
    prev_logical_date,
)

DAILY = CronSchedule(expression="@daily")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_manual_interval_of_a_daily_dag_is_the_last_complete_day() -> None:
    assert manual_data_interval(DAILY, "UTC", utc(2026, 3, 14, 5)) == (
        utc(2026, 3, 13),
        utc(2026, 3, 14),
    )


def test_manual_interval_on_a_boundary_ends_there() -> None:
    assert manual_data_interval(DAILY, "UTC", utc(2026, 3, 14)) == (
        utc(2026, 3, 13),
        utc(2026, 3, 14),
    )


def test_unscheduled_dag_has_an_empty_interval() -> None:
    when = utc(2026, 3, 14, 5)
    assert manual_data_interval(None, "UTC", when) == (when, when)


def test_delta_schedule() -> None:
    every = DeltaSchedule(every=timedelta(hours=6))
    when = utc(2026, 3, 14, 5)
    assert manual_data_interval(every, "UTC", when) == (utc(2026, 3, 13, 23), when)
    assert next_logical_date(every, "UTC", when) == utc(2026, 3, 14, 11)


def test_daily_in_paris_follows_wall_time_across_dst() -> None:
    # Midnight in Paris is 23:00 UTC before 29 March 2026 and 22:00 UTC after.
    before = utc(2026, 3, 28, 23)
    assert next_logical_date(DAILY, "Europe/Paris", before) == utc(2026, 3, 29, 22)
    assert prev_logical_date(DAILY, "Europe/Paris", utc(2026, 3, 29, 22)) == before


def test_month_end() -> None:
    monthly = CronSchedule(expression="@monthly")
    assert next_logical_date(monthly, "UTC", utc(2026, 1, 1)) == utc(2026, 2, 1)
    assert prev_logical_date(monthly, "UTC", utc(2026, 3, 1)) == utc(2026, 2, 1)


def test_pendulum_datetimes_are_accepted() -> None:
    import pendulum

    when = pendulum.parse("2026-03-14T05:00:00", tz="UTC")
    assert isinstance(when, datetime)
    assert manual_data_interval(DAILY, "Europe/Paris", when) == (
        utc(2026, 3, 12, 23),
        utc(2026, 3, 13, 23),
    )
