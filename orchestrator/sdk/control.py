"""Tasks the scheduler runs itself, without a container or a slot.

`EmptyTask` (Airflow's EmptyOperator), `LatestOnly` (LatestOnlyOperator), `TriggerRun`
(TriggerDagRunOperator) and `WaitForRun` (ExternalTaskSensor). They connect with `>>` like
container tasks. Of the DAG's `default_args` they take only `trigger_rule` and
`execution_timeout`; `retries` do not apply (a failed control task stays failed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.errors import DagDefinitionError
from orchestrator.models.specs import (
    TaskKind,
    TaskSpec,
    TriggerRule,
    TriggerRunSpec,
    WaitForRunSpec,
)
from orchestrator.sdk import context
from orchestrator.sdk.convert import describe_validation_error
from orchestrator.sdk.dag import DAG
from orchestrator.sdk.task import ContainerTask, place_task

#: The `default_args` keys control tasks take.
_INHERITED = ("trigger_rule", "execution_timeout")


class _ControlTask(ContainerTask):
    """A task with no container: the scheduler decides its outcome within its own pass."""

    def __init__(
        self,
        task_id: str,
        kind: TaskKind,
        *,
        dag: DAG | None,
        trigger_rule: TriggerRule | str | None,
        doc: str | None,
        execution_timeout: timedelta | float | None = None,
        settings: tuple[str, type[BaseModel], Mapping[str, Any]] | None = None,
    ) -> None:
        owner, group, full_id = place_task(task_id, dag, {}, ())
        where = f"task '{full_id}' in DAG '{owner.dag_id}'"
        fields: dict[str, Any] = {
            name: owner.default_args[name]
            for name in _INHERITED
            if owner.default_args.get(name) is not None
        }
        own = {"trigger_rule": trigger_rule, "doc": doc, "execution_timeout": execution_timeout}
        fields.update({name: value for name, value in own.items() if value is not None})
        if settings is not None:
            name, model, values = settings
            try:
                fields[name] = model.model_validate(dict(values))
            except ValidationError as exc:
                raise DagDefinitionError(describe_validation_error(where, exc)) from None
        try:
            self.spec = TaskSpec(
                task_id=full_id,
                kind=kind,
                group_id=group.group_id if group is not None else None,
                **fields,
            )
        except ValidationError as exc:
            raise DagDefinitionError(describe_validation_error(where, exc)) from None
        self.trigger_rule_given = "trigger_rule" in fields
        self._attach(owner, group)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_id!r}>"


class EmptyTask(_ControlTask):
    """A task that does nothing and succeeds at once: a join, a start or an end marker.

    It runs no container and takes no slot; its trigger rule works as for any task.
    """

    def __init__(
        self,
        task_id: str,
        *,
        trigger_rule: TriggerRule | str | None = None,
        doc: str | None = None,
        dag: DAG | None = None,
    ) -> None:
        super().__init__(task_id, TaskKind.EMPTY, dag=dag, trigger_rule=trigger_rule, doc=doc)


class LatestOnly(_ControlTask):
    """Skips its direct downstream tasks unless the run is the latest scheduled interval.

    In a scheduled or backfill run whose interval is not the latest (catch-up, backfill) it
    succeeds and skips its direct children (skips then propagate as usual). Manual runs are
    never skipped. As Airflow's LatestOnlyOperator.
    """

    def __init__(
        self,
        task_id: str,
        *,
        trigger_rule: TriggerRule | str | None = None,
        doc: str | None = None,
        dag: DAG | None = None,
    ) -> None:
        super().__init__(task_id, TaskKind.LATEST_ONLY, dag=dag, trigger_rule=trigger_rule, doc=doc)


class TriggerRun(_ControlTask):
    """Creates a run of DAG `dag_id`, as Airflow's TriggerDagRunOperator.

    The run is a manual run with id `manual__<trigger time>` unless `run_id` is given; `conf`
    (whose string values are templates), `run_id` and `logical_date` are rendered with this
    task's context. The task's output is `{"dag_id", "run_id", "logical_date"}` of the new
    run. With `wait=True` the task waits (holding no slot, checking every `poke_interval`)
    and succeeds or fails with the triggered run; `execution_timeout` bounds that wait.
    """

    def __init__(
        self,
        task_id: str,
        *,
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        logical_date: str | datetime | None = None,
        wait: bool = False,
        poke_interval: timedelta | float = 60,
        execution_timeout: timedelta | float | None = None,
        trigger_rule: TriggerRule | str | None = None,
        doc: str | None = None,
        dag: DAG | None = None,
    ) -> None:
        conf = dict(conf or {})
        try:
            json.dumps(conf)
        except (TypeError, ValueError):
            raise DagDefinitionError(
                f"{_where(task_id, dag)}: TriggerRun conf must be JSON (strings, numbers, lists, "
                f"dicts), got {conf!r}"
            ) from None
        settings = {
            "dag_id": dag_id,
            "conf": conf,
            "run_id": run_id,
            "logical_date": logical_date.isoformat()
            if isinstance(logical_date, datetime)
            else logical_date,
            "wait": wait,
            "poke_interval": poke_interval,
        }
        super().__init__(
            task_id,
            TaskKind.TRIGGER_RUN,
            dag=dag,
            trigger_rule=trigger_rule,
            doc=doc,
            execution_timeout=execution_timeout,
            settings=("trigger_run", TriggerRunSpec, settings),
        )


class WaitForRun(_ControlTask):
    """Waits for another DAG's task (or whole run) to succeed, as Airflow's ExternalTaskSensor.

    It looks at the other DAG's run whose logical date equals this run's logical date minus
    `execution_delta` (default: the same logical date), or the rendered `execution_date`
    template. It succeeds once the awaited task (`external_task_id`; without one, the run) is
    in `allowed_states`, fails once it is in `failed_states` or after `timeout`, and between
    checks (every `poke_interval`) holds no slot.

    `execution_date_fn` (a Python function) is refused: the scheduler never runs DAG code.
    Write the date as a template instead, e.g.
    `execution_date="{{ (logical_date - macros.timedelta(hours=1)).isoformat() }}"`.
    """

    def __init__(
        self,
        task_id: str,
        *,
        dag_id: str | None = None,
        external_task_id: str | None = None,
        external_dag_id: str | None = None,
        task_id_to_wait: str | None = None,
        execution_delta: timedelta | float | None = None,
        execution_date: str | None = None,
        execution_date_fn: Callable[..., Any] | None = None,
        allowed_states: Iterable[str] | None = None,
        failed_states: Iterable[str] | None = None,
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float = timedelta(days=7),
        trigger_rule: TriggerRule | str | None = None,
        doc: str | None = None,
        dag: DAG | None = None,
    ) -> None:
        where = _where(task_id, dag)
        if execution_date_fn is not None:
            raise DagDefinitionError(
                f"{where}: WaitForRun takes no execution_date_fn: the scheduler never runs "
                "Python from DAG files, and the date depends on each run. Give a template "
                'instead, rendered per run, e.g. execution_date="{{ (logical_date - '
                'macros.timedelta(hours=1)).isoformat() }}", or use execution_delta='
            )
        if dag_id is not None and external_dag_id is not None:
            raise DagDefinitionError(f"{where}: give dag_id or external_dag_id, not both")
        if external_task_id is not None and task_id_to_wait is not None:
            raise DagDefinitionError(f"{where}: give external_task_id or task_id_to_wait, not both")
        other_dag = dag_id if dag_id is not None else external_dag_id
        if other_dag is None:
            raise DagDefinitionError(f"{where}: WaitForRun needs dag_id, the DAG to wait for")
        settings: dict[str, Any] = {
            "dag_id": other_dag,
            "task_id": external_task_id if external_task_id is not None else task_id_to_wait,
            "execution_delta": execution_delta,
            "execution_date": execution_date,
            "poke_interval": poke_interval,
            "timeout": timeout,
        }
        if allowed_states is not None:
            settings["allowed_states"] = _states(where, "allowed_states", allowed_states)
        if failed_states is not None:
            settings["failed_states"] = _states(where, "failed_states", failed_states)
        super().__init__(
            task_id,
            TaskKind.WAIT_FOR_RUN,
            dag=dag,
            trigger_rule=trigger_rule,
            doc=doc,
            settings=("wait_for_run", WaitForRunSpec, settings),
        )


def _where(task_id: str, dag: DAG | None) -> str:
    owner = dag or context.current_dag()
    return f"task '{task_id}'" + (f" in DAG '{owner.dag_id}'" if owner is not None else "")


def _states(where: str, field: str, states: Iterable[str]) -> tuple[str, ...]:
    if isinstance(states, str):
        raise DagDefinitionError(f"{where}: {field} must be a list of states, not a string")
    return tuple(str(getattr(state, "value", state)) for state in states)
