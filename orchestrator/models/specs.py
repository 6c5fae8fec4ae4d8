"""Authoring specs: what a DAG file declares, serialized to JSON and stored.

Specs are frozen pydantic models with `extra="forbid"`; they round-trip through JSON unchanged,
which is how the scheduler, web server and CLI read DAGs without importing DAG code.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from orchestrator.models.durations import as_timedelta, bounded
from orchestrator.models.mapping import MappableField, MapSource
from orchestrator.models.notifiers import Notifier, notifier_tuple
from orchestrator.models.secrets import SecretRef
from orchestrator.models.sensors import SensorMode, SensorSpec
from orchestrator.models.states import RunState, TaskState

DEFAULT_RETRY_DELAY = timedelta(minutes=5)
DEFAULT_POOL = "default_pool"
ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
#: Sizes (memory, shm) must be below this: 1024 TiB, far past any machine, within int64.
MAX_SIZE = 1024**5
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
        if value >= MAX_SIZE:
            raise ValueError(f"{field} {value} is too large (at most 1024 TiB)")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"{field} {value!r} is not a size like '512m', '2g' or a byte count")
    number, unit = match.groups()
    scaled = float(number) * _SIZE_UNITS[unit.lower()]
    if not scaled < MAX_SIZE:
        raise ValueError(f"{field} {value!r} is too large (at most 1024 TiB)")
    size = int(scaled)
    if size <= 0:
        raise ValueError(f"{field} must be positive, got {value!r}")
    return size


_CAPABILITY = re.compile(r"^[A-Z][A-Z0-9_]*$")


def capability_name(value: str) -> str:
    """A Linux capability as Docker names it: upper case, without the `CAP_` prefix
    (`net_admin`, `CAP_NET_ADMIN` and `NET_ADMIN` are one capability). ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"a capability is a name such as 'NET_ADMIN', not {value!r}")
    name = value.strip().upper().removeprefix("CAP_")
    if not _CAPABILITY.match(name):
        raise ValueError(f"{value!r} is not a capability name such as 'NET_ADMIN'")
    return name


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


class WeightRule(StrEnum):
    """How a task's effective priority is computed from `priority_weight` (Airflow's names)."""

    DOWNSTREAM = "downstream"  # own weight + all downstream tasks' weights (the default)
    UPSTREAM = "upstream"  # own weight + all upstream tasks' weights
    ABSOLUTE = "absolute"  # own weight only


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
    """A run parameter: a default, an optional JSON type, a description, and constraints
    (`enum`; `minimum`/`maximum` for numbers; `min_length`/`max_length` for strings and
    arrays). Run conf is validated against it (see `models.params`)."""

    default: Any = None
    type: Literal["string", "integer", "number", "boolean", "array", "object", "null"] | None = None
    description: str | None = None
    enum: tuple[Any, ...] | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _constraints_fit_the_type(self) -> ParamSpec:
        bounds = self.minimum is not None or self.maximum is not None
        if bounds and self.type not in ("integer", "number"):
            raise ValueError("minimum and maximum need type 'integer' or 'number'")
        lengths = self.min_length is not None or self.max_length is not None
        if lengths and self.type not in ("string", "array"):
            raise ValueError("min_length and max_length need type 'string' or 'array'")
        if self.enum is not None and not self.enum:
            raise ValueError("enum must list at least one value")
        return self


class CronSchedule(Spec):
    """A cron expression or preset (`@daily`, ...)."""

    kind: Literal["cron"] = "cron"
    expression: str


class DeltaSchedule(Spec):
    """A fixed interval between runs."""

    kind: Literal["delta"] = "delta"
    every: timedelta

    @field_validator("every")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"a schedule interval must be positive, got {value}")
        return bounded(value) or value


Schedule = Annotated[CronSchedule | DeltaSchedule, Field(discriminator="kind")]


class TaskKind(StrEnum):
    """What executes a task: a container, or the scheduler itself (no container, no slot)."""

    CONTAINER = "container"  # runs `image` as a container (the default)
    EMPTY = "empty"  # a no-op, e.g. a join; succeeds at once (Airflow's EmptyOperator)
    LATEST_ONLY = "latest_only"  # skips its direct children unless the run is the latest
    TRIGGER_RUN = "trigger_run"  # creates a run of another DAG (Airflow's TriggerDagRunOperator)
    WAIT_FOR_RUN = "wait_for_run"  # waits for another DAG's task or run (ExternalTaskSensor)


#: States a `WaitForRun` on a task may name, and those one on a whole run may name.
_TASK_STATE_NAMES = frozenset(state.value for state in TaskState)
_RUN_STATE_NAMES = frozenset(state.value for state in RunState)
DEFAULT_POKE_INTERVAL = timedelta(seconds=60)
DEFAULT_WAIT_TIMEOUT = timedelta(days=7)


def _as_timedelta(value: Any) -> Any:
    return as_timedelta(value)


class TriggerRunSpec(Spec):
    """Settings of a `trigger_run` task: which DAG to start, with what, and whether to wait.

    `conf` string values (at any depth), `run_id` and `logical_date` are templates rendered
    with this task's context when the task runs.
    """

    dag_id: Annotated[str, Field(pattern=ID_PATTERN, max_length=250)]
    conf: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = None
    logical_date: str | None = None
    wait: bool = False
    poke_interval: timedelta = DEFAULT_POKE_INTERVAL

    @field_validator("poke_interval", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return _as_timedelta(value)

    @field_validator("poke_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"poke_interval must be positive, got {value}")
        return bounded(value) or value


class WaitForRunSpec(Spec):
    """Settings of a `wait_for_run` task: the other DAG's task (or whole run) to wait for.

    The matching run is the other DAG's run whose logical date equals this run's logical date
    minus `execution_delta`, or the rendered `execution_date` template (an ISO 8601 date).
    """

    dag_id: Annotated[str, Field(pattern=ID_PATTERN, max_length=250)]
    task_id: Annotated[str, Field(pattern=ID_PATTERN, max_length=250)] | None = None
    execution_delta: timedelta | None = None
    execution_date: str | None = None
    allowed_states: tuple[str, ...] = ("success",)
    failed_states: tuple[str, ...] = ("failed", "upstream_failed")
    poke_interval: timedelta = DEFAULT_POKE_INTERVAL
    timeout: timedelta = DEFAULT_WAIT_TIMEOUT

    @field_validator("execution_delta", "poke_interval", "timeout", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return _as_timedelta(value)

    @field_validator("poke_interval", "timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be positive, got {value}")
        return bounded(value) or value

    @field_validator("execution_delta")
    @classmethod
    def _bounded(cls, value: timedelta | None) -> timedelta | None:
        return bounded(value)

    @model_validator(mode="before")
    @classmethod
    def _run_failed_states(cls, data: Any) -> Any:
        """A wait for a whole run fails by default when the run failed (runs have no
        `upstream_failed`)."""
        if isinstance(data, dict) and data.get("task_id") is None:
            return {"failed_states": ("failed",), **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> WaitForRunSpec:
        if self.execution_delta is not None and self.execution_date is not None:
            raise ValueError("give execution_delta or execution_date, not both")
        names = _TASK_STATE_NAMES if self.task_id is not None else _RUN_STATE_NAMES
        what = "task" if self.task_id is not None else "run"
        for field in ("allowed_states", "failed_states"):
            for state in getattr(self, field):
                if state not in names:
                    raise ValueError(
                        f"{field}: {state!r} is not a {what} state; use one of "
                        f"{', '.join(sorted(names))}"
                    )
        if not self.allowed_states:
            raise ValueError("allowed_states must name at least one state")
        both = set(self.allowed_states) & set(self.failed_states)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} cannot be both allowed and failed")
        return self


class TaskSpec(Spec):
    """One task, as declared (templates unrendered).

    Most tasks run a container (`kind="container"`, which needs an `image`). The other kinds
    run inside the scheduler, without a container or a slot, and carry their settings in the
    nested spec named after the kind (`trigger_run`, `wait_for_run`). A container task with
    `branch=True` chooses, by its output, which of its direct children run.
    """

    task_id: Annotated[str, Field(pattern=ID_PATTERN, max_length=250)]
    kind: TaskKind = TaskKind.CONTAINER
    image: str = ""
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
    #: Most processes in the container; None: the operator's default (ORCH_DEFAULT_PIDS_LIMIT).
    pids_limit: int | None = Field(default=None, ge=1)
    #: Run the container privileged (every capability, every device): operator policy decides.
    privileged: bool = False
    #: Linux capabilities to add (`NET_ADMIN`, ...): operator policy decides which may be.
    cap_add: tuple[str, ...] = ()
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    retries: int = Field(default=0, ge=0)
    retry_delay: timedelta = DEFAULT_RETRY_DELAY
    retry_exponential_backoff: bool = False
    max_retry_delay: timedelta | None = None
    execution_timeout: timedelta | None = None
    skip_exit_codes: tuple[int, ...] = ()
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    #: Wait until this task succeeded or was skipped in the DAG's previous run (by logical date).
    depends_on_past: bool = False
    upstream_task_ids: tuple[str, ...] = ()
    group_id: str | None = None
    doc: str | None = None
    branch: bool = False
    trigger_run: TriggerRunSpec | None = None
    wait_for_run: WaitForRunSpec | None = None
    #: Dynamic task mapping: the fields this task expands over (see `models.mapping`).
    expand: dict[MappableField, MapSource] = Field(default_factory=dict)
    sensor: SensorSpec | None = None  # set: a sensor task (see `orchestrator.models.sensors`)
    pool: str = DEFAULT_POOL
    pool_slots: int = 1
    priority_weight: int = Field(default=1, ge=-(2**31), lt=2**31)
    weight_rule: WeightRule = WeightRule.DOWNSTREAM
    max_active_tis_per_dag: int | None = None
    on_success: tuple[Notifier, ...] = ()
    on_failure: tuple[Notifier, ...] = ()
    on_retry: tuple[Notifier, ...] = ()
    sla: timedelta | None = None  # must have succeeded this long after the run was due
    #: Environment variables whose values are secrets, resolved when the container launches.
    secrets: dict[str, SecretRef] = Field(default_factory=dict)

    @field_validator("on_success", "on_failure", "on_retry", mode="before")
    @classmethod
    def _notifiers(cls, value: Any) -> Any:
        return notifier_tuple(value)

    @field_validator("sla", mode="before")
    @classmethod
    def _sla(cls, value: Any) -> Any:
        value = as_timedelta(value)
        if isinstance(value, timedelta) and value <= timedelta(0):
            raise ValueError(f"sla must be a positive duration, got {value.total_seconds():g}s")
        return value

    @model_validator(mode="after")
    def _kind_settings(self) -> TaskSpec:
        if self.kind == TaskKind.CONTAINER:
            if not self.image or not self.image.strip():
                raise ValueError("image is required: name the container image this task runs")
        elif self.image:
            raise ValueError(f"a {self.kind.value} task runs no container: it takes no image")
        if self.branch and self.kind != TaskKind.CONTAINER:
            raise ValueError("branch=True is for container tasks only")
        if self.expand and self.kind != TaskKind.CONTAINER:
            raise ValueError(f"a {self.kind.value} task cannot be mapped: only container tasks")
        for kind, settings in (
            (TaskKind.TRIGGER_RUN, self.trigger_run),
            (TaskKind.WAIT_FOR_RUN, self.wait_for_run),
        ):
            if (self.kind == kind) != (settings is not None):
                raise ValueError(f"`{kind.value}` settings go with kind {kind.value!r} only")
        if self.secrets and self.kind != TaskKind.CONTAINER:
            raise ValueError(f"a {self.kind.value} task runs no container: it takes no secrets")
        both = sorted(set(self.secrets) & set(self.environment))
        if both:
            raise ValueError(
                f"{', '.join(both)} given in both environment and secrets: keep one of them"
            )
        return self

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_refs(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name, ref in value.items():
                if not isinstance(ref, (SecretRef, dict)):
                    # never echo the value: it may be the secret itself, written in by mistake
                    raise ValueError(
                        f"secret {name!r} must be Secret.conn(...), Secret.var(...) or "
                        f"Secret.env(...), not a {type(ref).__name__}; put plain values in "
                        "environment"
                    )
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: dict[str, SecretRef]) -> dict[str, SecretRef]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(
                    f"secret name {name!r} is not an environment variable name (letters, "
                    "digits and '_', not starting with a digit)"
                )
        return value

    @field_validator("pool")
    @classmethod
    def _pool_name(cls, value: str) -> str:
        return check_pool_name(value)

    @field_validator("pool_slots")
    @classmethod
    def _pool_slots_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1 (the slots the task takes), got {value}")
        return value

    @field_validator("max_active_tis_per_dag")
    @classmethod
    def _task_limit_positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"must be at least 1 (or None: unlimited), got {value}")
        return value

    @field_validator("cpus")
    @classmethod
    def _cpus_positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"cpus must be positive, got {value}")
        return value

    @field_validator("cap_add", mode="before")
    @classmethod
    def _capabilities(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = (value,)
        if isinstance(value, (list, tuple)):
            return tuple(dict.fromkeys(capability_name(name) for name in value))
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
        return as_timedelta(value)

    @field_validator("retry_delay", "max_retry_delay", "execution_timeout", "sla")
    @classmethod
    def _bounded(cls, value: timedelta | None) -> timedelta | None:
        return bounded(value)

    @field_validator("sensor")
    @classmethod
    def _not_ready_is_not_a_skip(
        cls, value: SensorSpec | None, info: ValidationInfo
    ) -> SensorSpec | None:
        if value is not None and value.not_ready_exit_code in info.data.get("skip_exit_codes", ()):
            raise ValueError(
                f"not_ready_exit_code {value.not_ready_exit_code} is also in skip_exit_codes:"
                " one exit code cannot mean both 'not yet' and 'skipped'"
            )
        return value


def check_pool_name(name: str) -> str:
    """A pool name as given, or ValueError saying what a pool name may contain."""
    if not re.match(ID_PATTERN, name) or len(name) > 250:
        raise ValueError(
            f"pool name {name!r} may contain only letters, digits, '_', '.' and '-' (at most 250"
            " characters), and must not start with '.' or '-'"
        )
    return name


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
    max_active_tasks: int = 16
    #: Most runs of this DAG in state running at once; more wait queued (oldest first).
    max_active_runs: int = 16
    #: A run still running this long after it started is failed (its containers stopped).
    dagrun_timeout: timedelta | None = None

    @field_validator("dagrun_timeout", mode="before")
    @classmethod
    def _timeout_seconds(cls, value: Any) -> Any:
        return _as_timedelta(value)

    @field_validator("dagrun_timeout")
    @classmethod
    def _timeout_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError(f"must be a positive duration, got {value.total_seconds():g}s")
        return bounded(value)

    @field_validator("max_active_tasks", "max_active_runs")
    @classmethod
    def _max_active_tasks_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    on_success: tuple[Notifier, ...] = ()
    on_failure: tuple[Notifier, ...] = ()
    on_sla_miss: tuple[Notifier, ...] = ()

    @field_validator("on_success", "on_failure", "on_sla_miss", mode="before")
    @classmethod
    def _notifiers(cls, value: Any) -> Any:
        return notifier_tuple(value)

    def task(self, task_id: str) -> TaskSpec:
        """The task with this id; KeyError if none."""
        return self.task_index[task_id]

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_index

    @functools.cached_property
    def task_index(self) -> dict[str, TaskSpec]:
        """The tasks by id, worked out once per spec."""
        return {task.task_id: task for task in self.tasks}

    @functools.cached_property
    def task_ids(self) -> tuple[str, ...]:
        """The task ids in task order, worked out once per spec."""
        return tuple(t.task_id for t in self.tasks)

    def downstream_ids(self, task_id: str) -> list[str]:
        """Direct children of a task."""
        return list(self.downstream_map.get(task_id, ()))

    @functools.cached_property
    def task_positions(self) -> dict[str, int]:
        """Each task's position in the DAG's task order, worked out once per spec."""
        return {task.task_id: n for n, task in enumerate(self.tasks)}

    @functools.cached_property
    def control_task_ids(self) -> frozenset[str]:
        """The tasks that need no container (run by the scheduler itself), worked out once
        per spec."""
        return frozenset(task.task_id for task in self.tasks if task.kind != TaskKind.CONTAINER)

    @functools.cached_property
    def has_poke_sensors(self) -> bool:
        """Whether a sensor task pokes in `poke` mode (holding its slot between pokes)."""
        return any(
            task.sensor is not None and task.sensor.mode == SensorMode.POKE for task in self.tasks
        )

    @functools.cached_property
    def depends_on_past_ids(self) -> tuple[str, ...]:
        """The tasks with `depends_on_past`, in task order, worked out once per spec."""
        return tuple(task.task_id for task in self.tasks if task.depends_on_past)

    @functools.cached_property
    def downstream_map(self) -> dict[str, tuple[str, ...]]:
        """Every task's direct children (in the DAG's task order), worked out once per spec."""
        children: dict[str, list[str]] = {}
        for task in self.tasks:
            for upstream in task.upstream_task_ids:
                children.setdefault(upstream, []).append(task.task_id)
        return {task_id: tuple(ids) for task_id, ids in children.items()}
