"""How an attempt ended, and what follows: success, skip, retry (when), or failure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.models.specs import TaskSpec
from orchestrator.models.states import TaskState

#: Longest retry delay when exponential backoff has no `max_retry_delay`.
DEFAULT_MAX_RETRY_DELAY = timedelta(days=1)


@dataclass(frozen=True)
class AttemptEnd:
    """The facts of one ended attempt, as the runtime and the output file told them."""

    exit_code: int | None
    oom_killed: bool = False
    timed_out: bool = False
    timeout: timedelta | None = None
    output_error: str | None = None  # the output file was invalid
    launch_error: str | None = None  # the container never ran (image missing, bad mount...)
    engine_error: str | None = None  # the engine's own error text for the container


@dataclass(frozen=True)
class Outcome:
    state: TaskState
    detail: str
    next_try_at: datetime | None = None


def retry_delay(task: TaskSpec, try_number: int) -> timedelta:
    """Delay before the attempt after `try_number` (1-based) failed.

    With exponential backoff the delay doubles with each failed attempt, capped by
    `max_retry_delay` (one day if unset); without it, `retry_delay` every time.
    """
    if not task.retry_exponential_backoff:
        delay = task.retry_delay
    else:
        cap = task.max_retry_delay or DEFAULT_MAX_RETRY_DELAY
        factor = 2 ** min(max(try_number - 1, 0), 62)
        seconds = task.retry_delay.total_seconds() * factor
        delay = timedelta(seconds=min(seconds, cap.total_seconds()))
    if task.max_retry_delay is not None:
        delay = min(delay, task.max_retry_delay)
    return delay


def describe_failure(end: AttemptEnd) -> str | None:
    """Why an attempt failed, in words, or None if it did not.

    The container's exit code is its verdict: a process inside it that was OOM-killed while the
    main process still exited 0 is not a failure (the engine reports both in that case).
    """
    if end.launch_error:
        return end.launch_error
    if end.timed_out:
        limit = f" after {_fmt(end.timeout)}" if end.timeout else ""
        return f"timed out{limit} (execution_timeout): container stopped"
    if end.oom_killed and end.exit_code != 0:
        return f"killed: out of memory (OOM; exit code {end.exit_code}); raise `memory`"
    if end.exit_code not in (0, None):
        text = f"container exited with code {end.exit_code}"
        return f"{text}: {end.engine_error}" if end.engine_error else text
    if end.output_error:
        return end.output_error
    return None


def outcome(
    task: TaskSpec, end: AttemptEnd, try_number: int, now: datetime, max_tries: int | None = None
) -> Outcome:
    """Decide the state after an attempt ended.

    A failed attempt is retried while `try_number <= max_tries` (the task instance's
    `max_tries`, at least `task.retries`). Clearing raises `max_tries` to
    `try_number + retries`, so a cleared task gets a fresh round of retries.
    """
    limit = task.retries if max_tries is None else max(max_tries, task.retries)
    used_before = limit - task.retries  # attempts made before this round of retries
    failure = describe_failure(end)
    if failure is None:
        return Outcome(TaskState.SUCCESS, "exited 0")
    if (
        not end.launch_error
        and not end.timed_out
        and not end.oom_killed
        and end.exit_code in task.skip_exit_codes
    ):
        return Outcome(TaskState.SKIPPED, f"exited {end.exit_code} (a skip exit code)")
    if try_number <= limit:
        retry = max(try_number - used_before, 1)
        delay = retry_delay(task, retry)
        detail = f"{failure}; retry {retry} of {task.retries} in {_fmt(delay)}"
        return Outcome(TaskState.UP_FOR_RETRY, detail, now + delay)
    if task.retries:
        failure = f"{failure}; no retries left ({task.retries} used)"
    return Outcome(TaskState.FAILED, failure)


def _fmt(delta: timedelta | None) -> str:
    if delta is None:
        return "0s"
    seconds = delta.total_seconds()
    return f"{seconds:g}s"
