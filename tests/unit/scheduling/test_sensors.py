"""What follows a sensor's poke, decided with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.models.sensors import SensorSpec
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import TaskState
from orchestrator.scheduling.attempts import AttemptEnd
from orchestrator.scheduling.readiness import TaskView, decide
from orchestrator.scheduling.sensors import describe_duration, poke_outcome

FIRST = datetime(2026, 3, 14, 12, tzinfo=UTC)


def sensor(**kw: Any) -> TaskSpec:
    task_kw = {k: kw.pop(k) for k in ("retries", "skip_exit_codes") if k in kw}
    return TaskSpec(task_id="wait", image="img", sensor=SensorSpec(**kw), **task_kw)


def at(**kw: float) -> datetime:
    return FIRST + timedelta(**kw)


def test_exit_zero_means_the_condition_holds() -> None:
    result = poke_outcome(sensor(), AttemptEnd(exit_code=0), 1, 3, FIRST, at(minutes=2))
    assert result.state == TaskState.SUCCESS and result.next_try_at is None
    assert result.detail == "the condition holds (poke 3 exited 0)"


def test_not_yet_in_reschedule_mode_frees_the_slot_until_the_next_poke() -> None:
    task = sensor(mode="reschedule", poke_interval=30)
    result = poke_outcome(task, AttemptEnd(exit_code=75), 1, 1, FIRST, at(seconds=2))
    assert result.state == TaskState.UP_FOR_RESCHEDULE
    assert result.next_try_at == at(seconds=32)  # interval counted from the poke's end
    assert "poke 1: not yet (exit 75)" in result.detail and "no slot held" in result.detail


def test_not_yet_in_poke_mode_stays_running() -> None:
    result = poke_outcome(sensor(poke_interval=10), AttemptEnd(exit_code=75), 1, 4, FIRST, at())
    assert result.state == TaskState.RUNNING
    assert result.next_try_at == at(seconds=10)
    assert "slot held" in result.detail


def test_the_not_ready_code_is_configurable() -> None:
    task = sensor(not_ready_exit_code=3, mode="reschedule")
    assert poke_outcome(task, AttemptEnd(exit_code=3), 1, 1, FIRST, at()).state == (
        TaskState.UP_FOR_RESCHEDULE
    )
    assert poke_outcome(task, AttemptEnd(exit_code=75), 1, 1, FIRST, at()).state == (
        TaskState.FAILED
    )


def test_other_exit_codes_fail_and_use_retries_not_yet_does_not() -> None:
    task = sensor(retries=1, mode="reschedule")
    first = poke_outcome(task, AttemptEnd(exit_code=2), 1, 5, FIRST, at())
    assert first.state == TaskState.UP_FOR_RETRY and "exited with code 2" in first.detail
    last = poke_outcome(task, AttemptEnd(exit_code=2), 2, 1, FIRST, at())
    assert last.state == TaskState.FAILED
    # many "not yet"s on the first try never count as retries
    assert poke_outcome(task, AttemptEnd(exit_code=75), 1, 50, FIRST, at(hours=1)).state == (
        TaskState.UP_FOR_RESCHEDULE
    )


def test_skip_exit_codes_still_skip() -> None:
    result = poke_outcome(
        sensor(skip_exit_codes=(99,)), AttemptEnd(exit_code=99), 1, 1, FIRST, at()
    )
    assert result.state == TaskState.SKIPPED


@pytest.mark.parametrize(
    "end",
    [
        AttemptEnd(exit_code=75, timed_out=True, timeout=timedelta(seconds=5)),
        AttemptEnd(exit_code=75, oom_killed=True),
        AttemptEnd(exit_code=75, launch_error="image missing"),
    ],
)
def test_a_poke_that_did_not_finish_normally_is_a_failure(end: AttemptEnd) -> None:
    assert poke_outcome(sensor(), end, 1, 1, FIRST, at()).state == TaskState.FAILED


def test_times_out_when_the_next_poke_would_start_after_the_timeout() -> None:
    task = sensor(poke_interval=60, timeout=300, retries=3)
    # a poke ending at +240s: the next one at +300s is still within the timeout
    waiting = poke_outcome(task, AttemptEnd(exit_code=75), 1, 5, FIRST, at(seconds=240))
    assert waiting.next_try_at == at(seconds=300)
    # ending at +241s, the next poke would start after it: fail now, without a retry
    timed_out = poke_outcome(task, AttemptEnd(exit_code=75), 1, 5, FIRST, at(seconds=241))
    assert timed_out.state == TaskState.FAILED
    assert timed_out.detail.startswith("sensor timed out after 5 minutes")
    # a poke that says yes after the timeout still succeeds
    late = poke_outcome(task, AttemptEnd(exit_code=0), 1, 6, FIRST, at(seconds=400))
    assert late.state == TaskState.SUCCESS


def test_default_timeout_is_seven_days_from_the_first_poke() -> None:
    task = sensor(mode="reschedule")
    end = AttemptEnd(exit_code=75)
    assert poke_outcome(task, end, 1, 9, FIRST, at(days=7, minutes=-1)).next_try_at == at(days=7)
    result = poke_outcome(task, end, 1, 10, FIRST, at(days=7, seconds=-59))
    assert result.state == TaskState.FAILED and "timed out after 7 days" in result.detail


def test_soft_fail_skips_on_timeout_only() -> None:
    task = sensor(timeout=10, poke_interval=5, soft_fail=True)
    timed_out = poke_outcome(task, AttemptEnd(exit_code=75), 1, 3, FIRST, at(seconds=6))
    assert timed_out.state == TaskState.SKIPPED and "soft_fail" in timed_out.detail
    assert poke_outcome(task, AttemptEnd(exit_code=1), 1, 1, FIRST, at()).state == (
        TaskState.FAILED
    )


def test_a_rescheduled_sensor_is_scheduled_again_once_due() -> None:
    dag = DagSpec(dag_id="d", tasks=(sensor(mode="reschedule"),))
    due = at(seconds=60)
    views = {"wait": TaskView(TaskState.UP_FOR_RESCHEDULE, due)}
    assert decide(dag, views, at(seconds=59)).schedule == []
    assert decide(dag, views, due).schedule == ["wait"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"poke_interval": 0}, "poke_interval\n  Value error, must be positive"),
        ({"timeout": -5}, "timeout\n  Value error, must be positive"),
        ({"not_ready_exit_code": 0}, "cannot be 0"),
        ({"not_ready_exit_code": 256}, "from 1 to 255"),
        ({"mode": "poll"}, "'poke' or 'reschedule'"),
    ],
)
def test_invalid_sensor_settings_are_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SensorSpec(**kw)


def test_not_ready_code_may_not_be_a_skip_code() -> None:
    with pytest.raises(ValidationError, match="also in skip_exit_codes"):
        sensor(skip_exit_codes=(75,))


def test_sensor_settings_round_trip_through_json() -> None:
    task = sensor(poke_interval=1.5, timeout=timedelta(hours=2), mode="reschedule", soft_fail=True)
    assert TaskSpec.model_validate_json(task.model_dump_json()) == task


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=7), "7 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=3), "3 hours"),
        (timedelta(minutes=5), "5 minutes"),
        (timedelta(seconds=90), "90s"),
        (timedelta(seconds=1.5), "1.5s"),
    ],
)
def test_durations_read_naturally(delta: timedelta, text: str) -> None:
    assert describe_duration(delta) == text
