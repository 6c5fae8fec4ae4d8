"""`depends_on_past`: a task waits for its own instance in the DAG's previous run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import TaskState as S
from orchestrator.scheduling.readiness import TaskView, decide, past_allows

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
DAG = DagSpec(
    dag_id="d",
    tasks=(
        TaskSpec(task_id="load", image="img", depends_on_past=True),
        TaskSpec(task_id="free", image="img"),
        TaskSpec(task_id="after", image="img", upstream_task_ids=("load",), depends_on_past=True),
    ),
)
FRESH = {"load": TaskView(S.NONE), "free": TaskView(S.NONE), "after": TaskView(S.NONE)}


@pytest.mark.parametrize(
    ("previous_state", "runs"),
    [
        (S.SUCCESS, True),
        (S.SKIPPED, True),
        (S.FAILED, False),
        (S.UPSTREAM_FAILED, False),
        (S.UP_FOR_RETRY, False),
        (S.RUNNING, False),
        (S.NONE, False),
        (S.REMOVED, False),
    ],
)
def test_the_previous_runs_state_decides(previous_state: S, runs: bool) -> None:
    d = decide(DAG, FRESH, NOW, {"load": previous_state, "free": S.FAILED})
    assert ("load" in d.schedule) is runs
    assert "free" in d.schedule  # without depends_on_past a task ignores the past


def test_the_first_run_and_a_task_new_since_are_not_blocked() -> None:
    assert decide(DAG, FRESH, NOW, None).schedule == ["load", "free"]
    assert decide(DAG, FRESH, NOW, {"free": S.FAILED}).schedule == ["load", "free"]
    assert past_allows(None, "load") and past_allows({}, "load")


def test_the_trigger_rule_is_asked_only_once_the_past_allows() -> None:
    states = {"load": TaskView(S.FAILED), "free": TaskView(S.SUCCESS), "after": TaskView(S.NONE)}
    waiting = decide(DAG, states, NOW, {"load": S.SUCCESS, "after": S.FAILED})
    assert waiting.upstream_failed == []  # still waiting on its own past
    allowed = decide(DAG, states, NOW, {"load": S.SUCCESS, "after": S.SUCCESS})
    assert allowed.upstream_failed == ["after"]


def test_a_retry_is_not_held_back_by_the_past() -> None:
    states = {"load": TaskView(S.UP_FOR_RETRY, NOW), "free": TaskView(S.SUCCESS)}
    assert decide(DAG, states, NOW, {"load": S.FAILED}).schedule == ["load"]
