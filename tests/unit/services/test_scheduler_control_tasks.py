"""The scheduler running branches and the tasks without a container, on the fake runtime."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LABEL_DAG, LABEL_TASK, LaunchRequest
from orchestrator.models.specs import (
    CronSchedule,
    DagSpec,
    ParamSpec,
    TaskKind,
    TaskSpec,
    TriggerRule,
    TriggerRunSpec,
    WaitForRunSpec,
)
from orchestrator.models.states import RunState
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.services.runs import trigger_run
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness, spec, t

NONE_FAILED_MIN_ONE_SUCCESS = TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS


@pytest.fixture
def make(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> Callable[..., Harness]:
    def factory(script: Callable[[LaunchRequest], FakeBehavior] | None = None) -> Harness:
        return Harness(settings, sessions, clock, script)

    return factory


def outputs(by_task: dict[tuple[str, str], object]) -> Callable[[LaunchRequest], FakeBehavior]:
    """A fake runtime script: `(dag, task)` writes the given output; others exit 0."""

    def script(request: LaunchRequest) -> FakeBehavior:
        key = (request.labels[LABEL_DAG], request.labels[LABEL_TASK])
        if key in by_task:
            return FakeBehavior(output=by_task[key])
        return FakeBehavior()

    return script


def containers(h: Harness) -> list[str]:
    return [r.labels[LABEL_TASK] for r in h.runtime.created]


def states(h: Harness, run_id: str, dag_id: str = "d") -> dict[str, tuple[str, str | None]]:
    return {k: (v.state, v.state_detail) for k, v in h.tis(run_id, dag_id).items()}


def store(h: Harness, dag: DagSpec) -> None:
    with h.sessions.begin() as session:
        dag_store.upsert_dag(session, dag, h.clock.now())


def history(h: Harness, run_id: str, task_id: str, dag_id: str = "d") -> list[str]:
    with h.sessions() as session:
        ti = ti_store.get_ti(session, dag_id, run_id, task_id)
        return [c.to_state for c in ti_store.state_changes(session, ti.id)]


def empty(task_id: str, *upstream: str, **kw: Any) -> TaskSpec:
    return TaskSpec(task_id=task_id, kind=TaskKind.EMPTY, upstream_task_ids=upstream, **kw)


# ------------------------------------------------------------------ empty tasks
def test_empty_tasks_run_without_a_container(make: Callable[..., Harness]) -> None:
    h = make()
    run_id = h.trigger(spec(empty("start"), t("work", "start"), empty("end", "work")))
    h.tick(2)
    assert h.run_state(run_id) == RunState.SUCCESS
    assert containers(h) == ["work"]
    tis = h.tis(run_id)
    assert {k: (v.state, v.try_number) for k, v in tis.items()} == {
        "start": ("success", 1),
        "work": ("success", 1),
        "end": ("success", 1),
    }
    assert tis["start"].container_name is None
    with h.sessions() as session:
        attempt = ti_store.get_attempt(session, tis["end"].id, 1)
        assert attempt is not None and attempt.state == "success"
        assert "empty task: nothing to run" in Path(attempt.log_path).read_text()


def test_a_chain_of_empty_tasks_settles_in_one_pass(make: Callable[..., Harness]) -> None:
    h = make()
    run_id = h.trigger(spec(empty("a"), empty("b", "a"), empty("c", "b"), t("work", "c")))
    h.tick()
    assert containers(h) == ["work"]
    assert h.run_state(run_id) == RunState.SUCCESS


def test_empty_tasks_take_no_slot(
    make: Callable[..., Harness], settings: Settings, clock: FixedClock
) -> None:
    settings.parallelism = 1
    h = make(lambda r: FakeBehavior(hang=True))
    run_id = h.trigger(spec(t("busy"), empty("e1"), empty("e2", "e1")))
    h.tick()
    assert containers(h) == ["busy"]
    assert states(h, run_id)["e2"][0] == "success"  # ran while the only slot was held


# ------------------------------------------------------------------ branching
def branchy(join_rule: TriggerRule = NONE_FAILED_MIN_ONE_SUCCESS) -> DagSpec:
    return spec(
        t("choose", branch=True),
        t("a", "choose"),
        t("after_a", "a"),
        t("b", "choose"),
        t("join", "after_a", "b", trigger_rule=join_rule),
    )


def test_a_branch_runs_the_chosen_path_and_the_join(make: Callable[..., Harness]) -> None:
    h = make(outputs({("d", "choose"): "b"}))
    run_id = h.trigger(branchy())
    h.tick(4)
    got = states(h, run_id)
    assert got["a"] == ("skipped", "skipped by branch choose")
    assert got["after_a"] == ("skipped", "an upstream task skipped")
    assert got["b"][0] == "success" and got["join"][0] == "success"
    assert got["choose"] == ("success", "exited 0; branch follows b")
    assert containers(h) == ["choose", "b", "join"]
    assert h.run_state(run_id) == RunState.SUCCESS


def test_under_all_success_the_join_is_skipped(make: Callable[..., Harness]) -> None:
    """Why joins get another rule: this is the trap, shown on an explicit `all_success`."""
    h = make(outputs({("d", "choose"): ["b"]}))
    run_id = h.trigger(branchy(TriggerRule.ALL_SUCCESS))
    h.tick(4)
    assert states(h, run_id)["join"][0] == "skipped"


def test_a_branch_naming_an_unknown_task_fails_with_the_choices(
    make: Callable[..., Harness],
) -> None:
    h = make(outputs({("d", "choose"): "c"}))
    run_id = h.trigger(branchy())
    h.tick(3)
    got = states(h, run_id)
    assert got["choose"] == (
        "failed",
        "DAG 'd', branch task 'choose': output names task 'c', which is not a direct "
        "downstream task of the branch task. Choices: 'a', 'b'",
    )
    assert {got[x][0] for x in ("a", "b", "after_a", "join")} == {"upstream_failed"}
    assert containers(h) == ["choose"]
    assert h.run_state(run_id) == RunState.FAILED
    assert h.tis(run_id)["choose"].output_json is None


def test_a_branch_that_is_retried_decides_once_it_succeeds(make: Callable[..., Harness]) -> None:
    tries: list[int] = []

    def script(request: LaunchRequest) -> FakeBehavior:
        if request.labels[LABEL_TASK] == "choose":
            tries.append(1)
            return FakeBehavior(exit_code=1) if len(tries) == 1 else FakeBehavior(output="a")
        return FakeBehavior()

    h = make(script)
    dag = spec(
        t("choose", branch=True, retries=1, retry_delay=timedelta(0)),
        t("a", "choose"),
        t("b", "choose"),
    )
    run_id = h.trigger(dag)
    h.tick(4)
    got = states(h, run_id)
    assert (got["a"][0], got["b"]) == ("success", ("skipped", "skipped by branch choose"))


# ------------------------------------------------------------------ latest only
def test_latest_only_skips_downstream_in_older_scheduled_runs(
    make: Callable[..., Harness], clock: FixedClock
) -> None:
    h = make()
    dag = spec(
        TaskSpec(task_id="latest", kind=TaskKind.LATEST_ONLY),
        t("report", "latest"),
        t("mail", "report"),
        t("always_runs"),
    ).model_copy(update={"schedule": CronSchedule(expression="@daily")})
    store(h, dag)
    now = clock.now()  # 2026-03-14 12:00 UTC: the latest complete day is the 13th
    day = timedelta(days=1)
    latest_start = now.replace(hour=0) - day
    with h.sessions.begin() as session:
        for run_id, start in (
            ("scheduled__old", latest_start - day),
            ("scheduled__new", latest_start),
        ):
            run_store.create_run(
                session,
                dag,
                run_id=run_id,
                run_type="scheduled",
                logical_date=start,
                data_interval=(start, start + day),
                conf={},
                now=now,
            )
        manual = trigger_run(session, dag, now=now, logical_date=latest_start - 5 * day)
    h.tick(4)
    old = states(h, "scheduled__old")
    assert old["latest"][0] == "success"
    assert old["report"] == ("skipped", "skipped by latest_only latest")
    assert old["mail"] == ("skipped", "an upstream task skipped")
    assert old["always_runs"][0] == "success"
    assert h.run_state("scheduled__old") == RunState.SUCCESS
    assert {s for s, _ in states(h, "scheduled__new").values()} == {"success"}
    assert {s for s, _ in states(h, manual.run_id).values()} == {"success"}
    assert containers(h).count("report") == 2


# ------------------------------------------------------------------ trigger run
TARGET = DagSpec(
    dag_id="target", fileloc="/dags/t.py", tasks=(TaskSpec(task_id="work", image="img"),)
)


def trigger_task(**kw: Any) -> TaskSpec:
    return TaskSpec(
        task_id="trigger",
        kind=TaskKind.TRIGGER_RUN,
        trigger_run=TriggerRunSpec(dag_id="target", **kw),
    )


def test_trigger_run_creates_exactly_one_run_with_rendered_conf(
    make: Callable[..., Harness],
) -> None:
    h = make()
    store(h, TARGET)
    run_id = h.trigger(spec(trigger_task(conf={"day": "{{ ds }}", "n": [1, "{{ run_id }}"]})))
    h.tick(6)
    with h.sessions() as session:
        runs = run_store.list_runs(session, "target")
        assert len(runs) == 1
        created = runs[0]
        assert created.run_id.startswith("manual__2026-03-14T12:00:00")
        assert created.conf == {"day": "2026-03-14", "n": [1, run_id]}
        assert created.state == "success"
    ti = h.tis(run_id)["trigger"]
    assert ti.state == "success"
    assert json.loads(ti.output_json) == {
        "dag_id": "target",
        "run_id": created.run_id,
        "logical_date": created.logical_date.isoformat(),
    }
    assert containers(h) == ["work"]


def test_trigger_run_with_a_templated_run_id_and_logical_date(
    make: Callable[..., Harness],
) -> None:
    h = make()
    store(h, TARGET)
    task = trigger_task(run_id="from_{{ dag_run.dag_id }}", logical_date="{{ ds }}")
    h.trigger(spec(task))
    h.tick(2)
    with h.sessions() as session:
        created = run_store.get_run(session, "target", "from_d")
        assert created.logical_date.isoformat() == "2026-03-14T00:00:00+00:00"


def test_trigger_run_waits_for_the_triggered_run_holding_no_slot(
    make: Callable[..., Harness], clock: FixedClock
) -> None:
    fail = {"value": False}

    def script(request: LaunchRequest) -> FakeBehavior:
        return FakeBehavior(exit_code=1 if fail["value"] else 0, hang=True)

    h = make(script)
    store(h, TARGET)
    run_id = h.trigger(spec(trigger_task(wait=True, poke_interval=10), t("after", "trigger")))
    h.tick(2)
    ti = h.tis(run_id)["trigger"]
    assert ti.state == "up_for_reschedule"
    assert ti.next_try_at == clock.now() + timedelta(seconds=10)
    assert "waiting for triggered run" in ti.state_detail
    (container,) = h.runtime.started
    h.runtime.finish(container)
    h.tick()
    assert h.tis(run_id)["trigger"].state == "up_for_reschedule"  # not due yet
    clock.advance(seconds=10)
    h.tick()
    got = states(h, run_id)
    assert got["trigger"][0] == "success" and "succeeded" in (got["trigger"][1] or "")
    assert history(h, run_id, "trigger") == [
        "scheduled",
        "queued",
        "running",
        "up_for_reschedule",
        "success",
    ]
    assert h.tis(run_id)["trigger"].try_number == 1


def test_trigger_run_fails_with_a_failed_triggered_run(make: Callable[..., Harness]) -> None:
    h = make(lambda r: FakeBehavior(exit_code=2))
    store(h, TARGET)
    run_id = h.trigger(spec(trigger_task(wait=True, poke_interval=1)))
    h.tick(2)
    h.clock.advance(seconds=1)
    h.tick(2)
    got = states(h, run_id)["trigger"]
    assert got[0] == "failed" and got[1] and got[1].endswith("of DAG 'target' failed")
    assert h.run_state(run_id) == RunState.FAILED


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (
            TaskSpec(
                task_id="trigger",
                kind=TaskKind.TRIGGER_RUN,
                trigger_run=TriggerRunSpec(dag_id="nowhere"),
            ),
            "DAG 'd', task 'trigger': no DAG 'nowhere' is known",
        ),
        (
            trigger_task(conf={"x": "{{ nope }}"}),
            "DAG 'd', task 'trigger': conf['x']: cannot render '{{ nope }}'",
        ),
        (
            trigger_task(run_id="fixed", logical_date="{{ 'soon' }}"),
            "DAG 'd', task 'trigger': logical_date 'soon' is not an ISO 8601 date",
        ),
    ],
)
def test_bad_trigger_input_fails_the_task_not_the_scheduler(
    make: Callable[..., Harness], task: TaskSpec, message: str
) -> None:
    h = make()
    store(h, TARGET)
    run_id = h.trigger(spec(task, t("other_work")))
    h.tick(2)
    got = states(h, run_id)
    assert got["trigger"][0] == "failed"
    assert (got["trigger"][1] or "").startswith(message)
    assert got["other_work"][0] == "success"


def test_a_run_id_already_taken_fails_the_trigger(make: Callable[..., Harness]) -> None:
    h = make()
    store(h, TARGET)
    with h.sessions.begin() as session:
        trigger_run(session, TARGET, now=h.clock.now(), run_id="taken")
    run_id = h.trigger(spec(trigger_task(run_id="taken")))
    h.tick(2)
    detail = states(h, run_id)["trigger"][1] or ""
    assert "DAG 'target' already has a run 'taken'" in detail


def test_trigger_conf_is_checked_against_the_other_dags_params(
    make: Callable[..., Harness],
) -> None:
    h = make()
    typed = TARGET.model_copy(update={"params": {"rows": ParamSpec(default=1, type="integer")}})
    store(h, typed)
    run_id = h.trigger(spec(trigger_task(conf={"rows": "{{ ds }}"})))
    h.tick(2)
    detail = states(h, run_id)["trigger"][1] or ""
    assert detail.startswith("DAG 'd', task 'trigger': conf for DAG 'target' does not fit")
    assert "param 'rows' expects integer" in detail
    with h.sessions() as session:
        assert run_store.list_runs(session, "target") == []


# ------------------------------------------------------------------ wait for run
def waiter(**kw: Any) -> TaskSpec:
    kw.setdefault("dag_id", "up")
    return TaskSpec(task_id="wait", kind=TaskKind.WAIT_FOR_RUN, wait_for_run=WaitForRunSpec(**kw))


UP = DagSpec(dag_id="up", fileloc="/dags/up.py", tasks=(TaskSpec(task_id="load", image="img"),))


def test_wait_for_run_waits_for_the_other_dags_task_at_the_matching_date(
    make: Callable[..., Harness], clock: FixedClock
) -> None:
    h = make()
    store(h, UP)
    dag = spec(waiter(task_id="load", execution_delta=3600, poke_interval=30), t("use", "wait"))
    run_id = h.trigger(dag)
    h.tick(2)
    ti = h.tis(run_id)["wait"]
    assert ti.state == "up_for_reschedule"
    assert "has no run yet" in ti.state_detail
    assert containers(h) == []
    now = clock.now()
    with h.sessions.begin() as session:  # the other DAG's run: one hour earlier, and a decoy
        trigger_run(session, UP, now=now, logical_date=now - timedelta(hours=1))
        trigger_run(session, UP, now=now, logical_date=now - timedelta(hours=2))
    h.tick(2)  # the other run executes; the wait is not due yet
    assert h.tis(run_id)["wait"].state == "up_for_reschedule"
    clock.advance(seconds=30)
    h.tick(2)
    got = states(h, run_id)
    assert got["wait"] == (
        "success",
        "DAG 'up', task 'load' at 2026-03-14T11:00:00+00:00 is success",
    )
    assert got["use"][0] == "success"
    assert h.tis(run_id)["wait"].try_number == 1


def test_wait_for_run_fails_when_the_awaited_task_failed(make: Callable[..., Harness]) -> None:
    h = make(lambda r: FakeBehavior(exit_code=1))
    store(h, UP)
    with h.sessions.begin() as session:
        trigger_run(session, UP, now=h.clock.now())
    h.tick(2)
    run_id = h.trigger(spec(waiter(task_id="load")))
    h.tick(2)
    got = states(h, run_id)["wait"]
    assert got[0] == "failed" and "is failed: not waiting any longer" in (got[1] or "")


def test_wait_for_a_whole_run_with_a_templated_date_and_a_timeout(
    make: Callable[..., Harness], clock: FixedClock
) -> None:
    h = make()
    store(h, UP)
    dag = spec(
        waiter(
            execution_date="{{ macros.ds_add(ds, -1) }}",
            poke_interval=60,
            timeout=timedelta(minutes=2),
        )
    )
    run_id = h.trigger(dag)
    h.tick()
    assert "(whole run) at 2026-03-13T00:00:00+00:00" in (states(h, run_id)["wait"][1] or "")
    clock.advance(minutes=1)
    h.tick()
    assert states(h, run_id)["wait"][0] == "up_for_reschedule"
    clock.advance(minutes=1)
    h.tick()
    got = states(h, run_id)["wait"]
    assert got[0] == "failed" and (got[1] or "").startswith("timed out after 120s")


def test_wait_for_a_task_the_other_dag_lacks_fails_at_once(make: Callable[..., Harness]) -> None:
    h = make()
    store(h, UP)
    run_id = h.trigger(spec(waiter(task_id="lod")))
    h.tick()
    assert states(h, run_id)["wait"] == (
        "failed",
        "DAG 'd', task 'wait': DAG 'up' has no task 'lod' to wait for",
    )
