"""Crash safety on the fake runtime: a scheduler object is dropped mid-way (as a killed process
would be) at each step of an attempt's life, a new one is built over the same store and engine,
and every task still runs exactly once with its exit code, output and whole log recorded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import (
    OUTPUT_DIR_IN_CONTAINER,
    ContainerExit,
    ContainerInfo,
    LaunchRequest,
)
from orchestrator.models.secrets import SecretRef
from orchestrator.models.specs import DagSpec, PullPolicy, TaskSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.runtime.base import ContainerRuntime, ExitCallback, LogSink, Subscription
from orchestrator.runtime.fake import FakeBehavior, FakeRuntime
from orchestrator.scheduling.reconcile import Action
from orchestrator.services.clearing import clear, mark_task
from orchestrator.services.containers import (
    AttemptKey,
    instance_labels,
    legacy_output_dir,
    output_dir,
)
from orchestrator.services.executors import InlineExecutor
from orchestrator.services.runs import trigger_run
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from tests.support import FixedClock


class Crash(BaseException):
    """The scheduler process dies here (not an error any handler would catch)."""


class CrashingRuntime(ContainerRuntime):
    """The engine as the first (doomed) scheduler sees it: raises `Crash` at `crash_at`, and
    once dead, nothing it started (log followers, exit callbacks) reaches the store again."""

    def __init__(self, inner: FakeRuntime, crash_at: str | None) -> None:
        self.inner, self.crash_at, self.dead = inner, crash_at, False
        self._follows = 0
        self._lock = threading.Lock()

    def _maybe_crash(self, point: str) -> None:
        if self.crash_at == point:
            self.dead = True
            raise Crash(point)

    def followers(self) -> int:
        with self._lock:
            return self._follows

    def ensure_image(self, image: str, policy: PullPolicy, log: LogSink) -> None:
        self.inner.ensure_image(image, policy, log)

    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        self.inner.ensure_volume(name, labels)

    def create(self, request: LaunchRequest) -> str:
        self._maybe_crash("before_create")
        container_id = self.inner.create(request)
        self._maybe_crash("after_create")
        return container_id

    def start(self, container_id: str) -> None:
        self._maybe_crash("before_start")
        self.inner.start(container_id)

    def follow_logs(self, container_id: str, sink: LogSink, *, started: bool = False) -> None:
        def guarded(chunk: bytes) -> None:
            if not self.dead:
                sink(chunk)

        with self._lock:
            self._follows += 1
        try:
            self.inner.follow_logs(container_id, guarded, started=started)
        finally:
            with self._lock:
                self._follows -= 1

    def exit_status(self, container_id: str) -> ContainerExit | None:
        self._maybe_crash("before_harvest")
        return self.inner.exit_status(container_id)

    def stop(self, container_id: str, grace_seconds: float) -> None:
        self._maybe_crash("before_stop")
        self.inner.stop(container_id, grace_seconds)

    def remove(self, container_id: str) -> None:
        self.inner.remove(container_id)

    def list_containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        return self.inner.list_containers(labels)

    def watch_exits(self, labels: dict[str, str], on_exit: ExitCallback) -> Subscription:
        def guarded(container_id: str) -> None:
            if not self.dead:
                on_exit(container_id)

        return self.inner.watch_exits(labels, guarded)


def spec(*tasks: TaskSpec) -> DagSpec:
    return DagSpec(dag_id="d", fileloc="/dags/d.py", tasks=tasks)


def t(task_id: str, *upstream: str, **kw: Any) -> TaskSpec:
    kw.setdefault("image", "img")
    return TaskSpec(task_id=task_id, upstream_task_ids=upstream, **kw)


class World:
    """One store and one engine that outlive the scheduler objects built over them."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        clock: FixedClock,
        script: Callable[[LaunchRequest], FakeBehavior],
    ) -> None:
        self.settings, self.sessions, self.clock = settings, sessions, clock
        self.engine = FakeRuntime(script)

    def scheduler(self, runtime: ContainerRuntime | None = None) -> Scheduler:
        scheduler = Scheduler(
            settings=self.settings,
            sessions=self.sessions,
            runtime=runtime or self.engine,
            clock=self.clock,
            executor=InlineExecutor(),
        )
        scheduler.start()
        return scheduler

    def trigger(self, dag: DagSpec) -> str:
        with self.sessions.begin() as session:
            dag_store.upsert_dag(session, dag, self.clock.now())
            return trigger_run(session, dag, now=self.clock.now()).run_id

    def run_state(self, run_id: str) -> RunState:
        with self.sessions() as session:
            return RunState(run_store.get_run(session, "d", run_id).state)

    def tis(self, run_id: str) -> dict[str, Any]:
        with self.sessions() as session:
            run = run_store.get_run(session, "d", run_id)
            return {ti.task_id: ti for ti in run_store.task_instances(session, run.id)}

    def log_of(self, ti_id: int, try_number: int = 1) -> str:
        with self.sessions() as session:
            attempt = ti_store.get_attempt(session, ti_id, try_number)
            assert attempt is not None
            log = Path(attempt.log_path)
            return log.read_text() if log.exists() else ""  # its follower may not have begun

    def launched_on(self, doomed: CrashingRuntime) -> tuple[Scheduler, str]:
        """A scheduler on `doomed` that launched the run's one task, and its container."""
        first = self.scheduler(doomed)
        first.tick(self.clock.now())
        first.tick(self.clock.now())
        (container_id,) = self.engine.containers
        return first, container_id

    def run_until_done(self, scheduler: Scheduler, run_id: str, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            scheduler.tick(self.clock.now())
            if self.run_state(run_id).is_finished:
                return
            time.sleep(0.02)
        raise AssertionError(f"run {run_id} did not finish: {self.run_state(run_id)}")


@pytest.fixture
def world(settings: Settings, sessions: sessionmaker[Session], clock: FixedClock) -> World:
    def script(request: LaunchRequest) -> FakeBehavior:
        task = request.labels["orch.task_id"]
        return FakeBehavior(logs=f"{task} line 1\n{task} line 2\n".encode(), output={"t": task})

    return World(settings, sessions, clock, script)


@pytest.mark.parametrize(
    "crash_at", ["before_create", "after_create", "before_start", "before_harvest"]
)
def test_a_crash_at_each_step_still_runs_every_task_exactly_once(
    world: World, crash_at: str
) -> None:
    run_id = world.trigger(spec(t("a"), t("b", "a")))
    doomed = CrashingRuntime(world.engine, crash_at)
    first = world.scheduler(doomed)
    first.tick(world.clock.now())
    assert doomed.dead, "the first scheduler should have crashed"
    if crash_at == "before_harvest":  # its container exited: let the old follower end
        deadline = time.monotonic() + 5
        while doomed.followers() and time.monotonic() < deadline:
            time.sleep(0.01)
    del first  # the process died: its object is never used again

    second = world.scheduler()
    report = second.reconcile(world.clock.now())
    expected = {
        "before_create": Action.RELAUNCH,
        "after_create": Action.START,
        "before_start": Action.START,
        "before_harvest": Action.HARVEST,
    }[crash_at]
    assert report.actions == {expected: 1}
    world.run_until_done(second, run_id)

    assert world.run_state(run_id) == RunState.SUCCESS
    tis = world.tis(run_id)
    for task in ("a", "b"):
        ti = tis[task]
        assert (ti.state, ti.try_number, ti.exit_code) == ("success", 1, 0)
        assert ti.output_json == f'{{"t":"{task}"}}'
        text = world.log_of(ti.id)
        assert text.count(f"{task} line 1\n") == 1 and text.count(f"{task} line 2\n") == 1
    # each task's container was created once and started once
    assert sorted(r.labels["orch.task_id"] for r in world.engine.created) == ["a", "b"]
    assert len(world.engine.started) == 2
    assert world.engine.containers == {}  # both removed once harvested


def hanging(request: LaunchRequest) -> FakeBehavior:
    return FakeBehavior(hang=True, output={"t": request.labels["orch.task_id"]})


def test_a_running_container_is_adopted_and_its_log_resumed_without_gaps_or_repeats(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    world = World(settings, sessions, clock, hanging)
    run_id = world.trigger(spec(t("a")))
    doomed = CrashingRuntime(world.engine, None)
    first, container_id = world.launched_on(doomed)
    world.engine.emit(container_id, b"before 1\nbefore 2\n")
    deadline = time.monotonic() + 5
    while "before 2" not in world.log_of(world.tis(run_id)["a"].id):
        assert time.monotonic() < deadline, "the first scheduler did not write the log"
        time.sleep(0.01)
    assert world.tis(run_id)["a"].state == "running"
    doomed.dead = True  # killed while the container runs
    world.engine.emit(container_id, b"while down\n")
    del first

    second = world.scheduler()
    assert second.reconcile(clock.now()).actions == {Action.ADOPT: 1}
    world.engine.emit(container_id, b"after 1\n")
    world.engine.finish(container_id, exit_code=0)
    world.run_until_done(second, run_id)

    ti = world.tis(run_id)["a"]
    assert (ti.state, ti.try_number, ti.exit_code) == ("success", 1, 0)
    assert world.log_of(ti.id) == "before 1\nbefore 2\nwhile down\nafter 1\n"
    assert len(world.engine.created) == 1 and len(world.engine.started) == 1


def test_a_container_launched_before_the_flat_output_layout_is_harvested_after_the_upgrade(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """A task still running when the scheduler is upgraded writes its output to the folder of
    the old layout (its mount): the new scheduler adopts it, reads the output there and
    removes the folder, and prunes the old layout's empty folders."""
    world = World(settings, sessions, clock, hanging)
    run_id = world.trigger(spec(t("a")))
    doomed = CrashingRuntime(world.engine, None)
    first, container_id = world.launched_on(doomed)
    ti = world.tis(run_id)["a"]
    key = AttemptKey("d", run_id, "a", -1, ti.try_number)
    doomed.dead = True
    del first
    # as the earlier version launched it: its output folder in the old layout
    old = legacy_output_dir(settings, key)
    old.parent.mkdir(parents=True)
    output_dir(settings, key).rename(old)
    container = world.engine.containers[container_id]
    mounts = tuple(
        m.model_copy(update={"source": str(old)}) if m.target == OUTPUT_DIR_IN_CONTAINER else m
        for m in container.request.mounts
    )
    container.request = container.request.model_copy(update={"mounts": mounts})
    empty = settings.outputs_folder / "dag_id=d" / "run_id=earlier" / "task_id=a"
    empty.mkdir(parents=True)

    second = world.scheduler()
    assert not empty.parent.exists()  # pruned at start; the running attempt's folder is kept
    assert second.reconcile(clock.now()).actions == {Action.ADOPT: 1}
    world.engine.finish(container_id, exit_code=0, output={"rows": 3})
    world.run_until_done(second, run_id)

    ti = world.tis(run_id)["a"]
    assert (ti.state, ti.output_json) == ("success", '{"rows":3}')
    assert not old.exists()


def test_a_timeout_whose_stop_a_crash_cut_short_is_enforced_after_the_restart(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """Killed after recording "timed out, stop it" and before the engine heard the stop: the
    restarted scheduler stops the container, and the task fails as timed out, once."""
    world = World(settings, sessions, clock, hanging)
    run_id = world.trigger(spec(t("a", execution_timeout=timedelta(seconds=60))))
    doomed = CrashingRuntime(world.engine, "before_stop")
    first = world.scheduler(doomed)
    first.tick(clock.now())
    first.tick(clock.now())
    assert world.tis(run_id)["a"].state == "running"
    clock.advance(seconds=61)
    first.tick(clock.now())
    assert doomed.dead, "the first scheduler should have crashed"
    del first
    (container_id,) = world.engine.containers
    assert world.engine.container(container_id).status == "running"  # never told to stop

    second = world.scheduler()
    assert second.reconcile(clock.now()).actions == {Action.ADOPT: 1}
    world.run_until_done(second, run_id)
    ti = world.tis(run_id)["a"]
    assert (ti.state, ti.try_number) == ("failed", 1)
    assert ti.state_detail is not None and "timed out" in ti.state_detail
    assert [call for call in world.engine.calls if call[0] == "stop"] == [("stop", container_id)]
    assert len(world.engine.started) == 1


@pytest.mark.parametrize("change", ["clear", "mark"])
def test_a_running_task_cleared_or_marked_while_the_scheduler_was_down_is_stopped_after_it(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock, change: str
) -> None:
    """The user's change waits in the store; the restarted scheduler stops the old container
    (never adopting it for good) and applies it: a cleared task runs again, a marked one
    keeps its mark. Nothing is left running."""

    def script(request: LaunchRequest) -> FakeBehavior:
        first_try = request.labels["orch.try_number"] == "1"
        return FakeBehavior(
            hang=first_try, logs=b"try %s\n" % request.labels["orch.try_number"].encode()
        )

    world = World(settings, sessions, clock, script)
    run_id = world.trigger(spec(t("a")))
    doomed = CrashingRuntime(world.engine, None)
    first = world.scheduler(doomed)
    first.tick(clock.now())
    first.tick(clock.now())
    (old,) = world.engine.containers
    assert world.tis(run_id)["a"].state == "running"
    doomed.dead = True
    del first
    with sessions.begin() as session:
        if change == "clear":
            clear(session, "d", run_id, ["a"], now=clock.now())
        else:
            mark_task(session, "d", run_id, "a", TaskState.SUCCESS, now=clock.now())

    second = world.scheduler()
    second.reconcile(clock.now())
    world.run_until_done(second, run_id)
    ti = world.tis(run_id)["a"]
    assert ("stop", old) in world.engine.calls and old not in world.engine.containers
    if change == "clear":
        assert (ti.state, ti.try_number, ti.exit_code) == ("success", 2, 0)
        assert len(world.engine.started) == 2
    else:
        assert (ti.state, ti.try_number) == ("success", 1)
        assert len(world.engine.started) == 1
    assert world.engine.containers == {}


def test_an_attempt_whose_container_vanished_is_lost_and_retried(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    world = World(settings, sessions, clock, hanging)
    run_id = world.trigger(spec(t("a", retries=1, retry_delay=timedelta(seconds=60))))
    doomed = CrashingRuntime(world.engine, None)
    first = world.scheduler(doomed)
    first.tick(clock.now())
    first.tick(clock.now())
    doomed.dead = True
    del first
    (container_id,) = world.engine.containers
    world.engine.remove(container_id)  # e.g. the engine was reset while we were down

    second = world.scheduler()
    assert second.reconcile(clock.now()).actions == {Action.LOST: 1}
    second.tick(clock.now())
    ti = world.tis(run_id)["a"]
    assert ti.state == "up_for_retry"
    assert ti.state_detail.startswith("lost: the container is gone")
    clock.advance(seconds=61)
    second.tick(clock.now())
    (retry_id,) = world.engine.containers
    world.engine.finish(retry_id, exit_code=0)
    world.run_until_done(second, run_id)
    ti = world.tis(run_id)["a"]
    assert (ti.state, ti.try_number) == ("success", 2)
    with sessions() as session:
        first_try = ti_store.get_attempt(session, ti.id, 1)
        assert first_try is not None and first_try.state == "up_for_retry"
        assert (first_try.detail or "").startswith("lost:")


def test_containers_without_a_live_attempt_are_stopped_and_removed(
    world: World, settings: Settings
) -> None:
    run_id = world.trigger(spec(t("a")))
    scheduler = world.scheduler()
    world.run_until_done(scheduler, run_id)
    # a container of ours nobody knows (e.g. its task instance was cleared while we were down)
    labels = {**instance_labels(settings), "orch.task_id": "gone", "orch.try_number": "1"}
    world.engine.script = hanging
    stray = world.engine.create(LaunchRequest(name="stray", image="img", labels=labels))
    world.engine.start(stray)
    # another installation's container is not ours to touch
    foreign_labels = {**labels, "orch.instance": "someone-else"}
    foreign = world.engine.create(LaunchRequest(name="x", image="img", labels=foreign_labels))
    assert scheduler.reconcile(world.clock.now()).actions == {Action.REMOVE: 1}
    assert stray not in world.engine.containers
    assert ("stop", stray) in world.engine.calls
    assert foreign in world.engine.containers


def test_nothing_is_launched_while_the_engine_is_down_and_all_runs_once_it_is_back(
    world: World,
) -> None:
    run_id = world.trigger(spec(t("a")))
    down = True
    real_list = world.engine.list_containers

    def list_containers(labels: dict[str, str]) -> list[ContainerInfo]:
        if down:
            from orchestrator.errors import RuntimeUnavailable

            raise RuntimeUnavailable("the Docker engine could not be reached")
        return real_list(labels)

    world.engine.list_containers = list_containers  # type: ignore[method-assign]
    scheduler = world.scheduler()
    report = scheduler.reconcile(world.clock.now())
    assert report.engine_error is not None and not scheduler.engine_up
    status = json.loads((world.settings.home / "scheduler-status.json").read_text())
    assert status["engine"] == "down" and "could not be reached" in status["engine_error"]
    scheduler.tick(world.clock.now())
    assert world.engine.created == []  # recorded, not launched
    assert world.tis(run_id)["a"].state == "queued"
    down = False
    assert scheduler.reconcile(world.clock.now()).actions == {Action.RELAUNCH: 1}
    status = json.loads((world.settings.home / "scheduler-status.json").read_text())
    assert status["engine"] == "up" and scheduler.engine_up
    world.run_until_done(scheduler, run_id)
    ti = world.tis(run_id)["a"]
    assert (ti.state, ti.try_number) == ("success", 1)
    assert len(world.engine.created) == 1


def test_a_periodic_reconciliation_leaves_the_work_under_way_alone(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    world = World(settings, sessions, clock, hanging)
    run_id = world.trigger(spec(t("a"), t("b")))
    scheduler = world.scheduler()
    scheduler.tick(clock.now())
    scheduler.tick(clock.now())
    assert {ti.state for ti in world.tis(run_id).values()} == {"running"}
    assert scheduler.reconcile(clock.now()).actions == {}  # followed by this process
    for container_id in list(world.engine.containers):
        world.engine.emit(container_id, b"once\n")
        world.engine.finish(container_id, exit_code=0)
    world.run_until_done(scheduler, run_id)
    for ti in world.tis(run_id).values():
        assert (ti.state, ti.try_number) == ("success", 1)
        assert world.log_of(ti.id) == "once\n"
    assert len(world.engine.created) == 2


def test_secrets_are_resolved_again_for_a_relaunch_and_masked_in_an_adopted_log(
    settings: Settings,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store keeps rendered fields only masked: after a restart the attempt is rendered
    again, so a relaunched container gets the real values and an adopted one's log masks them."""
    password = "pw-after-restart-777"
    monkeypatch.setenv("ORCH_CONN_MY_DB", f"postgresql://app:{password}@db:5432/sales")
    secrets = {"DB_PASSWORD": SecretRef(source="conn", key="my_db")}
    world = World(settings, sessions, clock, hanging)
    relaunched = world.trigger(
        spec(t("a", secrets=secrets, environment={"P": "{{ conn.my_db.password }}"}))
    )
    doomed = CrashingRuntime(world.engine, "before_create")
    world.scheduler(doomed).tick(clock.now())
    assert doomed.dead

    second = world.scheduler()
    assert second.reconcile(clock.now()).actions == {Action.RELAUNCH: 1}
    second.tick(clock.now())
    (request,) = world.engine.created
    assert request.environment["DB_PASSWORD"] == password
    assert request.environment["P"] == password
    (container_id,) = world.engine.containers
    world.engine.emit(container_id, f"first {password}\n".encode())
    del second  # dies while the container runs

    third = world.scheduler()
    assert third.reconcile(clock.now()).actions == {Action.ADOPT: 1}
    world.engine.emit(container_id, f"then {password}\n".encode())
    world.engine.finish(container_id, exit_code=0)
    world.run_until_done(third, relaunched)
    log = world.log_of(world.tis(relaunched)["a"].id)
    assert password not in log
    assert "then ***" in log


@pytest.mark.parametrize(
    ("call", "expected"), [("create", Action.RELAUNCH), ("start", Action.START)]
)
def test_an_engine_lost_mid_launch_fails_nothing_and_the_task_runs_once_when_it_is_back(
    world: World, call: str, expected: Action
) -> None:
    from orchestrator.errors import RuntimeUnavailable

    run_id = world.trigger(spec(t("a", retries=1)))
    real = getattr(world.engine, call)
    down = True

    def unreachable(*args: Any) -> Any:
        if down:
            raise RuntimeUnavailable("the Docker engine could not be reached")
        return real(*args)

    setattr(world.engine, call, unreachable)
    scheduler = world.scheduler()
    scheduler.tick(world.clock.now())
    ti = world.tis(run_id)["a"]
    assert (ti.state, ti.try_number) == ("queued", 1), ti.state_detail  # no try used up
    assert not scheduler.engine_up  # and nothing more is launched meanwhile
    down = False
    assert scheduler.reconcile(world.clock.now()).actions == {expected: 1}
    world.run_until_done(scheduler, run_id)
    ti = world.tis(run_id)["a"]
    assert (ti.state, ti.try_number, ti.exit_code) == ("success", 1, 0)
    assert len(world.engine.started) == 1
    assert world.log_of(ti.id).count("a line 1\n") == 1


def test_an_engine_lost_mid_harvest_fails_nothing_and_the_exit_is_harvested_when_it_is_back(
    world: World,
) -> None:
    from orchestrator.errors import RuntimeUnavailable

    run_id = world.trigger(spec(t("a", retries=1)))
    real = world.engine.exit_status
    down = True

    def exit_status(container_id: str) -> ContainerExit | None:
        if down:
            raise RuntimeUnavailable("the Docker engine could not be reached")
        return real(container_id)

    world.engine.exit_status = exit_status  # type: ignore[method-assign]
    scheduler = world.scheduler()
    deadline = time.monotonic() + 5
    while scheduler.engine_up and time.monotonic() < deadline:
        scheduler.tick(world.clock.now())
        time.sleep(0.02)
    ti = world.tis(run_id)["a"]
    assert (ti.state, ti.try_number) == ("running", 1), ti.state_detail  # not failed
    down = False
    assert scheduler.reconcile(world.clock.now()).actions == {Action.HARVEST: 1}
    world.run_until_done(scheduler, run_id)
    ti = world.tis(run_id)["a"]
    assert (ti.state, ti.try_number, ti.exit_code) == ("success", 1, 0)
    assert len(world.engine.started) == 1
    assert world.log_of(ti.id).count("a line 1\n") == 1
