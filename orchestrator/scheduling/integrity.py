"""Keeping an unfinished run's task instances in step with its DAG's latest spec.

Airflow calls this `verify_integrity`. When a DAG file changes under a run that has not
finished, or disappears, the run's task instances are compared with the tasks the DAG now has:

- a task new to the DAG gets a task instance (state `none`, map index -1), so the run
  completes with it;
- a task gone from the DAG (or every task, when the DAG itself is gone or inactive) has its
  not-yet-started instances (`none`, `scheduled`, `up_for_retry`, `up_for_reschedule`) marked
  `removed` at once;
- an instance whose container is already starting or running (`queued`, `running`) is left to
  finish: no work is killed because a file was edited or checked out. Its attempt is recorded
  as usual when the container exits, and the instance then becomes `removed`;
- finished instances are history and never change;
- a `removed` instance (map index -1) whose task is back in the DAG is restored to `none` and
  runs again, as Airflow does when a deleted task reappears.

A `removed` task never blocks or fails a run: trigger rules ignore a removed upstream task (as
if the edge were gone), and a removed instance counts as finished and not failed when the run's
outcome is decided. Pure: no database, no Docker, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.models.states import TaskState

#: A task instance's identity within a run: (task id, map index).
TiKey = tuple[str, int]

#: States of an instance that has not started: removing it loses no work.
NOT_STARTED_STATES = frozenset(
    {TaskState.NONE, TaskState.SCHEDULED, TaskState.UP_FOR_RETRY, TaskState.UP_FOR_RESCHEDULE}
)
#: States of an instance whose container may exist: it finishes before it is removed.
IN_FLIGHT_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING})


@dataclass
class IntegrityDecisions:
    """What to change in one run so its task instances match the DAG's tasks."""

    add: list[str] = field(default_factory=list)  # tasks without an instance: create one
    remove: list[TiKey] = field(default_factory=list)  # not started, task gone: `removed` now
    restore: list[str] = field(default_factory=list)  # removed, task back: `none` again
    in_flight: list[TiKey] = field(default_factory=list)  # task gone, container still running

    def __bool__(self) -> bool:
        return bool(self.add or self.remove or self.restore)


def verify_integrity(
    task_ids: Sequence[str] | None, tis: Mapping[TiKey, TaskState]
) -> IntegrityDecisions:
    """Decide which task instances of an unfinished run to add, remove or restore.

    `task_ids` are the tasks the DAG has now, in declaration order, or None when the DAG is
    gone (its file deleted, or no longer defining it): then every instance counts as removed.
    `tis` are the run's task instances by (task id, map index) with their states. Instances
    with a map index other than -1 are only ever removed (mapping decides how many exist).
    """
    present: Collection[str] = frozenset(task_ids or ())
    decisions = IntegrityDecisions()
    known = {task_id for task_id, _ in tis}
    for task_id in task_ids or ():
        if task_id not in known:
            decisions.add.append(task_id)
    for (task_id, map_index), state in tis.items():
        if task_id in present:
            if state == TaskState.REMOVED and map_index == -1:
                decisions.restore.append(task_id)
            continue
        if state in NOT_STARTED_STATES:
            decisions.remove.append((task_id, map_index))
        elif state in IN_FLIGHT_STATES:
            decisions.in_flight.append((task_id, map_index))
    return decisions
