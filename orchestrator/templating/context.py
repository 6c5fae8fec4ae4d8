"""The template context: Airflow 2's names and meanings, built from the specs and one run
(by `orchestrator.templating.lazy`; this module holds the names' types and views).

Dates are pendulum `DateTime`s in the zone the `RunInfo` carries (the scheduler passes UTC, so
`ds` is the UTC date, as in Airflow). Views of the DAG, task, run and task instance are frozen
snapshots: a template can read them but not change anything the caller holds.

Two ways to read an upstream task's output (the JSON value it wrote to `ORCH_OUTPUT_PATH`):

- `outputs.extract` / `outputs["task-id"]`: strict. A task without an output is an error that
  names the task, so a typo or a missing dependency fails the render instead of passing `None`.
- `ti.xcom_pull(task_ids="extract")`: Airflow's forgiving form; `None` (or `default`) for a task
  without an output, and a list (in the order asked) for a list of task ids.

A mapped task's output is the list of its instances' outputs, in map-index order (None for an
instance without one). A mapped instance sees its own values as `mapped` (`{{ mapped.item }}`).

Connections and variables: `conn.my_db.host`, `var.value.x`, `var.json.x.field`, looked up
(lazily) through the `SecretSource` the caller passes; see `orchestrator.templating.secrets`.

Not provided on purpose: Airflow's `conf` (its configuration) and the non-deterministic macros
(`time`, `uuid`, `random`): rendering the same attempt twice must give the same result.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import pendulum

from orchestrator.errors import TemplateError
from orchestrator.models.specs import CronSchedule, DagSpec, ParamSpec, TaskSpec
from orchestrator.templating.secrets import Connections, Variables

__all__ = [
    "FILTERS",
    "RETURN_VALUE_KEY",
    "DagRunView",
    "DagView",
    "Macros",
    "Outputs",
    "TaskInstanceView",
    "TaskView",
    "TemplateContext",
    "dag_folder",
    "format_ds",
    "format_ds_nodash",
    "format_ts",
    "format_ts_nodash",
    "format_ts_nodash_with_tz",
]

#: The only XCom key there is: a task has one output.
RETURN_VALUE_KEY = "return_value"


def format_ds(value: datetime) -> str:
    """`2026-03-14`: the date part, in the datetime's own zone."""
    return value.strftime("%Y-%m-%d")


def format_ds_nodash(value: datetime) -> str:
    """`20260314`."""
    return value.strftime("%Y%m%d")


def format_ts(value: datetime) -> str:
    """`2026-03-14T00:00:00+00:00`: ISO 8601 with the offset."""
    return value.isoformat()


def format_ts_nodash(value: datetime) -> str:
    """`20260314T000000`: no offset, no fraction of a second."""
    return value.strftime("%Y%m%dT%H%M%S")


def format_ts_nodash_with_tz(value: datetime) -> str:
    """`20260314T000000+0000`; unlike Airflow, a negative offset keeps its minus sign."""
    return value.strftime("%Y%m%dT%H%M%S%z")


#: Airflow's date filters, e.g. `{{ data_interval_end | ds }}`.
FILTERS = {
    "ds": format_ds,
    "ds_nodash": format_ds_nodash,
    "ts": format_ts,
    "ts_nodash": format_ts_nodash,
    "ts_nodash_with_tz": format_ts_nodash_with_tz,
}


class Macros:
    """`macros.*`: Airflow's deterministic macros."""

    datetime = datetime
    timedelta = timedelta
    date = date

    @staticmethod
    def ds_add(ds: str, days: int) -> str:
        """Add (or subtract) days to a `YYYY-MM-DD` string: `ds_add('2026-03-14', -1)`."""
        if not days:
            return str(ds)
        shifted = datetime.strptime(str(ds), "%Y-%m-%d") + timedelta(days=days)
        return shifted.strftime("%Y-%m-%d")

    @staticmethod
    def ds_format(ds: str, input_format: str, output_format: str) -> str:
        """Reformat a date string: `ds_format('2026-03-14', '%Y-%m-%d', '%d/%m/%Y')`."""
        return datetime.strptime(str(ds), input_format).strftime(output_format)


MACROS = Macros()


@dataclass(frozen=True)
class DagView:
    """`dag`: the DAG as declared."""

    dag_id: str
    description: str | None
    tags: tuple[str, ...]
    fileloc: str
    folder: str
    timezone: str
    schedule: str | None
    start_date: pendulum.DateTime | None
    end_date: pendulum.DateTime | None
    catchup: bool
    params: dict[str, Any]
    task_ids: tuple[str, ...]


@dataclass(frozen=True)
class TaskView:
    """`task`: the task as declared (its templated fields unrendered)."""

    task_id: str
    dag_id: str
    image: str
    command: str | tuple[str, ...] | None
    entrypoint: str | tuple[str, ...] | None
    environment: dict[str, str]
    working_dir: str | None
    retries: int
    trigger_rule: str
    upstream_task_ids: tuple[str, ...]
    downstream_task_ids: tuple[str, ...]
    group_id: str | None
    doc: str | None
    params: dict[str, Any]


@dataclass(frozen=True)
class DagRunView:
    """`dag_run`: the run being rendered for."""

    dag_id: str
    run_id: str
    run_type: str
    conf: dict[str, Any]
    logical_date: pendulum.DateTime
    execution_date: pendulum.DateTime
    data_interval_start: pendulum.DateTime
    data_interval_end: pendulum.DateTime
    external_trigger: bool


class Outputs:
    """`outputs`: upstream tasks' outputs by task id, strict about missing ones.

    `outputs.extract` and `outputs["extract-2"]` give the JSON value the task wrote; a task with
    no output raises a `TemplateError` naming it and saying why. Use the item form for ids that
    are not identifiers (`-`, `.`) or that start with `_`.
    """

    __slots__ = ("_dag", "_task_id", "_values")

    def __init__(self, values: Mapping[str, Any], dag: DagSpec, task_id: str) -> None:
        self._values = dict(values)
        self._dag = dag
        self._task_id = task_id

    def __getitem__(self, task_id: str) -> Any:
        if task_id in self._values:
            return self._values[task_id]
        raise TemplateError(self._missing(task_id))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            # Dunder probes (copy, hasattr) must see a plain AttributeError; Jinja then falls
            # back to item access, which is how `outputs._private` still works.
            raise AttributeError(name)
        return self[name]

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Outputs({sorted(self._values)!r})"

    def _missing(self, task_id: str) -> str:
        dag_id, me = self._dag.dag_id, self._task_id
        known = self._dag.task_ids
        if task_id not in known:
            close = difflib.get_close_matches(str(task_id), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return f"outputs[{task_id!r}]: DAG {dag_id!r} has no task {task_id!r}{hint}"
        if task_id == me:
            return f"outputs[{task_id!r}]: a task cannot read its own output"
        if task_id not in _ancestors(self._dag, me):
            return (
                f"task {task_id!r} has no output: it is not upstream of {me!r}, so it need not "
                f"have run; make it upstream of {me!r}, or use ti.xcom_pull({task_id!r}) to "
                "get None instead"
            )
        return (
            f"task {task_id!r} has no output: it did not write one to ORCH_OUTPUT_PATH (or has "
            f"not succeeded); use ti.xcom_pull({task_id!r}) to get None instead"
        )


@dataclass(frozen=True)
class TaskInstanceView:
    """`ti` / `task_instance`: this attempt of this task, and Airflow's `xcom_pull`."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    map_index: int
    logical_date: pendulum.DateTime
    execution_date: pendulum.DateTime
    _outputs: Mapping[str, Any] = field(repr=False)

    def xcom_pull(
        self,
        task_ids: str | Iterable[str] | None = None,
        dag_id: str | None = None,
        key: str = RETURN_VALUE_KEY,
        include_prior_dates: bool = False,
        *,
        default: Any = None,
    ) -> Any:
        """Output of one task (`default` if it has none), or a list for several task ids.

        A list keeps the order asked, with `default` in place of each missing output. Only this
        run's outputs exist: another `dag_id`, another key, or prior dates are errors.
        """
        if dag_id is not None and dag_id != self.dag_id:
            raise TemplateError(
                f"xcom_pull(dag_id={dag_id!r}): only outputs of this run of {self.dag_id!r} "
                "can be read"
            )
        if include_prior_dates:
            raise TemplateError("xcom_pull(include_prior_dates=True) is not supported")
        if key != RETURN_VALUE_KEY:
            raise TemplateError(
                f"xcom_pull(key={key!r}): a task has one output, under key "
                f"{RETURN_VALUE_KEY!r} (the default)"
            )
        if task_ids is None:
            raise TemplateError("xcom_pull() needs task_ids: name the task whose output you want")
        if isinstance(task_ids, str):
            return self._outputs.get(task_ids, default)
        return [self._outputs.get(task_id, default) for task_id in task_ids]


class TemplateContext(TypedDict):
    """Every name a template can use."""

    ds: str
    ds_nodash: str
    ts: str
    ts_nodash: str
    ts_nodash_with_tz: str
    logical_date: pendulum.DateTime
    execution_date: pendulum.DateTime
    data_interval_start: pendulum.DateTime
    data_interval_end: pendulum.DateTime
    prev_ds: str | None
    prev_ds_nodash: str | None
    next_ds: str | None
    next_ds_nodash: str | None
    prev_execution_date: pendulum.DateTime | None
    next_execution_date: pendulum.DateTime | None
    yesterday_ds: str
    yesterday_ds_nodash: str
    tomorrow_ds: str
    tomorrow_ds_nodash: str
    run_id: str
    dag: DagView
    task: TaskView
    params: dict[str, Any]
    dag_run: DagRunView
    ti: TaskInstanceView
    task_instance: TaskInstanceView
    task_instance_key_str: str
    macros: Macros
    outputs: Outputs
    map_index: int
    try_number: int
    mapped: dict[str, Any]
    conn: Connections
    var: Variables


def dag_folder(dag: DagSpec) -> Path | None:
    """The absolute folder of the DAG's file, or None when the DAG has no file location."""
    if not dag.fileloc:
        return None
    if os.path.isabs(dag.fileloc):
        return _folder_of(dag.fileloc)  # the same for every render of the DAG's tasks
    return Path(os.path.abspath(dag.fileloc)).parent  # depends on the working directory


@functools.lru_cache(maxsize=256)
def _folder_of(absolute_fileloc: str) -> Path:
    return Path(os.path.abspath(absolute_fileloc)).parent


def defaults(params: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """The declared params' defaults, copied."""
    return {name: copy.deepcopy(spec.default) for name, spec in params.items()}


def pendulum_or_none(value: datetime | None) -> pendulum.DateTime | None:
    """`value` as a pendulum DateTime in its own zone."""
    return pendulum.instance(value) if value is not None else None


_DAG_VIEWS: dict[int, tuple[DagSpec, DagView]] = {}
_DAG_VIEWS_KEPT = 32


def shared_dag_view(dag: DagSpec) -> DagView:
    """The `dag` view every render of the DAG's tasks shares, built once per spec (it lists
    all task ids: per render that adds up for DAGs of thousands). Kept for the latest specs
    by identity: a spec never changes once built, and the entry holds it, so its id is not
    reused meanwhile. Templates cannot change it (the sandbox is immutable)."""
    entry = _DAG_VIEWS.get(id(dag))
    if entry is not None and entry[0] is dag:
        return entry[1]
    view = _dag_view(dag)
    if len(_DAG_VIEWS) >= _DAG_VIEWS_KEPT:
        _DAG_VIEWS.pop(next(iter(_DAG_VIEWS)))
    _DAG_VIEWS[id(dag)] = (dag, view)
    return view


def _dag_view(dag: DagSpec) -> DagView:
    schedule: str | None
    if dag.schedule is None:
        schedule = None
    elif isinstance(dag.schedule, CronSchedule):
        schedule = dag.schedule.expression
    else:
        schedule = str(dag.schedule.every)
    return DagView(
        dag_id=dag.dag_id,
        description=dag.description,
        tags=dag.tags,
        fileloc=dag.fileloc,
        folder=str(folder) if (folder := dag_folder(dag)) else "",
        timezone=dag.timezone,
        schedule=schedule,
        start_date=pendulum_or_none(dag.start_date),
        end_date=pendulum_or_none(dag.end_date),
        catchup=dag.catchup,
        params=defaults(dag.params),
        task_ids=tuple(dag.task_ids),
    )


def task_view(dag: DagSpec, task: TaskSpec) -> TaskView:
    """The `task` view: a fresh snapshot of the task as declared."""
    return TaskView(
        task_id=task.task_id,
        dag_id=dag.dag_id,
        image=task.image,
        command=task.command,
        entrypoint=task.entrypoint,
        environment=dict(task.environment),
        working_dir=task.working_dir,
        retries=task.retries,
        trigger_rule=str(task.trigger_rule),
        upstream_task_ids=task.upstream_task_ids,
        downstream_task_ids=dag.downstream_map.get(task.task_id, ()),
        group_id=task.group_id,
        doc=task.doc,
        params=defaults(task.params),
    )


def _ancestors(dag: DagSpec, task_id: str) -> set[str]:
    upstream = {t.task_id: t.upstream_task_ids for t in dag.tasks}
    seen: set[str] = set()
    pending = list(upstream.get(task_id, ()))
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(upstream.get(current, ()))
    return seen
