"""Several schedulers sharing one store (high availability), on the fake runtime: each executes
the runs it claimed, they split the runs fairly, a dead one's runs are taken over with its
containers adopted, and a scheduler declared dead stops. The schedulers here take turns in one
thread; `tests/postgres` runs them at once on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import SchedulerConflict, SchedulerReplaced
from orchestrator.models.launch import LaunchRequest
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState
from orchestrator.runtime.base import ContainerRuntime
from orchestrator.runtime.fake import FakeBehavior, FakeRuntime
from orchestrator.services.claims import Identity, RunClaims, single_scheduler_lock
from orchestrator.services.clearing import clear
from orchestrator.services.clock import SystemClock
from orchestrator.services.executors import InlineExecutor
from orchestrator.services.runs import trigger_run
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.store.tables import DagRunRow, SchedulerRow
from tests.support import FixedClock
from tests.unit.services.test_scheduler_reconcile import CrashingRuntime

TIMEOUT = 30.0


def dag(*task_ids: str, **kw: Any) -> DagSpec:
    tasks = [TaskSpec(task_id=task_id, image="img") for task_id in task_ids]
    return DagSpec(dag_id=kw.pop("dag_id", "d"), fileloc="/dags/d.py", tasks=tasks, **kw)


def lines(request: LaunchRequest) -> FakeBehavior:
    task = request.labels["orch.task_id"]
    return FakeBehavior(logs=f"{task} says 1\n{task} says 2\n".encode())


def hanging(request: LaunchRequest) -> FakeBehavior:
    return FakeBehavior(hang=True, logs=f"{request.labels['orch.task_id']} began\n".encode())


class Member:
    """One scheduler of the cluster: its claims and its loop."""

    def __init__(self, claims: RunClaims, scheduler: Scheduler) -> None:
        self.claims, self.scheduler = claims, scheduler

    @property
    def id(self) -> str:
        return self.claims.id


class Cluster:
    """Schedulers over one store and one engine, each on its own 'machine', sharing a clock."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        clock: FixedClock,
        script: Callable[[LaunchRequest], FakeBehavior],
    ) -> None:
        self.settings, self.sessions, self.clock = settings, sessions, clock
        self.engine = FakeRuntime(script)
        self.members: list[Member] = []

    def member(self, name: str, runtime: ContainerRuntime | None = None) -> Member:
        identity = Identity(id=name, host=name, pid=1000 + len(self.members), machine=name)
        claims = RunClaims(self.settings, self.sessions, identity=identity)
        claims.register(self.clock.now())
        scheduler = Scheduler(
            settings=self.settings,
            sessions=self.sessions,
            runtime=runtime or self.engine,
            clock=self.clock,
            executor=InlineExecutor(),
            claims=claims,
        )
        scheduler.start()
        member = Member(claims, scheduler)
        self.members.append(member)
        return member

    def trigger(self, spec: DagSpec, run_id: str) -> str:
        with self.sessions.begin() as session:
            dag_store.upsert_dag(session, spec, self.clock.now())
            return trigger_run(session, spec, now=self.clock.now(), run_id=run_id).run_id

    def rounds(self, count: int, *members: Member, seconds: float = 1.0) -> None:
        """`count` rounds in which time moves on and each member ticks."""
        for _ in range(count):
            self.clock.advance(seconds=seconds)
            for member in members:
                member.scheduler.tick(self.clock.now())

    def claimed_by(self) -> dict[str, str | None]:
        with self.sessions() as session:
            return dict(session.execute(select(DagRunRow.run_id, DagRunRow.claimed_by)).all())

    def run_states(self) -> dict[str, str]:
        with self.sessions() as session:
            return dict(session.execute(select(DagRunRow.run_id, DagRunRow.state)).all())

    def tis(self, run_id: str, dag_id: str = "d") -> dict[str, Any]:
        with self.sessions() as session:
            run = run_store.get_run(session, dag_id, run_id)
            return {ti.task_id: ti for ti in run_store.task_instances(session, run.id)}

    def log_of(self, ti_id: int) -> str:
        with self.sessions() as session:
            attempt = ti_store.get_attempt(session, ti_id, 1)
            assert attempt is not None
            return Path(attempt.log_path).read_text()


@pytest.fixture
def make_cluster(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def factory(script: Callable[[LaunchRequest], FakeBehavior] = lines) -> Cluster:
        cluster = Cluster(settings, sessions, clock, script)
        made.append(cluster)
        return cluster

    yield factory
    for cluster in made:
        for member in cluster.members:
            member.scheduler.close()
        cluster.engine.close()


def test_two_schedulers_split_the_runs_and_every_task_runs_once(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster()
    a, b = cluster.member("a"), cluster.member("b")
    spec = dag("x", "y", "z")
    runs = [cluster.trigger(spec, f"r{i}") for i in range(6)]
    cluster.rounds(1, a, b)
    assert sorted(cluster.claimed_by().values()) == ["a", "a", "a", "b", "b", "b"]
    cluster.rounds(3, a, b)

    assert cluster.run_states() == {run: "success" for run in runs}
    created = [(r.labels["orch.run_id"], r.labels["orch.task_id"]) for r in cluster.engine.created]
    assert sorted(created) == sorted((run, task) for run in runs for task in "xyz")
    # each run's containers were launched by its owner alone: logs written once
    for run in runs:
        for ti in cluster.tis(run).values():
            assert (ti.state, ti.try_number, ti.exit_code) == ("success", 1, 0)
            text = cluster.log_of(ti.id)
            assert text == f"{ti.task_id} says 1\n{ti.task_id} says 2\n"


def test_a_dead_schedulers_runs_are_taken_over_and_its_containers_adopted(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(hanging)
    doomed = CrashingRuntime(cluster.engine, None)
    a, b = cluster.member("a", doomed), cluster.member("b")
    runs = [cluster.trigger(dag("x"), f"r{i}") for i in range(2)]
    cluster.rounds(2, a, b)
    owners = cluster.claimed_by()
    assert sorted(owners.values()) == ["a", "b"]
    (a_run,) = [run for run, owner in owners.items() if owner == "a"]
    assert cluster.tis(a_run)["x"].state == "running"
    a_container = cluster.tis(a_run)["x"].container_id
    doomed.dead = True  # `a` is killed: it never ticks again, its log followers go quiet
    cluster.engine.emit(a_container, b"while nobody watched\n")

    cluster.rounds(3, b, seconds=TIMEOUT / 3)  # not yet dead: its heartbeat is 30 s old
    assert cluster.claimed_by()[a_run] == "a"
    cluster.rounds(1, b, seconds=2)
    assert cluster.claimed_by()[a_run] == "b"
    with cluster.sessions() as session:
        assert [row.id for row in session.scalars(select(SchedulerRow))] == ["b"]

    deadline = time.monotonic() + 5  # the adopted container's log is followed by `b` now
    while "while nobody watched" not in cluster.log_of(cluster.tis(a_run)["x"].id):
        assert time.monotonic() < deadline, "the log of the adopted container was not followed"
        time.sleep(0.01)
    cluster.engine.emit(a_container, b"after the takeover\n")
    for container_id in list(cluster.engine.containers):
        cluster.engine.finish(container_id, exit_code=0)
    cluster.rounds(3, b)

    assert cluster.run_states() == {run: "success" for run in runs}
    ti = cluster.tis(a_run)["x"]
    assert (ti.state, ti.try_number, ti.exit_code) == ("success", 1, 0)
    assert cluster.log_of(ti.id) == "x began\nwhile nobody watched\nafter the takeover\n"
    assert len(cluster.engine.created) == 2 and len(cluster.engine.started) == 2

    # `a` comes back from its stall: it finds itself replaced and stops, touching nothing
    with pytest.raises(SchedulerReplaced, match="declared dead by another scheduler"):
        a.scheduler.tick(cluster.clock.now())
    assert cluster.claimed_by()[a_run] == "b"


def test_a_scheduler_that_joins_gets_queued_runs_given_back_and_limits_hold_across_both(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(hanging)
    a = cluster.member("a")
    spec = dag("x", max_active_runs=1)
    runs = [cluster.trigger(spec, f"r{i}") for i in range(4)]
    cluster.rounds(2, a)
    assert set(cluster.claimed_by().values()) == {"a"}
    assert sorted(cluster.run_states().values()) == ["queued", "queued", "queued", "running"]

    b = cluster.member("b")
    cluster.rounds(2, a, b)
    owners = cluster.claimed_by()
    assert sorted(owners.values()) == ["a", "a", "b", "b"]  # two queued runs went to `b`
    while any(state != "success" for state in cluster.run_states().values()):
        # one run at a time, whoever owns it: max_active_runs counts both schedulers' runs
        assert list(cluster.run_states().values()).count("running") == 1
        (container_id,) = cluster.engine.containers
        cluster.engine.finish(container_id, exit_code=0)
        cluster.rounds(2, a, b)
    assert {owner for owner in cluster.claimed_by().values()} == {"a", "b"}
    assert len(cluster.engine.created) == len(runs)


def test_a_task_cleared_while_running_is_stopped_by_its_runs_scheduler_alone(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(hanging)
    a, b = cluster.member("a"), cluster.member("b")
    runs = [cluster.trigger(dag("x"), f"r{i}") for i in range(2)]
    cluster.rounds(2, a, b)
    owners = cluster.claimed_by()
    first = cluster.tis("r0")["x"]
    assert first.state == "running"
    with cluster.sessions.begin() as session:
        clear(session, "d", "r0", ["x"], now=cluster.clock.now())
    cluster.rounds(2, b, a)

    stops = [container for container, _ in cluster.engine.stopped]
    assert stops == [first.container_id]  # once, by the owner; the other run untouched
    again = cluster.tis("r0")["x"]
    assert (again.state, again.try_number) == ("running", 2)
    for container_id in list(cluster.engine.containers):
        cluster.engine.finish(container_id, exit_code=0)
    cluster.rounds(2, a, b)
    assert cluster.run_states() == {run: "success" for run in runs}
    assert cluster.claimed_by() == owners
    retried = [r.labels["orch.try_number"] for r in cluster.engine.created]
    assert sorted(retried) == ["1", "1", "2"]


def test_parallelism_counts_each_schedulers_own_task_instances(
    make_cluster: Callable[..., Cluster], settings: Settings
) -> None:
    settings.parallelism = 2
    cluster = make_cluster(hanging)
    a, b = cluster.member("a"), cluster.member("b")
    for i in range(2):
        cluster.trigger(dag("w", "x", "y", "z"), f"r{i}")
    cluster.rounds(3, a, b)
    by_owner: dict[str, int] = {}
    owners = cluster.claimed_by()
    for request in cluster.engine.created:
        owner = owners[request.labels["orch.run_id"]]
        assert owner is not None
        by_owner[owner] = by_owner.get(owner, 0) + 1
    assert by_owner == {"a": 2, "b": 2}


def test_test_runs_belong_to_the_command_that_made_them(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster()
    a = cluster.member("a")
    spec = dag("x")
    with cluster.sessions.begin() as session:
        dag_store.upsert_dag(session, spec, cluster.clock.now())
        trigger_run(session, spec, now=cluster.clock.now(), run_id="t", run_type="test")
    cluster.trigger(spec, "m")
    cluster.rounds(3, a)
    assert cluster.claimed_by() == {"t": None, "m": "a"}
    assert cluster.run_states() == {"t": "queued", "m": "success"}


def test_a_scheduler_on_this_machine_whose_process_is_gone_is_dead_at_once(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    gone: set[int] = set()
    claims = {
        name: RunClaims(
            settings,
            sessions,
            identity=Identity(id=name, host="h", pid=pid, machine="h/boot"),
            gone=gone.__contains__,
        )
        for name, pid in (("a", 11), ("b", 12))
    }
    for member in claims.values():
        member.register(clock.now())
    spec = dag("x")
    with sessions.begin() as session:
        dag_store.upsert_dag(session, spec, clock.now())
        run = trigger_run(session, spec, now=clock.now(), run_id="r")
        run.state = RunState.RUNNING.value

    def step(name: str) -> int:
        clock.advance(seconds=1)
        done: list[Callable[[], object]] = []
        with sessions.begin() as session:
            taken = claims[name].begin_pass(session, clock.now(), done).taken_over
        for action in done:
            action()
        return taken

    step("a")
    assert claims["a"].owned and not claims["b"].owned
    assert step("b") == 0  # `a` lives: its heartbeat is a second old
    gone.add(11)  # `a`'s process ended on this machine
    assert step("b") == 1
    assert claims["b"].owned and run.id in claims["b"].owned


def test_an_idle_scheduler_heartbeats_every_second_whatever_its_poll_interval(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    settings.trigger_poll_interval = 600.0  # nothing else wakes it: no runs, no events
    claims = RunClaims(settings, sessions, identity=Identity("a", "h", 1, "h/boot"))
    claims.register(SystemClock().now())
    scheduler = Scheduler(
        settings=settings, sessions=sessions, runtime=FakeRuntime(), claims=claims
    )
    stop = threading.Event()
    loop = threading.Thread(target=scheduler.run_forever, args=(stop,))
    loop.start()
    try:
        seen: set[datetime] = set()
        deadline = time.monotonic() + 20
        while len(seen) < 3:  # registration, first pass, and one more while idle
            assert time.monotonic() < deadline, f"heartbeats seen: {sorted(seen)}"
            with sessions() as session:
                row = session.get(SchedulerRow, "a")
                assert row is not None
                seen.add(row.heartbeat_at)
            time.sleep(0.05)
    finally:
        stop.set()
        scheduler.wake()
        loop.join(timeout=10)
        scheduler.close()


HOLD_THE_LOCK = """
import sys, time
from orchestrator.services.clearing import clear
from orchestrator.services.claims import single_scheduler_lock
from orchestrator.settings import Settings

with single_scheduler_lock(Settings(home=sys.argv[1])):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_second_scheduler_on_sqlite_is_refused_until_the_first_process_is_gone(
    settings: Settings,
) -> None:
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(settings.home)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None and first.stdout.readline() == "holding\n"
        with (
            pytest.raises(SchedulerConflict, match=rf"another scheduler \(pid {first.pid}\)"),
            single_scheduler_lock(settings),
        ):
            pass
    finally:
        first.kill()  # kill -9: the kernel drops its lock
        first.wait()
    with single_scheduler_lock(settings):
        assert (settings.home / "orchestrator.db.scheduler-lock").read_text().strip() == str(
            os.getpid()
        )
