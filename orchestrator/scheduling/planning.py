"""Run planning: which scheduled runs a DAG should have at a given moment (pure; takes `now`).

Airflow 2's model:

- A run covers a data interval `[start, end)`; its `logical_date` is `start`; it is created
  (becomes due) once the interval has ENDED, i.e. when `now >= end`.
- A cron schedule's interval runs from one fire time to the next (see `timetables` for what
  happens across DST changes). The first interval starts at the first fire time at or after
  `start_date`.
- A `timedelta` schedule's intervals are `[start_date + k*every, start_date + (k+1)*every)`.
- `@once`: a single run with the empty interval `[start_date, start_date)`, due at
  `start_date`.
- `end_date`: no run has a logical date after it (a run whose logical date equals it is made).
- A DAG with no schedule, or (defensively: the loader refuses it) no `start_date`, has no
  scheduled runs.
- `catchup=True`: one run per interval since `start_date` (or since the last scheduled run)
  that has ended. `catchup=False`: only the latest complete interval; older missed ones are
  skipped. A pass creates at most `limit` runs, so a long catch-up is spread over passes.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple

from orchestrator.models.specs import DagSpec, DeltaSchedule
from orchestrator.scheduling.timetables import (
    cron_expression,
    cron_next,
    cron_on_or_after,
    cron_on_or_before,
    cron_prev,
    is_once,
    next_logical_date,
)


class DataInterval(NamedTuple):
    """The span of data one run covers; `start` is the run's logical date."""

    start: datetime
    end: datetime


def is_scheduled(spec: DagSpec) -> bool:
    """Whether the scheduler creates runs of this DAG by itself."""
    return spec.schedule is not None and spec.start_date is not None


def interval_at(spec: DagSpec, logical_date: datetime) -> DataInterval:
    """The data interval of the scheduled run at `logical_date` (assumed on the schedule)."""
    if isinstance(spec.schedule, DeltaSchedule):
        return DataInterval(logical_date, logical_date + spec.schedule.every)
    if expr := cron_expression(spec.schedule):
        return DataInterval(logical_date, cron_next(expr, spec.timezone, logical_date))
    return DataInterval(logical_date, logical_date)


def _first(spec: DagSpec) -> DataInterval | None:
    start = spec.start_date
    if start is None or spec.schedule is None:
        return None
    if expr := cron_expression(spec.schedule):
        return interval_at(spec, cron_on_or_after(expr, spec.timezone, start))
    return interval_at(spec, start)


def _within_end(spec: DagSpec, interval: DataInterval | None) -> DataInterval | None:
    if interval is None or (spec.end_date is not None and interval.start > spec.end_date):
        return None
    return interval


def next_interval(spec: DagSpec, last: DataInterval | None) -> DataInterval | None:
    """The schedule's interval after `last` (the first one when `last` is None), whatever the
    time; None when the schedule has no more (end_date passed, `@once` done, unscheduled)."""
    if not is_scheduled(spec):
        return None
    if last is None:
        return _within_end(spec, _first(spec))
    if is_once(spec.schedule):
        return None
    if expr := cron_expression(spec.schedule):
        # realigned: a run made under another schedule may end off this one's fire times
        start = cron_on_or_after(expr, spec.timezone, last.end)
        return _within_end(spec, interval_at(spec, start))
    return _within_end(spec, interval_at(spec, last.end))


def latest_complete_interval(spec: DagSpec, now: datetime) -> DataInterval | None:
    """The latest interval that has ended by `now` and starts on or after `start_date`."""
    first = _first(spec)
    if first is None or first.end > now:
        return None
    if is_once(spec.schedule):
        return first
    if isinstance(spec.schedule, DeltaSchedule):
        steps = (now - first.start) // spec.schedule.every - 1
        return interval_at(spec, first.start + steps * spec.schedule.every)
    expr = cron_expression(spec.schedule)
    assert expr is not None
    end = cron_on_or_before(expr, spec.timezone, now)
    return DataInterval(cron_prev(expr, spec.timezone, end), end)


def next_run(
    spec: DagSpec, last: DataInterval | None, now: datetime, *, catchup: bool | None = None
) -> DataInterval | None:
    """The next scheduled run to create after the last planned interval `last`, if it is due
    at `now`; None if nothing is due yet (or ever again). `catchup` defaults to the DAG's."""
    candidate = next_interval(spec, last)
    if candidate is None:
        return None
    if not (spec.catchup if catchup is None else catchup):
        latest = latest_complete_interval(spec, now)
        if latest is not None and latest.start > candidate.start:
            candidate = latest
            if _within_end(spec, candidate) is None:
                return None
    return candidate if candidate.end <= now else None


def runs_to_create(
    spec: DagSpec,
    latest_existing: DataInterval | None,
    now: datetime,
    *,
    catchup: bool | None = None,
    limit: int = 100,
    taken: Collection[datetime] = (),
) -> list[DataInterval]:
    """The scheduled runs to create now, oldest first, at most `limit` of them.

    `latest_existing` is the interval of the DAG's latest scheduled run (None: none yet).
    Intervals whose logical date is in `taken` (another run - a backfill, say - already
    covers it) are stepped over without counting towards `limit`.
    """
    planned: list[DataInterval] = []
    last = latest_existing
    while len(planned) < limit:
        interval = next_run(spec, last, now, catchup=catchup)
        if interval is None:
            break
        if interval.start not in taken:
            planned.append(interval)
        last = interval
    return planned


def next_due(spec: DagSpec, last: DataInterval | None) -> datetime | None:
    """When the run after `last` becomes due (its interval's end); None if never."""
    interval = next_interval(spec, last)
    return interval.end if interval is not None else None


class TooManyIntervals(ValueError):
    """A backfill range holds more intervals than allowed."""


def backfill_intervals(
    spec: DagSpec, start: datetime, end: datetime, *, limit: int = 10_000
) -> list[DataInterval]:
    """Every schedule interval whose logical date is in `[start, end]` (both inclusive).

    `start_date` and `end_date` do not clip the range: a backfill is an explicit request (a
    delta schedule's grid stays anchored at `start_date`). Raises TooManyIntervals past
    `limit`; returns [] for an unscheduled DAG.
    """
    if spec.schedule is None:
        return []
    if is_once(spec.schedule):
        when = spec.start_date
        return [interval_at(spec, when)] if when is not None and start <= when <= end else []
    if isinstance(spec.schedule, DeltaSchedule):
        anchor = spec.start_date or start
        every = spec.schedule.every
        logical = anchor - ((anchor - start) // every) * every  # first grid point >= start
    else:
        expr = cron_expression(spec.schedule)
        assert expr is not None
        logical = cron_on_or_after(expr, spec.timezone, start)
    intervals: list[DataInterval] = []
    while logical <= end:
        if len(intervals) >= limit:
            raise TooManyIntervals(
                f"{start.isoformat()} to {end.isoformat()} holds more than {limit} runs of"
                f" DAG {spec.dag_id!r}; backfill a shorter range"
            )
        interval = interval_at(spec, logical)
        intervals.append(interval)
        following = next_logical_date(spec.schedule, spec.timezone, logical)
        assert following is not None
        logical = following
    return intervals
