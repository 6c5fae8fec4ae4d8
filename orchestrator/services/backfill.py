"""Backfill: queue runs for the schedule intervals of a past (or any) date range.

Decisions (Airflow-like):
- The range is inclusive at both ends and read in the DAG's timezone (an `--end` given as a
  plain date includes that whole day): every interval whose logical date is in
  `[start, end]` gets a run `backfill__<logical date, ISO>` (run type
  `backfill`), queued for the running scheduler, which starts them oldest first within
  `max_active_runs`, pools and parallelism. `start_date`/`end_date` do not clip the range.
- An interval that already has a run (of any type) is skipped and reported, unless `rerun`:
  then that run is cleared (`services.clearing.clear_run`: every task runs again with the
  next try number; the run keeps its id, type and conf).
- Backfill runs start on paused DAGs too; cleared runs of other types on a paused DAG wait
  until it is unpaused.
- A DAG without a schedule has no intervals: refused with a hint to `dags trigger`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pendulum
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import UserError
from orchestrator.models.specs import DagSpec
from orchestrator.models.states import RunState
from orchestrator.scheduling.planning import TooManyIntervals, backfill_intervals
from orchestrator.services.clearing import clear_run
from orchestrator.services.runs import validate_conf
from orchestrator.store import runs as run_store

BACKFILL = "backfill"


@dataclass
class BackfillReport:
    """What a backfill did, by run id, oldest logical date first."""

    dag_id: str
    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # an existing run covers the interval
    rerun: list[str] = field(default_factory=list)  # an existing run was cleared

    @property
    def queued(self) -> list[str]:
        """The runs the scheduler will (re)run."""
        return sorted(self.created + self.rerun)


def parse_dag_date(text: str, spec: DagSpec, what: str, *, end_of_day: bool = False) -> datetime:
    """A date or datetime given on the command line; without an offset it is read in the
    DAG's timezone (`2026-03-01` is midnight there). With `end_of_day`, a plain date means
    its whole day (`--end 2026-03-01` includes a run at 02:00 that day)."""
    try:
        parsed = pendulum.parse(text, tz=spec.timezone)
        if end_of_day and isinstance(parsed, datetime) and "T" not in text and " " not in text:
            parsed = parsed.add(days=1).subtract(microseconds=1)
    except Exception as exc:
        raise UserError(
            f"{what} {text!r} is not a date like 2026-01-31 or 2026-01-31T06:00:00+01:00"
        ) from exc
    if not isinstance(parsed, datetime):
        raise UserError(f"{what} {text!r} is not a date or datetime")
    utc = parsed.astimezone(UTC)
    return datetime(*utc.timetuple()[:6], utc.microsecond, tzinfo=UTC)  # a plain datetime


def backfill(
    session: Session,
    spec: DagSpec,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    rerun: bool = False,
    conf: dict[str, Any] | None = None,
) -> BackfillReport:
    """Queue a run for every schedule interval with a logical date in `[start, end]`."""
    if spec.schedule is None:
        raise UserError(
            f"DAG {spec.dag_id!r} has no schedule (schedule=None), so it has no intervals to"
            f" backfill; queue manual runs with `orchestrator dags trigger {spec.dag_id}"
            " --date ...`"
        )
    if end < start:
        raise UserError(f"--end {end.isoformat()} is before --start {start.isoformat()}")
    conf = dict(conf or {})
    validate_conf(spec, conf)
    try:
        intervals = backfill_intervals(spec, start, end)
    except TooManyIntervals as exc:
        raise UserError(str(exc)) from None
    existing: dict[datetime, list[Any]] = {}
    for run in run_store.runs_between(session, spec.dag_id, start, end):
        existing.setdefault(run.logical_date, []).append(run)
    report = BackfillReport(spec.dag_id)
    for interval in intervals:
        runs = existing.get(interval.start, [])
        if runs and not rerun:
            report.skipped += [run.run_id for run in runs]
            continue
        if runs:
            for run in runs:
                clear_run(session, run, now, by="backfill --rerun")
                report.rerun.append(run.run_id)
            continue
        run_id = f"{BACKFILL}__{interval.start.isoformat()}"
        run_store.create_run(
            session,
            spec,
            run_id=run_id,
            run_type=BACKFILL,
            logical_date=interval.start,
            data_interval=interval,
            conf=conf,
            now=now,
        )
        report.created.append(run_id)
    return report


def wait_for_runs(
    sessions: sessionmaker[Session],
    dag_id: str,
    run_ids: list[str],
    *,
    timeout: float | None,
    poll: float = 1.0,
    on_finished: Callable[[str, RunState], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, RunState] | None:
    """Poll the store until every run finished; their states, or None on timeout."""
    deadline = None if timeout is None else monotonic() + timeout
    done: dict[str, RunState] = {}
    while True:
        with sessions() as session:
            for run_id in run_ids:
                if run_id in done:
                    continue
                state = RunState(run_store.get_run(session, dag_id, run_id).state)
                if state.is_finished:
                    done[run_id] = state
                    if on_finished is not None:
                        on_finished(run_id, state)
        if len(done) == len(run_ids):
            return done
        if deadline is not None and monotonic() >= deadline:
            return None
        sleep(poll)
