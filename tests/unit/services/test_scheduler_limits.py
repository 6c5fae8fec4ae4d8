"""Limits, pools and priority in the scheduler, on the fake runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LABEL_DAG, LABEL_TASK, LaunchRequest
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.settings import Settings
from orchestrator.store import pools as pool_store
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness, spec, t


def hang(_request: LaunchRequest) -> FakeBehavior:
    return FakeBehavior(hang=True)


@pytest.fixture
def make(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> Callable[..., Harness]:
    def factory(parallelism: int = 32, pools: dict[str, int] | None = None) -> Harness:
        h = Harness(settings.model_copy(update={"parallelism": parallelism}), sessions, clock, hang)
        with sessions.begin() as session:
            for name, slots in (pools or {}).items():
                pool_store.upsert_pool(session, name, slots, None)
        return h

    return factory


def running(h: Harness) -> list[str]:
    """`dag.task` of every container running now, in start order."""
    return [
        f"{c.request.labels[LABEL_DAG]}.{c.request.labels[LABEL_TASK]}"
        for c in h.runtime.containers.values()
        if c.status == "running"
    ]


def finish_all(h: Harness, check: Callable[[], None] | None = None, rounds: int = 50) -> None:
    """Let every running container exit, one pass at a time, until nothing runs."""
    for _ in range(rounds):
        h.tick()
        if check is not None:
            check()
        live = [cid for cid, c in h.runtime.containers.items() if c.status == "running"]
        if not live:
            return
        for cid in live:
            h.runtime.finish(cid, exit_code=0)
    raise AssertionError("containers still running")


def test_a_pool_of_two_never_runs_more_than_two(make: Callable[..., Harness]) -> None:
    h = make(pools={"two": 2})
    run_id = h.trigger(spec(*(t(f"p{i}", pool="two") for i in range(5)), t("free")))
    h.tick()
    assert sorted(running(h)) == ["d.free", "d.p0", "d.p1"]  # the default pool is separate
    peak = 0

    def check() -> None:
        nonlocal peak
        in_pool = [name for name in running(h) if name.startswith("d.p")]
        assert len(in_pool) <= 2
        peak = max(peak, len(in_pool))

    finish_all(h, check)
    assert peak == 2
    assert h.run_state(run_id) == RunState.SUCCESS
    tis = h.tis(run_id)
    assert {ti.pool for name, ti in tis.items() if name.startswith("p")} == {"two"}
    assert tis["free"].pool == "default_pool"


def test_multi_slot_tasks_take_their_slots(make: Callable[..., Harness]) -> None:
    h = make(pools={"db": 3})
    h.trigger(spec(t("big", pool="db", pool_slots=2), t("small", pool="db"), t("other", pool="db")))
    h.tick()
    assert sorted(running(h)) == ["d.big", "d.other"]  # 2 + 1 slots; 'small' waits
    with h.sessions() as session:
        groups = pool_store.active_groups(session)
    assert sum(g.slots for g in groups if g.pool == "db") == 3


def test_max_active_tasks_counts_every_run_of_the_dag(make: Callable[..., Harness]) -> None:
    h = make()
    dag = DagSpec(
        dag_id="d", fileloc="/dags/d.py", max_active_tasks=3, tasks=(t("a"), t("b"), t("c"))
    )
    first = h.trigger(dag)
    h.clock.advance(minutes=1)
    second = h.trigger(dag)
    h.trigger(spec(t("x"), t("y"), dag_id="e"))
    h.tick()
    names = running(h)
    assert len([n for n in names if n.startswith("d.")]) == 3
    assert sorted(n for n in names if n.startswith("e.")) == ["e.x", "e.y"]  # other DAGs run

    def check() -> None:
        assert len([n for n in running(h) if n.startswith("d.")]) <= 3

    finish_all(h, check)
    assert h.run_state(first) == h.run_state(second) == RunState.SUCCESS


def test_max_active_tis_per_dag_spans_runs(make: Callable[..., Harness]) -> None:
    h = make()
    dag = spec(t("load", max_active_tis_per_dag=1), t("other"))
    h.trigger(dag)
    h.clock.advance(minutes=1)
    h.trigger(dag)
    h.tick()
    assert sorted(running(h)) == ["d.load", "d.other", "d.other"]
    finish_all(h, lambda: running(h).count("d.load") <= 1 or pytest.fail("two loads at once"))
    assert len([r for r in h.runtime.created if r.labels[LABEL_TASK] == "load"]) == 2


def test_higher_priority_starts_first_when_slots_are_short(make: Callable[..., Harness]) -> None:
    h = make(parallelism=1)
    h.trigger(
        spec(
            t("low", priority_weight=1),
            t("high", priority_weight=10),
            t("mid", priority_weight=5),
            t("mid_child", "mid", priority_weight=3, weight_rule="absolute"),
        )
    )
    finish_all(h)
    order = [r.labels[LABEL_TASK] for r in h.runtime.created]
    # 'mid' is 5 + its child's 3 under the default downstream rule; its child (3) then beats
    # 'low' (1), which has waited longer
    assert order == ["high", "mid", "mid_child", "low"]


def test_unknown_pool_waits_visibly_until_the_pool_is_created(
    make: Callable[..., Harness],
) -> None:
    h = make()
    run_id = h.trigger(spec(t("a", pool="gpu"), t("b")))
    h.tick(2)
    ti = h.tis(run_id)["a"]
    assert ti.state == "scheduled"
    assert "pool 'gpu' does not exist" in ti.state_detail
    assert "orchestrator pools set gpu" in ti.state_detail
    assert running(h) == ["d.b"]

    with h.sessions.begin() as session:
        pool_store.upsert_pool(session, "gpu", 1, "the GPU box")
    h.tick()
    ti = h.tis(run_id)["a"]
    assert ti.state == "running"
    assert ti.state_detail is None


def test_a_task_larger_than_its_pool_says_so(make: Callable[..., Harness]) -> None:
    h = make(pools={"small": 2})
    run_id = h.trigger(spec(t("a", pool="small", pool_slots=3)))
    h.tick()
    ti = h.tis(run_id)["a"]
    assert ti.state == "scheduled"
    assert "needs 3 slots of pool 'small', which has only 2" in ti.state_detail
    with h.sessions.begin() as session:
        pool_store.upsert_pool(session, "small", 3, None)
    h.tick()
    assert h.tis(run_id)["a"].state == "running"


def test_default_pool_is_recreated_if_missing(make: Callable[..., Harness]) -> None:
    h = make()
    with h.sessions.begin() as session:
        session.delete(pool_store.ensure_default_pool(session))
    run_id = h.trigger(spec(t("a")))
    h.tick()
    assert h.tis(run_id)["a"].state == "running"
    with h.sessions() as session:
        row = pool_store.get_pool(session, "default_pool")
        assert row is not None and row.slots == 128


def _many(n: int, **kw: Any) -> tuple[TaskSpec, ...]:
    return tuple(t(f"t{i}", **kw) for i in range(n))


def test_parallelism_still_caps_everything(make: Callable[..., Harness]) -> None:
    h = make(parallelism=3, pools={"big": 100})
    h.trigger(spec(*_many(6, pool="big")))
    h.trigger(spec(*_many(6), dag_id="e"))
    h.tick()
    assert len(running(h)) == 3
    finish_all(h, lambda: len(running(h)) <= 3 or pytest.fail("over parallelism"))
