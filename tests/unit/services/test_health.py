"""The scheduler status file's heartbeat, and what health makes of it."""

from __future__ import annotations

import gc
import threading
import time
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.runtime.fake import FakeRuntime
from orchestrator.services.daemon import GC_THRESHOLD, run_scheduler
from orchestrator.services.health import LoopTimes, scheduler_status
from orchestrator.services.reconcile import STATUS_FILE, update_status_file, write_heartbeat
from orchestrator.settings import Settings
from tests.support import FixedClock


def test_the_heartbeat_and_the_engine_check_share_the_status_file(
    settings: Settings, clock: FixedClock
) -> None:
    write_heartbeat(settings.home, clock.now())
    update_status_file(settings.home, {"engine": "down", "engine_error": "refused"})
    clock.advance(seconds=30)
    status = scheduler_status(settings, clock.now())
    assert (status.heartbeat_age, status.healthy) == (30, True)
    assert (status.engine_up, status.engine_error) == (False, "refused")

    clock.advance(seconds=settings.scheduler_stale_after)
    assert not scheduler_status(settings, clock.now()).healthy


def test_a_missing_or_garbled_status_file_means_unknown(
    settings: Settings, clock: FixedClock
) -> None:
    assert scheduler_status(settings, clock.now()).heartbeat_at is None
    (settings.home / STATUS_FILE).write_text("{not json")
    status = scheduler_status(settings, clock.now())
    assert (status.heartbeat_age, status.healthy, status.engine_up) == (None, False, None)
    write_heartbeat(settings.home, clock.now() - timedelta(seconds=1))
    assert scheduler_status(settings, clock.now()).heartbeat_age == 1


def test_the_running_scheduler_stamps_a_heartbeat(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """... and the process it runs in collects garbage less often (a large, long-lived heap)."""
    thresholds = gc.get_threshold()
    stop = threading.Event()
    daemon = threading.Thread(
        target=run_scheduler, args=(settings, sessions, FakeRuntime(), clock, stop), daemon=True
    )
    daemon.start()
    try:
        deadline = time.monotonic() + 20
        while scheduler_status(settings, clock.now()).heartbeat_at is None:
            assert time.monotonic() < deadline, "no heartbeat written"
            time.sleep(0.05)
        assert gc.get_threshold() == (GC_THRESHOLD, *thresholds[1:])
    finally:
        stop.set()
        daemon.join(timeout=20)
        gc.set_threshold(*thresholds)
    status = scheduler_status(settings, clock.now())
    assert (status.heartbeat_at, status.engine_up) == (clock.now(), True)
    assert status.loop is not None and status.loop.count >= 1  # each pass is timed
    assert status.loop.last_seconds is not None and status.loop.last_seconds >= 0
    assert set(status.loop.quantiles) == {"0.5", "0.9", "0.99"}


def test_loop_times_keep_a_window_for_quantiles_and_totals_since_the_start() -> None:
    times = LoopTimes(window=2)
    assert times.fields() == {
        "count": 0,
        "sum_seconds": 0.0,
        "last_seconds": None,
        "quantiles": {},
    }
    for seconds in (9.0, 1.0, 3.0):
        times.add(seconds)
    fields = times.fields()
    assert (fields["count"], fields["sum_seconds"], fields["last_seconds"]) == (3, 13.0, 3.0)
    assert fields["quantiles"] == {"0.5": 3.0, "0.9": 3.0, "0.99": 3.0}  # 9 s left the window


def test_a_malformed_loop_record_is_ignored(settings: Settings, clock: FixedClock) -> None:
    write_heartbeat(settings.home, clock.now(), {"count": "many", "sum_seconds": 1})
    assert scheduler_status(settings, clock.now()).loop is None
    write_heartbeat(settings.home, clock.now(), {"count": 2, "sum_seconds": 1, "quantiles": 5})
    loop = scheduler_status(settings, clock.now()).loop
    assert loop is not None and (loop.count, loop.last_seconds, loop.quantiles) == (2, None, {})
