"""Clearing and marking on the fake runtime: what re-runs, try numbers, history, containers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import RunNotFound, TaskNotFound
from orchestrator.models.launch import LaunchRequest
from orchestrator.models.specs import TriggerRule
from orchestrator.models.states import RunState, TaskState
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.services import clearing
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness, spec, t


@pytest.fixture
def make(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> Callable[..., Harness]:
    def factory(
        script: Callable[[LaunchRequest], FakeBehavior] | None = None, **kw: Any
    ) -> Harness:
        return Harness(settings, sessions, clock, script, **kw)

    return factory


def task_of(request: LaunchRequest) -> str:
    return request.labels["orch.task_id"]


def failing_once(*task_ids: str) -> Callable[[LaunchRequest], FakeBehavior]:
    """Tasks in `task_ids` fail on their first attempt and succeed afterwards."""
    seen: set[str] = set()

    def script(request: LaunchRequest) -> FakeBehavior:
        task = task_of(request)
        if task in task_ids and task not in seen:
            seen.add(task)
            return FakeBehavior(exit_code=3)
        return FakeBehavior(output=request.environment["ORCH_TRY_NUMBER"])

    return script


def do_clear(h: Harness, run_id: str, *task_ids: str, **kw: Any) -> clearing.Changes:
    with h.sessions.begin() as session:
        return clearing.clear(session, "d", run_id, list(task_ids) or None, now=h.clock.now(), **kw)


def states(h: Harness, run_id: str) -> dict[str, tuple[str, int]]:
    return {k: (v.state, v.try_number) for k, v in h.tis(run_id).items()}


def test_clear_with_downstream_reruns_the_failed_branch_with_the_next_try_number(
    make: Callable[..., Harness],
) -> None:
    h = make(failing_once("b"))
    run_id = h.trigger(spec(t("a"), t("b", "a"), t("c", "b"), t("side", "a")))
    h.tick(4)
    assert h.run_state(run_id) == RunState.FAILED
    assert states(h, run_id)["c"] == ("upstream_failed", 0)

    changes = do_clear(h, run_id, "b", downstream=True)
    assert [(c.task_id, c.from_state) for c in changes.tasks] == [
        ("b", "failed"),
        ("c", "upstream_failed"),
    ]
    assert (changes.run_state_before, changes.run_state) == ("failed", "queued")
    assert states(h, run_id)["b"] == ("none", 1)  # the try number is kept until it runs

    h.clock.advance(minutes=1)
    h.tick(4)
    assert h.run_state(run_id) == RunState.SUCCESS
    assert states(h, run_id) == {
        "a": ("success", 1),
        "b": ("success", 2),
        "c": ("success", 1),
        "side": ("success", 1),
    }
    launched = [task_of(r) for r in h.runtime.created]
    assert sorted(launched) == ["a", "b", "b", "c", "side"]  # a and side did not run again
    tis = h.tis(run_id)
    with h.sessions() as session:
        history = [a.exit_code for a in ti_store.attempts(session, tis["b"].id)]
        changes_b = ti_store.state_changes(session, tis["b"].id)
        run = run_store.get_run(session, "d", run_id)
    assert history == [3, 0]  # the failed attempt is kept
    cleared = [c for c in changes_b if c.to_state == "none"]
    assert [(c.from_state, c.detail, c.try_number) for c in cleared] == [
        ("failed", "cleared from the CLI", 1)
    ]
    assert run.end_date is not None and run.end_date == h.clock.now()


def test_clear_leaves_other_tasks_alone(make: Callable[..., Harness]) -> None:
    h = make()
    run_id = h.trigger(spec(t("a"), t("b", "a"), t("c", "b")))
    h.tick(3)
    do_clear(h, run_id, "b")
    assert states(h, run_id) == {"a": ("success", 1), "b": ("none", 1), "c": ("success", 1)}
    h.tick(2)
    assert states(h, run_id) == {"a": ("success", 1), "b": ("success", 2), "c": ("success", 1)}
    assert h.run_state(run_id) == RunState.SUCCESS


def test_failed_only_picks_failed_and_upstream_failed(make: Callable[..., Harness]) -> None:
    h = make(failing_once("bad"))
    run_id = h.trigger(
        spec(t("ok"), t("bad"), t("after", "bad"), t("end", "ok", "after", trigger_rule="all_done"))
    )
    h.tick(4)
    assert states(h, run_id)["after"] == ("upstream_failed", 0)
    changes = do_clear(h, run_id, failed_only=True)
    assert [c.task_id for c in changes.tasks] == ["bad", "after"]
    h.tick(4)
    assert states(h, run_id) == {
        "ok": ("success", 1),
        "bad": ("success", 2),
        "after": ("success", 1),
        "end": ("success", 1),
    }


def test_failed_only_with_downstream_skips_successful_descendants(
    make: Callable[..., Harness],
) -> None:
    h = make(failing_once("b"))
    dag = spec(t("a"), t("b", "a"), t("c", "a", "b", trigger_rule=TriggerRule.ALL_DONE))
    run_id = h.trigger(dag)
    h.tick(4)
    assert states(h, run_id)["c"] == ("success", 1)
    changes = do_clear(h, run_id, "a", downstream=True, failed_only=True)
    assert [c.task_id for c in changes.tasks] == ["b"]


def test_clearing_gives_one_more_round_of_retries(make: Callable[..., Harness]) -> None:
    h = make(lambda r: FakeBehavior(exit_code=1))
    run_id = h.trigger(spec(t("a", retries=1, retry_delay=10)))
    h.tick()
    h.clock.advance(seconds=11)
    h.tick()
    ti = h.tis(run_id)["a"]
    assert (ti.state, ti.try_number, ti.max_tries) == ("failed", 2, 1)

    do_clear(h, run_id)
    assert h.tis(run_id)["a"].max_tries == 3
    h.tick()
    ti = h.tis(run_id)["a"]
    assert (ti.state, ti.try_number) == ("up_for_retry", 3)
    assert "retry 1 of 1" in ti.state_detail
    h.clock.advance(seconds=11)
    h.tick()
    ti = h.tis(run_id)["a"]
    assert (ti.state, ti.try_number) == ("failed", 4)
    assert h.run_state(run_id) == RunState.FAILED


def test_clearing_a_running_task_stops_its_container_before_the_next_try(
    make: Callable[..., Harness],
) -> None:
    def script(request: LaunchRequest) -> FakeBehavior:
        first_try = request.environment["ORCH_TRY_NUMBER"] == "1"
        return FakeBehavior(hang=task_of(request) == "a" and first_try)

    h = make(script)
    run_id = h.trigger(spec(t("a"), t("b", "a")))
    h.tick()
    assert states(h, run_id)["a"] == ("running", 1)
    first = h.runtime.created[0].name

    changes = do_clear(h, run_id, "a", downstream=True)
    assert [(c.task_id, c.stopping) for c in changes.tasks] == [("a", True)]  # b was none
    assert states(h, run_id)["a"] == ("running", 1)  # still holds its slot
    assert len(h.runtime.created) == 1

    h.tick(3)
    assert states(h, run_id) == {"a": ("success", 2), "b": ("success", 1)}
    assert h.run_state(run_id) == RunState.SUCCESS
    # the second container was only made after the first one had been stopped and removed
    first_id = h.runtime.started[0]
    calls = [c for c in h.runtime.calls if c[0] in ("create", "stop", "remove")]
    assert calls[:4] == [
        ("create", first),
        ("stop", first_id),
        ("remove", first_id),
        ("create", first.replace("-t1", "-t2")),
    ]
    tis = h.tis(run_id)
    with h.sessions() as session:
        attempts = ti_store.attempts(session, tis["a"].id)
    assert [a.try_number for a in attempts] == [1, 2]
    assert "cleared from the CLI" in (attempts[0].detail or "")
    log = Path(attempts[0].log_path).read_text()
    assert "cleared from the CLI: stopping the container" in log


def test_clear_reports_an_unknown_task_and_an_unknown_run(make: Callable[..., Harness]) -> None:
    h = make()
    run_id = h.trigger(spec(t("a")))
    with pytest.raises(TaskNotFound, match=r"no task 'nope'.*tasks: a"):
        do_clear(h, run_id, "nope")
    with pytest.raises(RunNotFound, match="has no run 'other'"):
        do_clear(h, "other")


def test_clear_run_clears_every_task(make: Callable[..., Harness]) -> None:
    h = make()
    run_id = h.trigger(spec(t("a"), t("b", "a")))
    h.tick(2)
    with h.sessions.begin() as session:
        changes = clearing.clear_run(
            session, run_store.get_run(session, "d", run_id), h.clock.now()
        )
    assert [c.task_id for c in changes.tasks] == ["a", "b"]
    assert changes.run_state == "queued"
    h.tick(3)
    assert states(h, run_id) == {"a": ("success", 2), "b": ("success", 2)}


def mark(h: Harness, run_id: str, task_id: str, state: TaskState) -> clearing.Changes:
    with h.sessions.begin() as session:
        return clearing.mark_task(session, "d", run_id, task_id, state, now=h.clock.now())


def test_marking_a_failed_task_success_lets_its_downstream_run(
    make: Callable[..., Harness],
) -> None:
    h = make(lambda r: FakeBehavior(exit_code=1 if task_of(r) == "a" else 0))
    run_id = h.trigger(spec(t("a"), t("b", "a")))
    h.tick(2)
    assert h.run_state(run_id) == RunState.FAILED
    mark(h, run_id, "a", TaskState.SUCCESS)
    do_clear(h, run_id, "b")  # b was upstream_failed: clearing lets it follow its rule again
    h.tick(3)
    assert states(h, run_id) == {"a": ("success", 1), "b": ("success", 1)}
    assert h.run_state(run_id) == RunState.SUCCESS
    with h.sessions() as session:
        details = [c.detail for c in ti_store.state_changes(session, h.tis(run_id)["a"].id)]
    assert details[-1] == "marked success from the CLI"


def test_marking_a_running_task_stops_it_and_its_downstream_follows_the_rule(
    make: Callable[..., Harness],
) -> None:
    h = make(lambda r: FakeBehavior(hang=task_of(r) == "a"))
    run_id = h.trigger(
        spec(t("a"), t("ok", "a"), t("on_fail", "a", trigger_rule=TriggerRule.ONE_FAILED))
    )
    h.tick()
    changes = mark(h, run_id, "a", TaskState.FAILED)
    assert changes.tasks[0].stopping
    h.tick(3)
    tis = h.tis(run_id)
    assert tis["a"].state == "failed"
    assert tis["a"].state_detail == "marked failed from the CLI (its container was stopped)"
    assert (tis["ok"].state, tis["on_fail"].state) == ("upstream_failed", "success")
    assert h.runtime.stopped and len(h.runtime.created) == 2


def test_marking_a_waiting_task_success_runs_its_downstream(make: Callable[..., Harness]) -> None:
    h = make(lambda r: FakeBehavior(hang=task_of(r) == "a"))
    run_id = h.trigger(spec(t("a"), t("b", "a"), t("c", "b")))
    h.tick()
    mark(h, run_id, "b", TaskState.SUCCESS)  # b still waits for a; marking settles it
    h.tick(2)
    assert states(h, run_id) == {"a": ("running", 1), "b": ("success", 0), "c": ("success", 1)}
    assert [task_of(r) for r in h.runtime.created] == ["a", "c"]


def test_mark_run_success_and_failed(make: Callable[..., Harness]) -> None:
    h = make(lambda r: FakeBehavior(hang=task_of(r) == "a"))
    dag = spec(t("a"), t("b", "a"), t("done"))
    first, second = h.trigger(dag), None
    h.tick()
    with h.sessions.begin() as session:
        changes = clearing.mark_run(session, "d", first, TaskState.SUCCESS, now=h.clock.now())
    assert changes.run_state == "success"
    assert {c.task_id: (c.to_state, c.stopping) for c in changes.tasks} == {
        "a": ("success", True),
        "b": ("success", False),
    }  # "done" had already succeeded
    h.tick(2)
    assert states(h, first) == {"a": ("success", 1), "b": ("success", 0), "done": ("success", 1)}
    assert h.run_state(first) == RunState.SUCCESS

    h.clock.advance(minutes=1)
    second = h.trigger(dag)
    h.tick()
    with h.sessions.begin() as session:
        clearing.mark_run(session, "d", second, TaskState.FAILED, now=h.clock.now())
    h.tick(2)
    assert states(h, second) == {"a": ("failed", 1), "b": ("skipped", 0), "done": ("success", 1)}
    assert h.run_state(second) == RunState.FAILED


def test_depends_on_past_waits_for_the_previous_run_and_clearing_it_unblocks(
    make: Callable[..., Harness],
) -> None:
    h = make(failing_once("load"))
    dag = spec(t("load", depends_on_past=True), t("other"))
    first = h.trigger(dag)
    h.tick(2)
    assert states(h, first)["load"] == ("failed", 1)

    h.clock.advance(days=1)
    second = h.trigger(dag)
    h.tick(3)
    assert states(h, second) == {"load": ("none", 0), "other": ("success", 1)}
    assert h.run_state(second) == RunState.RUNNING

    do_clear(h, first, "load")
    h.tick(4)
    assert states(h, first)["load"] == ("success", 2)
    assert states(h, second)["load"] == ("success", 1)
    assert h.run_state(second) == RunState.SUCCESS
