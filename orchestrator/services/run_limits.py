"""Run-level limits in the scheduler: `max_active_runs`, pausing and `dagrun_timeout`.

The choices are pure (`scheduling.run_limits`); this module reads what they need and applies
them. A run past its `dagrun_timeout` is failed the way `runs mark --state failed` fails one
(`services.clearing.mark_run`): its queued and running task instances become failed (their
containers are stopped first, through the same stop-request path), its other unfinished
ones skipped, and the run records why in its `state_detail`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from orchestrator.models.specs import DagSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.scheduling.run_limits import RunKey, runs_to_start, timeout_due
from orchestrator.services.clearing import mark_run
from orchestrator.store.tables import DagRow, DagRunRow

SpecOf = Callable[[str], DagSpec | None]


def earliest(times: Sequence[datetime | None]) -> datetime | None:
    """The earliest of these times that is set."""
    return min((t for t in times if t is not None), default=None)


def _key(run: DagRunRow) -> RunKey:
    return RunKey(run.id, run.dag_id, run.run_type, run.logical_date)


def startable_runs(
    session: Session, queued: Sequence[DagRunRow], running: Sequence[DagRunRow], spec_of: SpecOf
) -> list[DagRunRow]:
    """The queued runs to start now, oldest logical date first (see `scheduling.run_limits`)."""
    if not queued:
        return []
    dag_ids = {run.dag_id for run in queued}
    paused = {
        dag_id
        for dag_id in dag_ids
        if (row := session.get(DagRow, dag_id)) is not None and row.is_paused
    }

    def cap(dag_id: str) -> int:
        spec = spec_of(dag_id)
        return spec.max_active_runs if spec is not None else 16

    by_pk = {run.id: run for run in queued}
    chosen = runs_to_start(map(_key, queued), map(_key, running), cap, paused)
    return [by_pk[pk] for pk in chosen]


@dataclass(frozen=True)
class TimedOut:
    """A run failed by its dagrun_timeout."""

    run: DagRunRow
    detail: str


def fail_timed_out_runs(
    session: Session, running: Sequence[DagRunRow], spec_of: SpecOf, now: datetime
) -> tuple[list[TimedOut], datetime | None]:
    """Fail the running runs past their dagrun_timeout; return them and the next timeout."""
    failed: list[TimedOut] = []
    next_at: datetime | None = None
    for run in running:
        spec = spec_of(run.dag_id)
        due = timeout_due(run.start_date, spec.dagrun_timeout if spec is not None else None)
        if due is None or spec is None or spec.dagrun_timeout is None:
            continue
        if now < due:
            next_at = due if next_at is None else min(next_at, due)
            continue
        seconds = spec.dagrun_timeout.total_seconds()
        detail = f"dagrun_timeout of {seconds:g}s passed: run failed"
        mark_run(
            session,
            run.dag_id,
            run.run_id,
            TaskState.FAILED,
            now=now,
            by="the scheduler",
            detail=detail,
        )
        run.state_detail = detail
        assert run.state == RunState.FAILED.value
        failed.append(TimedOut(run, detail))
    return failed, next_at
