"""Scheduled runs in the scheduler, on the fake runtime: catch-up, the per-pass cap, pausing,
max_active_runs and dagrun_timeout."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LaunchRequest
from orchestrator.models.specs import CronSchedule, DagSpec
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.services.run_planner import NEVER, RunPlanner, set_paused, upcoming_run
from orchestrator.services.runs import trigger_run
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store.tables import DagRow
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness, t

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)


def hang(_request: LaunchRequest) -> FakeBehavior:
    return FakeBehavior(hang=True)


def daily(start: datetime = datetime(2026, 3, 11, tzinfo=UTC), **kw: Any) -> DagSpec:
    kw.setdefault("tasks", (t("a"),))
    return DagSpec(
        dag_id="d",
        fileloc="/dags/d.py",
        schedule=CronSchedule(expression=kw.pop("schedule", "@daily")),
        start_date=start,
        **kw,
    )


class Scheduled(Harness):
    def add(self, dag: DagSpec, *, paused: bool = False) -> None:
        with self.sessions.begin() as session:
            dag_store.upsert_dag(session, dag, self.clock.now(), paused_at_creation=paused)

    def runs(self, dag_id: str = "d") -> dict[str, str]:
        """Run id -> state, oldest logical date first."""
        with self.sessions() as session:
            runs = run_store.list_runs(session, dag_id)
            return {r.run_id: r.state for r in reversed(runs)}

    def finish_running(self) -> None:
        for cid, container in list(self.runtime.containers.items()):
            if container.status == "running":
                self.runtime.finish(cid, exit_code=0)
        self.tick(2)  # the run finishes, then (woken at once) the next queued one starts


@pytest.fixture
def make(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> Callable[..., Scheduled]:
    def factory(
        script: Callable[[LaunchRequest], FakeBehavior] | None = None, **settings_kw: Any
    ) -> Scheduled:
        return Scheduled(settings.model_copy(update=settings_kw), sessions, clock, script)

    return factory


def test_catchup_creates_a_run_per_missed_day_and_they_all_succeed(
    make: Callable[..., Scheduled],
) -> None:
    h = make()
    h.add(daily())
    h.tick(3)
    runs = h.runs()
    assert runs == {
        "scheduled__2026-03-11T00:00:00+00:00": "success",
        "scheduled__2026-03-12T00:00:00+00:00": "success",
        "scheduled__2026-03-13T00:00:00+00:00": "success",
    }
    with h.sessions() as session:
        run = run_store.get_run(session, "d", "scheduled__2026-03-13T00:00:00+00:00")
        assert run.run_type == "scheduled"
        assert (run.data_interval_start, run.data_interval_end) == (
            datetime(2026, 3, 13, tzinfo=UTC),
            datetime(2026, 3, 14, tzinfo=UTC),
        )
    env = h.runtime.created[-1].environment
    assert env["ORCH_DATA_INTERVAL_END"].startswith("2026-03-14T00:00:00")


def test_catchup_false_creates_only_the_latest_interval(make: Callable[..., Scheduled]) -> None:
    h = make()
    h.add(daily(catchup=False))
    h.tick()
    assert list(h.runs()) == ["scheduled__2026-03-13T00:00:00+00:00"]


def test_an_idle_pass_plans_nothing_until_the_next_interval_ends(
    make: Callable[..., Scheduled],
) -> None:
    h = make()
    h.add(daily())
    h.tick(2)
    with h.sessions() as session:
        row = session.get(DagRow, "d")
        assert row is not None
        assert row.next_dagrun_create_after == datetime(2026, 3, 15, tzinfo=UTC)
        assert dag_store.dags_to_plan(session, h.clock.now()) == []
    h.clock.advance(hours=11, minutes=59)
    h.tick()
    assert len(h.runs()) == 3
    h.clock.advance(minutes=1)  # midnight: the 14th has ended
    h.tick()
    assert list(h.runs())[-1] == "scheduled__2026-03-14T00:00:00+00:00"


def test_a_long_catchup_is_spread_over_passes(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    dag = daily(schedule="@hourly", start=NOW - timedelta(days=1))
    planner = RunPlanner(limit_per_dag=10)
    counts = []
    with sessions.begin() as session:
        dag_store.upsert_dag(session, dag, NOW)
    for _ in range(4):
        with sessions.begin() as session:
            report = planner.plan(session, NOW, lambda _dag_id: dag)
            counts.append(len(report.created))
            assert report.next_at == (
                NOW if len(report.created) == 10 else NOW + timedelta(hours=1)
            )
    assert counts == [10, 10, 4, 0]


def test_unscheduled_dags_are_never_planned_again(make: Callable[..., Scheduled]) -> None:
    h = make()
    h.add(DagSpec(dag_id="m", fileloc="/dags/m.py", tasks=(t("a"),)))
    h.tick()
    with h.sessions() as session:
        assert session.get(DagRow, "m").next_dagrun_create_after == NEVER  # type: ignore[union-attr]
    assert h.runs("m") == {}


def test_max_active_runs_starts_the_oldest_first_and_holds_the_rest(
    make: Callable[..., Scheduled],
) -> None:
    h = make(hang)
    h.add(daily(max_active_runs=1))
    h.tick()
    assert list(h.runs().values()) == ["running", "queued", "queued"]
    # a manual run waits its turn too
    with h.sessions.begin() as session:
        manual = trigger_run(session, daily(max_active_runs=1), now=h.clock.now()).run_id
    h.tick()
    assert h.runs()[manual] == "queued"
    h.finish_running()
    assert h.scheduler._wake.is_set()
    assert list(h.runs().values()) == ["success", "running", "queued", "queued"]
    for _ in range(3):
        h.finish_running()
    assert set(h.runs().values()) == {"success"}


def test_a_paused_dag_gets_no_runs_and_its_queued_runs_wait(
    make: Callable[..., Scheduled],
) -> None:
    h = make()
    h.add(daily(), paused=True)  # as with ORCH_DAGS_ARE_PAUSED_AT_CREATION
    with h.sessions.begin() as session:
        manual = trigger_run(session, daily(), now=h.clock.now()).run_id
    h.tick(2)
    assert h.runs() == {manual: "queued"}
    with h.sessions.begin() as session:
        set_paused(session, "d", False)
    h.tick(3)
    runs = h.runs()
    assert len(runs) == 4 and set(runs.values()) == {"success"}


def test_unpausing_with_catchup_false_creates_only_the_latest(
    make: Callable[..., Scheduled],
) -> None:
    h = make()
    h.add(daily(catchup=False))
    h.tick()
    with h.sessions.begin() as session:
        set_paused(session, "d", True)
    h.clock.advance(days=5)
    h.tick()
    assert len(h.runs()) == 1
    with h.sessions.begin() as session:
        set_paused(session, "d", False)
    h.tick()
    assert list(h.runs()) == [
        "scheduled__2026-03-13T00:00:00+00:00",
        "scheduled__2026-03-18T00:00:00+00:00",
    ]


def test_dagrun_timeout_fails_the_run_and_stops_its_containers(
    make: Callable[..., Scheduled],
) -> None:
    h = make(hang)
    dag = daily(
        catchup=False,
        dagrun_timeout=timedelta(minutes=10),
        tasks=(t("a"), t("b", "a"), t("side")),
    )
    h.add(dag)
    h.tick()
    run_id = "scheduled__2026-03-13T00:00:00+00:00"
    assert h.runs() == {run_id: "running"}
    assert h.scheduler._seconds_until_next_event(h.clock.now()) <= 1.0
    h.clock.advance(minutes=10)
    h.tick(2)
    assert h.runs() == {run_id: "failed"}
    assert len(h.runtime.stopped) == 2  # a and side were running
    tis = h.tis(run_id)
    assert {k: v.state for k, v in tis.items()} == {
        "a": "failed",
        "b": "skipped",
        "side": "failed",
    }
    assert "dagrun_timeout of 600s passed" in tis["a"].state_detail
    with h.sessions() as session:
        run = run_store.get_run(session, "d", run_id)
        assert run.state_detail == "dagrun_timeout of 600s passed: run failed"


def test_upcoming_run_shows_the_next_interval(sessions: sessionmaker[Session]) -> None:
    dag = daily()
    with sessions.begin() as session:
        dag_store.upsert_dag(session, dag, NOW)
        assert upcoming_run(session, dag, NOW) == (
            datetime(2026, 3, 11, tzinfo=UTC),
            datetime(2026, 3, 12, tzinfo=UTC),
        )
        RunPlanner(100).plan(session, NOW, lambda _d: dag)
        assert upcoming_run(session, dag, NOW) == (
            datetime(2026, 3, 14, tzinfo=UTC),
            datetime(2026, 3, 15, tzinfo=UTC),
        )
