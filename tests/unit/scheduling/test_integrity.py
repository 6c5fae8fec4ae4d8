"""Which task instances a run gains, loses or gets back when its DAG changes or disappears."""

from __future__ import annotations

from orchestrator.models.states import TaskState
from orchestrator.scheduling.integrity import verify_integrity

S = TaskState


def test_unchanged_dag_changes_nothing() -> None:
    decisions = verify_integrity(["a", "b"], {("a", -1): S.SUCCESS, ("b", -1): S.NONE})
    assert not decisions
    assert decisions.in_flight == []


def test_new_task_gets_an_instance_in_declaration_order() -> None:
    decisions = verify_integrity(["z", "a", "m"], {("a", -1): S.RUNNING})
    assert decisions.add == ["z", "m"]
    assert decisions.remove == [] and decisions.restore == []


def test_gone_task_not_started_is_removed_in_every_waiting_state() -> None:
    tis = {
        ("a", -1): S.SUCCESS,
        ("b", -1): S.NONE,
        ("c", -1): S.SCHEDULED,
        ("d", -1): S.UP_FOR_RETRY,
        ("e", -1): S.UP_FOR_RESCHEDULE,
    }
    decisions = verify_integrity(["a"], tis)
    assert decisions.remove == [("b", -1), ("c", -1), ("d", -1), ("e", -1)]
    assert decisions.add == []


def test_gone_task_with_a_container_is_left_to_finish() -> None:
    decisions = verify_integrity(
        ["a"], {("a", -1): S.NONE, ("b", -1): S.RUNNING, ("c", -1): S.QUEUED}
    )
    assert decisions.remove == []
    assert decisions.in_flight == [("b", -1), ("c", -1)]
    assert not decisions  # nothing to change in the store yet


def test_finished_instances_of_a_gone_task_are_history() -> None:
    tis = {
        ("a", -1): S.SUCCESS,
        ("b", -1): S.FAILED,
        ("c", -1): S.SKIPPED,
        ("d", -1): S.UPSTREAM_FAILED,
        ("e", -1): S.REMOVED,
    }
    assert not verify_integrity([], tis)


def test_gone_dag_removes_every_unstarted_instance() -> None:
    tis = {("a", -1): S.SUCCESS, ("b", -1): S.RUNNING, ("c", -1): S.NONE, ("d", -1): S.SCHEDULED}
    decisions = verify_integrity(None, tis)
    assert decisions.remove == [("c", -1), ("d", -1)]
    assert decisions.in_flight == [("b", -1)]
    assert decisions.add == []


def test_task_that_comes_back_is_restored_but_not_mapped_instances() -> None:
    tis = {("a", -1): S.REMOVED, ("m", 0): S.REMOVED, ("m", 1): S.SUCCESS}
    decisions = verify_integrity(["a", "m"], tis)
    assert decisions.restore == ["a"]
    assert decisions.add == []  # "m" has instances: mapping owns how many


def test_mapped_instances_of_a_gone_task_are_removed() -> None:
    tis = {("m", 0): S.NONE, ("m", 1): S.RUNNING, ("m", 2): S.SUCCESS}
    decisions = verify_integrity([], tis)
    assert decisions.remove == [("m", 0)]
    assert decisions.in_flight == [("m", 1)]
