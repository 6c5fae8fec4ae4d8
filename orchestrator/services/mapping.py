"""Dynamic task mapping in the scheduler: expanding a ready mapped task into instance rows,
settling its summary row, and rendering one instance.

The decisions (what the expansion is, the aggregate state, which retries are due) are made in
`orchestrator.scheduling.mapping`; this module applies them to the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.models.mapping import LiteralItems, env_value
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import TaskState
from orchestrator.scheduling.mapping import (
    InstanceView,
    aggregate_state,
    decide_instances,
    expand,
)
from orchestrator.scheduling.readiness import TaskView
from orchestrator.services.set_state import SetState
from orchestrator.store.tables import DagRunRow, TaskInstanceRow
from orchestrator.templating import RenderedTask, SecretSource, render_task


def instances_by_task(tis: Iterable[TaskInstanceRow]) -> dict[str, dict[int, TaskInstanceRow]]:
    """Mapped instances (`map_index` >= 0) of a run, by task id and map index."""
    found: dict[str, dict[int, TaskInstanceRow]] = {}
    for ti in tis:
        if ti.map_index >= 0:
            found.setdefault(ti.task_id, {})[ti.map_index] = ti
    return found


def readiness_view(
    summary: TaskInstanceRow, instances: Mapping[int, TaskInstanceRow] | None
) -> TaskView:
    """How readiness sees a task: a mapped one by its instances' aggregate and their states."""
    state = TaskState(summary.state)
    if not instances:
        return TaskView(state, summary.next_try_at)
    states = tuple(TaskState(instances[i].state) for i in sorted(instances))
    if state == TaskState.NONE:
        state = aggregate_state(states)
    return TaskView(state, None, states)


class ReadinessViews(Mapping[str, TaskView]):
    """A run's task views for readiness, each built when first asked for: a decision about a
    few tasks reads the views of those tasks and their upstream tasks only."""

    def __init__(
        self,
        by_task: Mapping[str, TaskInstanceRow],
        instances: Mapping[str, Mapping[int, TaskInstanceRow]],
    ) -> None:
        self._by_task, self._instances = by_task, instances
        self._views: dict[str, TaskView] = {}

    def __getitem__(self, task_id: str) -> TaskView:
        view = self._views.get(task_id)
        if view is None:
            summary = self._by_task[task_id]
            view = self._views[task_id] = readiness_view(summary, self._instances.get(task_id))
        return view

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._by_task

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_task)

    def __len__(self) -> int:
        return len(self._by_task)


def expand_task(
    session: Session,
    task: TaskSpec,
    run: DagRunRow,
    summary: TaskInstanceRow,
    run_tis: list[TaskInstanceRow],
    outputs: Mapping[str, Any],
    max_length: int,
    now: datetime,
    set_state: SetState,
) -> int:
    """Expand a mapped task whose trigger rule let it run; return the instances made.

    Instances are scheduled at once (their dependencies are the summary row's). A failed or
    empty expansion settles the summary row instead. New rows are appended to `run_tis`, the
    caller's list of the run's task instances.
    """
    if any(ti.task_id == task.task_id and ti.map_index >= 0 for ti in run_tis):
        return 0  # expanded already
    expansion = expand(task, outputs, max_length)
    if expansion.error is not None:
        summary.end_date = now
        set_state(session, summary, TaskState.FAILED, now, expansion.error)
        return 0
    if not expansion.values:
        summary.end_date = now
        set_state(session, summary, TaskState.SKIPPED, now, "mapped over zero items: skipped")
        return 0
    rows = [
        TaskInstanceRow(
            dag_run_id=run.id,
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id=task.task_id,
            map_index=map_index,
            state=TaskState.NONE.value,
            try_number=0,
            max_tries=task.retries,
            updated_at=now,
            map_values=values,
        )
        for map_index, values in enumerate(expansion.values)
    ]
    session.add_all(rows)
    session.flush()
    run_tis.extend(rows)
    summary.state_detail = f"expanded into {len(rows)} mapped instances"
    summary.updated_at = now
    for row in rows:
        set_state(session, row, TaskState.SCHEDULED, now, None)
    return len(rows)


def step_instances(
    session: Session,
    summaries: Mapping[str, TaskInstanceRow],
    instances: Mapping[str, Mapping[int, TaskInstanceRow]],
    now: datetime,
    set_state: SetState,
) -> datetime | None:
    """Reschedule instances whose retry delay passed; settle summary rows whose instances all
    finished. Returns the earliest retry still to come."""
    earliest: datetime | None = None
    for task_id, rows in instances.items():
        summary = summaries.get(task_id)
        if summary is None:
            continue
        views = {i: InstanceView(TaskState(row.state), row.next_try_at) for i, row in rows.items()}
        decisions = decide_instances(views, TaskState(summary.state), now)
        for map_index in decisions.schedule:
            set_state(session, rows[map_index], TaskState.SCHEDULED, now, None)
        if decisions.settle is not None:
            summary.end_date = now
            counts = _count(views.values())
            set_state(session, summary, decisions.settle, now, f"mapped instances: {counts}")
        if decisions.next_retry is not None and (
            earliest is None or decisions.next_retry < earliest
        ):
            earliest = decisions.next_retry
    return earliest


def _count(views: Iterable[InstanceView]) -> str:
    counts: dict[str, int] = {}
    for view in views:
        counts[view.state.value] = counts.get(view.state.value, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def render_attempt(
    spec: DagSpec,
    task: TaskSpec,
    info: RunInfo,
    ti: TaskInstanceRow,
    outputs: Mapping[str, Any],
    secrets: SecretSource | None = None,
) -> RenderedTask:
    """Render one attempt (its secrets resolved through `secrets`); a mapped instance with its
    own values applied.

    Values from a literal list are put in the task's fields before rendering (they may hold
    templates, as the rest of the DAG file may); values read from an upstream output are data
    and are put in after rendering, verbatim. Templates see every value as `mapped`.
    """
    if ti.map_index < 0 or not task.expand:
        return render_task(
            spec,
            task,
            info,
            try_number=ti.try_number,
            map_index=ti.map_index,
            outputs=outputs,
            secrets=secrets,
        )
    values = dict(ti.map_values or {})
    literal: dict[str, Any] = {}
    verbatim: dict[str, Any] = {}
    for name, source in task.expand.items():
        if name in values:
            target = literal if isinstance(source, LiteralItems) else verbatim
            target[name] = values[name]
    instance = task.model_copy(update=_task_fields(task.environment, literal))
    rendered = render_task(
        spec,
        instance,
        info,
        try_number=ti.try_number,
        map_index=ti.map_index,
        outputs=outputs,
        mapped=values,
        secrets=secrets,
    )
    return rendered.model_copy(update=_task_fields(rendered.environment, verbatim))


def _task_fields(environment: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, Any]:
    """The field updates one instance's values make (`item` sets no field)."""
    update: dict[str, Any] = {}
    for name in ("command", "entrypoint"):
        if name in values:
            value = values[name]
            update[name] = value if isinstance(value, str) else tuple(value)
    if "image" in values:
        update["image"] = values["image"]
    if "environment" in values:
        extra = {str(k): env_value(v) for k, v in values["environment"].items()}
        update["environment"] = {**environment, **extra}
    return update
