"""`DAG`: a named graph of container tasks with a schedule, declared in a DAG file."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta, tzinfo
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from orchestrator.errors import DagDefinitionError
from orchestrator.models.graph import topological_order
from orchestrator.models.specs import DagSpec
from orchestrator.sdk import context
from orchestrator.sdk.branching import with_join_rules
from orchestrator.sdk.convert import (
    DateArg,
    ScheduleArg,
    check_required_params,
    closest,
    describe_validation_error,
    timezone_name,
    to_param_specs,
    to_schedule,
    to_utc,
)
from orchestrator.sdk.notifiers import NotifierArg, to_notifiers
from orchestrator.sdk.sensors import SENSOR_ARGUMENTS

if TYPE_CHECKING:
    from orchestrator.sdk.group import TaskGroup
    from orchestrator.sdk.task import ContainerTask

#: Keys `default_args` may hold: every ContainerTask keyword except `dag`.
TASK_ARGUMENTS = frozenset(
    {
        "image",
        "command",
        "entrypoint",
        "environment",
        "mounts",
        "working_dir",
        "user",
        "network",
        "cpus",
        "memory",
        "shm_size",
        "pids_limit",
        "privileged",
        "cap_add",
        "pull_policy",
        "retries",
        "retry_delay",
        "retry_exponential_backoff",
        "max_retry_delay",
        "execution_timeout",
        "skip_exit_codes",
        "params",
        "trigger_rule",
        "depends_on_past",
        "doc",
        "branch",
        *SENSOR_ARGUMENTS,
        "pool",
        "pool_slots",
        "priority_weight",
        "weight_rule",
        "max_active_tis_per_dag",
        "on_success",
        "on_failure",
        "on_retry",
        "sla",
        "secrets",
    }
)


class DAG:
    """A pipeline: container tasks, their dependencies and when runs happen.

    Use it as a context manager (tasks created in the block belong to it) or as a decorator
    on a function that declares the tasks; the function runs at once and its name is bound to
    the DAG::

        with DAG("etl", schedule="@daily", start_date=datetime(2024, 1, 1)) as dag:
            ContainerTask("extract", image="alpine") >> ContainerTask("load", image="alpine")

        @DAG("report", schedule=timedelta(hours=6), default_args={"image": "python:3.12"})
        def report():
            ContainerTask("build", command=["python", "-m", "report"])

    `schedule` is a cron expression, a preset (`@once`, `@hourly`, `@daily`, `@weekly`,
    `@monthly`, `@yearly`), a `timedelta`, or None for manual runs only. Naive `start_date`
    and `end_date` are read in `timezone` and stored in UTC. `default_args` are keyword
    arguments given to every task unless the task passes its own. `params` maps names to
    defaults or `Param`s. With the decorator form, the function's docstring is the DAG's
    description unless one is given. `max_active_tasks` caps the task instances of this DAG
    that hold a slot (queued or running) at once, over all its runs. `max_active_runs` caps
    its runs in state running (the others wait queued, oldest logical date first);
    `dagrun_timeout` (a timedelta or seconds) fails a run still running that long after it
    started, stopping its containers. A scheduled DAG needs a `start_date`; `catchup=True`
    makes a run for every interval missed since then, `catchup=False` only the latest.

    `on_success` and `on_failure` notify when a run finishes in that state, `on_sla_miss` when
    a task misses its `sla`: each takes a notifier (`Webhook`, `Command`, `ContainerHook`) or
    a list of them. Task-level `on_success`, `on_failure`, `on_retry` and `sla` go on tasks
    or in `default_args`.
    """

    def __init__(
        self,
        dag_id: str,
        schedule: ScheduleArg = None,
        start_date: DateArg = None,
        end_date: DateArg = None,
        catchup: bool = True,
        default_args: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        description: str | None = None,
        timezone: str | tzinfo = "UTC",
        max_active_tasks: int = 16,
        max_active_runs: int = 16,
        dagrun_timeout: timedelta | float | None = None,
        on_success: NotifierArg = None,
        on_failure: NotifierArg = None,
        on_sla_miss: NotifierArg = None,
    ) -> None:
        where = f"DAG '{dag_id}'"
        tz = timezone_name(where, timezone)
        start = to_utc(where, "start_date", start_date, tz)
        end = to_utc(where, "end_date", end_date, tz)
        if schedule is not None and start is None:
            raise DagDefinitionError(
                f"{where}: a scheduled DAG needs a start_date (where its first data interval"
                " begins), e.g. start_date=datetime(2026, 1, 1); or use schedule=None for"
                " manual runs only"
            )
        if start is not None and end is not None and end < start:
            raise DagDefinitionError(
                f"{where}: end_date {end.isoformat()} is before start_date {start.isoformat()}"
            )
        self.default_args: dict[str, Any] = _check_default_args(where, default_args)
        try:
            self._spec = DagSpec(
                dag_id=dag_id,
                schedule=to_schedule(where, schedule),
                start_date=start,
                end_date=end,
                timezone=tz,
                catchup=catchup,
                params=to_param_specs(where, params),
                tags=() if tags is None else (tags,) if isinstance(tags, str) else tags,
                description=description,
                max_active_tasks=max_active_tasks,
                max_active_runs=max_active_runs,
                dagrun_timeout=dagrun_timeout,
                on_success=to_notifiers(where, "on_success", on_success),
                on_failure=to_notifiers(where, "on_failure", on_failure),
                on_sla_miss=to_notifiers(where, "on_sla_miss", on_sla_miss),
            )
        except ValidationError as exc:
            raise DagDefinitionError(describe_validation_error(where, exc)) from None
        check_required_params(where, self._spec.schedule is not None, self._spec.params)
        self._tasks: dict[str, ContainerTask] = {}
        self._groups: dict[str, TaskGroup] = {}
        self.declared_at = context.caller_location()
        context.register_dag(self)

    @property
    def dag_id(self) -> str:
        return self._spec.dag_id

    @property
    def tasks(self) -> list[ContainerTask]:
        """Tasks in declaration order."""
        return list(self._tasks.values())

    @property
    def task_dict(self) -> dict[str, ContainerTask]:
        return dict(self._tasks)

    def get_task(self, task_id: str) -> ContainerTask:
        """The task with this (group-prefixed) id; DagDefinitionError if none."""
        try:
            return self._tasks[task_id]
        except KeyError:
            raise DagDefinitionError(
                f"DAG '{self.dag_id}' has no task '{task_id}'{closest(task_id, self._tasks)}"
            ) from None

    def add_task(self, task: ContainerTask) -> None:
        """Register a task; ContainerTask calls this. Task and group ids must be unique."""
        existing = self._tasks.get(task.task_id)
        if existing is not None:
            raise DagDefinitionError(
                f"DAG '{self.dag_id}' already has a task '{task.task_id}' (declared at "
                f"{existing.declared_at}); a second task '{task.task_id}' is declared at "
                f"{task.declared_at}. Task ids must be unique within a DAG."
            )
        if task.task_id in self._groups:
            raise DagDefinitionError(
                f"DAG '{self.dag_id}': task id '{task.task_id}' (declared at "
                f"{task.declared_at}) is already the id of a task group"
            )
        self._tasks[task.task_id] = task

    def add_group(self, group: TaskGroup) -> None:
        """Register a task group; TaskGroup calls this."""
        if group.group_id in self._groups or group.group_id in self._tasks:
            kind = "task group" if group.group_id in self._groups else "task"
            raise DagDefinitionError(
                f"DAG '{self.dag_id}' already has a {kind} '{group.group_id}'; the task group "
                f"declared at {group.declared_at} needs another id"
            )
        self._groups[group.group_id] = group

    def to_spec(self, fileloc: str = "") -> DagSpec:
        """The validated, serializable form: tasks in topological order (ties in declaration
        order), upstream ids sorted, joins after branches given their rule (see `branching`).
        Raises DagDefinitionError on a cycle."""
        draft = self._spec.model_copy(
            update={"fileloc": fileloc, "tasks": tuple(t.to_spec() for t in self._tasks.values())}
        )
        by_id = {task.task_id: task for task in draft.tasks}
        ordered = tuple(by_id[task_id] for task_id in topological_order(draft))
        spec = self._spec.model_copy(update={"fileloc": fileloc, "tasks": ordered})
        explicit = {t.task_id for t in self._tasks.values() if t.trigger_rule_given}
        return with_join_rules(spec, explicit)

    def __enter__(self) -> DAG:
        context.push_dag(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context.pop_dag(self)

    def __call__(self, declare: Callable[[], object]) -> DAG:
        """Decorator form: run `declare` inside this DAG and return the DAG."""
        if self._spec.description is None and declare.__doc__:
            self._spec = self._spec.model_copy(update={"description": declare.__doc__.strip()})
        with self:
            declare()
        return self

    def __repr__(self) -> str:
        return f"<DAG {self.dag_id!r}: {len(self._tasks)} tasks>"


def _check_default_args(where: str, default_args: Mapping[str, Any] | None) -> dict[str, Any]:
    if default_args is None:
        return {}
    if not isinstance(default_args, Mapping):
        raise DagDefinitionError(
            f"{where}: default_args must be a dict, not {type(default_args).__name__}"
        )
    for key in default_args:
        if key not in TASK_ARGUMENTS:
            raise DagDefinitionError(
                f"{where}: unknown key '{key}' in default_args{closest(str(key), TASK_ARGUMENTS)}"
                f"; valid keys are the task arguments: {', '.join(sorted(TASK_ARGUMENTS))}"
            )
    return dict(default_args)
