"""Sensor settings: a container task that checks a condition, again and again, until it holds.

A sensor's image is a one-shot check. Its exit code is the verdict of one *poke*: 0 means the
condition holds (the task succeeds), `not_ready_exit_code` (75, `EX_TEMPFAIL` of sysexits.h:
"temporary failure, try again later") means "not yet", anything else is a failure (retried as
usual). The scheduler does the looping: it starts a new container for every poke, each
`poke_interval` after the last one ended, until a poke says yes or the next poke would start
after `timeout` (counted from the first poke of the try, as in Airflow).

`mode` says what a waiting sensor holds (Airflow's names):
- `poke`: the task instance stays `running` between pokes and keeps its parallelism slot, so
  the check is repeated without queueing again. Cheap for short waits; many long waits can
  fill the slots.
- `reschedule`: "not yet" ends the poke and the task instance becomes `up_for_reschedule`
  until `next_try_at`, holding no slot; it queues for a slot again for every poke. Sensors in
  this mode cannot starve the tasks they wait for.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.models.durations import as_timedelta, bounded

DEFAULT_POKE_INTERVAL = timedelta(seconds=60)
DEFAULT_SENSOR_TIMEOUT = timedelta(days=7)
#: `EX_TEMPFAIL` in sysexits.h: a temporary failure, the caller should try again later.
DEFAULT_NOT_READY_EXIT_CODE = 75


class SensorMode(StrEnum):
    """What a sensor holds while it waits for its next poke."""

    POKE = "poke"  # stays running between pokes, holding its slot
    RESCHEDULE = "reschedule"  # up_for_reschedule between pokes, holding no slot


class SensorSpec(BaseModel):
    """How a sensor task pokes: interval, overall timeout, mode, its "not yet" exit code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    poke_interval: timedelta = DEFAULT_POKE_INTERVAL
    timeout: timedelta = DEFAULT_SENSOR_TIMEOUT
    mode: SensorMode = SensorMode.POKE
    not_ready_exit_code: int = Field(default=DEFAULT_NOT_READY_EXIT_CODE)
    soft_fail: bool = False

    @field_validator("poke_interval", "timeout", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return as_timedelta(value)

    @field_validator("poke_interval", "timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be positive, got {value.total_seconds():g}s")
        return bounded(value) or value

    @field_validator("not_ready_exit_code")
    @classmethod
    def _exit_code(cls, value: int) -> int:
        if value == 0:
            raise ValueError("cannot be 0: exit code 0 means the condition holds")
        if not 1 <= value <= 255:
            raise ValueError(f"must be an exit code from 1 to 255, got {value}")
        return value
