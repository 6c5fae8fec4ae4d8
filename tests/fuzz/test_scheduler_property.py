"""The scheduler fed random exit codes and outputs (fake runtime): a pass never raises, every
run finishes, and what is already stored is never lost (finished runs keep their states)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LaunchRequest
from orchestrator.models.mapping import OutputItems
from orchestrator.models.sensors import SensorSpec
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState
from orchestrator.runtime.fake import UNSET, FakeBehavior, FakeRuntime
from orchestrator.services.executors import InlineExecutor
from orchestrator.services.runs import trigger_run
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store.engine import make_engine, make_session_factory
from tests.fuzz.strategies import fuzz, json_like
from tests.support import FixedClock


def task(task_id: str, *upstream: str, **kw: Any) -> TaskSpec:
    return TaskSpec(task_id=task_id, image="img", upstream_task_ids=upstream, **kw)


DAG = DagSpec(
    dag_id="d",
    fileloc="/dags/d.py",
    tasks=(
        task("a", retries=1, retry_delay=0),
        task("choose", "a", branch=True),
        task("left", "choose", expand={"item": OutputItems(task_id="a")}),
        task("right", "choose", skip_exit_codes=(3,)),
        task("wait", "a", sensor=SensorSpec(poke_interval=30, timeout=120, mode="reschedule")),
        task("join", "left", "right", "wait", trigger_rule="all_done"),
    ),
)

behaviors = st.builds(
    FakeBehavior,
    exit_code=st.sampled_from([0, 0, 0, 1, 3, 75, 137, 255]),
    output=st.one_of(st.just(UNSET), json_like, st.sampled_from(["left", "right", ["left"]])),
    raw_output=st.one_of(st.none(), st.binary(max_size=16), st.just(b"[" * 5000), st.just(b"NaN")),
    oom_killed=st.booleans(),
    start_error=st.one_of(st.none(), st.just("no such command")),
)


@contextmanager
def scheduler_on(template: Path, behaviors: list[FakeBehavior]) -> Iterator[Any]:
    folder = Path(tempfile.mkdtemp())
    try:
        home = folder / "home"
        (home / "dags").mkdir(parents=True)
        settings = Settings(home=home, instance_name=f"f{uuid.uuid4().hex[:8]}")
        shutil.copy(template, home / "orchestrator.db")
        engine = make_engine(f"sqlite:///{home / 'orchestrator.db'}")
        sessions = make_session_factory(engine)
        created = iter(range(10**6))

        def script(_request: LaunchRequest) -> FakeBehavior:
            return behaviors[next(created) % len(behaviors)]

        clock = FixedClock()
        scheduler = Scheduler(
            settings=settings,
            sessions=sessions,
            runtime=FakeRuntime(script),
            clock=clock,
            executor=InlineExecutor(),
        )
        scheduler.start()
        try:
            yield scheduler, sessions, clock
        finally:
            scheduler.close()
            engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def snapshot(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Each finished run's state and its task instances' states and tries."""
    with sessions() as session:
        found = {}
        for run in run_store.list_runs(session, "d"):
            if RunState(run.state).is_finished:
                tis = run_store.task_instances(session, run.id)
                found[run.run_id] = (
                    run.state,
                    sorted((ti.task_id, ti.map_index, ti.state, ti.try_number) for ti in tis),
                )
        return found


def run_to_the_end(scheduler: Scheduler, sessions: Any, clock: FixedClock, run_id: str) -> None:
    for _ in range(40):
        scheduler.tick(clock.now())
        with sessions() as session:
            if RunState(run_store.get_run(session, "d", run_id).state).is_finished:
                return
        clock.advance(seconds=31)
    raise AssertionError(f"run {run_id} did not finish within 40 passes")


@fuzz(60)
@given(st.lists(behaviors, min_size=1, max_size=12), st.integers(min_value=1, max_value=3))
def test_random_exits_and_outputs_never_break_a_pass_or_lose_finished_runs(
    _migrated_template: Path, script: list[FakeBehavior], runs: int
) -> None:
    with scheduler_on(_migrated_template, script) as (scheduler, sessions, clock):
        finished: dict[str, Any] = {}
        for _ in range(runs):
            with sessions.begin() as session:
                dag_store.upsert_dag(session, DAG, clock.now())
                run_id = trigger_run(session, DAG, now=clock.now()).run_id
            run_to_the_end(scheduler, sessions, clock, run_id)
            now = snapshot(sessions)
            for earlier, states in finished.items():
                assert now[earlier] == states, f"run {earlier} changed after it finished"
            finished = now
            clock.advance(minutes=5)
