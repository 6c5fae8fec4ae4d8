"""Schedules as time arithmetic: the intervals a schedule defines, in the DAG's timezone.

Cron schedules follow local wall time (pendulum + croniter) and are returned in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pendulum
from croniter import croniter

from orchestrator.models.specs import CronSchedule, DeltaSchedule

Schedule = CronSchedule | DeltaSchedule | None

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def _cron(expression: str) -> str | None:
    if expression == "@once":
        return None
    return PRESETS.get(expression, expression)


def _cron_step(expression: str, tz: str, when: datetime, forward: bool) -> datetime:
    local = pendulum.instance(when).in_timezone(tz)
    it = croniter(expression, local)
    nxt: datetime = it.get_next(datetime) if forward else it.get_prev(datetime)
    return pendulum.instance(nxt).in_timezone("UTC")


def _on_or_before(expression: str, tz: str, when: datetime) -> datetime:
    if croniter.match(expression, pendulum.instance(when).in_timezone(tz)):
        return when.astimezone(UTC)
    return _cron_step(expression, tz, when, forward=False)


def next_logical_date(schedule: Schedule, tz: str, logical_date: datetime) -> datetime | None:
    """The logical date of the run after the one at `logical_date`; None if unscheduled."""
    if isinstance(schedule, DeltaSchedule):
        return logical_date + schedule.every
    if isinstance(schedule, CronSchedule) and (expr := _cron(schedule.expression)):
        return _cron_step(expr, tz, logical_date, forward=True)
    return None


def prev_logical_date(schedule: Schedule, tz: str, logical_date: datetime) -> datetime | None:
    """The logical date of the run before the one at `logical_date`; None if unscheduled."""
    if isinstance(schedule, DeltaSchedule):
        return logical_date - schedule.every
    if isinstance(schedule, CronSchedule) and (expr := _cron(schedule.expression)):
        return _cron_step(expr, tz, logical_date, forward=False)
    return None


def manual_data_interval(schedule: Schedule, tz: str, when: datetime) -> tuple[datetime, datetime]:
    """The data interval of a manual run at `when` (Airflow's `infer_manual_data_interval`).

    A cron schedule gives the latest complete interval ending at or before `when`; a fixed
    delta gives `[when - delta, when)`; no schedule gives the empty interval `[when, when)`.
    """
    when = when.astimezone(UTC)
    if isinstance(schedule, DeltaSchedule):
        return when - schedule.every, when
    if isinstance(schedule, CronSchedule) and (expr := _cron(schedule.expression)):
        end = _on_or_before(expr, tz, when)
        return _cron_step(expr, tz, end, forward=False), end
    return when, when
