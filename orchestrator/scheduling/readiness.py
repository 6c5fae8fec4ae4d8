"""Which tasks of a run may start, which can never run, and how the run ends.

Pure functions of (spec, task states, now): no database, no Docker, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.models.specs import DagSpec, TriggerRule
from orchestrator.models.states import (
    FAILED_TASK_STATES,
    FINISHED_TASK_STATES,
    RunState,
    TaskState,
)


@dataclass(frozen=True)
class TaskView:
    """What readiness needs to know of one task instance."""

    state: TaskState
    next_try_at: datetime | None = None


@dataclass
class Decisions:
    """State changes for one run, decided at one instant."""

    schedule: list[str] = field(default_factory=list)  # dependencies met: may take a slot
    upstream_failed: list[str] = field(default_factory=list)  # can never run
    skip: list[str] = field(default_factory=list)  # skipped because upstream skipped


def decide(spec: DagSpec, tis: Mapping[str, TaskView], now: datetime) -> Decisions:
    """Decide which tasks of one run change state now.

    `all_success`: a task runs once every upstream task succeeded; if any upstream task failed
    (or could not run) it becomes `upstream_failed`; if any was skipped (and none failed) it is
    skipped too, as in Airflow. Tasks waiting out a retry delay are rescheduled once it passed.
    """
    decisions = Decisions()
    for task in spec.tasks:
        view = tis.get(task.task_id)
        if view is None:
            continue
        if view.state == TaskState.UP_FOR_RETRY:
            if view.next_try_at is None or view.next_try_at <= now:
                decisions.schedule.append(task.task_id)
            continue
        if view.state != TaskState.NONE:
            continue
        upstream = [tis[u].state for u in task.upstream_task_ids if u in tis]
        if task.trigger_rule == TriggerRule.ALL_SUCCESS:
            if any(s in FAILED_TASK_STATES for s in upstream):
                decisions.upstream_failed.append(task.task_id)
            elif not all(s in FINISHED_TASK_STATES for s in upstream):
                continue
            elif any(s == TaskState.SKIPPED for s in upstream):
                decisions.skip.append(task.task_id)
            elif all(s == TaskState.SUCCESS for s in upstream):
                decisions.schedule.append(task.task_id)
    return decisions


def run_outcome(tis: Mapping[str, TaskView]) -> RunState | None:
    """The run's final state once every task finished, else None."""
    states = [view.state for view in tis.values()]
    if not all(s in FINISHED_TASK_STATES for s in states):
        return None
    if any(s in FAILED_TASK_STATES for s in states):
        return RunState.FAILED
    return RunState.SUCCESS
