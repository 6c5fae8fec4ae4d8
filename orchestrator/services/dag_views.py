"""Read models shared by the REST API and the web pages: what a DAG list, a grid, a Gantt chart
and a durations chart show, each read in a fixed number of queries whatever the history's size
(only the runs shown are read)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from orchestrator.models.specs import DagSpec
from orchestrator.models.states import TaskState
from orchestrator.scheduling.planning import DataInterval
from orchestrator.services.run_planner import upcoming_run
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.store.tables import DagRow, DagRunRow, TaskAttemptRow, TaskInstanceRow

#: Which state a cell of mapped instances shows: the first of these that any instance is in.
_SUMMARY_ORDER = (
    TaskState.FAILED,
    TaskState.UPSTREAM_FAILED,
    TaskState.UP_FOR_RETRY,
    TaskState.RUNNING,
    TaskState.QUEUED,
    TaskState.UP_FOR_RESCHEDULE,
    TaskState.SCHEDULED,
    TaskState.NONE,
    TaskState.SUCCESS,
    TaskState.SKIPPED,
    TaskState.REMOVED,
)


@dataclass(frozen=True)
class DagSummary:
    """A stored DAG with its next scheduled interval and its latest runs (newest first)."""

    row: DagRow
    spec: DagSpec
    upcoming: DataInterval | None
    recent_runs: list[DagRunRow]

    @property
    def last_run(self) -> DagRunRow | None:
        return self.recent_runs[0] if self.recent_runs else None


def dag_summaries(
    session: Session, now: datetime, *, recent: int = 1, include_inactive: bool = False
) -> list[DagSummary]:
    """Every DAG (by id) with its next scheduled interval and its `recent` latest runs."""
    summaries = []
    for row in dag_store.list_dag_rows(session, include_inactive=include_inactive):
        spec = DagSpec.model_validate_json(row.spec_json)
        summaries.append(
            DagSummary(
                row=row,
                spec=spec,
                upcoming=upcoming_run(session, spec, now),
                recent_runs=run_store.list_runs(session, row.dag_id, recent),
            )
        )
    return summaries


@dataclass(frozen=True)
class GridCell:
    """One task in one run; for a mapped task the summary of its instances, for a task group
    the summary of its tasks (`counts`: how many are in each state, most urgent first)."""

    state: str
    try_number: int
    mapped: int = 0  # how many mapped instances (0: not mapped)
    counts: tuple[tuple[str, int], ...] = ()

    @property
    def summary(self) -> str:
        """`2 success, 1 failed`: the counts as words ('' for a single task instance)."""
        return ", ".join(f"{count} {state}" for state, count in self.counts)


@dataclass(frozen=True)
class Grid:
    """The latest runs (oldest first, as columns) and their task instances' states: a cell
    per (run id, task id), per (run id, task id, map index) for mapped instances, and per
    (run id, group id) summing up a task group; `map_width` is, per mapped task, the most
    instances it has in any run shown."""

    runs: list[DagRunRow]
    cells: dict[tuple[int, str], GridCell] = field(default_factory=dict)
    total_runs: int = 0
    instances: dict[tuple[int, str, int], GridCell] = field(default_factory=dict)
    group_cells: dict[tuple[int, str], GridCell] = field(default_factory=dict)
    map_width: dict[str, int] = field(default_factory=dict)


def group_chain(group_id: str | None) -> list[str]:
    """A task's enclosing groups, outermost first (`a.b` → `a`, `a.b`)."""
    if not group_id:
        return []
    parts = group_id.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def grid(session: Session, spec: DagSpec, limit: int) -> Grid:
    """The DAG's latest `limit` runs and their cells: reads only those runs."""
    runs = list(reversed(run_store.list_runs(session, spec.dag_id, limit)))
    by_key: dict[tuple[int, str], list[ti_store.TiSummary]] = {}
    instances: dict[tuple[int, str, int], GridCell] = {}
    map_width: dict[str, int] = {}
    for ti in ti_store.ti_summaries(session, [r.id for r in runs]):
        by_key.setdefault((ti.dag_run_id, ti.task_id), []).append(ti)
        if ti.map_index >= 0:
            instances[(ti.dag_run_id, ti.task_id, ti.map_index)] = GridCell(ti.state, ti.try_number)
            map_width[ti.task_id] = max(map_width.get(ti.task_id, 0), ti.map_index + 1)
    cells = {key: _cell(tis) for key, tis in by_key.items()}
    return Grid(
        runs=runs,
        cells=cells,
        total_runs=run_store.count_runs(session, spec.dag_id),
        instances=instances,
        group_cells=_group_cells(spec, runs, cells),
        map_width=map_width,
    )


def _counts(states: Sequence[str]) -> tuple[tuple[str, int], ...]:
    tally: dict[str, int] = {}
    for state in states:
        tally[state] = tally.get(state, 0) + 1
    ordered: list[str] = [s.value for s in _SUMMARY_ORDER if s.value in tally]
    ordered += sorted(set(tally) - set(ordered))  # a state this version does not know
    return tuple((state, tally[state]) for state in ordered)


def _summary_cell(states: Sequence[str], try_number: int, mapped: int = 0) -> GridCell:
    counts = _counts(states)
    return GridCell(state=counts[0][0], try_number=try_number, mapped=mapped, counts=counts)


def _cell(tis: Sequence[ti_store.TiSummary]) -> GridCell:
    mapped = [ti for ti in tis if ti.map_index >= 0]
    if not mapped:
        return GridCell(state=tis[0].state, try_number=tis[0].try_number)
    return _summary_cell(
        [ti.state for ti in mapped], max(ti.try_number for ti in mapped), len(mapped)
    )


def _group_cells(
    spec: DagSpec, runs: Sequence[DagRunRow], cells: dict[tuple[int, str], GridCell]
) -> dict[tuple[int, str], GridCell]:
    """Per run and task group (nested groups count in their parents): the states of its
    tasks (a mapped task counts once, with its summary state)."""
    members: dict[str, list[str]] = {}
    for task in spec.tasks:
        for group in group_chain(task.group_id):
            members.setdefault(group, []).append(task.task_id)
    found: dict[tuple[int, str], GridCell] = {}
    for run in runs:
        for group, task_ids in members.items():
            present = [cells[(run.id, t)] for t in task_ids if (run.id, t) in cells]
            if present:
                tries = max(c.try_number for c in present)
                found[(run.id, group)] = _summary_cell([c.state for c in present], tries)
    return found


@dataclass(frozen=True)
class Durations:
    """Seconds each task ran, per run (oldest first); None where it did not finish."""

    runs: list[DagRunRow]
    seconds: dict[str, list[float | None]]


def durations(session: Session, spec: DagSpec, limit: int) -> Durations:
    """How long each task's latest attempt ran over the DAG's latest `limit` runs (a mapped
    task: from its first instance's start to its last one's end)."""
    runs = list(reversed(run_store.list_runs(session, spec.dag_id, limit)))
    column = {run.id: i for i, run in enumerate(runs)}
    spans: dict[tuple[str, int], tuple[datetime, datetime]] = {}
    for ti in ti_store.ti_summaries(session, list(column)):
        if ti.start_date is None or ti.end_date is None:
            continue
        key = (ti.task_id, column[ti.dag_run_id])
        start, end = spans.get(key, (ti.start_date, ti.end_date))
        spans[key] = (min(start, ti.start_date), max(end, ti.end_date))
    seconds: dict[str, list[float | None]] = {
        task.task_id: [None] * len(runs) for task in spec.tasks
    }
    for (task_id, index), (start, end) in spans.items():
        if task_id in seconds:
            seconds[task_id][index] = (end - start).total_seconds()
    return Durations(runs=runs, seconds=seconds)


@dataclass(frozen=True)
class RunDetail:
    """A run with its task instances and every attempt of each (by task instance id)."""

    run: DagRunRow
    task_instances: list[TaskInstanceRow]
    attempts: dict[int, list[TaskAttemptRow]]


def run_detail(session: Session, dag_id: str, run_id: str) -> RunDetail:
    run = run_store.get_run(session, dag_id, run_id)
    return RunDetail(
        run=run,
        task_instances=run_store.task_instances(session, run.id),
        attempts=ti_store.attempts_of_run(session, run.id),
    )
