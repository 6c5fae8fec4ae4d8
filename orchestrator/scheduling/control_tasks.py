"""Decisions for the tasks the scheduler runs itself, and for branching.

Pure functions of (specs, states, now): no database, no Docker, no clock. The scheduler
gathers the facts (the other DAG's states, the rendered templates) and applies the result.

- A branch task's output names the direct children to follow; the others are skipped.
- `latest_only` lets its children run only in the latest scheduled interval (or a manual run).
- `wait_for_run` looks for the other DAG's run whose logical date equals the target date.
- `trigger_run` with `wait=True` follows the run it created to its end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pendulum

from orchestrator.errors import OutputError
from orchestrator.models.specs import DagSpec, TaskSpec, WaitForRunSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.scheduling.timetables import Schedule, next_logical_date

#: Run types LatestOnly may skip in; manual (and test) runs always run their downstream.
_SCHEDULED_RUN_TYPES = frozenset({"scheduled", "backfill"})


@dataclass(frozen=True)
class Step:
    """What a task the scheduler runs itself does now.

    `state` is success, failed, or up_for_reschedule (check again at `next_check_at`, holding
    no slot). `skip` lists direct children to skip; `output` is the task's output (JSON).
    """

    state: TaskState
    detail: str
    next_check_at: datetime | None = None
    skip: tuple[str, ...] = ()
    output: object = None


# ------------------------------------------------------------------ branching
@dataclass(frozen=True)
class BranchChoice:
    """The direct children a branch task follows, and those it skips."""

    follow: tuple[str, ...]
    skip: tuple[str, ...]


def branch_choice(spec: DagSpec, task: TaskSpec, output_json: str | None) -> BranchChoice:
    """Read a branch task's output: a task id, a list of task ids, or `[]`/`null` (skip all).

    Each id must name a direct child of the branch task: its full (group-prefixed) id, or its
    id within its own task group when no other child has that same short id. Raises
    OutputError naming the bad value and the valid choices.
    """
    children = spec.downstream_ids(task.task_id)
    where = f"DAG '{spec.dag_id}', branch task '{task.task_id}'"
    choices = ", ".join(f"'{c}'" for c in children) or "none: the task has no downstream tasks"
    if output_json is None:
        raise OutputError(
            f"{where}: wrote no output; a branch task writes the task id (or a JSON list of "
            f"task ids) to follow to ORCH_OUTPUT_PATH, or [] to skip all. Choices: {choices}"
        )
    value = json.loads(output_json)
    if value is None:
        value = []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise OutputError(
            f"{where}: output {output_json[:200]} is not a task id or a list of task ids. "
            f"Choices: {choices}"
        )
    short: dict[str, list[str]] = {}
    for child_id in children:
        group = spec.task(child_id).group_id
        if group and child_id.startswith(group + "."):
            short.setdefault(child_id[len(group) + 1 :], []).append(child_id)
    follow: list[str] = []
    for name in names:
        if name in children:
            resolved = name
        elif len(short.get(name, ())) == 1:
            resolved = short[name][0]
        else:
            why = (
                f"is ambiguous (it could be {' or '.join(repr(c) for c in short[name])})"
                if name in short
                else "is not a direct downstream task of the branch task"
            )
            raise OutputError(
                f"{where}: output names task '{name}', which {why}. Choices: {choices}"
            )
        if resolved not in follow:
            follow.append(resolved)
    return BranchChoice(tuple(follow), tuple(c for c in children if c not in follow))


# ------------------------------------------------------------------ latest only
def is_latest_run(
    run_type: str, data_interval_end: datetime, schedule: Schedule, tz: str, now: datetime
) -> bool:
    """Whether a run is the latest, as Airflow's LatestOnlyOperator sees it.

    Manual and test runs always count as latest. A scheduled or backfill run is the latest
    while `now` lies in the interval after its own: after its data interval ended and no later
    than the end of the next one. A schedule with no next interval (`@once`) is always latest.
    """
    if run_type not in _SCHEDULED_RUN_TYPES:
        return True
    following = next_logical_date(schedule, tz, data_interval_end)
    if following is None:
        return True
    return data_interval_end < now <= following


def latest_only_step(
    spec: DagSpec,
    task: TaskSpec,
    run_type: str,
    data_interval: tuple[datetime, datetime],
    now: datetime,
) -> Step:
    """Succeed; skip the direct children unless the run is the latest."""
    if is_latest_run(run_type, data_interval[1], spec.schedule, spec.timezone, now):
        return Step(TaskState.SUCCESS, "the latest run: downstream tasks run")
    start, end = (d.isoformat() for d in data_interval)
    return Step(
        TaskState.SUCCESS,
        f"not the latest run (interval {start} to {end}): direct downstream tasks skipped",
        skip=tuple(spec.downstream_ids(task.task_id)),
    )


# ------------------------------------------------------------------ waiting for runs
def wait_target_date(
    logical_date: datetime, settings: WaitForRunSpec, rendered_date: str | None
) -> datetime:
    """The logical date of the other DAG's run to wait for.

    This run's logical date minus `execution_delta`, or the rendered `execution_date` (ISO 8601;
    a date without a zone is read as UTC). Raises ValueError for text that is not a date.
    """
    if settings.execution_date is not None:
        return parse_rendered_date("execution_date", rendered_date or "")
    return logical_date - (settings.execution_delta or timedelta(0))


def parse_rendered_date(field: str, text: str) -> datetime:
    """A rendered date template as a UTC datetime: ISO 8601, a date without a zone read as
    UTC, a bare date as midnight. Raises ValueError naming the field otherwise."""
    if not text.strip():
        raise ValueError(f"{field} rendered to an empty string; it must give an ISO 8601 date")
    try:
        parsed = pendulum.parse(text.strip(), tz="UTC")
    except Exception as exc:
        raise ValueError(f"{field} {text!r} is not an ISO 8601 date") from exc
    if isinstance(parsed, pendulum.Date) and not isinstance(parsed, datetime):
        parsed = pendulum.datetime(parsed.year, parsed.month, parsed.day, tz="UTC")
    if not isinstance(parsed, datetime):
        raise ValueError(f"{field} {text!r} is not a date and time")
    return _utc(parsed)


def wait_step(
    settings: WaitForRunSpec,
    target: datetime,
    states: Sequence[str],
    waiting_since: datetime,
    now: datetime,
) -> Step:
    """Decide a `wait_for_run` check from the states of the matching instances.

    `states` holds, for each of the other DAG's runs at the target logical date, the state of
    the awaited task (or of the run itself when no task is named). Success once any is in
    `allowed_states`; failure once there is at least one and all are in `failed_states`;
    failure when `timeout` has passed since the first check; otherwise check again after
    `poke_interval`.
    """
    what = f"DAG '{settings.dag_id}'" + (
        f", task '{settings.task_id}'" if settings.task_id else " (whole run)"
    )
    when = target.isoformat()
    allowed = [s for s in states if s in settings.allowed_states]
    if allowed:
        return Step(TaskState.SUCCESS, f"{what} at {when} is {allowed[0]}")
    if states and all(s in settings.failed_states for s in states):
        return Step(TaskState.FAILED, f"{what} at {when} is {states[0]}: not waiting any longer")
    if now >= waiting_since + settings.timeout:
        seen = f"state {', '.join(states)}" if states else "no run at that logical date"
        return Step(
            TaskState.FAILED,
            f"timed out after {settings.timeout.total_seconds():g}s waiting for {what} at {when}"
            f" ({seen})",
        )
    seen = f"is {', '.join(states)}" if states else "has no run yet"
    return Step(
        TaskState.UP_FOR_RESCHEDULE,
        f"waiting for {what} at {when}: {seen}",
        next_check_at=min(now + settings.poke_interval, waiting_since + settings.timeout),
    )


def trigger_wait_step(
    dag_id: str,
    run_id: str,
    run_state: RunState | None,
    poke_interval: timedelta,
    waiting_since: datetime,
    timeout: timedelta | None,
    now: datetime,
) -> Step:
    """Follow a run a `trigger_run` task created: succeed or fail with it, else check again.

    `timeout` (the task's execution_timeout, if any) bounds the wait.
    """
    what = f"triggered run '{run_id}' of DAG '{dag_id}'"
    if run_state is None:
        return Step(TaskState.FAILED, f"{what} no longer exists")
    if run_state == RunState.SUCCESS:
        return Step(TaskState.SUCCESS, f"{what} succeeded")
    if run_state == RunState.FAILED:
        return Step(TaskState.FAILED, f"{what} failed")
    if timeout is not None and now >= waiting_since + timeout:
        return Step(
            TaskState.FAILED,
            f"timed out after {timeout.total_seconds():g}s (execution_timeout) waiting for {what}",
        )
    deadline = waiting_since + timeout if timeout is not None else None
    next_at = now + poke_interval
    return Step(
        TaskState.UP_FOR_RESCHEDULE,
        f"waiting for {what} ({run_state.value})",
        next_check_at=min(next_at, deadline) if deadline is not None else next_at,
    )


def _utc(value: datetime) -> datetime:
    utc = value.astimezone(UTC)
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, UTC
    )
