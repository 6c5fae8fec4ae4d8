"""`ContainerTask` (alias `DockerOperator`): one step of a DAG, run as a container."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

from pydantic import ValidationError

from orchestrator.errors import DagDefinitionError
from orchestrator.models.secrets import SecretRef
from orchestrator.models.specs import (
    ID_PATTERN,
    Mount,
    PullPolicy,
    TaskSpec,
    TriggerRule,
    WeightRule,
)
from orchestrator.sdk import context
from orchestrator.sdk.convert import closest, describe_validation_error, to_param_specs
from orchestrator.sdk.dag import DAG, TASK_ARGUMENTS
from orchestrator.sdk.deps import DependencyMixin
from orchestrator.sdk.mapping import PartialTask, TaskOutput
from orchestrator.sdk.notifiers import TASK_NOTIFIER_ARGUMENTS, NotifierArg, to_notifiers
from orchestrator.sdk.sensors import take_sensor_spec

if TYPE_CHECKING:
    from orchestrator.sdk.group import TaskGroup


class TaskArgs(TypedDict, total=False):
    """The keyword arguments of ContainerTask (and the keys `default_args` may hold)."""

    image: str
    command: str | Sequence[str] | None
    entrypoint: str | Sequence[str] | None
    environment: Mapping[str, object] | None
    mounts: Sequence[str | Mount] | None
    working_dir: str | None
    user: str | None
    network: str | None
    cpus: float | None
    memory: int | str | None
    shm_size: int | str | None
    pids_limit: int | None
    privileged: bool
    cap_add: Sequence[str] | None
    pull_policy: PullPolicy | Literal["if_not_present", "always", "never"]
    retries: int
    retry_delay: timedelta | float
    retry_exponential_backoff: bool
    max_retry_delay: timedelta | float | None
    execution_timeout: timedelta | float | None
    skip_exit_codes: Sequence[int]
    params: Mapping[str, Any] | None
    trigger_rule: TriggerRule | str
    depends_on_past: bool
    doc: str | None
    branch: bool
    sensor: bool
    poke_interval: timedelta | float | None
    timeout: timedelta | float | None
    mode: Literal["poke", "reschedule"] | None
    not_ready_exit_code: int | None
    soft_fail: bool | None
    pool: str
    pool_slots: int
    priority_weight: int
    weight_rule: WeightRule | Literal["downstream", "upstream", "absolute"]
    max_active_tis_per_dag: int | None
    on_success: NotifierArg
    on_failure: NotifierArg
    on_retry: NotifierArg
    sla: timedelta | float | None
    secrets: Mapping[str, SecretRef] | None
    dag: DAG | None


#: Arguments whose spec field takes no None: passing None means "not given", so the DAG's
#: default_args (or the built-in default) apply.
_NONE_MEANS_UNSET = frozenset(
    {
        "image",
        "environment",
        "mounts",
        "privileged",
        "cap_add",
        "pull_policy",
        "retries",
        "retry_delay",
        "retry_exponential_backoff",
        "skip_exit_codes",
        "params",
        "trigger_rule",
        "branch",
        "depends_on_past",
        "pool",
        "pool_slots",
        "priority_weight",
        "weight_rule",
        "secrets",
    }
)


class ContainerTask(DependencyMixin):
    """A task that runs `image` (with `command`, `environment`, `mounts`, ...) as a container.

    Created inside `with DAG(...)` (or with `dag=`), it registers itself in that DAG, and in
    the enclosing TaskGroup if any, whose id then prefixes its own. Keyword arguments not
    given fall back to the DAG's `default_args`, then to the defaults of `TaskSpec`; an
    explicit argument always wins, and `environment`, `mounts` and `params` given on the task
    replace (do not merge with) those in `default_args`. `command`, `environment` and mount
    sources may hold templates, rendered per run. Mounts are `Mount`s or Docker's
    `"src:dst[:ro]"` shorthand. Numbers of seconds are accepted for the timedelta arguments.
    With `branch=True` the task's output (a task id or a list of them) names the direct
    children that run; the others are skipped.

    With `sensor=True` the image is a one-shot check that the scheduler repeats: see
    `orchestrator.sdk.sensors` for `poke_interval`, `timeout`, `mode`, `not_ready_exit_code`
    and `soft_fail`.
    """

    def __init__(self, task_id: str, **kwargs: Unpack[TaskArgs]) -> None:
        given: dict[str, Any] = dict(kwargs)
        explicit_dag = given.pop("dag", None)
        dag, group, full_id = place_task(task_id, explicit_dag, given, TASK_ARGUMENTS)
        where = f"task '{full_id}' in DAG '{dag.dag_id}'"

        fields = {
            name: value
            for source in (dag.default_args, given)
            for name, value in source.items()
            if value is not None or name not in _NONE_MEANS_UNSET
        }
        if fields.get("image") is None:
            raise DagDefinitionError(
                f"{where} has no image: pass image=... or set 'image' in the DAG's default_args"
            )
        fields["params"] = to_param_specs(where, fields.get("params"))
        fields["sensor"] = take_sensor_spec(where, fields, given)
        for name in TASK_NOTIFIER_ARGUMENTS:
            fields[name] = to_notifiers(where, name, fields.get(name))
        try:
            self.spec = TaskSpec(
                task_id=full_id,
                group_id=group.group_id if group is not None else None,
                **fields,
            )
        except ValidationError as exc:
            message = describe_validation_error(where, exc)
            inherited = sorted(
                {
                    name
                    for problem in exc.errors()
                    if (name := str(problem["loc"][0] if problem["loc"] else ""))
                    in dag.default_args
                    and name not in given
                }
            )
            if inherited:
                message += f"\n({', '.join(inherited)} came from the DAG's default_args)"
            raise DagDefinitionError(message) from None
        self.trigger_rule_given = "trigger_rule" in fields
        self._attach(dag, group)

    def _attach(self, dag: DAG, group: TaskGroup | None) -> None:
        """Register this task (its `spec` already made) in its DAG and task group."""
        self.dag = dag
        self.group = group
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        self.declared_at = context.caller_location()
        dag.add_task(self)
        if group is not None:
            group.add_task(self)

    @classmethod
    def partial(cls, task_id: str, **kwargs: Unpack[TaskArgs]) -> PartialTask:
        """Start a mapped task: the arguments shared by every instance. Finish it with
        `.expand(field=items)`; see `orchestrator.sdk.mapping`."""
        for name in kwargs:
            if name not in TASK_ARGUMENTS and name != "dag":
                raise DagDefinitionError(
                    f"task '{task_id}': partial(): unknown argument '{name}'"
                    f"{closest(name, TASK_ARGUMENTS)}"
                )
        return PartialTask(task_id, dict(kwargs))

    @property
    def output(self) -> TaskOutput:
        """A reference to this task's output, to map over: `expand(item=task.output)`."""
        return TaskOutput(self)

    @property
    def task_id(self) -> str:
        """The DAG-wide id, prefixed with the ids of enclosing task groups."""
        return self.spec.task_id

    def roots(self) -> list[ContainerTask]:
        return [self]

    def leaves(self) -> list[ContainerTask]:
        return [self]

    def add_edge_to(self, downstream: ContainerTask) -> None:
        """Make `downstream` depend on this task (both must be in the same DAG)."""
        if downstream.dag is not self.dag:
            raise DagDefinitionError(
                f"cannot make task '{downstream.task_id}' of DAG '{downstream.dag.dag_id}' "
                f"depend on task '{self.task_id}' of DAG '{self.dag.dag_id}': dependencies "
                "connect tasks of one DAG"
            )
        self.downstream_task_ids.add(downstream.task_id)
        downstream.upstream_task_ids.add(self.task_id)

    def to_spec(self) -> TaskSpec:
        """The task's spec with its upstream ids, sorted."""
        return self.spec.model_copy(
            update={"upstream_task_ids": tuple(sorted(self.upstream_task_ids))}
        )

    def __repr__(self) -> str:
        return f"<ContainerTask {self.task_id!r} image={self.spec.image!r}>"


DockerOperator = ContainerTask


def place_task(
    task_id: str, explicit_dag: DAG | None, given: Mapping[str, object], allowed: Iterable[str]
) -> tuple[DAG, TaskGroup | None, str]:
    """The DAG, task group and DAG-wide id of a task being declared, after checking its
    argument names against `allowed` and its id's characters."""
    dag = explicit_dag or context.current_dag()
    where = f"task '{task_id}'" + (f" in DAG '{dag.dag_id}'" if dag is not None else "")
    names = frozenset(allowed)
    for name in given:
        if name not in names:
            raise DagDefinitionError(f"{where}: unknown argument '{name}'{closest(name, names)}")
    if dag is None:
        raise DagDefinitionError(
            f"{where} is not in a DAG: create it inside `with DAG(...):` or pass dag="
        )
    if not isinstance(task_id, str) or not re.match(ID_PATTERN, task_id):
        raise DagDefinitionError(
            f"DAG '{dag.dag_id}': task id {task_id!r} may contain only letters, digits, "
            "'_', '.' and '-', and must not start with '.' or '-'"
        )
    group = context.current_group()
    if group is not None and group.dag is not dag:
        group = None
    full_id = group.child_id(task_id) if group is not None else task_id
    return dag, group, full_id


"""Alias of ContainerTask for readers coming from Airflow."""
