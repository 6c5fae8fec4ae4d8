"""What clearing and marking change: pure choices over a run's task states.

Clearing puts task instances back to `none` so they run again; marking settles them by hand
as `success` or `failed`. These functions only choose; `services/clearing.py` applies the
choices to the store and asks the scheduler to stop containers that are still running.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from orchestrator.errors import TaskNotFound, UserError
from orchestrator.models.specs import DagSpec
from orchestrator.models.states import (
    ACTIVE_TASK_STATES,
    FAILED_TASK_STATES,
    FINISHED_TASK_STATES,
    TaskState,
)

K = TypeVar("K")

#: States a hand-marked task instance may be given.
MARKABLE_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILED})


def descendants(spec: DagSpec, task_ids: Iterable[str]) -> set[str]:
    """Every task downstream of `task_ids`, transitively (the tasks themselves excluded)."""
    children: dict[str, list[str]] = {}
    for task in spec.tasks:
        for upstream in task.upstream_task_ids:
            children.setdefault(upstream, []).append(task.task_id)
    start = set(task_ids)
    seen: set[str] = set()
    pending = [child for tid in start for child in children.get(tid, ())]
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(children.get(current, ()))
    return seen - start


def chosen_tasks(
    spec: DagSpec | None,
    present: Iterable[str],
    task_ids: Iterable[str] | None = None,
    *,
    downstream: bool = False,
) -> list[str]:
    """The task ids of a run to consider for clearing, in the DAG's order.

    `present` are the run's task ids; `task_ids` None means all of them. `downstream` adds
    every task downstream of the chosen ones. Tasks no longer in the DAG are left alone (once
    cleared they could never run). An unknown task id raises TaskNotFound listing the tasks.
    """
    in_run = set(present)
    known = [tid for tid in spec.task_ids if tid in in_run] if spec is not None else sorted(in_run)
    if task_ids is None:
        chosen = set(known)
    else:
        chosen = set(task_ids)
        unknown = sorted(chosen - set(known))
        if unknown:
            dag = f"DAG {spec.dag_id!r}" if spec is not None else "the DAG"
            raise TaskNotFound(
                f"{dag} has no task {unknown[0]!r} in this run (tasks: {', '.join(known)})"
            )
    if downstream and spec is not None:
        chosen |= descendants(spec, chosen)
    return [tid for tid in known if tid in chosen]


def clearable(state: TaskState, *, failed_only: bool = False) -> bool:
    """Whether a chosen task instance in `state` is cleared.

    One in `none` has nothing to clear and a `removed` one could never run again;
    `failed_only` keeps those that failed or could not run because an upstream task failed
    (Airflow's `only_failed`).
    """
    if state in (TaskState.NONE, TaskState.REMOVED):
        return False
    return not failed_only or state in FAILED_TASK_STATES


def run_mark_states(states: Mapping[K, TaskState], target: TaskState) -> dict[K, TaskState]:
    """The state each task of a run takes when the whole run is marked `target`.

    Marked success: every unfinished task becomes `success`; finished ones keep their state
    (their history is true; the run's state is the operator's word). Marked failed, as
    Airflow does: tasks with a container (`queued`, `running`) become `failed`, the other
    unfinished ones `skipped`. Finished tasks are never changed.
    """
    check_markable(target)
    changes: dict[K, TaskState] = {}
    for tid, state in states.items():
        if state in FINISHED_TASK_STATES:
            continue
        if target == TaskState.SUCCESS or state in ACTIVE_TASK_STATES:
            changes[tid] = target
        else:
            changes[tid] = TaskState.SKIPPED
    return changes


def check_markable(target: TaskState) -> None:
    """Raise UserError unless `target` is a state a person may mark a task or run with."""
    if target not in MARKABLE_STATES:
        raise UserError(f"tasks and runs can be marked success or failed, not {target.value!r}")
