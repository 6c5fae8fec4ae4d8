"""The scheduler on the fake runtime: every rule of running a DAG, deterministic and fast."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LABEL_DAG, LABEL_TRY, LaunchRequest
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState
from orchestrator.runtime.fake import FakeBehavior, FakeRuntime
from orchestrator.services.executors import InlineExecutor
from orchestrator.services.runs import trigger_run
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from tests.support import FixedClock


def spec(*tasks: TaskSpec, dag_id: str = "d") -> DagSpec:
    return DagSpec(dag_id=dag_id, fileloc="/dags/d.py", tasks=tasks)


def t(task_id: str, *upstream: str, **kw: Any) -> TaskSpec:
    kw.setdefault("image", "img")
    return TaskSpec(task_id=task_id, upstream_task_ids=upstream, **kw)


class Harness:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        clock: FixedClock,
        script: Callable[[LaunchRequest], FakeBehavior] | None = None,
        **runtime_kw: Any,
    ) -> None:
        self.settings, self.sessions, self.clock = settings, sessions, clock
        self.runtime = FakeRuntime(script, **runtime_kw)
        self.scheduler = Scheduler(
            settings=settings,
            sessions=sessions,
            runtime=self.runtime,
            clock=clock,
            executor=InlineExecutor(),
        )
        self.scheduler.start()

    def trigger(self, dag: DagSpec, conf: dict[str, Any] | None = None) -> str:
        with self.sessions.begin() as session:
            dag_store.upsert_dag(session, dag, self.clock.now())
            run = trigger_run(session, dag, now=self.clock.now(), conf=conf)
            return run.run_id

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            self.scheduler.tick(self.clock.now())

    def run_state(self, run_id: str, dag_id: str = "d") -> RunState:
        with self.sessions() as session:
            return RunState(run_store.get_run(session, dag_id, run_id).state)

    def tis(self, run_id: str, dag_id: str = "d") -> dict[str, Any]:
        with self.sessions() as session:
            run = run_store.get_run(session, dag_id, run_id)
            return {ti.task_id: ti for ti in run_store.task_instances(session, run.id)}


@pytest.fixture
def make(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> Callable[..., Harness]:
    def factory(
        script: Callable[[LaunchRequest], FakeBehavior] | None = None, **kw: Any
    ) -> Harness:
        return Harness(settings, sessions, clock, script, **kw)

    return factory


def test_chain_runs_in_order_and_outputs_flow_downstream(make: Callable[..., Harness]) -> None:
    def script(request: LaunchRequest) -> FakeBehavior:
        if request.labels[LABEL_DAG] == "d" and request.name.split("-")[2] == "a":
            return FakeBehavior(output={"rows": 42}, logs=b"made 42 rows\n")
        return FakeBehavior(output="done")

    h = make(script)
    dag = spec(
        t("a"),
        t(
            "b",
            "a",
            command=["echo", "{{ outputs.a.rows }}", "{{ ti.xcom_pull(task_ids='a') | tojson }}"],
        ),
        t("c", "b", environment={"PREV": "{{ outputs.b }}"}),
    )
    run_id = h.trigger(dag)
    h.tick(3)
    assert h.run_state(run_id) == RunState.SUCCESS
    tis = h.tis(run_id)
    assert {k: (v.state, v.try_number, v.exit_code) for k, v in tis.items()} == {
        "a": ("success", 1, 0),
        "b": ("success", 1, 0),
        "c": ("success", 1, 0),
    }
    assert json.loads(tis["a"].output_json) == {"rows": 42}
    names = [r.name.split("-")[2] for r in h.runtime.created]
    assert names == ["a", "b", "c"]
    b_request = h.runtime.created[1]
    assert b_request.command == ("echo", "42", '{"rows": 42}')
    assert h.runtime.created[2].environment["PREV"] == "done"
    # every container was removed, and its log kept
    assert sorted(h.runtime.removed) == sorted(c for c in h.runtime.started)
    with h.sessions() as session:
        attempt = ti_store.get_attempt(session, tis["a"].id, 1)
        assert attempt is not None
        assert "made 42 rows" in Path(attempt.log_path).read_text()
        assert attempt.rendered["image"] == "img"


def test_container_contract_environment_and_labels(make: Callable[..., Harness]) -> None:
    h = make()
    run_id = h.trigger(spec(t("a", environment={"MINE": "1", "ORCH_TASK_ID": "spoof"})))
    h.tick()
    request = h.runtime.created[0]
    env = request.environment
    assert env["MINE"] == "1"
    assert env["ORCH_TASK_ID"] == "a"  # ours win
    assert env["ORCH_DAG_ID"] == "d" and env["ORCH_RUN_ID"] == run_id
    assert env["ORCH_TRY_NUMBER"] == "1" and env["ORCH_MAP_INDEX"] == "-1"
    assert env["ORCH_OUTPUT_PATH"] == "/orch/output/output.json"
    for name in ("ORCH_LOGICAL_DATE", "ORCH_DATA_INTERVAL_START", "ORCH_DATA_INTERVAL_END"):
        assert env[name].startswith("2026-03-14T12:00:00")
    assert request.labels[LABEL_TRY] == "1"
    assert request.labels["orch.test"]  # extra labels from settings
    assert (
        request.name
        == f"{h.settings.instance_name}-d-a-{run_id.replace(':', '_').replace('+', '_')}-t1"
    )


def test_container_id_is_stored_before_start_and_removal_follows_saving(
    make: Callable[..., Harness],
) -> None:
    h = make(lambda r: FakeBehavior(output=[1, 2]))
    seen: dict[str, Any] = {}
    original_start, original_remove = h.runtime.start, h.runtime.remove

    def start(container_id: str) -> None:
        with h.sessions() as session:
            ti = ti_store.ti_by_container(session, container_id)
            seen["id_before_start"] = ti is not None
        original_start(container_id)

    def remove(container_id: str) -> None:
        with h.sessions() as session:
            ti = ti_store.ti_by_container(session, container_id)
            seen["saved_before_remove"] = ti is not None and ti.output_json == "[1,2]"
        original_remove(container_id)

    h.runtime.start = start  # type: ignore[method-assign]
    h.runtime.remove = remove  # type: ignore[method-assign]
    h.trigger(spec(t("a")))
    h.tick()
    assert seen == {"id_before_start": True, "saved_before_remove": True}


def test_failure_marks_downstream_upstream_failed_and_fails_the_run(
    make: Callable[..., Harness],
) -> None:
    h = make(lambda r: FakeBehavior(exit_code=3, logs=b"boom\n"))
    run_id = h.trigger(spec(t("a"), t("b", "a"), t("c", "b")))
    h.tick(2)
    tis = h.tis(run_id)
    assert tis["a"].state == "failed" and tis["a"].exit_code == 3
    assert "exited with code 3" in tis["a"].state_detail
    assert tis["b"].state == "upstream_failed" and tis["c"].state == "upstream_failed"
    assert h.run_state(run_id) == RunState.FAILED
    assert len(h.runtime.created) == 1


def test_retry_waits_for_its_delay_then_succeeds(make: Callable[..., Harness]) -> None:
    attempts: list[str] = []

    def script(request: LaunchRequest) -> FakeBehavior:
        attempts.append(request.name)
        return FakeBehavior(exit_code=1 if len(attempts) == 1 else 0)

    h = make(script)
    run_id = h.trigger(spec(t("a", retries=2, retry_delay=30)))
    h.tick()
    ti = h.tis(run_id)["a"]
    assert ti.state == "up_for_retry"
    assert ti.next_try_at == h.clock.now() + timedelta(seconds=30)
    h.clock.advance(seconds=29)
    h.tick()
    assert len(attempts) == 1
    h.clock.advance(seconds=1)
    h.tick()
    ti = h.tis(run_id)["a"]
    assert (ti.state, ti.try_number) == ("success", 2)
    assert attempts[0].endswith("-t1") and attempts[1].endswith("-t2")
    with h.sessions() as session:
        rows = ti_store.attempts(session, ti.id)
        assert [(a.try_number, a.state, a.exit_code) for a in rows] == [
            (1, "up_for_retry", 1),
            (2, "success", 0),
        ]
        states = [c.to_state for c in ti_store.state_changes(session, ti.id)]
    assert states == [
        "scheduled",
        "queued",
        "running",
        "up_for_retry",
        "scheduled",
        "queued",
        "running",
        "success",
    ]


def test_exponential_backoff_is_capped(make: Callable[..., Harness]) -> None:
    h = make(lambda r: FakeBehavior(exit_code=1))
    run_id = h.trigger(
        spec(t("a", retries=5, retry_delay=10, retry_exponential_backoff=True, max_retry_delay=25))
    )
    delays = []
    for _ in range(4):
        h.tick()
        ti = h.tis(run_id)["a"]
        delays.append((ti.next_try_at - h.clock.now()).total_seconds())
        h.clock.advance(seconds=delays[-1])
    assert delays == [10, 20, 25, 25]


def test_skip_exit_code_skips_downstream_and_run_succeeds(make: Callable[..., Harness]) -> None:
    h = make(lambda r: FakeBehavior(exit_code=99))
    run_id = h.trigger(spec(t("a", skip_exit_codes=(99,)), t("b", "a")))
    h.tick(2)
    tis = h.tis(run_id)
    assert (tis["a"].state, tis["b"].state) == ("skipped", "skipped")
    assert h.run_state(run_id) == RunState.SUCCESS


def test_oom_is_reported(make: Callable[..., Harness]) -> None:
    h = make(lambda r: FakeBehavior(oom_killed=True))
    run_id = h.trigger(spec(t("a", memory="32m")))
    h.tick()
    ti = h.tis(run_id)["a"]
    assert ti.state == "failed" and ti.exit_code == 137
    assert "out of memory" in ti.state_detail
    assert h.runtime.created[0].mem_limit == 32 * 1024 * 1024


def test_execution_timeout_stops_the_container(make: Callable[..., Harness]) -> None:
    h = make(lambda r: FakeBehavior(hang=True))
    run_id = h.trigger(spec(t("a", execution_timeout=5)))
    h.tick()
    assert h.tis(run_id)["a"].state == "running"
    h.clock.advance(seconds=4)
    h.tick()
    assert h.runtime.stopped == []
    h.clock.advance(seconds=1)
    h.tick(2)
    ti = h.tis(run_id)["a"]
    assert h.runtime.stopped and h.runtime.stopped[0][1] == h.settings.stop_grace_period
    assert ti.state == "failed"
    assert "timed out after 5s" in ti.state_detail
    with h.sessions() as session:
        attempt = ti_store.get_attempt(session, ti.id, 1)
        assert attempt is not None and attempt.timed_out
        assert "execution_timeout of 5s reached" in Path(attempt.log_path).read_text()


def test_missing_image_with_pull_never_fails_with_the_image_named(
    make: Callable[..., Harness],
) -> None:
    h = make(images=["other"])
    run_id = h.trigger(spec(t("a", image="nope:1", pull_policy="never")))
    h.tick()
    ti = h.tis(run_id)["a"]
    assert ti.state == "failed"
    assert "nope:1" in ti.state_detail
    assert h.runtime.created == []
    with h.sessions() as session:
        attempt = ti_store.get_attempt(session, ti.id, 1)
        assert attempt is not None and "nope:1" in Path(attempt.log_path).read_text()


def test_template_error_fails_the_task_not_the_scheduler(make: Callable[..., Harness]) -> None:
    h = make()
    run_id = h.trigger(spec(t("a", command=["{{ params.nope }}"], retries=3), t("b")))
    h.tick(2)
    tis = h.tis(run_id)
    assert tis["a"].state == "failed"
    assert "command[0]" in tis["a"].state_detail and "nope" in tis["a"].state_detail
    assert tis["b"].state == "success"
    assert [r.name.split("-")[2] for r in h.runtime.created] == ["b"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"{not json", "not a single JSON value"), (b"1" * 2_000_000, "over the")],
)
def test_bad_output_fails_the_task(make: Callable[..., Harness], raw: bytes, message: str) -> None:
    h = make(lambda r: FakeBehavior(raw_output=raw))
    run_id = h.trigger(spec(t("a")))
    h.tick()
    ti = h.tis(run_id)["a"]
    assert ti.state == "failed" and message in ti.state_detail
    assert ti.output_json is None


def test_parallelism_limits_running_containers(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    limited = settings.model_copy(update={"parallelism": 2})
    h = Harness(limited, sessions, clock, lambda r: FakeBehavior(hang=True))
    h.trigger(spec(*(t(f"t{i}") for i in range(5))))
    h.tick(3)
    assert len(h.runtime.created) == 2
    h.runtime.finish(h.runtime.started[0], exit_code=0)
    h.tick()
    assert len(h.runtime.created) == 3


def test_invalid_conf_type_is_rejected(make: Callable[..., Harness]) -> None:
    from orchestrator.errors import InvalidConf
    from orchestrator.models.specs import ParamSpec

    h = make()
    dag = DagSpec(
        dag_id="d", tasks=(t("a"),), params={"rows": ParamSpec(default=1, type="integer")}
    )
    with pytest.raises(InvalidConf, match=r"'rows'.*integer"):
        h.trigger(dag, conf={"rows": "many"})
