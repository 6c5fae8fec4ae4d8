"""SLA deadlines: which task instances missed theirs at a given instant.

A task with `sla` must have succeeded (or been skipped) within `sla` of its run's scheduled
start. That start is:
- for a scheduled run, the end of its data interval: when the run was due;
- for a manual (or `dags test`) run, the time it was queued;
- backfill runs have none: they are late by design, so they are not checked (as in Airflow).

A task instance that has not succeeded by its deadline (still waiting or running, failed, or
upstream_failed) is a miss; one that succeeded only after its deadline is a miss too, even
if nobody looked in between. Each miss is reported once: callers pass the misses already
recorded. Pure: no clock, no store.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.models.specs import DagSpec
from orchestrator.models.states import TaskState

#: States that meet an SLA if reached by the deadline.
_MET = frozenset({TaskState.SUCCESS, TaskState.SKIPPED})


@dataclass(frozen=True)
class SlaRun:
    """What SLA checks need to know of a run."""

    run_type: str
    data_interval_end: datetime
    queued_at: datetime


@dataclass(frozen=True)
class SlaTaskView:
    """What SLA checks need to know of a task instance."""

    task_id: str
    map_index: int
    state: TaskState
    end_date: datetime | None = None


@dataclass(frozen=True)
class SlaMiss:
    """A task instance that had not succeeded by its deadline."""

    task_id: str
    map_index: int
    sla: timedelta
    deadline: datetime
    state: TaskState


@dataclass
class SlaCheck:
    """Misses due now (not yet recorded), and the next deadline still ahead."""

    misses: list[SlaMiss] = field(default_factory=list)
    next_deadline: datetime | None = None


def sla_start(run: SlaRun) -> datetime | None:
    """When the run's SLA clock starts, or None if its tasks have no SLA."""
    if run.run_type == "backfill":
        return None
    if run.run_type == "scheduled":
        return run.data_interval_end
    return run.queued_at


def has_slas(spec: DagSpec) -> bool:
    return any(task.sla is not None for task in spec.tasks)


def check_slas(
    spec: DagSpec,
    run: SlaRun,
    tis: Iterable[SlaTaskView],
    now: datetime,
    recorded: Collection[tuple[str, int]] = (),
) -> SlaCheck:
    """The SLA misses of one run due at `now`, except those in `recorded` ((task, map index)
    pairs), and the earliest deadline still to come for a task instance not yet done."""
    result = SlaCheck()
    start = sla_start(run)
    if start is None:
        return result
    slas = {task.task_id: task.sla for task in spec.tasks if task.sla is not None}
    for ti in tis:
        sla = slas.get(ti.task_id)
        if sla is None or ti.state == TaskState.REMOVED:
            continue
        deadline = start + sla
        if ti.state in _MET and (ti.end_date is None or ti.end_date <= deadline):
            continue
        if now < deadline:
            if result.next_deadline is None or deadline < result.next_deadline:
                result.next_deadline = deadline
            continue
        if (ti.task_id, ti.map_index) not in recorded:
            result.misses.append(SlaMiss(ti.task_id, ti.map_index, sla, deadline, ti.state))
    return result
