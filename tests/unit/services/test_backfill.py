"""Backfill on the fake runtime: runs per interval, skipping existing ones, --rerun, paused
DAGs, max_active_runs, and the errors a user can make."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import InvalidConf, UserError
from orchestrator.models.specs import DagSpec, ParamSpec
from orchestrator.models.states import RunState
from orchestrator.services.backfill import backfill, parse_dag_date, wait_for_runs
from orchestrator.services.run_planner import set_paused
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store
from tests.support import FixedClock
from tests.unit.services.test_scheduled_runs import Scheduled, daily, hang
from tests.unit.services.test_scheduler import t


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def make(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> Callable[..., Scheduled]:
    def factory(script: Any = None) -> Scheduled:
        return Scheduled(settings, sessions, clock, script)

    return factory


def fill(h: Scheduled, spec: DagSpec, start: datetime, end: datetime, **kw: Any) -> Any:
    with h.sessions.begin() as session:
        return backfill(session, spec, start=start, end=end, now=h.clock.now(), **kw)


def test_backfill_queues_one_run_per_interval_and_skips_existing_ones(
    make: Callable[..., Scheduled],
) -> None:
    h = make()
    spec = daily(start=utc(2026, 1, 1), catchup=False)
    h.add(spec)
    with h.sessions.begin() as session:
        set_paused(session, "d", True)  # backfill works on paused DAGs
    report = fill(h, spec, utc(2026, 2, 1), utc(2026, 2, 3), conf={"x": 1})
    assert report.created == [f"backfill__2026-02-0{d}T00:00:00+00:00" for d in (1, 2, 3)]
    h.tick(3)
    runs = h.runs()
    assert runs == {run_id: "success" for run_id in report.created}  # paused: nothing scheduled
    with h.sessions() as session:
        run = run_store.get_run(session, "d", report.created[0])
        assert (run.run_type, run.conf) == ("backfill", {"x": 1})
        assert run.data_interval_end == utc(2026, 2, 2)

    again = fill(h, spec, utc(2026, 2, 2), utc(2026, 2, 4))
    assert again.skipped == report.created[1:]
    assert again.created == ["backfill__2026-02-04T00:00:00+00:00"]


def test_rerun_clears_the_existing_run(make: Callable[..., Scheduled]) -> None:
    h = make()
    spec = daily(start=utc(2026, 1, 1), catchup=False)
    h.add(spec)
    first = fill(h, spec, utc(2026, 2, 1), utc(2026, 2, 1))
    h.tick(2)
    assert h.runs()[first.created[0]] == "success"
    report = fill(h, spec, utc(2026, 2, 1), utc(2026, 2, 1), rerun=True)
    assert (report.created, report.rerun) == ([], first.created)
    assert h.runs()[first.created[0]] == "queued"
    h.tick(2)
    assert h.tis(first.created[0])["a"].try_number == 2
    assert h.runs()[first.created[0]] == "success"


def test_backfill_runs_respect_max_active_runs(make: Callable[..., Scheduled]) -> None:
    h = make(hang)
    spec = daily(start=utc(2026, 1, 1), catchup=False, max_active_runs=2)
    h.add(spec)
    h.tick()  # the scheduled run of the latest day
    fill(h, spec, utc(2026, 2, 1), utc(2026, 2, 3))
    h.tick()
    states = h.runs()
    assert list(states.values()).count("running") == 2
    # oldest logical date first: the backfill's first day overtook the later ones
    assert states["backfill__2026-02-01T00:00:00+00:00"] == "running"


def test_backfill_errors_name_the_problem(make: Callable[..., Scheduled]) -> None:
    h = make()
    manual = DagSpec(dag_id="m", tasks=(t("a"),))
    with pytest.raises(UserError, match=r"has no schedule.*dags trigger m"):
        fill(h, manual, utc(2026, 2, 1), utc(2026, 2, 3))
    spec = daily(params={"n": ParamSpec(default=1, type="integer")})
    with pytest.raises(UserError, match=r"--end .* is before --start"):
        fill(h, spec, utc(2026, 2, 3), utc(2026, 2, 1))
    with pytest.raises(InvalidConf):
        fill(h, spec, utc(2026, 2, 1), utc(2026, 2, 3), conf={"n": "many"})
    with pytest.raises(UserError, match="more than 10000 runs"):
        fill(h, daily(schedule="* * * * *"), utc(2026, 1, 1), utc(2026, 12, 1))


def test_dates_are_read_in_the_dag_timezone() -> None:
    spec = daily(timezone="Europe/Amsterdam")
    assert parse_dag_date("2026-02-01", spec, "--start") == utc(2026, 1, 31, 23)
    assert parse_dag_date("2026-07-01T00:00:00+00:00", spec, "--start") == utc(2026, 7, 1)
    end = parse_dag_date("2026-02-01", spec, "--end", end_of_day=True)
    assert end == utc(2026, 2, 1, 22, 59, 59, 999999)
    assert parse_dag_date("2026-02-01T06:00", spec, "--end", end_of_day=True) == utc(2026, 2, 1, 5)
    with pytest.raises(UserError, match="--start 'soon' is not a date"):
        parse_dag_date("soon", spec, "--start")


def test_wait_for_runs_reports_each_finish_and_times_out(make: Callable[..., Scheduled]) -> None:
    h = make(hang)
    spec = daily(start=utc(2026, 1, 1), catchup=False)
    h.add(spec)
    report = fill(h, spec, utc(2026, 2, 1), utc(2026, 2, 1))
    h.tick()
    clock = iter(range(100))
    got = wait_for_runs(
        h.sessions,
        "d",
        report.created,
        timeout=3,
        sleep=lambda _s: None,
        monotonic=lambda: float(next(clock)),
    )
    assert got is None
    h.finish_running()
    seen: list[tuple[str, RunState]] = []
    got = wait_for_runs(
        h.sessions, "d", report.created, timeout=None, on_finished=lambda r, s: seen.append((r, s))
    )
    assert got == {report.created[0]: RunState.SUCCESS} and len(seen) == 1
