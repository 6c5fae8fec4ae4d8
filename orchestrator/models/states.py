"""Task and run states, with the one table of transitions they may take."""

from __future__ import annotations

from enum import StrEnum

from orchestrator.errors import IllegalTransition


class TaskState(StrEnum):
    """Where a task instance is in its life."""

    NONE = "none"  # created with its run; not yet considered
    SCHEDULED = "scheduled"  # dependencies met; waiting for a free slot
    QUEUED = "queued"  # slot taken; container being created (name and id persisted first)
    RUNNING = "running"  # container started
    SUCCESS = "success"  # exited 0 and its output (if any) was valid
    FAILED = "failed"  # failed for good: no retries left
    UP_FOR_RETRY = "up_for_retry"  # failed, waiting for its retry delay to pass
    UP_FOR_RESCHEDULE = "up_for_reschedule"  # sensor said "not yet"; poke again later, no slot held
    UPSTREAM_FAILED = "upstream_failed"  # will not run because an upstream task failed
    SKIPPED = "skipped"  # exited with one of its skip codes, or skipped by a branch
    REMOVED = "removed"  # the task no longer exists in the DAG

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_TASK_STATES


FINISHED_TASK_STATES = frozenset(
    {
        TaskState.SUCCESS,
        TaskState.FAILED,
        TaskState.UPSTREAM_FAILED,
        TaskState.SKIPPED,
        TaskState.REMOVED,
    }
)
#: States in which a container exists (or is being made) and a parallelism slot is held.
ACTIVE_TASK_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING})
#: Finished states that count as failure for the run.
FAILED_TASK_STATES = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED})

_T = TaskState
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    # NONE -> SUCCESS: a mapped task's summary row, once all its instances succeeded
    _T.NONE: frozenset(
        {_T.SCHEDULED, _T.UPSTREAM_FAILED, _T.SKIPPED, _T.REMOVED, _T.FAILED, _T.SUCCESS}
    ),
    _T.SCHEDULED: frozenset(
        {
            _T.QUEUED,
            _T.FAILED,
            _T.UPSTREAM_FAILED,
            _T.SKIPPED,
            _T.NONE,
            _T.REMOVED,
            _T.UP_FOR_RETRY,
            _T.SUCCESS,
        }
    ),
    _T.QUEUED: frozenset(
        {
            _T.RUNNING,
            _T.FAILED,
            _T.UP_FOR_RETRY,
            _T.SCHEDULED,
            _T.NONE,
            _T.SUCCESS,
            _T.SKIPPED,
            _T.REMOVED,  # its task left the DAG while the container was being made
        }
    ),
    _T.RUNNING: frozenset(
        {
            _T.SUCCESS,
            _T.FAILED,
            _T.UP_FOR_RETRY,
            _T.UP_FOR_RESCHEDULE,
            _T.SKIPPED,
            _T.NONE,
            _T.REMOVED,  # its task left the DAG while the container ran; recorded at exit
        }
    ),
    _T.UP_FOR_RETRY: frozenset(
        {_T.SCHEDULED, _T.FAILED, _T.NONE, _T.SUCCESS, _T.REMOVED, _T.SKIPPED}
    ),
    _T.UP_FOR_RESCHEDULE: frozenset(
        {_T.SCHEDULED, _T.FAILED, _T.NONE, _T.SUCCESS, _T.REMOVED, _T.SKIPPED}
    ),
    _T.SUCCESS: frozenset({_T.NONE, _T.FAILED}),
    _T.FAILED: frozenset({_T.NONE, _T.SUCCESS}),
    _T.UPSTREAM_FAILED: frozenset({_T.NONE, _T.SUCCESS, _T.FAILED}),
    _T.SKIPPED: frozenset({_T.NONE, _T.SUCCESS, _T.FAILED}),
    _T.REMOVED: frozenset({_T.NONE}),
}


class RunState(StrEnum):
    """Where a DAG run is in its life."""

    QUEUED = "queued"  # created (triggered or scheduled); waiting to start
    RUNNING = "running"  # started; some task is not finished
    SUCCESS = "success"  # every task finished and none failed
    FAILED = "failed"  # every task finished and at least one failed

    @property
    def is_finished(self) -> bool:
        return self in (RunState.SUCCESS, RunState.FAILED)


_R = RunState
RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    _R.QUEUED: frozenset({_R.RUNNING, _R.FAILED, _R.SUCCESS}),
    _R.RUNNING: frozenset({_R.SUCCESS, _R.FAILED, _R.QUEUED}),
    _R.SUCCESS: frozenset({_R.QUEUED, _R.RUNNING, _R.FAILED}),
    _R.FAILED: frozenset({_R.QUEUED, _R.RUNNING, _R.SUCCESS}),
}


def check_task_transition(old: TaskState, new: TaskState) -> None:
    """Raise IllegalTransition unless a task may move from `old` to `new`."""
    if new not in TASK_TRANSITIONS[old]:
        raise IllegalTransition(f"task state {old.value!r} cannot become {new.value!r}")


def check_run_transition(old: RunState, new: RunState) -> None:
    """Raise IllegalTransition unless a run may move from `old` to `new`."""
    if new not in RUN_TRANSITIONS[old]:
        raise IllegalTransition(f"run state {old.value!r} cannot become {new.value!r}")
