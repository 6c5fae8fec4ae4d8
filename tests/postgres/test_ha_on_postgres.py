"""Several schedulers on one PostgreSQL store at the same moment (threads): claims never
overlap, a DAG's runs are created once, pools hold across schedulers, and a scheduler in the
middle of a pass is never declared dead. The one-thread cluster tests of the fake-runtime
tier are collected again here."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.specs import CronSchedule, DagSpec, TaskSpec
from orchestrator.runtime.fake import FakeBehavior, FakeRuntime
from orchestrator.scheduling.limits import Occupancy
from orchestrator.services.claims import Identity, RunClaims
from orchestrator.services.executors import InlineExecutor
from orchestrator.services.runs import trigger_run
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import pools as pool_store
from orchestrator.store import schedulers as scheduler_store
from orchestrator.store.tables import DagRunRow, SchedulerRow, TaskInstanceRow
from tests.support import FixedClock
from tests.unit.services.test_ha_schedulers import *  # noqa: F403 - re-collected here

pytestmark = [pytest.mark.postgres, pytest.mark.docker]


def identity(name: str) -> Identity:
    return Identity(id=name, host=name, pid=1, machine=f"{name}/boot")


def together(*work: Callable[[], object]) -> None:
    """Run each piece of work in its own thread, all at once; raise the first failure."""
    errors: list[BaseException] = []

    def run(item: Callable[[], object]) -> None:
        try:
            item()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(item,)) for item in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a scheduler is stuck (waiting for a lock?)"
    if errors:
        raise errors[0]


class Racing(RunClaims):
    """Claims whose slot counts wait for the other scheduler's, so both schedulers choose
    launches at the same moment unless something serializes them."""

    barrier: threading.Barrier | None = None

    def occupancy(self, session: Session) -> Occupancy:
        held = super().occupancy(session)
        if self.barrier is not None:
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait(timeout=2)
        return held


@pytest.fixture
def members(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> Iterator[Callable[..., list[Scheduler]]]:
    made: list[Scheduler] = []
    engine = FakeRuntime(lambda request: FakeBehavior(hang=request.image == "hang"))

    def factory(*names: str, claims_class: type[RunClaims] = RunClaims) -> list[Scheduler]:
        for name in names:
            claims = claims_class(settings, sessions, identity=identity(name))
            claims.register(clock.now())
            scheduler = Scheduler(
                settings=settings,
                sessions=sessions,
                runtime=engine,
                clock=clock,
                executor=InlineExecutor(),
                claims=claims,
            )
            scheduler.start()
            made.append(scheduler)
        return made

    yield factory
    for scheduler in made:
        scheduler.close()
    engine.close()


def add(sessions: sessionmaker[Session], spec: DagSpec, now: datetime) -> None:
    with sessions.begin() as session:
        dag_store.upsert_dag(session, spec, now)


def test_schedulers_claiming_at_the_same_moment_never_claim_the_same_run(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    spec = DagSpec(dag_id="d", fileloc="/dags/d.py", tasks=[TaskSpec(task_id="a", image="i")])
    with sessions.begin() as session:
        dag_store.upsert_dag(session, spec, clock.now())
        for i in range(30):
            trigger_run(session, spec, now=clock.now(), run_id=f"r{i}")
    everyone = [RunClaims(settings, sessions, identity=identity(n)) for n in ("a", "b", "c")]
    for claims in everyone:
        claims.register(clock.now())
    barrier = threading.Barrier(len(everyone))

    def claim_step(claims: RunClaims) -> None:
        done: list[Callable[[], object]] = []
        with sessions.begin() as session:
            barrier.wait(timeout=10)
            claims.begin_pass(session, clock.now(), done)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)  # all claimed, none committed yet
        for action in done:
            action()

    together(*(lambda c=claims: claim_step(c) for claims in everyone))

    owned = [claims.owned for claims in everyone]
    assert [len(runs) for runs in owned] == [10, 10, 10]
    assert len(owned[0] | owned[1] | owned[2]) == 30
    with sessions() as session:
        owners = session.execute(select(DagRunRow.id, DagRunRow.claimed_by)).all()
    for run_pk, owner in owners:
        assert [claims.id for claims in everyone if run_pk in claims.owned] == [owner]


def test_a_dags_scheduled_runs_are_created_once_by_two_schedulers_planning_at_once(
    settings: Settings,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    members: Callable[..., list[Scheduler]],
) -> None:
    settings.max_runs_created_per_pass = 4
    start = clock.now() - timedelta(days=30)
    spec = DagSpec(
        dag_id="daily",
        fileloc="/dags/daily.py",
        schedule=CronSchedule(expression="@daily"),
        start_date=datetime(start.year, start.month, start.day, tzinfo=UTC),
        tasks=[TaskSpec(task_id="a", image="i")],
    )
    add(sessions, spec, clock.now())
    a, b = members("a", "b")
    for _ in range(12):
        clock.advance(seconds=1)
        together(lambda: a.tick(clock.now()), lambda: b.tick(clock.now()))
    with sessions() as session:
        dates = list(session.scalars(select(DagRunRow.logical_date)))
        claimed = set(session.scalars(select(DagRunRow.claimed_by)))
    assert len(dates) == len(set(dates)) == 30
    assert claimed == {"a", "b"}


def test_a_dag_another_scheduler_is_planning_is_passed_over_not_waited_for(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    members: Callable[..., list[Scheduler]],
) -> None:
    spec = DagSpec(
        dag_id="daily",
        fileloc="/dags/daily.py",
        schedule=CronSchedule(expression="@daily"),
        start_date=clock.now().replace(hour=0) - timedelta(days=3),
        tasks=[TaskSpec(task_id="a", image="i")],
    )
    add(sessions, spec, clock.now())
    (a,) = members("a")
    with sessions.begin() as other:  # another scheduler's pass holds the DAG's row
        assert dag_store.dags_to_plan(other, clock.now())
        together(lambda: a.tick(clock.now()))
        with sessions() as session:
            assert session.scalar(select(func.count(DagRunRow.id))) == 0
    clock.advance(seconds=1)
    a.tick(clock.now())
    with sessions() as session:
        assert session.scalar(select(func.count(DagRunRow.id))) == 3


def test_a_pool_is_never_oversubscribed_by_two_schedulers_choosing_at_once(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    members: Callable[..., list[Scheduler]],
) -> None:
    with sessions.begin() as session:
        pool_store.upsert_pool(session, "p", 3, None)
    a, b = members("a", "b", claims_class=Racing)
    tasks = [TaskSpec(task_id=f"t{i}", image="hang", pool="p") for i in range(3)]
    with sessions.begin() as session:
        for dag_id in ("d1", "d2"):  # two DAGs: their runs start at the same moment
            spec = DagSpec(dag_id=dag_id, fileloc=f"/dags/{dag_id}.py", tasks=tasks)
            dag_store.upsert_dag(session, spec, clock.now())
            trigger_run(session, spec, now=clock.now(), run_id="r")
    clock.advance(seconds=1)
    a.tick(clock.now())  # each claims one run; they start at the next pass
    b.tick(clock.now())

    def in_pool() -> int:
        with sessions() as session:
            query = select(func.sum(TaskInstanceRow.pool_slots)).where(
                TaskInstanceRow.pool == "p", TaskInstanceRow.state.in_(["queued", "running"])
            )
            return int(session.scalar(query) or 0)

    Racing.barrier = threading.Barrier(2)
    together(lambda: a.tick(clock.now()), lambda: b.tick(clock.now()))
    Racing.barrier = None
    assert in_pool() == 3
    engine = a._runtime
    assert isinstance(engine, FakeRuntime)
    finished = 0
    while finished < 6:
        running = [c for c, box in engine.containers.items() if box.status == "running"]
        assert running, "nothing runs although tasks are left"
        engine.finish(running[0], exit_code=0)
        finished += 1
        clock.advance(seconds=1)
        together(lambda: a.tick(clock.now()), lambda: b.tick(clock.now()))
        assert in_pool() <= 3
    with sessions() as session:
        states = set(session.scalars(select(TaskInstanceRow.state)))
    assert states == {"success"}


def test_a_scheduler_in_the_middle_of_a_pass_is_not_declared_dead(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    a = RunClaims(settings, sessions, identity=identity("a"))
    b = RunClaims(settings, sessions, identity=identity("b"))
    a.register(clock.now())
    b.register(clock.now())
    clock.advance(seconds=settings.scheduler_health_timeout + 10)  # `a` stalled in a pass
    done: list[Callable[[], object]] = []
    with sessions.begin() as stalled:
        assert scheduler_store.hold(stalled, "a")
        with sessions.begin() as session:
            b.begin_pass(session, clock.now(), done)
        with sessions() as session:
            assert session.get(SchedulerRow, "a") is not None
    clock.advance(seconds=1)
    with sessions.begin() as session:
        b.begin_pass(session, clock.now(), done)
    with sessions() as session:
        assert session.get(SchedulerRow, "a") is None
