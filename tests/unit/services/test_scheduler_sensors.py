"""Sensors in the scheduler on the fake runtime: pokes, slots, timeouts, with a fixed clock.

The fake "condition" is a flag that a producer task's container sets when it runs; a sensor's
container exits 0 once the flag is set and 75 ("not yet") before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LABEL_POKE, LABEL_TASK, LaunchRequest
from orchestrator.models.sensors import SensorSpec
from orchestrator.models.specs import TaskSpec
from orchestrator.models.states import ACTIVE_TASK_STATES, RunState
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.settings import Settings
from orchestrator.store import sensor_pokes
from orchestrator.store import task_instances as ti_store
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness, spec, t


class World:
    """The fake containers' shared world: is the file there, and who ran."""

    def __init__(self, ready_after_pokes: int | None = None) -> None:
        self.ready = False
        self.ready_after_pokes = ready_after_pokes
        self.pokes: list[str] = []
        self.ran: list[str] = []

    def script(self, request: LaunchRequest) -> FakeBehavior:
        task = request.labels[LABEL_TASK]
        self.ran.append(task)
        if task.startswith("make"):
            self.ready = True
            return FakeBehavior(logs=b"made the file\n")
        if LABEL_POKE not in request.labels:
            return FakeBehavior()
        self.pokes.append(request.name)
        if self.ready_after_pokes is not None and len(self.pokes) >= self.ready_after_pokes:
            self.ready = True
        if self.ready:
            return FakeBehavior(logs=b"file found\n", output="found")
        return FakeBehavior(exit_code=75, logs=f"no file yet ({len(self.pokes)})\n".encode())


def sensor(task_id: str, *upstream: str, **kw: Any) -> TaskSpec:
    task_kw = {
        k: kw.pop(k)
        for k in ("retries", "retry_delay", "execution_timeout", "priority_weight")
        if k in kw
    }
    return t(task_id, *upstream, sensor=SensorSpec(**kw), **task_kw)


@pytest.fixture
def harness(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> Callable[..., Harness]:
    def factory(world: World, parallelism: int = 32) -> Harness:
        # no polling for other processes' runs: the loop's sleep shows its own deadlines
        update = {"parallelism": parallelism, "trigger_poll_interval": 3600.0}
        return Harness(settings.model_copy(update=update), sessions, clock, world.script)

    return factory


def active(h: Harness) -> int:
    with h.sessions() as session:
        return ti_store.count_in_states(session, list(ACTIVE_TASK_STATES))


def test_reschedule_mode_pokes_until_the_condition_holds_in_one_try(
    harness: Callable[..., Harness],
) -> None:
    world = World(ready_after_pokes=3)
    h = harness(world)
    run_id = h.trigger(spec(sensor("wait", mode="reschedule", poke_interval=30), t("use", "wait")))
    h.tick()
    ti = h.tis(run_id)["wait"]
    assert ti.state == "up_for_reschedule" and ti.try_number == 1
    assert ti.next_try_at == h.clock.now() + timedelta(seconds=30)
    assert active(h) == 0  # waiting, it holds no slot
    # the loop sleeps exactly until the next poke is due
    assert h.scheduler._seconds_until_next_event(h.clock.now()) == 30
    h.clock.advance(seconds=29)
    h.tick()
    assert len(world.pokes) == 1
    h.clock.advance(seconds=1)
    h.tick()
    assert len(world.pokes) == 2 and h.tis(run_id)["wait"].state == "up_for_reschedule"
    h.clock.advance(seconds=30)
    h.tick(2)
    tis = h.tis(run_id)
    assert (tis["wait"].state, tis["wait"].try_number) == ("success", 1)
    assert tis["wait"].output_json == '"found"'
    assert tis["use"].state == "success" and h.run_state(run_id) == RunState.SUCCESS
    # one container per poke, each named for its poke, each removed after it ended
    assert [n.rsplit("-", 2)[1:] for n in world.pokes] == [["t1", "p1"], ["t1", "p2"], ["t1", "p3"]]
    assert sorted(h.runtime.removed) == sorted(h.runtime.started)
    with h.sessions() as session:
        pokes = sensor_pokes.pokes(session, tis["wait"].id)
        assert [(p.try_number, p.poke_number, p.exit_code, p.state) for p in pokes] == [
            (1, 1, 75, "up_for_reschedule"),
            (1, 2, 75, "up_for_reschedule"),
            (1, 3, 0, "success"),
        ]
        assert [p.container_name for p in pokes] == world.pokes
        attempts = ti_store.attempts(session, tis["wait"].id)
        assert [(a.try_number, a.state) for a in attempts] == [(1, "success")]
        log = Path(attempts[0].log_path).read_text()
        states = [c.to_state for c in ti_store.state_changes(session, tis["wait"].id)]
    assert states == ["scheduled", "queued", "running", "up_for_reschedule"] * 2 + [
        "scheduled",
        "queued",
        "running",
        "success",
    ]
    # the try's log has every poke's output, in order
    assert log.index("no file yet (1)") < log.index("no file yet (2)") < log.index("file found")
    assert [f"poke {n} of try 1" in log for n in (1, 2, 3)] == [True] * 3
    assert "poke 2: not yet (exit 75); next poke at" in log


def test_poke_mode_holds_its_slot_between_pokes(harness: Callable[..., Harness]) -> None:
    world = World(ready_after_pokes=3)
    h = harness(world)
    run_id = h.trigger(spec(sensor("wait", poke_interval=10)))
    h.tick()
    ti = h.tis(run_id)["wait"]
    assert ti.state == "running" and ti.container_id is None
    assert "not yet" in ti.state_detail and "slot held" in ti.state_detail
    assert active(h) == 1  # the slot stays taken while it sleeps
    assert h.scheduler._seconds_until_next_event(h.clock.now()) == 10
    h.clock.advance(seconds=10)
    h.tick()
    assert len(world.pokes) == 2 and h.tis(run_id)["wait"].state == "running"
    h.clock.advance(seconds=10)
    h.tick()
    ti = h.tis(run_id)["wait"]
    assert (ti.state, ti.try_number) == ("success", 1)
    assert [n.rsplit("-", 1)[1] for n in world.pokes] == ["p1", "p2", "p3"]
    assert sorted(h.runtime.removed) == sorted(h.runtime.started)
    with h.sessions() as session:
        states = [c.to_state for c in ti_store.state_changes(session, ti.id)]
    assert states == ["scheduled", "queued", "running", "success"]  # never released its slot


def test_a_sensor_that_never_sees_its_condition_times_out_without_retrying(
    harness: Callable[..., Harness],
) -> None:
    world = World()
    h = harness(world)
    run_id = h.trigger(
        spec(
            sensor("wait", mode="reschedule", poke_interval=4, timeout=10, retries=2),
            t("use", "wait"),
        )
    )
    for _ in range(4):
        h.tick()
        h.clock.advance(seconds=4)
    tis = h.tis(run_id)
    # pokes at 0, 4 and 8 s; the next would start at 12 s, after the 10 s timeout
    assert len(world.pokes) == 3
    assert (tis["wait"].state, tis["wait"].try_number) == ("failed", 1)
    assert tis["wait"].state_detail.startswith("sensor timed out after 10s")
    assert tis["use"].state == "upstream_failed"
    assert h.run_state(run_id) == RunState.FAILED


def test_soft_fail_skips_a_timed_out_sensor(harness: Callable[..., Harness]) -> None:
    world = World()
    h = harness(world)
    run_id = h.trigger(
        spec(sensor("wait", poke_interval=4, timeout=5, soft_fail=True), t("use", "wait"))
    )
    h.tick()
    h.clock.advance(seconds=4)
    h.tick(2)
    tis = h.tis(run_id)
    assert tis["wait"].state == "skipped" and "soft_fail" in tis["wait"].state_detail
    assert tis["use"].state == "skipped"
    assert h.run_state(run_id) == RunState.SUCCESS


def test_a_real_failure_retries_in_a_new_try_whose_pokes_start_again(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    codes = iter([75, 75, 3, 75, 0])
    names: list[str] = []

    def script(request: LaunchRequest) -> FakeBehavior:
        names.append(request.name.rsplit("-", 2)[1] + request.name.rsplit("-", 1)[1])
        return FakeBehavior(exit_code=next(codes))

    h = Harness(settings, sessions, clock, script)
    run_id = h.trigger(
        spec(sensor("wait", mode="reschedule", poke_interval=5, retries=1, retry_delay=5))
    )
    for _ in range(5):
        h.tick()
        h.clock.advance(seconds=5)
    ti = h.tis(run_id)["wait"]
    assert (ti.state, ti.try_number) == ("success", 2)
    assert names == ["t1p1", "t1p2", "t1p3", "t2p1", "t2p2"]
    with h.sessions() as session:
        attempts = ti_store.attempts(session, ti.id)
        assert [(a.try_number, a.state, a.exit_code) for a in attempts] == [
            (1, "up_for_retry", 3),
            (2, "success", 0),
        ]
        assert len(sensor_pokes.pokes(session, ti.id, 2)) == 2


def test_execution_timeout_bounds_each_poke_not_the_wait(
    harness: Callable[..., Harness],
) -> None:
    world = World(ready_after_pokes=4)
    h = harness(world)
    run_id = h.trigger(spec(sensor("wait", poke_interval=10, execution_timeout=15)))
    for _ in range(4):
        h.tick()
        h.clock.advance(seconds=10)
    ti = h.tis(run_id)["wait"]
    assert ti.state == "success"  # waited 30 s in all, each poke well under 15 s
    assert h.runtime.stopped == []


def test_reschedule_sensors_cannot_take_every_slot(harness: Callable[..., Harness]) -> None:
    """Three sensors wait for a file that a fourth task makes, with two slots: between pokes
    the sensors hold none, so the maker runs and everything finishes."""
    world = World()
    h = harness(world, parallelism=2)
    run_id = h.trigger(
        spec(
            *(
                sensor(
                    f"wait{i}", mode="reschedule", poke_interval=5, timeout=60, priority_weight=9
                )
                for i in range(3)
            ),
            t("make_file"),
        )
    )
    h.tick()
    assert world.ran[:2] == ["wait0", "wait1"]  # the sensors were first in line (priority)
    for _ in range(4):
        h.clock.advance(seconds=5)
        h.tick()
    tis = h.tis(run_id)
    assert {k: v.state for k, v in tis.items()} == {
        "wait0": "success",
        "wait1": "success",
        "wait2": "success",
        "make_file": "success",
    }
    assert h.run_state(run_id) == RunState.SUCCESS


def test_poke_mode_sensors_hold_the_slots_until_they_time_out(
    harness: Callable[..., Harness],
) -> None:
    """The same DAG in poke mode: two sleeping sensors keep both slots, the maker cannot
    start, and nothing moves until the sensors time out (why reschedule mode exists)."""
    world = World()
    h = harness(world, parallelism=2)
    run_id = h.trigger(
        spec(
            *(sensor(f"wait{i}", poke_interval=5, timeout=20, priority_weight=9) for i in range(3)),
            t("make_file"),
        )
    )
    h.tick()
    for _ in range(3):
        h.clock.advance(seconds=5)
        h.tick()
        assert active(h) == 2 and "make_file" not in world.ran
    h.clock.advance(seconds=5)
    h.tick(3)
    tis = h.tis(run_id)
    assert tis["wait0"].state == "failed" and "timed out" in tis["wait0"].state_detail
    assert tis["wait1"].state == "failed"
    assert "make_file" in world.ran  # only once the first two gave up
