"""What follows one poke of a sensor: success, "not yet" (poke again when), timeout, failure.

Pure functions of (task, how the poke ended, the first poke's start, now). The rules:
- exit 0: the condition holds, the task succeeds (its output, if any, is kept);
- exit `not_ready_exit_code`: not yet. The next poke is due `poke_interval` after this one
  ended. If it would start after `first_poke_at + timeout` the sensor times out instead: it
  fails at once, retries notwithstanding (as Airflow's `AirflowSensorTimeout`), or is skipped
  with `soft_fail`. Otherwise it waits: `up_for_reschedule` in reschedule mode (no slot held),
  still `running` in poke mode (its slot held);
- anything else: as any task's attempt (`attempts.outcome`): skip codes, retries, failure. A
  retry is a new try, and its first poke starts the timeout again.

"Not yet" never uses up a retry, and a stopped (execution_timeout), OOM-killed or unlaunched
poke is a failure even if its exit code happens to be the "not yet" code.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestrator.models.sensors import SensorMode, SensorSpec
from orchestrator.models.specs import TaskSpec
from orchestrator.models.states import TaskState
from orchestrator.scheduling.attempts import AttemptEnd, Outcome, outcome


def is_not_ready(sensor: SensorSpec, end: AttemptEnd) -> bool:
    """True if the poke ran to its end and said "not yet"."""
    return (
        end.exit_code == sensor.not_ready_exit_code
        and end.launch_error is None
        and not end.timed_out
        and not end.oom_killed
    )


def sensor_deadline(sensor: SensorSpec, first_poke_at: datetime) -> datetime:
    """The latest time a poke of this try may start."""
    return first_poke_at + sensor.timeout


def poke_outcome(
    task: TaskSpec,
    end: AttemptEnd,
    try_number: int,
    poke_number: int,
    first_poke_at: datetime,
    now: datetime,
) -> Outcome:
    """Decide the state after poke `poke_number` of try `try_number` of a sensor ended.

    The outcome's state is `running` (with `next_try_at`) for a poke-mode sensor that keeps
    waiting: the task instance stays as it is and the scheduler starts the next poke then.
    """
    sensor = task.sensor
    if sensor is None:
        return outcome(task, end, try_number, now)
    if not is_not_ready(sensor, end):
        result = outcome(task, end, try_number, now)
        if result.state == TaskState.SUCCESS:
            return Outcome(TaskState.SUCCESS, f"the condition holds (poke {poke_number} exited 0)")
        return result
    code = sensor.not_ready_exit_code
    next_poke = now + sensor.poke_interval
    if next_poke > sensor_deadline(sensor, first_poke_at):
        detail = (
            f"sensor timed out after {describe_duration(sensor.timeout)}: poke {poke_number}"
            f" still said not yet (exit {code}), and another would start after the timeout"
        )
        if sensor.soft_fail:
            return Outcome(TaskState.SKIPPED, f"{detail}; skipped (soft_fail)")
        return Outcome(TaskState.FAILED, f"{detail}; raise `timeout` to wait longer")
    wait = describe_duration(sensor.poke_interval)
    detail = f"poke {poke_number}: not yet (exit {code}); next poke at {next_poke.isoformat()}"
    if sensor.mode == SensorMode.RESCHEDULE:
        return Outcome(
            TaskState.UP_FOR_RESCHEDULE, f"{detail} (in {wait}, no slot held)", next_poke
        )
    return Outcome(TaskState.RUNNING, f"{detail} (in {wait}, slot held)", next_poke)


def describe_duration(delta: timedelta) -> str:
    """`7 days`, `2 hours`, `5 minutes`, `90s`: the largest whole unit, else seconds."""
    seconds = delta.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g}s"
