"""Which task instances clearing picks, and what marking a whole run does to its tasks."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.errors import TaskNotFound, UserError
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import TaskState as S
from orchestrator.scheduling.clearing import (
    check_markable,
    chosen_tasks,
    clearable,
    descendants,
    run_mark_states,
)


def t(task_id: str, *upstream: str, **kw: Any) -> TaskSpec:
    return TaskSpec(task_id=task_id, image="img", upstream_task_ids=upstream, **kw)


# a -> b -> d, a -> c -> d, e alone
DAG = DagSpec(dag_id="d", tasks=(t("a"), t("b", "a"), t("c", "a"), t("d", "b", "c"), t("e")))
ALL = ["a", "b", "c", "d", "e"]


def test_descendants_are_transitive_and_exclude_the_start() -> None:
    assert descendants(DAG, ["a"]) == {"b", "c", "d"}
    assert descendants(DAG, ["b"]) == {"d"}
    assert descendants(DAG, ["b", "d"]) == set()
    assert descendants(DAG, ["e"]) == set()


@pytest.mark.parametrize(
    ("task_ids", "downstream", "expected"),
    [
        (None, False, ALL),
        (["b"], False, ["b"]),
        (["b"], True, ["b", "d"]),
        (["c", "a"], False, ["a", "c"]),  # in the DAG's order
        (["a"], True, ["a", "b", "c", "d"]),
    ],
)
def test_chosen_tasks(task_ids: list[str] | None, downstream: bool, expected: list[str]) -> None:
    assert chosen_tasks(DAG, ALL, task_ids, downstream=downstream) == expected


def test_tasks_missing_from_the_dag_or_the_run_are_left_alone() -> None:
    assert chosen_tasks(DAG, ["a", "b", "gone"], None) == ["a", "b"]
    with pytest.raises(TaskNotFound, match="no task 'gone'"):
        chosen_tasks(DAG, ["a", "gone"], ["gone"])
    assert chosen_tasks(None, ["x", "y"], ["y"], downstream=True) == ["y"]  # DAG deleted


def test_clearable_states() -> None:
    assert not clearable(S.NONE) and not clearable(S.REMOVED)
    for state in (S.SUCCESS, S.FAILED, S.SKIPPED, S.UPSTREAM_FAILED, S.RUNNING, S.UP_FOR_RETRY):
        assert clearable(state)
    only_failed = [s for s in S if clearable(s, failed_only=True)]
    assert only_failed == [S.FAILED, S.UPSTREAM_FAILED]


STATES = {
    "none": S.NONE,
    "scheduled": S.SCHEDULED,
    "queued": S.QUEUED,
    "running": S.RUNNING,
    "retry": S.UP_FOR_RETRY,
    "ok": S.SUCCESS,
    "bad": S.FAILED,
    "skip": S.SKIPPED,
}


def test_marking_a_run_success_settles_only_unfinished_tasks() -> None:
    assert run_mark_states(STATES, S.SUCCESS) == {
        "none": S.SUCCESS,
        "scheduled": S.SUCCESS,
        "queued": S.SUCCESS,
        "running": S.SUCCESS,
        "retry": S.SUCCESS,
    }


def test_marking_a_run_failed_fails_containers_and_skips_the_rest() -> None:
    assert run_mark_states(STATES, S.FAILED) == {
        "none": S.SKIPPED,
        "scheduled": S.SKIPPED,
        "queued": S.FAILED,
        "running": S.FAILED,
        "retry": S.SKIPPED,
    }


def test_only_success_and_failed_can_be_marked() -> None:
    check_markable(S.SUCCESS)
    with pytest.raises(UserError, match="success or failed, not 'skipped'"):
        check_markable(S.SKIPPED)
