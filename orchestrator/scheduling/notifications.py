"""Which state changes produce which notification events, and who is notified.

Decisions (Airflow's callbacks, with notifiers as data):
- `on_failure` fires when a task fails for good: retries used up, a template error, a launch
  error. A task that will be retried fires `on_retry` instead. A task that never ran because
  an upstream task failed (`upstream_failed`) fires nothing, as in Airflow: the failed task
  and the run's own `on_failure` already tell the story.
- `on_success` fires when a task succeeds; skipped and removed tasks fire nothing.
- DAG-level `on_success` / `on_failure` fire when a run finishes in that state.
"""

from __future__ import annotations

from orchestrator.models.notifiers import Notifier, NotifyEvent
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState, TaskState

_TASK_EVENTS = {
    TaskState.SUCCESS: NotifyEvent.ON_SUCCESS,
    TaskState.FAILED: NotifyEvent.ON_FAILURE,
    TaskState.UP_FOR_RETRY: NotifyEvent.ON_RETRY,
}
_RUN_EVENTS = {RunState.SUCCESS: NotifyEvent.ON_SUCCESS, RunState.FAILED: NotifyEvent.ON_FAILURE}


def task_event(old: TaskState, new: TaskState) -> NotifyEvent | None:
    """The event a task instance's move from `old` to `new` produces, if any."""
    if old == new:
        return None
    return _TASK_EVENTS.get(new)


def run_event(old: RunState, new: RunState) -> NotifyEvent | None:
    """The event a run's move from `old` to `new` produces, if any."""
    if old == new:
        return None
    return _RUN_EVENTS.get(new)


def task_notifiers(task: TaskSpec, event: NotifyEvent) -> tuple[Notifier, ...]:
    """The task's notifiers for `event` (default_args were merged in at load time)."""
    if event == NotifyEvent.ON_SUCCESS:
        return task.on_success
    if event == NotifyEvent.ON_FAILURE:
        return task.on_failure
    if event == NotifyEvent.ON_RETRY:
        return task.on_retry
    return ()


def run_notifiers(spec: DagSpec, event: NotifyEvent) -> tuple[Notifier, ...]:
    """The DAG's notifiers for a run event or an SLA miss."""
    if event == NotifyEvent.ON_SUCCESS:
        return spec.on_success
    if event == NotifyEvent.ON_FAILURE:
        return spec.on_failure
    if event == NotifyEvent.ON_SLA_MISS:
        return spec.on_sla_miss
    return ()
