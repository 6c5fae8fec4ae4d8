from datetime import UTC, datetime, timedelta

from orchestrator.models.specs import TaskSpec
from orchestrator.models.states import TaskState
from orchestrator.scheduling.attempts import AttemptEnd, outcome, retry_delay

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)


def task(**kw: object) -> TaskSpec:
    return TaskSpec(task_id="t", image="img", **kw)  # type: ignore[arg-type]


def test_exit_zero_is_success() -> None:
    assert outcome(task(), AttemptEnd(exit_code=0), 1, NOW).state == TaskState.SUCCESS


def test_nonzero_exit_without_retries_fails_and_says_the_code() -> None:
    result = outcome(task(), AttemptEnd(exit_code=3), 1, NOW)
    assert result.state == TaskState.FAILED
    assert "exited with code 3" in result.detail


def test_skip_exit_code_skips() -> None:
    result = outcome(task(skip_exit_codes=(99,)), AttemptEnd(exit_code=99), 1, NOW)
    assert result.state == TaskState.SKIPPED


def test_oom_with_a_skip_code_still_fails() -> None:
    result = outcome(task(skip_exit_codes=(137,)), AttemptEnd(137, oom_killed=True), 1, NOW)
    assert result.state == TaskState.FAILED
    assert "out of memory" in result.detail


def test_timeout_is_reported_as_such() -> None:
    end = AttemptEnd(exit_code=143, timed_out=True, timeout=timedelta(seconds=2))
    result = outcome(task(), end, 1, NOW)
    assert result.state == TaskState.FAILED
    assert "timed out after 2s" in result.detail


def test_bad_output_fails_even_with_exit_zero() -> None:
    result = outcome(task(), AttemptEnd(exit_code=0, output_error="not JSON"), 1, NOW)
    assert result.state == TaskState.FAILED
    assert result.detail == "not JSON"


def test_retry_until_retries_used_up() -> None:
    t = task(retries=2, retry_delay=timedelta(seconds=10))
    first = outcome(t, AttemptEnd(exit_code=1), 1, NOW)
    assert first.state == TaskState.UP_FOR_RETRY
    assert first.next_try_at == NOW + timedelta(seconds=10)
    assert outcome(t, AttemptEnd(exit_code=1), 2, NOW).state == TaskState.UP_FOR_RETRY
    last = outcome(t, AttemptEnd(exit_code=1), 3, NOW)
    assert last.state == TaskState.FAILED
    assert "no retries left" in last.detail


def test_exponential_backoff_doubles_and_is_capped() -> None:
    t = task(
        retries=10,
        retry_delay=timedelta(seconds=5),
        retry_exponential_backoff=True,
        max_retry_delay=timedelta(seconds=60),
    )
    delays = [retry_delay(t, n).total_seconds() for n in range(1, 7)]
    assert delays == [5, 10, 20, 40, 60, 60]


def test_exponential_backoff_without_cap_stops_at_a_day() -> None:
    t = task(retries=100, retry_delay=timedelta(minutes=5), retry_exponential_backoff=True)
    assert retry_delay(t, 60) == timedelta(days=1)


def test_launch_error_fails_with_its_message() -> None:
    result = outcome(task(), AttemptEnd(exit_code=None, launch_error="image x missing"), 1, NOW)
    assert result.state == TaskState.FAILED
    assert result.detail == "image x missing"
