"""Which tasks of a run may start, which can never run, and how the run ends.

Pure functions of (spec, task states, now): no database, no Docker, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.models.specs import DagSpec, TaskKind, TaskSpec
from orchestrator.models.states import (
    FAILED_TASK_STATES,
    FINISHED_TASK_STATES,
    RunState,
    TaskState,
)
from orchestrator.scheduling.trigger_rules import UpstreamCounts, Verdict, verdict


@dataclass(frozen=True)
class TaskView:
    """What readiness needs to know of one task instance."""

    state: TaskState
    next_try_at: datetime | None = None
    #: A mapped task's instances' states: downstream trigger rules count each of them.
    instances: tuple[TaskState, ...] = ()


@dataclass
class Decisions:
    """State changes for one run, decided at one instant."""

    schedule: list[str] = field(default_factory=list)  # dependencies met: may take a slot
    upstream_failed: list[str] = field(default_factory=list)  # can never run
    skip: list[str] = field(default_factory=list)  # skipped because upstream skipped


def decide(
    spec: DagSpec,
    tis: Mapping[str, TaskView],
    now: datetime,
    previous: Mapping[str, TaskState] | None = None,
    only: Collection[str] | None = None,
) -> Decisions:
    """Decide which tasks of one run change state now.

    Each waiting task's trigger rule decides from its direct upstream tasks' states (see
    `trigger_rules`), ignoring upstream tasks that were removed from the DAG (as Airflow
    does: a removed task never blocks its downstream). Tasks waiting out a retry delay, and
    sensors waiting for their next poke (`up_for_reschedule`), are scheduled again once their
    `next_try_at` passed. `previous` holds the task states of the DAG's previous run (by
    logical date; None if there is none): see `past_allows`. `only` limits the decision to
    these tasks (a caller that knows which tasks' inputs changed); the others keep their
    state, as deciding them would.
    """
    decisions = Decisions()
    if only is None:
        tasks: Sequence[TaskSpec] = spec.tasks
    else:  # in task order, without going through every task of a large DAG
        positions = spec.task_positions
        tasks = [spec.tasks[n] for n in sorted(positions[t] for t in only if t in positions)]
    for task in tasks:
        view = tis.get(task.task_id)
        if view is None:
            continue
        if view.state in (TaskState.UP_FOR_RETRY, TaskState.UP_FOR_RESCHEDULE):
            # tasks without a container re-check themselves from up_for_reschedule
            rechecks_itself = task.kind != TaskKind.CONTAINER
            if view.state == TaskState.UP_FOR_RESCHEDULE and rechecks_itself:
                continue
            if view.next_try_at is None or view.next_try_at <= now:
                decisions.schedule.append(task.task_id)
            continue
        if view.state != TaskState.NONE:
            continue
        if task.depends_on_past and not past_allows(previous, task.task_id):
            continue
        states: list[TaskState] = []
        for u in task.upstream_task_ids:
            if u not in tis:
                continue
            up = tis[u]
            if up.state != TaskState.REMOVED:  # a removed task never blocks
                states.extend(up.instances or (up.state,))
        upstream = UpstreamCounts.of(states)
        outcome = verdict(task.trigger_rule, upstream)
        if outcome == Verdict.RUN:
            decisions.schedule.append(task.task_id)
        elif outcome == Verdict.UPSTREAM_FAILED:
            decisions.upstream_failed.append(task.task_id)
        elif outcome == Verdict.SKIP:
            decisions.skip.append(task.task_id)
    return decisions


def past_allows(previous: Mapping[str, TaskState] | None, task_id: str) -> bool:
    """`depends_on_past`: whether the task's instance in the previous run lets it start.

    It does once it is `success` or `skipped`. The first run ever (no previous run), and a
    previous run without this task (it was added since), do not block. Until then the task
    stays `none`; its trigger rule is only asked afterwards.
    """
    if previous is None or task_id not in previous:
        return True
    return previous[task_id] in (TaskState.SUCCESS, TaskState.SKIPPED)


def run_outcome(spec: DagSpec | None, tis: Mapping[str, TaskView]) -> RunState | None:
    """The run's final state once every task finished, else None.

    As in Airflow, the leaves decide: the run failed if a leaf task (one with no downstream
    task) failed or could not run; a failure handled downstream (say by an `all_done` clean-up
    task that succeeded) does not fail the run. Task instances of tasks no longer in the DAG
    count as leaves (all do when the DAG itself is gone).
    """
    states = [view.state for view in tis.values()]
    if not all(s in FINISHED_TASK_STATES for s in states):
        return None
    tasks = spec.tasks if spec is not None else ()
    has_downstream = {u for task in tasks for u in task.upstream_task_ids}
    leaves = [view.state for tid, view in tis.items() if tid not in has_downstream]
    if any(s in FAILED_TASK_STATES for s in leaves):
        return RunState.FAILED
    return RunState.SUCCESS
