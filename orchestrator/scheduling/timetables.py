"""Schedules as time arithmetic: the intervals a schedule defines, in the DAG's timezone.

Cron schedules follow the LOCAL WALL TIME of the DAG's timezone and every result is returned
in UTC. Decisions, as Airflow 2 makes them:

- A cron whose hour field is `*` (it fires at least every hour, e.g. `@hourly`, `*/5 * * * *`)
  steps through REAL time: across a DST change it keeps firing every hour, so the repeated
  autumn hour gets its runs and the skipped spring hour just is not there (no interval is
  stretched or doubled). This is Airflow's "fold hour" rule.
- Every other cron is evaluated on the wall clock:
  - spring forward: a wall time that does not exist on that day (02:30 in Europe/Amsterdam on
    the last Sunday of March) is shifted forward by the length of the gap, to 03:30 (and
    02:00 to 03:00) - the same rule `pendulum` and our DAG loader apply to naive dates;
  - fall back: a wall time that occurs twice (02:30 on the last Sunday of October) fires once,
    at its FIRST occurrence (summer time); the repeat is not a new run.
- Presets: `@hourly @daily @weekly @monthly @yearly @annually`; `@once` is not a cron (it has
  a single run at `start_date`, see `scheduling.planning`).
- A `timedelta` schedule steps in absolute time (`next = logical_date + every`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from orchestrator.models.specs import CronSchedule, DeltaSchedule

Schedule = CronSchedule | DeltaSchedule | None

ONCE = "@once"
PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_SECOND = timedelta(seconds=1)
#: Longer than any DST gap: a wall time in a gap resolves to an instant up to one gap later.
_MAX_GAP = timedelta(hours=3)


def cron_expression(schedule: Schedule) -> str | None:
    """The cron text of a cron schedule (presets expanded); None for `@once`, deltas, None."""
    if not isinstance(schedule, CronSchedule) or schedule.expression == ONCE:
        return None
    return PRESETS.get(schedule.expression, schedule.expression)


def is_once(schedule: Schedule) -> bool:
    return isinstance(schedule, CronSchedule) and schedule.expression == ONCE


def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def _utc(when: datetime) -> datetime:
    """`when` as a plain stdlib UTC datetime (pendulum's subclass is not naive-safe here)."""
    u = when.astimezone(UTC)
    return datetime(u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond, tzinfo=UTC)


def _wall(when: datetime, zone: ZoneInfo) -> datetime:
    """The naive local wall time of an instant. An instant in the repeated autumn hour's
    second pass is read as if the clock had not been put back (02:15 CET -> 03:15), so that
    wall-clock arithmetic never goes backwards."""
    local = when.astimezone(zone)
    naive = local.replace(tzinfo=None)
    if local.fold:
        first, second = local.replace(fold=0).utcoffset(), local.utcoffset()
        if first is not None and second is not None:
            naive += first - second
    return naive


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive wall time: an ambiguous time is its first occurrence
    (fold=0); a skipped one is shifted forward by the gap (zoneinfo's fold=0 rule)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _covers_every_hour(it: croniter) -> bool:
    return bool(it.expanded[1] == ["*"])


def cron_next(expression: str, tz: str, current: datetime) -> datetime:
    """The first fire time strictly after `current` (UTC in, UTC out)."""
    zone, current = _zone(tz), _utc(current)
    wall = _wall(current, zone)
    it = croniter(expression, wall)
    if _covers_every_hour(it):
        nxt: datetime = it.get_next(datetime)
        return current + (nxt - wall)
    # a skipped wall time (shifted forward by its gap) may lie after `current` while its wall
    # time lies before `current`'s: start looking one gap earlier
    it = croniter(expression, wall - _MAX_GAP)
    while True:
        candidate = _instant(it.get_next(datetime), zone)
        if candidate > current:
            return candidate


def cron_prev(expression: str, tz: str, current: datetime) -> datetime:
    """The last fire time strictly before `current` (UTC in, UTC out)."""
    zone, current = _zone(tz), _utc(current)
    wall = _wall(current, zone)
    it = croniter(expression, wall)
    if _covers_every_hour(it):
        prv: datetime = it.get_prev(datetime)
        return current - (wall - prv)
    while True:
        candidate = _instant(it.get_prev(datetime), zone)
        if candidate < current:
            return candidate


def cron_on_or_after(expression: str, tz: str, when: datetime) -> datetime:
    """`when` if the cron fires then, else its next fire time."""
    return cron_next(expression, tz, when - _SECOND)


def cron_on_or_before(expression: str, tz: str, when: datetime) -> datetime:
    """`when` if the cron fires then, else its previous fire time."""
    return cron_prev(expression, tz, when + _SECOND)


def next_logical_date(schedule: Schedule, tz: str, logical_date: datetime) -> datetime | None:
    """The logical date of the run after the one at `logical_date`; None if unscheduled."""
    if isinstance(schedule, DeltaSchedule):
        return logical_date + schedule.every
    if expr := cron_expression(schedule):
        return cron_next(expr, tz, logical_date)
    return None


def prev_logical_date(schedule: Schedule, tz: str, logical_date: datetime) -> datetime | None:
    """The logical date of the run before the one at `logical_date`; None if unscheduled."""
    if isinstance(schedule, DeltaSchedule):
        return logical_date - schedule.every
    if expr := cron_expression(schedule):
        return cron_prev(expr, tz, logical_date)
    return None


def manual_data_interval(schedule: Schedule, tz: str, when: datetime) -> tuple[datetime, datetime]:
    """The data interval of a manual run at `when` (Airflow's `infer_manual_data_interval`).

    A cron schedule gives the latest complete interval ending at or before `when`; a fixed
    delta gives `[when - delta, when)`; no schedule (and `@once`) gives `[when, when)`.
    """
    when = when.astimezone(UTC)
    if isinstance(schedule, DeltaSchedule):
        return when - schedule.every, when
    if expr := cron_expression(schedule):
        end = cron_on_or_before(expr, tz, when)
        return cron_prev(expr, tz, end), end
    return when, when
