"""Clearing task instances so they run again, and marking them (or a run) by hand.

Clearing puts the chosen task instances back to `none`. Their try number is kept: the next
attempt is `try_number + 1`, every earlier attempt (log, output, exit code) stays in the
history, and `max_tries` becomes `try_number + retries`, so a cleared task gets one more
round of retries (as in Airflow). A finished run goes back to `queued` and the scheduler
starts it again; other task instances are left alone.

A task instance whose container is still queued or running is never reset while the
container lives: this module only sets its `stop_reason` (`cleared`, `marked_success` or
`marked_failed`). The scheduler's next pass stops the container through the same path as
an execution timeout, and when the exit has been harvested (log and output saved) it applies
the requested state instead of the attempt's own outcome. Until then the task instance keeps
its slot, so the same task never runs twice at once.

Every change is recorded as a state change whose detail says who asked for it, e.g.
"cleared from the CLI" or "marked success from the CLI".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from orchestrator.errors import DagNotFound, UserError
from orchestrator.models.specs import DagSpec
from orchestrator.models.states import ACTIVE_TASK_STATES, RunState, TaskState
from orchestrator.scheduling.clearing import (
    check_markable,
    chosen_tasks,
    clearable,
    run_mark_states,
)
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.store.tables import DagRunRow, TaskInstanceRow

#: `stop_reason` values asking the scheduler to stop a container and then apply a state.
STOP_CLEARED = "cleared"
STOP_MARKED = {TaskState.SUCCESS: "marked_success", TaskState.FAILED: "marked_failed"}
_REQUESTED_STATE = {
    STOP_CLEARED: TaskState.NONE,
    STOP_MARKED[TaskState.SUCCESS]: TaskState.SUCCESS,
    STOP_MARKED[TaskState.FAILED]: TaskState.FAILED,
}
STOP_REQUESTS = frozenset(_REQUESTED_STATE)


@dataclass(frozen=True)
class Change:
    """One task instance changed (or to be changed) by clearing or marking."""

    task_id: str
    map_index: int
    from_state: str
    to_state: str
    try_number: int
    #: The container is stopped first; the state follows once its exit has been saved.
    stopping: bool = False


@dataclass(frozen=True)
class Changes:
    """What clearing or marking did to one run."""

    dag_id: str
    run_id: str
    run_state_before: str
    run_state: str
    tasks: list[Change] = field(default_factory=list)


def requested_end(ti: TaskInstanceRow) -> tuple[TaskState, str] | None:
    """The state (and its detail) asked for a task instance whose container was stopped on
    request, or None if no such request is pending. Used by the scheduler on harvest."""
    state = _REQUESTED_STATE.get(ti.stop_reason or "")
    if state is None:
        return None
    reason = ti.state_detail or f"{ti.stop_reason} by hand"
    return state, f"{reason} (its container was stopped)"


# ----------------------------------------------------------------------------- clearing
def plan_clear(
    session: Session,
    dag_id: str,
    run_id: str,
    task_ids: Iterable[str] | None = None,
    *,
    downstream: bool = False,
    failed_only: bool = False,
) -> list[TaskInstanceRow]:
    """The task instances `clear` would reset, in the DAG's order. Changes nothing."""
    run = run_store.get_run(session, dag_id, run_id)
    return _select(session, run, task_ids, downstream=downstream, failed_only=failed_only)


def clear(
    session: Session,
    dag_id: str,
    run_id: str,
    task_ids: Iterable[str] | None = None,
    downstream: bool = False,
    failed_only: bool = False,
    *,
    now: datetime,
    by: str = "the CLI",
) -> Changes:
    """Clear task instances of one run so they run again.

    `task_ids` None clears every task of the run; `downstream` adds every task downstream of
    the chosen ones; `failed_only` keeps only those that failed or are `upstream_failed`.
    Raises RunNotFound or TaskNotFound for an unknown run or task.
    """
    run = run_store.get_run(session, dag_id, run_id)
    tis = _select(session, run, task_ids, downstream=downstream, failed_only=failed_only)
    return _clear_tis(session, run, _spec_or_none(session, dag_id), tis, now, by)


def clear_run(session: Session, run: DagRunRow, now: datetime, by: str = "a rerun") -> Changes:
    """Clear every task instance of `run` (backfill `--rerun` uses this)."""
    tis = _select(session, run, None, downstream=False, failed_only=False)
    return _clear_tis(session, run, _spec_or_none(session, run.dag_id), tis, now, by)


def _select(
    session: Session,
    run: DagRunRow,
    task_ids: Iterable[str] | None,
    *,
    downstream: bool,
    failed_only: bool,
) -> list[TaskInstanceRow]:
    spec = _spec_or_none(session, run.dag_id)
    tis = run_store.task_instances(session, run.id)
    chosen = chosen_tasks(
        spec,
        {ti.task_id for ti in tis},
        list(task_ids) if task_ids is not None else None,
        downstream=downstream,
    )
    order = {tid: i for i, tid in enumerate(chosen)}
    selected = [
        ti
        for ti in tis
        if ti.task_id in order and clearable(TaskState(ti.state), failed_only=failed_only)
    ]
    return sorted(selected, key=lambda ti: (order[ti.task_id], ti.map_index))


def _clear_tis(
    session: Session,
    run: DagRunRow,
    spec: DagSpec | None,
    tis: list[TaskInstanceRow],
    now: datetime,
    by: str,
) -> Changes:
    before = run.state
    retries = {t.task_id: t.retries for t in spec.tasks} if spec is not None else {}
    detail = f"cleared from {by}"
    changes = []
    for ti in tis:
        old = TaskState(ti.state)
        ti.max_tries = ti.try_number + retries.get(ti.task_id, 0)
        if old in ACTIVE_TASK_STATES:
            ti.stop_reason, ti.state_detail, ti.updated_at = STOP_CLEARED, detail, now
            changes.append(_change(ti, old, TaskState.NONE, stopping=True))
            continue
        ti.stop_reason, ti.next_try_at, ti.end_date = None, None, None
        ti.exit_code, ti.output_json = None, None
        ti_store.set_ti_state(session, ti, TaskState.NONE, now, detail)
        changes.append(_change(ti, old, TaskState.NONE))
    if changes:
        _reopen(session, run, now)
    return Changes(run.dag_id, run.run_id, before, run.state, changes)


# ----------------------------------------------------------------------------- marking
def mark_task(
    session: Session,
    dag_id: str,
    run_id: str,
    task_id: str,
    state: TaskState,
    *,
    now: datetime,
    by: str = "the CLI",
    map_index: int = -1,
) -> Changes:
    """Mark one task instance `success` or `failed` by hand.

    Its downstream tasks then proceed by their trigger rules. A queued or running task
    instance has its container stopped first. A finished run goes back to `queued` so its
    state is decided again from its tasks' states.
    """
    check_markable(state)
    run = run_store.get_run(session, dag_id, run_id)
    ti = ti_store.get_ti(session, dag_id, run_id, task_id, map_index)
    before = run.state
    old = TaskState(ti.state)
    if old == state:
        return Changes(dag_id, run_id, before, run.state)
    if old == TaskState.REMOVED:
        raise UserError(
            f"task {task_id!r} of run {run_id!r} was removed from DAG {dag_id!r};"
            " a removed task cannot be marked"
        )
    change = _mark(session, ti, state, now, f"marked {state.value} from {by}")
    _reopen(session, run, now)
    return Changes(dag_id, run_id, before, run.state, [change])


def mark_run(
    session: Session,
    dag_id: str,
    run_id: str,
    state: TaskState,
    *,
    now: datetime,
    by: str = "the CLI",
    detail: str | None = None,
) -> Changes:
    """Mark a whole run `success` or `failed` by hand.

    Success: its unfinished tasks become `success`. Failed (as Airflow): its queued and
    running tasks become `failed` (their containers are stopped) and its other unfinished
    tasks `skipped`. Finished tasks keep their state. The run takes `state` at once.
    `detail` replaces the default state detail ("run marked <state> from <by>") of the
    changed task instances (the scheduler's dagrun_timeout uses this).
    """
    check_markable(state)
    run = run_store.get_run(session, dag_id, run_id)
    before = run.state
    tis = run_store.task_instances(session, run.id)
    targets = run_mark_states({ti.id: TaskState(ti.state) for ti in tis}, state)
    detail = detail or f"run marked {state.value} from {by}"
    changes = [_mark(session, ti, targets[ti.id], now, detail) for ti in tis if ti.id in targets]
    run_store.set_run_state(session, run, RunState(state.value), now)
    return Changes(dag_id, run_id, before, run.state, changes)


def _mark(
    session: Session, ti: TaskInstanceRow, state: TaskState, now: datetime, detail: str
) -> Change:
    old = TaskState(ti.state)
    if old in ACTIVE_TASK_STATES:
        ti.stop_reason, ti.state_detail, ti.updated_at = STOP_MARKED[state], detail, now
        return _change(ti, old, state, stopping=True)
    ti.next_try_at, ti.end_date = None, now
    ti_store.set_ti_state(session, ti, state, now, detail)
    return _change(ti, old, state)


# ----------------------------------------------------------------------------- helpers
def _reopen(session: Session, run: DagRunRow, now: datetime) -> None:
    """Send a finished run back to `queued`, so the scheduler starts it again."""
    if RunState(run.state).is_finished:
        run_store.set_run_state(session, run, RunState.QUEUED, now)
        run.end_date = None


def _spec_or_none(session: Session, dag_id: str) -> DagSpec | None:
    try:
        return dag_store.get_dag_spec(session, dag_id)
    except DagNotFound:
        return None


def _change(
    ti: TaskInstanceRow, old: TaskState, new: TaskState, *, stopping: bool = False
) -> Change:
    return Change(ti.task_id, ti.map_index, old.value, new.value, ti.try_number, stopping)
