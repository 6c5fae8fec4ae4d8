"""Reconciliation decisions: every (attempt, container) pairing after a crash, on a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.models.states import TaskState
from orchestrator.scheduling.reconcile import (
    Action,
    ActiveAttempt,
    SeenContainer,
    container_bytes_logged,
    reconcile,
)

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)


def attempt(ti_id: int = 1, **kw: Any) -> ActiveAttempt:
    values: dict[str, Any] = {
        "ti_id": ti_id,
        "try_number": 1,
        "state": TaskState.QUEUED,
        "container_name": f"c{ti_id}",
        "container_id": None,
        "queued_at": NOW - timedelta(minutes=1),
    }
    values.update(kw)
    return ActiveAttempt(**values)


def container(name: str = "c1", status: str = "running", **kw: Any) -> SeenContainer:
    values: dict[str, Any] = {"id": f"id-{name}", "name": name, "status": status, "exited": False}
    values.update(kw)
    return SeenContainer(**values)


def actions(*args: Any, **kw: Any) -> list[tuple[Action, int | None, str | None]]:
    return [
        (d.action, d.attempt.ti_id if d.attempt else None, d.container.id if d.container else None)
        for d in reconcile(*args, now=NOW, **kw)
    ]


def test_a_running_container_of_a_running_attempt_is_adopted() -> None:
    running = attempt(state=TaskState.RUNNING, container_id="id-c1")
    assert actions([running], [container()]) == [(Action.ADOPT, 1, "id-c1")]


def test_a_container_whose_id_was_never_stored_is_found_by_its_name() -> None:
    assert actions([attempt()], [container(status="created")]) == [(Action.START, 1, "id-c1")]
    assert actions([attempt()], [container()]) == [(Action.ADOPT, 1, "id-c1")]


def test_an_exited_or_failed_to_start_container_is_harvested() -> None:
    exited = container(status="exited", exited=True)
    failed_start = container(status="created", exited=True)
    for seen in (exited, failed_start):
        assert actions([attempt(container_id="id-c1")], [seen]) == [(Action.HARVEST, 1, "id-c1")]


def test_a_container_nobody_wants_is_removed() -> None:
    finished_task = container("c9", status="exited", exited=True)
    stranger = container("c8")
    result = actions([attempt()], [container(status="created"), finished_task, stranger])
    assert result == [
        (Action.START, 1, "id-c1"),
        (Action.REMOVE, None, "id-c9"),
        (Action.REMOVE, None, "id-c8"),
    ]


def test_an_older_try_container_is_removed_not_adopted() -> None:
    second_try = attempt(try_number=2, container_name="c1-t2")
    old = container("c1-t1", status="exited", exited=True)
    assert actions([second_try], [old]) == [
        (Action.RELAUNCH, 1, None),
        (Action.REMOVE, None, "id-c1-t1"),
    ]


def test_a_recorded_container_that_is_gone_means_lost() -> None:
    running = attempt(state=TaskState.RUNNING, container_id="id-c1")
    assert actions([running], []) == [(Action.LOST, 1, None)]


def test_an_attempt_never_created_is_launched_again() -> None:
    assert actions([attempt()], []) == [(Action.RELAUNCH, 1, None)]


def test_a_fresh_attempt_gets_time_to_be_launched() -> None:
    fresh = attempt(queued_at=NOW - timedelta(seconds=5))
    assert actions([fresh], [], settle=timedelta(seconds=30)) == []
    assert actions([fresh], [], settle=timedelta(seconds=5)) == [(Action.RELAUNCH, 1, None)]


def test_a_sleeping_sensor_needs_no_container() -> None:
    sleeping = attempt(state=TaskState.RUNNING, sleeping=True)
    assert actions([sleeping], []) == []


def test_work_of_this_process_is_left_alone_and_its_containers_kept() -> None:
    launching = attempt(1)
    followed = attempt(2, state=TaskState.RUNNING, container_id="id-c2")
    seen = [container("c1", status="created"), container("c2")]
    assert (
        actions([launching, followed], seen, busy_attempts={(1, 1)}, busy_containers={"id-c2"})
        == []
    )
    # a harvest under way removes the container itself
    assert actions([], [container("c2")], busy_containers={"id-c2"}) == []


def test_attempts_of_another_scheduler_are_neither_touched_nor_their_containers_removed() -> None:
    foreign = attempt(owned=False, container_id="id-c1")
    assert actions([foreign], [container()]) == []
    assert actions([foreign], []) == []


def test_container_bytes_logged_leaves_out_the_orchestrator_notes() -> None:
    tail = b"line 1\n[orchestrator] execution_timeout reached\nline 2\npartial"
    assert container_bytes_logged(tail) == len(b"line 1\nline 2\npartial")
    assert container_bytes_logged(b"") == 0
