"""Which state changes notify whom: pure selection, no delivery."""

from __future__ import annotations

import pytest

from orchestrator.models.notifiers import Command, NotifyEvent, Webhook
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.scheduling.notifications import (
    run_event,
    run_notifiers,
    task_event,
    task_notifiers,
)

S = TaskState


@pytest.mark.parametrize(
    ("old", "new", "event"),
    [
        (S.RUNNING, S.SUCCESS, NotifyEvent.ON_SUCCESS),
        (S.RUNNING, S.FAILED, NotifyEvent.ON_FAILURE),
        (S.QUEUED, S.FAILED, NotifyEvent.ON_FAILURE),  # template or launch error
        (S.RUNNING, S.UP_FOR_RETRY, NotifyEvent.ON_RETRY),
        (S.NONE, S.UPSTREAM_FAILED, None),  # as Airflow: only the task that failed
        (S.NONE, S.SKIPPED, None),
        (S.RUNNING, S.SKIPPED, None),
        (S.NONE, S.SCHEDULED, None),
        (S.QUEUED, S.RUNNING, None),
        (S.FAILED, S.FAILED, None),
    ],
)
def test_task_events(old: TaskState, new: TaskState, event: NotifyEvent | None) -> None:
    assert task_event(old, new) == event


def test_run_events() -> None:
    assert run_event(RunState.RUNNING, RunState.SUCCESS) == NotifyEvent.ON_SUCCESS
    assert run_event(RunState.RUNNING, RunState.FAILED) == NotifyEvent.ON_FAILURE
    assert run_event(RunState.QUEUED, RunState.RUNNING) is None


def test_notifiers_are_picked_per_event() -> None:
    hook, cmd = Webhook("http://alerts.example/x"), Command(["notify-send", "done"])
    task = TaskSpec(task_id="t", image="i", on_failure=(hook,), on_success=(cmd,))
    assert task_notifiers(task, NotifyEvent.ON_FAILURE) == (hook,)
    assert task_notifiers(task, NotifyEvent.ON_SUCCESS) == (cmd,)
    assert task_notifiers(task, NotifyEvent.ON_RETRY) == ()
    dag = DagSpec(dag_id="d", on_failure=hook, on_sla_miss=[hook, cmd])
    assert run_notifiers(dag, NotifyEvent.ON_FAILURE) == (hook,)
    assert run_notifiers(dag, NotifyEvent.ON_SUCCESS) == ()
    assert run_notifiers(dag, NotifyEvent.ON_SLA_MISS) == (hook, cmd)
