"""A pool on real containers: six one-second tasks in a pool of two slots."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from orchestrator.store import pools as pool_store
from orchestrator.store import task_instances as ti_store
from tests.integration.harness import Env, sh, wait_removed

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]


def peak_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """Most intervals open at one instant (an interval ending when another starts does not
    overlap it)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def test_a_pool_of_two_runs_six_tasks_two_at_a_time(env: Env) -> None:
    with env.sessions.begin() as session:
        pool_store.upsert_pool(session, "two", 2, "at most two at once")

    seen_running: list[int] = []
    stop = threading.Event()
    filters = {"label": [f"orch.instance={env.settings.instance_name}"], "status": "running"}

    def sample_engine() -> None:
        while not stop.is_set():
            seen_running.append(len(env.client.api.containers(filters=filters)))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample_engine, daemon=True)
    sampler.start()
    try:
        tis = env.run(*(sh(f"sleep_{i}", "sleep 1", pool="two") for i in range(6)), timeout=240)
    finally:
        stop.set()
        sampler.join(timeout=10)

    assert env.run_state == "success"
    assert {ti.state for ti in tis.values()} == {"success"}
    with env.sessions() as session:
        attempts = [a for ti in tis.values() for a in ti_store.attempts(session, ti.id)]
    assert len(attempts) == 6
    intervals = []
    for attempt in attempts:
        assert attempt.start_date is not None and attempt.end_date is not None
        intervals.append((attempt.start_date, attempt.end_date))
    assert peak_overlap(intervals) == 2  # the pool was used fully, never exceeded
    assert seen_running and max(seen_running) <= 2  # the engine never ran a third
    assert wait_removed(env) == []
