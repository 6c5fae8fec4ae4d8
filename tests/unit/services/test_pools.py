"""Managing pools: create, resize, list with the slots in use, delete."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import PoolError
from orchestrator.models.states import RunState
from orchestrator.runtime.fake import FakeBehavior, FakeRuntime
from orchestrator.services import pools as pool_service
from orchestrator.services.testing import run_dag_test, run_task_test
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness, spec, t


def uses(sessions: sessionmaker[Session]) -> dict[str, tuple[int, int, int, int]]:
    with sessions.begin() as session:
        return {
            p.name: (p.slots, p.running, p.queued, p.open) for p in pool_service.list_pools(session)
        }


def test_default_pool_exists_after_migration(sessions: sessionmaker[Session]) -> None:
    assert uses(sessions) == {"default_pool": (128, 0, 0, 128)}


def test_set_creates_then_resizes_keeping_the_description(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        pool_service.set_pool(session, "db", 2, "the warehouse")
        pool_service.set_pool(session, "db", 5)
    with sessions.begin() as session:
        (db,) = [p for p in pool_service.list_pools(session) if p.name == "db"]
    assert (db.slots, db.description) == (5, "the warehouse")


@pytest.mark.parametrize(
    ("name", "slots", "message"),
    [("bad name", 1, "may contain only letters"), ("ok", -1, "slots must be 0 or more")],
)
def test_bad_pools_are_refused(
    sessions: sessionmaker[Session], name: str, slots: int, message: str
) -> None:
    with pytest.raises(PoolError, match=message), sessions.begin() as session:
        pool_service.set_pool(session, name, slots)


def test_default_pool_and_unknown_pools_cannot_be_deleted(
    sessions: sessionmaker[Session],
) -> None:
    with (
        pytest.raises(PoolError, match="'default_pool' cannot be deleted"),
        sessions.begin() as session,
    ):
        pool_service.delete_pool(session, "default_pool")
    with (
        pytest.raises(PoolError, match=r"no pool 'nope' exists \(pools: default_pool\)"),
        sessions.begin() as session,
    ):
        pool_service.delete_pool(session, "nope")


def test_list_shows_slots_in_use_and_a_pool_in_use_cannot_be_deleted(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with sessions.begin() as session:
        pool_service.set_pool(session, "db", 4)
    h = Harness(settings, sessions, clock, lambda r: FakeBehavior(hang=True))
    h.trigger(spec(t("a", pool="db", pool_slots=3), t("b")))
    h.tick()
    assert uses(sessions)["db"] == (4, 3, 0, 1)
    assert uses(sessions)["default_pool"] == (128, 1, 0, 127)
    with (
        pytest.raises(PoolError, match=r"pool 'db' is in use \(3 running and 0 queued"),
        sessions.begin() as session,
    ):
        pool_service.delete_pool(session, "db")
    for cid in list(h.runtime.started):
        h.runtime.finish(cid, exit_code=0)
    h.tick()
    with sessions.begin() as session:
        pool_service.delete_pool(session, "db")
    assert set(uses(sessions)) == {"default_pool"}


def test_dags_test_refuses_a_missing_or_too_small_pool_up_front(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with sessions.begin() as session:
        pool_service.set_pool(session, "small", 1)
    dag = spec(t("a", pool="gpu"), t("b", pool="small", pool_slots=2), t("c"))
    message = (
        r"DAG 'd': task 'a' uses pool 'gpu', which does not exist: create it with "
        r"`orchestrator pools set gpu SLOTS`; task 'b' needs 2 slots of pool 'small', which "
        r"has only 1"
    )
    with pytest.raises(PoolError, match=message):
        run_dag_test(settings, sessions, FakeRuntime(), clock, dag, when=clock.now(), conf={})
    with sessions() as session:
        assert run_store.list_runs(session, "d") == []  # nothing was recorded


def test_tasks_test_ignores_the_task_pool(settings: Settings, clock: FixedClock) -> None:
    dag = spec(t("a", pool="gpu", pool_slots=4))
    outcome = run_task_test(settings, FakeRuntime(), clock, dag, "a", when=clock.now(), conf={})
    assert outcome.state == RunState.SUCCESS
