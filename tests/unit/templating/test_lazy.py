"""The lazy template context: the values the eager context had, each computed when read, and a
run's shared values computed once for all its task instances."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

from orchestrator.errors import TemplateError
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import CronSchedule, DagSpec, ParamSpec, TaskSpec
from orchestrator.templating import (
    Connections,
    DagRunView,
    Macros,
    Outputs,
    TaskInstanceView,
    TemplateContext,
    Variables,
    build_context,
    dag_folder,
    lazy_context,
    render_string,
    render_task,
    resolve_params,
)
from orchestrator.templating import lazy as lazy_module
from orchestrator.templating.context import shared_dag_view, task_view

LOGICAL = datetime(2026, 3, 14, 22, 30, tzinfo=UTC)
OUTPUTS = {"extract": {"rows": 3}, "side": None}


def make_dag(**overrides: Any) -> DagSpec:
    fields: dict[str, Any] = {
        "dag_id": "etl",
        "fileloc": "/dags/etl.py",
        "schedule": CronSchedule(expression="@daily"),
        "params": {"region": ParamSpec(default="eu"), "tables": ParamSpec(default=["a"])},
        "tasks": (
            TaskSpec(task_id="extract", image="extract:1"),
            TaskSpec(task_id="side", image="side:1"),
            TaskSpec(
                task_id="load",
                image="loader:1",
                command=("load", "{{ ds }}"),
                params={"limit": ParamSpec(default=50)},
                upstream_task_ids=("extract", "side"),
            ),
            TaskSpec(task_id="report", image="report:1", upstream_task_ids=("load",)),
        ),
    }
    fields.update(overrides)
    return DagSpec(**fields)


def make_run(**overrides: Any) -> RunInfo:
    fields: dict[str, Any] = {
        "run_id": "scheduled__2026-03-14T22:30:00+00:00",
        "run_type": "manual",
        "logical_date": LOGICAL,
        "data_interval_start": LOGICAL,
        "data_interval_end": LOGICAL + timedelta(days=1),
        "prev_logical_date": LOGICAL - timedelta(days=1),
        "next_logical_date": LOGICAL + timedelta(days=1),
        "conf": {"nested": {"x": 1}},
    }
    fields.update(overrides)
    return RunInfo(**fields)


def eager_reference(
    dag: DagSpec, task: TaskSpec, run: RunInfo, try_number: int, map_index: int
) -> dict[str, Any]:
    """The context as it was built before it was lazy: every value computed at once."""
    logical = pendulum.instance(run.logical_date)
    prev = pendulum.instance(run.prev_logical_date) if run.prev_logical_date else None
    following = pendulum.instance(run.next_logical_date) if run.next_logical_date else None
    yesterday, tomorrow = logical.subtract(days=1), logical.add(days=1)
    start = pendulum.instance(run.data_interval_start)
    end = pendulum.instance(run.data_interval_end)
    ti = TaskInstanceView(
        dag_id=dag.dag_id,
        task_id=task.task_id,
        run_id=run.run_id,
        try_number=try_number,
        map_index=map_index,
        logical_date=logical,
        execution_date=logical,
        _outputs=dict(OUTPUTS),
    )
    return {
        "ds": logical.strftime("%Y-%m-%d"),
        "ds_nodash": logical.strftime("%Y%m%d"),
        "ts": logical.isoformat(),
        "ts_nodash": logical.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": logical.strftime("%Y%m%dT%H%M%S%z"),
        "logical_date": logical,
        "execution_date": logical,
        "data_interval_start": start,
        "data_interval_end": end,
        "prev_ds": prev.strftime("%Y-%m-%d") if prev else None,
        "prev_ds_nodash": prev.strftime("%Y%m%d") if prev else None,
        "next_ds": following.strftime("%Y-%m-%d") if following else None,
        "next_ds_nodash": following.strftime("%Y%m%d") if following else None,
        "prev_execution_date": prev,
        "next_execution_date": following,
        "yesterday_ds": yesterday.strftime("%Y-%m-%d"),
        "yesterday_ds_nodash": yesterday.strftime("%Y%m%d"),
        "tomorrow_ds": tomorrow.strftime("%Y-%m-%d"),
        "tomorrow_ds_nodash": tomorrow.strftime("%Y%m%d"),
        "run_id": run.run_id,
        "dag": shared_dag_view(dag),
        "task": task_view(dag, task),
        "params": resolve_params(dag, task, run.conf),
        "dag_run": DagRunView(
            dag_id=dag.dag_id,
            run_id=run.run_id,
            run_type=run.run_type,
            conf=copy.deepcopy(run.conf),
            logical_date=logical,
            execution_date=logical,
            data_interval_start=start,
            data_interval_end=end,
            external_trigger=run.run_type == "manual",
        ),
        "ti": ti,
        "task_instance": ti,
        "task_instance_key_str": f"{dag.dag_id}__{task.task_id}__{logical.strftime('%Y%m%d')}",
        "macros": Macros(),
        "outputs": Outputs(OUTPUTS, dag, task.task_id),
        "map_index": map_index,
        "try_number": try_number,
        "mapped": {"item": [1, 2]},
    }


def comparable(name: str, value: Any) -> Any:
    """Values without equality of their own, as something that has it."""
    if isinstance(value, Outputs):
        return ("outputs", {task_id: value[task_id] for task_id in value})
    if isinstance(value, Macros):
        return "macros"
    if isinstance(value, (pendulum.DateTime, datetime)):
        return (value, value.utcoffset(), type(value))
    return value


@pytest.mark.parametrize(
    "run",
    [
        make_run(),
        make_run(prev_logical_date=None, next_logical_date=None, run_type="scheduled"),
        make_run(
            logical_date=datetime(2026, 3, 29, 0, 30, tzinfo=pendulum.timezone("Europe/Paris")),
            data_interval_start=datetime(2026, 3, 29, tzinfo=UTC),
            data_interval_end=datetime(2026, 3, 30, tzinfo=UTC),
        ),
    ],
)
@pytest.mark.parametrize("task_id", ["load", "report"])
def test_every_name_has_the_eager_value(run: RunInfo, task_id: str) -> None:
    dag = make_dag()
    task = dag.task(task_id)
    expected = eager_reference(dag, task, run, try_number=2, map_index=3)
    arguments: dict[str, Any] = {
        "try_number": 2,
        "map_index": 3,
        "outputs": OUTPUTS,
        "mapped": {"item": [1, 2]},
    }
    lazy = lazy_context(dag, task, run, **arguments)
    eager = build_context(dag, task, run, **arguments)
    assert list(lazy) == list(eager) == list(TemplateContext.__annotations__)
    assert len(lazy) == len(TemplateContext.__annotations__)
    for name in TemplateContext.__annotations__:
        assert name in lazy
        if name in ("conn", "var"):
            assert isinstance(lazy[name], Connections if name == "conn" else Variables)
            assert type(eager[name]) is type(lazy[name])  # type: ignore[literal-required]
            continue
        want = comparable(name, expected[name])
        assert comparable(name, lazy[name]) == want, name
        assert comparable(name, eager[name]) == want, name  # type: ignore[literal-required]
    assert lazy["ti"] is lazy["task_instance"]
    assert eager["ti"] is eager["task_instance"]


def test_unknown_names_are_missing() -> None:
    dag = make_dag()
    context = lazy_context(dag, dag.task("load"), make_run(), try_number=1, outputs={})
    for name in ("nope", "_yesterday", "conf", "", "__class__"):
        assert name not in context
        with pytest.raises(KeyError):
            context[name]
    assert context.get("nope", "fallback") == "fallback"


def test_a_runs_shared_values_are_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[datetime] = []
    instance = pendulum.instance

    def counting(value: datetime) -> pendulum.DateTime:
        made.append(value)
        return instance(value)

    monkeypatch.setattr(lazy_module.pendulum, "instance", counting)
    dag, run = make_dag(), make_run()
    for task in dag.tasks:
        for try_number in (1, 2):
            rendered = render_task(
                dag,
                task.model_copy(update={"command": ("run", "{{ ds }}", "{{ ts }}")}),
                run,
                try_number=try_number,
                outputs={},
            )
            assert rendered.command == ("run", "2026-03-14", "2026-03-14T22:30:00+00:00")
    assert made == [LOGICAL]  # one date made for the run's eight renders; none unused
    other = make_run()  # another run (an equal one, even) has its own values
    render_task(dag, dag.task("load"), other, try_number=1, outputs={})
    assert made == [LOGICAL, LOGICAL]


def test_shared_values_are_the_same_objects_and_copies_are_not() -> None:
    dag, run = make_dag(), make_run()
    first = lazy_context(dag, dag.task("extract"), run, try_number=1, outputs={})
    second = lazy_context(dag, dag.task("report"), run, try_number=1, outputs={})
    for name in ("logical_date", "ds", "dag", "data_interval_end", "macros"):
        assert first[name] is second[name]
    # what a caller can change is its own, as with the eager context
    first["params"]["tables"].append("b")
    first["params"]["region"] = "us"
    first["dag_run"].conf["nested"]["x"] = 2
    assert second["params"] == {"region": "eu", "tables": ["a"], "nested": {"x": 1}}
    assert second["dag_run"].conf == {"nested": {"x": 1}}
    assert run.conf == {"nested": {"x": 1}}
    assert dag.params["tables"].default == ["a"]
    third = lazy_context(dag, dag.task("extract"), run, try_number=1, outputs={})
    assert third["params"] == {"region": "eu", "tables": ["a"], "nested": {"x": 1}}


def test_values_nobody_reads_are_not_computed() -> None:
    class Untouchable(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise AssertionError("outputs were read")

        def __iter__(self) -> Any:
            raise AssertionError("outputs were read")

        def keys(self) -> Any:
            raise AssertionError("outputs were read")

    dag = make_dag()
    rendered = render_task(dag, dag.task("load"), make_run(), try_number=1, outputs=Untouchable())
    assert rendered.command == ("load", "2026-03-14")


def test_a_stale_conf_fails_every_task_of_the_run_whatever_it_reads() -> None:
    dag = make_dag(params={"rows": ParamSpec(default=1, type="integer", maximum=10)})
    run = make_run(conf={"rows": 40})
    for task_id in ("extract", "side", "load"):
        plain = dag.task(task_id).model_copy(update={"command": ("echo", "hello")})
        with pytest.raises(TemplateError) as caught:
            render_task(dag, plain, run, try_number=1, outputs={})
        assert str(caught.value).startswith(
            f"DAG 'etl', task {task_id!r}: the run's params do not fit their declaration:"
        )
        assert "param 'rows' expects integer" in str(caught.value)


def test_jinja_globals_and_includes_work_with_a_lazy_context(tmp_path: Path) -> None:
    (tmp_path / "part.txt").write_text("{{ ds }}/{{ params.region }}")
    dag = make_dag(fileloc=str(tmp_path / "etl.py"))
    context = lazy_context(dag, dag.task("load"), make_run(), try_number=1, outputs=OUTPUTS)
    assert render_string("{{ range(3) | list }}", context) == "[0, 1, 2]"
    assert render_string("{% set ns = namespace(n=ds) %}{{ ns.n }}", context) == "2026-03-14"
    assert render_string("{{ dict(a=1).a }} {{ outputs.extract.rows }}", context) == "1 3"
    task = dag.task("load").model_copy(update={"command": ("{% include 'part.txt' %}",)})
    rendered = render_task(dag, task, make_run(), try_number=1, outputs={})
    assert rendered.command == ("2026-03-14/eu",)


def test_a_relative_fileloc_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag = make_dag(fileloc="dags/etl.py")
    monkeypatch.chdir(tmp_path)
    assert dag_folder(dag) == tmp_path / "dags"
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    assert dag_folder(dag) == tmp_path / "other" / "dags"
    assert dag_folder(make_dag(fileloc="/dags/x/../etl.py")) == Path("/dags")
    assert dag_folder(make_dag(fileloc="")) is None
