"""Authoring specs: what a DAG file declares, serialized to JSON and stored.

Specs are frozen pydantic models with `extra="forbid"`; they round-trip through JSON unchanged,
which is how the scheduler, web server and CLI read DAGs without importing DAG code.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_RETRY_DELAY = timedelta(minutes=5)
ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class Spec(BaseModel):
    """Base of every authoring spec: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_size(value: int | str | None, field: str = "size") -> int | None:
    """Turn `512m`, `1g`, `1.5GiB` or a byte count into bytes."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a byte count or a string like '512m', not {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{field} must be positive, got {value}")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"{field} {value!r} is not a size like '512m', '2g' or a byte count")
    number, unit = match.groups()
    size = int(float(number) * _SIZE_UNITS[unit.lower()])
    if size <= 0:
        raise ValueError(f"{field} must be positive, got {value!r}")
    return size


class PullPolicy(StrEnum):
    """When the runtime pulls a task's image."""

    IF_NOT_PRESENT = "if_not_present"  # pull only when the engine lacks the image
    ALWAYS = "always"  # pull before every attempt
    NEVER = "never"  # never pull; a missing image fails the attempt


class TriggerRule(StrEnum):
    """When a task may run, given its direct upstream tasks' states (Airflow's names)."""

    ALL_SUCCESS = "all_success"  # every upstream task succeeded (the default)
    ALL_FAILED = "all_failed"  # every upstream task failed or could not run
    ALL_DONE = "all_done"  # every upstream task finished, however
    ONE_SUCCESS = "one_success"  # at least one succeeded: runs at once, without waiting
    ONE_FAILED = "one_failed"  # at least one failed: runs at once, without waiting
    NONE_FAILED = "none_failed"  # all finished, none failed (skips are fine)
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"  # ...and one succeeded
    NONE_SKIPPED = "none_skipped"  # all finished, none skipped
    ALWAYS = "always"  # no dependency at all: runs as soon as the run starts


class Mount(Spec):
    """A bind mount, a named volume or a tmpfs, as the container sees it.

    The shorthand `"src:dst[:ro]"` (Docker's `-v` syntax) is accepted wherever a mount is: a
    source starting with `/`, `.` or `~` is a host path (bind), anything else a named volume.
    """

    type: Literal["bind", "volume", "tmpfs"]
    source: str | None = None
    target: str
    read_only: bool = False

    @model_validator(mode="after")
    def _check_source(self) -> Mount:
        if self.type == "tmpfs":
            if self.source:
                raise ValueError("a tmpfs mount takes no source")
        elif not self.source:
            raise ValueError(f"a {self.type} mount needs a source")
        if not self.target:
            raise ValueError("a mount needs a target path")
        return self

    @classmethod
    def parse(cls, text: str) -> Mount:
        """Parse Docker's `src:dst[:ro|rw]` shorthand (or `tmpfs:dst`)."""
        parts = text.split(":")
        mode = ""
        if len(parts) == 3:
            source, target, mode = parts
        elif len(parts) == 2:
            source, target = parts
        else:
            raise ValueError(f"mount {text!r} is not of the form 'source:target[:ro]'")
        if mode not in ("", "ro", "rw"):
            raise ValueError(f"mount {text!r}: mode must be 'ro' or 'rw', not {mode!r}")
        if source == "tmpfs":
            return cls(type="tmpfs", target=target, read_only=mode == "ro")
        kind: Literal["bind", "volume"] = "bind" if source[:1] in ("/", ".", "~", "{") else "volume"
        return cls(type=kind, source=source, target=target, read_only=mode == "ro")


class ParamSpec(Spec):
    """A run parameter: a default, an optional JSON type, a description."""

    default: Any = None
    type: Literal["string", "integer", "number", "boolean", "array", "object", "null"] | None = None
    description: str | None = None


class CronSchedule(Spec):
    """A cron expression or preset (`@daily`, ...)."""

    kind: Literal["cron"] = "cron"
    expression: str


class DeltaSchedule(Spec):
    """A fixed interval between runs."""

    kind: Literal["delta"] = "delta"
    every: timedelta


Schedule = Annotated[CronSchedule | DeltaSchedule, Field(discriminator="kind")]


class TaskSpec(Spec):
    """One container task, as declared (templates unrendered)."""

    task_id: Annotated[str, Field(pattern=ID_PATTERN, max_length=250)]
    image: str
    command: str | tuple[str, ...] | None = None
    entrypoint: str | tuple[str, ...] | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    working_dir: str | None = None
    user: str | None = None
    network: str | None = None
    cpus: float | None = None
    memory: int | None = None
    shm_size: int | None = None
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    retries: int = Field(default=0, ge=0)
    retry_delay: timedelta = DEFAULT_RETRY_DELAY
    retry_exponential_backoff: bool = False
    max_retry_delay: timedelta | None = None
    execution_timeout: timedelta | None = None
    skip_exit_codes: tuple[int, ...] = ()
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    upstream_task_ids: tuple[str, ...] = ()
    group_id: str | None = None
    doc: str | None = None

    @field_validator("image")
    @classmethod
    def _image_given(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("image is required: name the container image this task runs")
        return value

    @field_validator("cpus")
    @classmethod
    def _cpus_positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"cpus must be positive, got {value}")
        return value

    @field_validator("memory", "shm_size", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> int | None:
        return parse_size(value)

    @field_validator("mounts", mode="before")
    @classmethod
    def _mounts(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(Mount.parse(m) if isinstance(m, str) else m for m in value)
        return value

    @field_validator("environment", mode="before")
    @classmethod
    def _env_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, str) else _env_str(v) for k, v in value.items()}
        return value

    @field_validator("retry_delay", "max_retry_delay", "execution_timeout", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return timedelta(seconds=value)
        return value


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DagSpec(Spec):
    """A DAG as declared in a DAG file."""

    dag_id: Annotated[str, Field(pattern=ID_PATTERN, max_length=250)]
    fileloc: str = ""
    schedule: Schedule | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    timezone: str = "UTC"
    catchup: bool = True
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    description: str | None = None
    tasks: tuple[TaskSpec, ...] = ()

    def task(self, task_id: str) -> TaskSpec:
        """The task with this id; KeyError if none."""
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        raise KeyError(task_id)

    @property
    def task_ids(self) -> list[str]:
        return [t.task_id for t in self.tasks]

    def downstream_ids(self, task_id: str) -> list[str]:
        """Direct children of a task."""
        return [t.task_id for t in self.tasks if task_id in t.upstream_task_ids]
