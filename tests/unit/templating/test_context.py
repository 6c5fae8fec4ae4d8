"""The template context: Airflow 2's names, their values, params, outputs and xcom_pull."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pendulum
import pytest
from pydantic import ValidationError

from orchestrator.errors import TemplateError
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import CronSchedule, DagSpec, ParamSpec, TaskSpec
from orchestrator.templating import build_context, render_string, resolve_params

LOGICAL = datetime(2026, 3, 14, tzinfo=UTC)


def make_dag(**overrides: Any) -> DagSpec:
    fields: dict[str, Any] = {
        "dag_id": "etl",
        "fileloc": "/dags/etl.py",
        "schedule": CronSchedule(expression="@daily"),
        "description": "Nightly load",
        "tags": ("nightly", "warehouse"),
        "params": {"region": ParamSpec(default="eu"), "limit": ParamSpec(default=10)},
        "tasks": (
            TaskSpec(task_id="extract", image="extract:1"),
            TaskSpec(task_id="side", image="side:1"),
            TaskSpec(
                task_id="transform", image="transform:1", upstream_task_ids=("extract", "side")
            ),
            TaskSpec(
                task_id="load",
                image="loader:{{ ds }}",
                command=("load", "--day", "{{ ds }}"),
                environment={"MODE": "full"},
                params={"limit": ParamSpec(default=50), "table": ParamSpec(default="sales")},
                upstream_task_ids=("transform",),
            ),
            TaskSpec(task_id="report", image="report:1", upstream_task_ids=("load",)),
        ),
    }
    fields.update(overrides)
    return DagSpec(**fields)


def make_run(**overrides: Any) -> RunInfo:
    fields: dict[str, Any] = {
        "run_id": "scheduled__2026-03-14T00:00:00+00:00",
        "run_type": "scheduled",
        "logical_date": LOGICAL,
        "data_interval_start": LOGICAL,
        "data_interval_end": LOGICAL + timedelta(days=1),
        "prev_logical_date": LOGICAL - timedelta(days=1),
        "next_logical_date": LOGICAL + timedelta(days=1),
    }
    fields.update(overrides)
    return RunInfo(**fields)


def render(
    template: str,
    *,
    dag: DagSpec | None = None,
    task_id: str = "load",
    run: RunInfo | None = None,
    outputs: dict[str, Any] | None = None,
    try_number: int = 1,
    map_index: int = -1,
) -> str:
    dag = dag or make_dag()
    context = build_context(
        dag,
        dag.task(task_id),
        run or make_run(),
        try_number=try_number,
        map_index=map_index,
        outputs=outputs or {},
    )
    return render_string(template, context)


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ ds }}", "2026-03-14"),
        ("{{ ds_nodash }}", "20260314"),
        ("{{ ts }}", "2026-03-14T00:00:00+00:00"),
        ("{{ ts_nodash }}", "20260314T000000"),
        ("{{ ts_nodash_with_tz }}", "20260314T000000+0000"),
        ("{{ prev_ds }}", "2026-03-13"),
        ("{{ prev_ds_nodash }}", "20260313"),
        ("{{ next_ds }}", "2026-03-15"),
        ("{{ next_ds_nodash }}", "20260315"),
        ("{{ yesterday_ds }}/{{ tomorrow_ds }}", "2026-03-13/2026-03-15"),
        ("{{ yesterday_ds_nodash }}/{{ tomorrow_ds_nodash }}", "20260313/20260315"),
        ("{{ prev_execution_date.isoformat() }}", "2026-03-13T00:00:00+00:00"),
        ("{{ next_execution_date.isoformat() }}", "2026-03-15T00:00:00+00:00"),
        ("{{ logical_date.isoformat() }}", "2026-03-14T00:00:00+00:00"),
        ("{{ execution_date.isoformat() }}", "2026-03-14T00:00:00+00:00"),
        ("{{ data_interval_start.isoformat() }}", "2026-03-14T00:00:00+00:00"),
        ("{{ data_interval_end.isoformat() }}", "2026-03-15T00:00:00+00:00"),
    ],
)
def test_date_names_have_airflow_values(template: str, expected: str) -> None:
    assert render(template) == expected


def test_logical_date_is_a_pendulum_datetime() -> None:
    assert render("{{ logical_date.add(days=1).strftime('%Y/%m/%d') }}") == "2026/03/15"
    assert render("{{ logical_date.subtract(hours=1).to_date_string() }}") == "2026-03-13"
    assert render("{{ data_interval_end.diff(data_interval_start).in_hours() }}") == "24"
    context = build_context(
        make_dag(), make_dag().task("load"), make_run(), try_number=1, outputs={}
    )
    assert isinstance(context["logical_date"], pendulum.DateTime)
    assert isinstance(context["data_interval_end"], pendulum.DateTime)


def test_airflow_date_filters() -> None:
    assert render("{{ data_interval_end | ds }}") == "2026-03-15"
    assert render("{{ data_interval_end | ds_nodash }}") == "20260315"
    assert render("{{ data_interval_end | ts }}") == "2026-03-15T00:00:00+00:00"
    assert render("{{ data_interval_end | ts_nodash }}") == "20260315T000000"
    assert render("{{ data_interval_end | ts_nodash_with_tz }}") == "20260315T000000+0000"


def test_prev_and_next_are_none_when_the_schedule_gives_none() -> None:
    run = make_run(prev_logical_date=None, next_logical_date=None, run_type="manual")
    assert (
        render("{{ prev_ds }} {{ next_ds }} {{ prev_ds_nodash }} {{ next_ds_nodash }}", run=run)
        == "None None None None"
    )
    assert render("{{ prev_execution_date is none and next_execution_date is none }}", run=run) == (
        "True"
    )


def test_a_fixed_offset_is_kept_in_ts_and_ds() -> None:
    paris_winter = timezone(timedelta(hours=1))
    start = datetime(2026, 3, 29, tzinfo=paris_winter)
    run = make_run(
        logical_date=start,
        data_interval_start=start,
        data_interval_end=start + timedelta(days=1),
        prev_logical_date=None,
        next_logical_date=None,
    )
    assert render("{{ ts }}", run=run) == "2026-03-29T00:00:00+01:00"
    assert render("{{ ds }} {{ ds_nodash }}", run=run) == "2026-03-29 20260329"
    assert render("{{ ts_nodash_with_tz }}", run=run) == "20260329T000000+0100"
    assert render("{{ logical_date.in_timezone('UTC') | ts }}", run=run) == (
        "2026-03-28T23:00:00+00:00"
    )


def test_a_negative_offset_keeps_its_sign() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5)))
    run = make_run(logical_date=start, data_interval_start=start, data_interval_end=start)
    assert render("{{ ts }}", run=run) == "2026-01-01T00:00:00-05:00"
    assert render("{{ ts_nodash_with_tz }}", run=run) == "20260101T000000-0500"


def test_a_named_zone_does_calendar_arithmetic_across_dst() -> None:
    start = datetime(2026, 3, 29, tzinfo=ZoneInfo("Europe/Paris"))  # clocks go forward at 02:00
    run = make_run(logical_date=start, data_interval_start=start, data_interval_end=start)
    assert render("{{ ts }}", run=run) == "2026-03-29T00:00:00+01:00"
    assert render("{{ logical_date.add(days=1) | ts }}", run=run) == "2026-03-30T00:00:00+02:00"


# --- ids, dag, task, run, ti ------------------------------------------------------------------


def test_ids_and_attempt_numbers() -> None:
    assert render("{{ run_id }}") == "scheduled__2026-03-14T00:00:00+00:00"
    assert render("{{ try_number }}/{{ map_index }}", try_number=3, map_index=2) == "3/2"
    assert render("{{ map_index }}") == "-1"
    assert render("{{ task_instance_key_str }}") == "etl__load__20260314"


def test_dag_view() -> None:
    assert render("{{ dag.dag_id }}|{{ dag.description }}|{{ dag.tags | join(',') }}") == (
        "etl|Nightly load|nightly,warehouse"
    )
    assert render("{{ dag.schedule }}|{{ dag.timezone }}|{{ dag.folder }}") == "@daily|UTC|/dags"
    assert render("{{ dag.task_ids | join(',') }}") == "extract,side,transform,load,report"
    assert render("{{ dag.params.region }}") == "eu"


def test_task_view_shows_the_declared_task() -> None:
    assert render("{{ task.task_id }} {{ task.image }} {{ task.dag_id }}") == (
        "load loader:{{ ds }} etl"
    )
    assert render("{{ task.command | join(' ') }}") == "load --day {{ ds }}"
    assert render("{{ task.upstream_task_ids | list }}") == "['transform']"
    assert render("{{ task.downstream_task_ids | list }}") == "['report']"
    assert render("{{ task.environment.MODE }} {{ task.retries }}") == "full 0"


def test_dag_run_view() -> None:
    run = make_run(run_type="manual", conf={"day": "2026-01-01"})
    assert render(
        "{{ dag_run.conf.day }} {{ dag_run.run_id }} {{ dag_run.run_type }}", run=run
    ) == ("2026-01-01 scheduled__2026-03-14T00:00:00+00:00 manual")
    assert render("{{ dag_run.logical_date | ds }} {{ dag_run.external_trigger }}", run=run) == (
        "2026-03-14 True"
    )
    assert render("{{ dag_run.conf.get('missing', 'fallback') }}", run=run) == "fallback"
    assert render("{{ dag_run.external_trigger }}") == "False"


def test_ti_view() -> None:
    template = (
        "{{ ti.dag_id }} {{ ti.task_id }} {{ ti.run_id }} {{ ti.try_number }} {{ ti.map_index }}"
    )
    assert render(template, try_number=2, map_index=4) == (
        "etl load scheduled__2026-03-14T00:00:00+00:00 2 4"
    )
    assert render("{{ task_instance.task_id }}") == "load"


def test_conf_is_not_airflows_configuration() -> None:
    with pytest.raises(TemplateError, match="'conf' is undefined"):
        render("{{ conf }}")


# --- macros ------------------------------------------------------------------------------------


def test_macros() -> None:
    assert render("{{ macros.ds_add(ds, 7) }}") == "2026-03-21"
    assert render("{{ macros.ds_add(ds, -14) }}") == "2026-02-28"
    assert render("{{ macros.ds_add(ds, 0) }}") == "2026-03-14"
    assert render("{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y') }}") == "14/03/2026"
    assert render("{{ (macros.datetime(2026, 1, 2) + macros.timedelta(days=1)).day }}") == "3"
    assert render("{{ macros.date(2026, 5, 1).isoformat() }}") == "2026-05-01"


@pytest.mark.parametrize("name", ["time", "uuid", "random"])
def test_non_deterministic_macros_are_absent(name: str) -> None:
    with pytest.raises(TemplateError, match=name):
        render(f"{{{{ macros.{name} }}}}")


# --- params ------------------------------------------------------------------------------------


def test_params_dag_then_task_then_conf() -> None:
    dag = make_dag()
    run = make_run(conf={"table": "returns", "extra": [1, 2]})
    assert resolve_params(dag, dag.task("load"), run.conf) == {
        "region": "eu",  # DAG default
        "limit": 50,  # task default beats the DAG's
        "table": "returns",  # conf beats the task's default
        "extra": [1, 2],  # conf keys no param declares are merged too, as in Airflow
    }
    assert render("{{ params.region }} {{ params.limit }} {{ params.table }}", run=run) == (
        "eu 50 returns"
    )


def test_params_of_another_task_do_not_leak() -> None:
    assert render("{{ params.limit }} {{ params.table is defined }}", task_id="extract") == (
        "10 False"
    )


def test_params_are_copies() -> None:
    dag = make_dag(params={"tables": ParamSpec(default=["a"])})
    run = make_run(conf={"nested": {"x": 1}})
    params = resolve_params(dag, dag.task("load"), run.conf)
    params["tables"].append("b")
    params["nested"]["x"] = 2
    assert dag.params["tables"].default == ["a"]
    assert run.conf == {"nested": {"x": 1}}


def test_templates_cannot_mutate_params_or_conf() -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        render("{{ params.update({'region': 'us'}) }}")
    with pytest.raises(TemplateError, match="unsafe"):
        render("{{ dag_run.conf.clear() }}")


# --- outputs and xcom_pull -------------------------------------------------------------------

OUTPUTS = {"extract": {"rows": 3, "files": ["a.csv"]}, "side": None}


def test_outputs_by_attribute_and_item() -> None:
    assert render("{{ outputs.extract.rows }}", outputs=OUTPUTS, task_id="transform") == "3"
    assert render("{{ outputs['extract']['files'][0] }}", outputs=OUTPUTS, task_id="transform") == (
        "a.csv"
    )
    # A task that wrote JSON null has an output: null.
    assert render("{{ outputs.side }}", outputs=OUTPUTS, task_id="transform") == "None"
    assert render("{{ 'extract' in outputs }}", outputs=OUTPUTS) == "True"


def test_outputs_of_ids_that_are_not_identifiers() -> None:
    dag = make_dag(
        tasks=(
            TaskSpec(task_id="get-data.v2", image="a"),
            TaskSpec(task_id="_private", image="a"),
            TaskSpec(task_id="use", image="b", upstream_task_ids=("get-data.v2", "_private")),
        )
    )
    outputs = {"get-data.v2": 1, "_private": 2}
    assert render("{{ outputs['get-data.v2'] }}", dag=dag, task_id="use", outputs=outputs) == "1"
    assert render("{{ outputs['_private'] }}", dag=dag, task_id="use", outputs=outputs) == "2"


def test_an_upstream_task_without_output_is_an_error_naming_it() -> None:
    with pytest.raises(TemplateError, match=r"task 'extract' has no output.*xcom_pull"):
        render("{{ outputs.extract }}", task_id="transform", outputs={})
    with pytest.raises(TemplateError, match=r"task 'extract' has no output"):
        render("{{ outputs['extract'] }}", task_id="transform", outputs={})


def test_a_task_not_upstream_is_an_error_that_says_so() -> None:
    with pytest.raises(
        TemplateError, match=r"'report' has no output: it is not upstream of 'load'"
    ):
        render("{{ outputs.report }}", outputs={})


def test_an_unknown_task_is_an_error_suggesting_a_close_name() -> None:
    with pytest.raises(TemplateError, match=r"no task 'extrct'; did you mean 'extract'\?"):
        render("{{ outputs.extrct }}", outputs=OUTPUTS)


def test_a_task_cannot_read_its_own_output() -> None:
    with pytest.raises(TemplateError, match="its own output"):
        render("{{ outputs.load }}", outputs={})


def test_xcom_pull_one_task() -> None:
    assert render("{{ ti.xcom_pull(task_ids='extract').rows }}", outputs=OUTPUTS) == "3"
    assert render("{{ ti.xcom_pull('extract', key='return_value').rows }}", outputs=OUTPUTS) == "3"
    assert render("{{ task_instance.xcom_pull('extract').rows }}", outputs=OUTPUTS) == "3"


def test_xcom_pull_missing_is_none_like_airflow() -> None:
    assert render("{{ ti.xcom_pull(task_ids='report') }}", outputs=OUTPUTS) == "None"
    assert render("{{ ti.xcom_pull(task_ids='no-such-task') }}", outputs=OUTPUTS) == "None"
    assert render("{{ ti.xcom_pull('report', default='none yet') }}", outputs=OUTPUTS) == "none yet"


def test_xcom_pull_a_list_keeps_the_order_asked() -> None:
    template = "{{ ti.xcom_pull(task_ids=['side', 'report', 'extract']) | tojson }}"
    assert render(template, outputs=OUTPUTS) == '[null, null, {"rows": 3, "files": ["a.csv"]}]'


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("ti.xcom_pull('extract', key='rows')", "a task has one output"),
        ("ti.xcom_pull('extract', dag_id='other')", "only outputs of this run"),
        ("ti.xcom_pull('extract', include_prior_dates=True)", "include_prior_dates"),
        ("ti.xcom_pull()", "needs task_ids"),
    ],
)
def test_xcom_pull_unsupported_forms_fail_clearly(call: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(f"{{{{ {call} }}}}", outputs=OUTPUTS)


def test_xcom_pull_from_own_dag_id_is_fine() -> None:
    assert render("{{ ti.xcom_pull('extract', dag_id='etl').rows }}", outputs=OUTPUTS) == "3"


# --- RunInfo -----------------------------------------------------------------------------------


def test_run_info_needs_aware_datetimes() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        make_run(logical_date=datetime(2026, 3, 14))


def test_run_info_rejects_a_reversed_interval() -> None:
    with pytest.raises(ValidationError, match="ends"):
        make_run(data_interval_end=LOGICAL - timedelta(days=1))


def test_run_info_is_frozen_and_round_trips_json() -> None:
    run = make_run(conf={"a": [1, {"b": None}]})
    with pytest.raises(ValidationError):
        run.run_id = "other"  # type: ignore[misc]
    assert RunInfo.model_validate_json(run.model_dump_json()) == run


def test_params_are_validated_values_and_a_stale_conf_fails_the_render() -> None:
    dag = make_dag(params={"rows": ParamSpec(default=1, type="integer", maximum=10)})
    assert render("{{ params.rows + 1 }}", run=make_run(conf={"rows": 4}), dag=dag) == "5"
    # the conf was accepted before the DAG narrowed the param: the task fails, saying why
    with pytest.raises(TemplateError, match=r"params do not fit.*param 'rows' expects integer"):
        resolve_params(dag, dag.task("load"), {"rows": 40})
