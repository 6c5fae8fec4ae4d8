"""Building the template context: each value computed when a template first reads it.

A task's templates read a few names (`{{ ds }}`), while the context offers some thirty, several
of them costly (pendulum dates, formatted strings, views, copies of the conf and of the
outputs). `lazy_context` returns a read-only mapping that computes a value on first read and
keeps it. What is the same for every task instance of a run (its dates, their formats, the
`dag` view, the validated params of tasks declaring none of their own) is computed once per
run and DAG spec and shared; only immutable values are shared (dates, strings, frozen views):
anything a caller could change (params, conf, outputs, mapped values) is a fresh copy per task
instance, as `build_context` always gave.

The values are those `build_context` gives; it is the same mapping read out into a dict.
The one check that can fail, params against their declarations, runs when the context is
built, as before, so a run whose conf no longer fits fails every task, whatever it reads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, cast

import pendulum

from orchestrator.errors import TemplateError
from orchestrator.models.params import ParamsInvalid, validate_params
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import DagSpec, ParamSpec, TaskSpec
from orchestrator.templating.context import (
    MACROS,
    DagRunView,
    Outputs,
    TaskInstanceView,
    TemplateContext,
    defaults,
    format_ds,
    format_ds_nodash,
    format_ts,
    format_ts_nodash,
    format_ts_nodash_with_tz,
    pendulum_or_none,
    shared_dag_view,
    task_view,
)
from orchestrator.templating.secrets import (
    Connections,
    NoSecrets,
    Revealed,
    SecretSource,
    Variables,
)

__all__ = ["CONTEXT_NAMES", "LazyContext", "build_context", "lazy_context", "resolve_params"]

#: Every name of the template context, in `TemplateContext`'s order.
CONTEXT_NAMES: tuple[str, ...] = tuple(TemplateContext.__annotations__)


def resolve_params(dag: DagSpec, task: TaskSpec, conf: Mapping[str, Any]) -> dict[str, Any]:
    """`params`: DAG defaults, then the task's defaults, then the run's conf on top.

    As Airflow does with `dag_run_conf_overrides_params` (its default), every conf key is merged
    in, including keys no param declares. The result is validated against the params'
    declarations (`models.params`; the task's declaration of a name beats the DAG's), so
    templates see validated values; a run whose conf no longer fits (the DAG's params changed
    since it was triggered) fails the task with a TemplateError naming the param. Values are
    copies: nothing the caller holds is shared.
    """
    try:
        return _validated_params(dag.params, task.params, conf)
    except ParamsInvalid as exc:
        raise _params_error(dag, task, exc) from None


def _validated_params(
    dag_params: Mapping[str, ParamSpec],
    task_params: Mapping[str, ParamSpec],
    conf: Mapping[str, Any],
) -> dict[str, Any]:
    params = defaults(dag_params)
    params.update(defaults(task_params))
    params.update(copy.deepcopy(dict(conf)))
    return validate_params({**dag_params, **task_params}, params)


def _params_error(dag: DagSpec, task: TaskSpec, exc: ParamsInvalid) -> TemplateError:
    return TemplateError(
        f"DAG {dag.dag_id!r}, task {task.task_id!r}: the run's params do not fit their"
        f" declaration: {exc}"
    )


class _RunValues:
    """The context values every task instance of one run of one DAG spec sees alike, each
    computed on first read. Holds only values nobody can change (dates, strings, frozen
    views); the params it validates are copied out per task instance."""

    __slots__ = ("_params", "_values", "dag", "run")

    def __init__(self, dag: DagSpec, run: RunInfo) -> None:
        self.dag = dag
        self.run = run
        self._values: dict[str, Any] = {}
        self._params: dict[str, Any] | ParamsInvalid | None = None

    def get(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            value = self._values[name] = _RUN_VALUES[name](self)
            return value

    def params(self, task: TaskSpec) -> dict[str, Any]:
        """The task's validated params, shared by the tasks declaring none of their own (so
        callers copy them before handing them out). Raises TemplateError naming the task."""
        if task.params:
            return resolve_params(self.dag, task, self.run.conf)
        if self._params is None:
            try:
                self._params = _validated_params(self.dag.params, {}, self.run.conf)
            except ParamsInvalid as exc:
                self._params = exc
        if isinstance(self._params, ParamsInvalid):
            raise _params_error(self.dag, task, self._params) from None
        return self._params


def _date_string(
    date_name: str, formatter: Callable[[datetime], str]
) -> Callable[[_RunValues], str | None]:
    def compute(values: _RunValues) -> str | None:
        value = values.get(date_name)
        return formatter(value) if value is not None else None

    return compute


_RUN_VALUES: dict[str, Callable[[_RunValues], Any]] = {
    "logical_date": lambda v: pendulum.instance(v.run.logical_date),
    "execution_date": lambda v: v.get("logical_date"),
    "data_interval_start": lambda v: pendulum.instance(v.run.data_interval_start),
    "data_interval_end": lambda v: pendulum.instance(v.run.data_interval_end),
    "prev_execution_date": lambda v: pendulum_or_none(v.run.prev_logical_date),
    "next_execution_date": lambda v: pendulum_or_none(v.run.next_logical_date),
    "_yesterday": lambda v: v.get("logical_date").subtract(days=1),
    "_tomorrow": lambda v: v.get("logical_date").add(days=1),
    "ds": _date_string("logical_date", format_ds),
    "ds_nodash": _date_string("logical_date", format_ds_nodash),
    "ts": _date_string("logical_date", format_ts),
    "ts_nodash": _date_string("logical_date", format_ts_nodash),
    "ts_nodash_with_tz": _date_string("logical_date", format_ts_nodash_with_tz),
    "prev_ds": _date_string("prev_execution_date", format_ds),
    "prev_ds_nodash": _date_string("prev_execution_date", format_ds_nodash),
    "next_ds": _date_string("next_execution_date", format_ds),
    "next_ds_nodash": _date_string("next_execution_date", format_ds_nodash),
    "yesterday_ds": _date_string("_yesterday", format_ds),
    "yesterday_ds_nodash": _date_string("_yesterday", format_ds_nodash),
    "tomorrow_ds": _date_string("_tomorrow", format_ds),
    "tomorrow_ds_nodash": _date_string("_tomorrow", format_ds_nodash),
    "run_id": lambda v: v.run.run_id,
    "dag": lambda v: shared_dag_view(v.dag),
    "macros": lambda v: MACROS,
}

_RUNS: dict[tuple[int, int], _RunValues] = {}
_RUNS_KEPT = 256


def _run_values(dag: DagSpec, run: RunInfo) -> _RunValues:
    """The shared values of this run and spec, kept for the latest pairs by identity (both
    are frozen, and the entry holds them, so their ids are not reused meanwhile): a caller
    rendering many task instances of a run passes the same two objects for each."""
    key = (id(dag), id(run))
    values = _RUNS.get(key)
    if values is not None and values.dag is dag and values.run is run:
        return values
    values = _RunValues(dag, run)
    if len(_RUNS) >= _RUNS_KEPT:
        _RUNS.pop(next(iter(_RUNS)))
    _RUNS[key] = values
    return values


class LazyContext(Mapping[str, Any]):
    """The template context of one attempt of one task, as a read-only mapping whose values
    are computed when first read (see the module's docstring). Iterating it, or reading it
    out with `dict()`, computes every value."""

    __slots__ = (
        "_map_index",
        "_mapped",
        "_outputs",
        "_outputs_copy",
        "_params",
        "_revealed",
        "_run",
        "_secrets",
        "_task",
        "_try_number",
        "_values",
    )

    def __init__(
        self,
        run: _RunValues,
        task: TaskSpec,
        *,
        try_number: int,
        map_index: int,
        outputs: Mapping[str, Any],
        mapped: Mapping[str, Any] | None,
        secrets: SecretSource,
        revealed: Revealed,
    ) -> None:
        self._run = run
        self._task = task
        self._try_number = try_number
        self._map_index = map_index
        self._outputs = outputs
        self._outputs_copy: dict[str, Any] | None = None
        self._mapped = mapped
        self._secrets = secrets
        self._revealed = revealed
        self._values: dict[str, Any] = {}
        # the one check that can fail: at once, whatever the templates read
        self._params = run.params(task)

    def __getitem__(self, name: str) -> Any:
        if name in _SHARED_NAMES:
            return self._run.get(name)
        try:
            return self._values[name]
        except KeyError:
            pass
        compute = _INSTANCE_VALUES.get(name)
        if compute is None:
            raise KeyError(name)
        value = self._values[name] = compute(self)
        return value

    def __contains__(self, name: object) -> bool:
        return name in _NAMES

    def __iter__(self) -> Iterator[str]:
        return iter(CONTEXT_NAMES)

    def __len__(self) -> int:
        return len(CONTEXT_NAMES)

    def __repr__(self) -> str:
        return f"LazyContext(task {self._task.task_id!r}, run {self._run.run.run_id!r})"

    def _copied_outputs(self) -> dict[str, Any]:
        """One copy of the caller's outputs, shared by `outputs` and `ti` (both read-only)."""
        if self._outputs_copy is None:
            self._outputs_copy = dict(self._outputs)
        return self._outputs_copy

    def _dag_run(self) -> DagRunView:
        run, logical_date = self._run.run, self._run.get("logical_date")
        return DagRunView(
            dag_id=self._run.dag.dag_id,
            run_id=run.run_id,
            run_type=run.run_type,
            conf=copy.deepcopy(run.conf),
            logical_date=logical_date,
            execution_date=logical_date,
            data_interval_start=self._run.get("data_interval_start"),
            data_interval_end=self._run.get("data_interval_end"),
            external_trigger=run.run_type == "manual",
        )

    def _ti(self) -> TaskInstanceView:
        logical_date = self._run.get("logical_date")
        return TaskInstanceView(
            dag_id=self._run.dag.dag_id,
            task_id=self._task.task_id,
            run_id=self._run.run.run_id,
            try_number=self._try_number,
            map_index=self._map_index,
            logical_date=logical_date,
            execution_date=logical_date,
            _outputs=self._copied_outputs(),
        )

    def _key_str(self) -> str:
        dag_id, task_id = self._run.dag.dag_id, self._task.task_id
        return f"{dag_id}__{task_id}__{self._run.get('ds_nodash')}"


_INSTANCE_VALUES: dict[str, Callable[[LazyContext], Any]] = {
    "task": lambda c: task_view(c._run.dag, c._task),
    "params": lambda c: copy.deepcopy(c._params),
    "dag_run": LazyContext._dag_run,
    "ti": LazyContext._ti,
    "task_instance": lambda c: c["ti"],
    "task_instance_key_str": LazyContext._key_str,
    "outputs": lambda c: Outputs(c._copied_outputs(), c._run.dag, c._task.task_id),
    "map_index": lambda c: c._map_index,
    "try_number": lambda c: c._try_number,
    "mapped": lambda c: copy.deepcopy(dict(c._mapped or {})),
    "conn": lambda c: Connections(c._secrets, c._revealed),
    "var": lambda c: Variables(c._secrets, c._revealed),
}

_NAMES = frozenset(CONTEXT_NAMES)
#: The names whose values `_RunValues` computes and shares (the rest are helpers).
_SHARED_NAMES = _NAMES.intersection(_RUN_VALUES)


def lazy_context(
    dag: DagSpec,
    task: TaskSpec,
    run: RunInfo,
    *,
    try_number: int,
    map_index: int = -1,
    outputs: Mapping[str, Any],
    mapped: Mapping[str, Any] | None = None,
    secrets: SecretSource | None = None,
    revealed: Revealed | None = None,
) -> LazyContext:
    """The Jinja context for one attempt of one task in one run, each value computed when
    first read; the arguments are `build_context`'s. `outputs` and `mapped` are read when a
    template first uses them: do not change them while the context is in use."""
    return LazyContext(
        _run_values(dag, run),
        task,
        try_number=try_number,
        map_index=map_index,
        outputs=outputs,
        mapped=mapped,
        secrets=secrets if secrets is not None else NoSecrets(),
        revealed=revealed if revealed is not None else Revealed(),
    )


def build_context(
    dag: DagSpec,
    task: TaskSpec,
    run: RunInfo,
    *,
    try_number: int,
    map_index: int = -1,
    outputs: Mapping[str, Any],
    mapped: Mapping[str, Any] | None = None,
    secrets: SecretSource | None = None,
    revealed: Revealed | None = None,
) -> TemplateContext:
    """The Jinja context for one attempt of one task in one run, every value computed.

    `outputs` maps task ids to the outputs (JSON values) of tasks of this run that have one
    (a mapped task's: the list of its instances' outputs); `map_index` is -1 for an unmapped
    task, as in Airflow; `mapped` holds a mapped instance's values by expanded field.
    `secrets` looks up `conn` and `var` (without one, using them is an error); the secret
    values templates read are added to `revealed`. Rendering uses `lazy_context`, which
    gives the same values, each only when read.
    """
    context = lazy_context(
        dag,
        task,
        run,
        try_number=try_number,
        map_index=map_index,
        outputs=outputs,
        mapped=mapped,
        secrets=secrets,
        revealed=revealed,
    )
    return cast(TemplateContext, dict(context))
