"""The authoring API as a DAG file uses it, and the specs it produces."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest

from orchestrator import DAG, ContainerTask, DockerOperator, Mount, Param, TaskGroup, chain
from orchestrator.errors import DagDefinitionError
from orchestrator.models.graph import topological_order, validate_dag
from orchestrator.models.specs import (
    CronSchedule,
    DagSpec,
    DeltaSchedule,
    ParamSpec,
    PullPolicy,
    TaskSpec,
)
from orchestrator.sdk.context import collecting


def upstream(dag: DAG, task_id: str) -> tuple[str, ...]:
    return dag.to_spec("f.py").task(task_id).upstream_task_ids


def edges(dag: DAG) -> set[tuple[str, str]]:
    return {(u, t.task_id) for t in dag.to_spec("f.py").tasks for u in t.upstream_task_ids}


# --- DAG ---------------------------------------------------------------------------------
JAN_1 = date(2026, 1, 1)


def test_context_manager_collects_tasks_into_the_spec() -> None:
    with DAG(
        "etl",
        schedule="@daily",
        start_date=date(2026, 1, 1),
        tags=["a", "b"],
        description="nightly",
    ) as dag:
        ContainerTask("extract", image="alpine:3", command=["sh", "-c", "echo hi"])

    spec = dag.to_spec(fileloc="/dags/etl.py")

    assert spec.dag_id == "etl"
    assert spec.fileloc == "/dags/etl.py"
    assert spec.schedule == CronSchedule(expression="@daily")
    assert spec.tags == ("a", "b")
    assert spec.description == "nightly"
    assert spec.task_ids == ("extract",)
    assert spec.task("extract").command == ("sh", "-c", "echo hi")
    assert spec.task("extract").image == "alpine:3"


def test_decorator_runs_the_function_inside_the_dag_and_binds_the_dag() -> None:
    @DAG(
        "report",
        schedule=timedelta(hours=6),
        start_date=date(2026, 1, 1),
        default_args={"image": "python:3.12"},
    )
    def report() -> None:
        """Builds the report."""
        ContainerTask("build")
        ContainerTask("publish")

    assert isinstance(report, DAG)
    spec = report.to_spec("f.py")
    assert spec.task_ids == ("build", "publish")
    assert spec.schedule == DeltaSchedule(every=timedelta(hours=6))
    assert spec.description == "Builds the report."


@pytest.mark.parametrize("preset", ["@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly"])
def test_presets_become_cron_schedules(preset: str) -> None:
    assert DAG("d", schedule=preset, start_date=JAN_1).to_spec().schedule == CronSchedule(
        expression=preset
    )


def test_cron_string_timedelta_and_none_schedules() -> None:
    assert DAG("a", schedule="*/5 * * * *", start_date=JAN_1).to_spec().schedule == CronSchedule(
        expression="*/5 * * * *"
    )
    assert DAG(
        "b", schedule=timedelta(minutes=30), start_date=JAN_1
    ).to_spec().schedule == DeltaSchedule(every=timedelta(minutes=30))
    assert DAG("c").to_spec().schedule is None


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("  ", "schedule is an empty string"),
        (timedelta(0), "schedule interval must be positive"),
        (42, "schedule must be a cron string"),
        ("61 * * * *", r"schedule '61 \* \* \* \*' is not a valid cron expression"),
        ("0 0 30 2 *", r"is not a valid cron expression \(it never fires\)"),
        ("@dayly", r"'@dayly' is not a preset.*did you mean '@daily'"),
    ],
)
def test_bad_schedules_are_rejected(schedule: object, message: str) -> None:
    with pytest.raises(DagDefinitionError, match=message) as caught:
        DAG("d", schedule=schedule, start_date=JAN_1)  # type: ignore[arg-type]
    assert "DAG 'd'" in str(caught.value)


def test_a_scheduled_dag_needs_a_start_date() -> None:
    with pytest.raises(DagDefinitionError, match="DAG 'd': a scheduled DAG needs a start_date"):
        DAG("d", schedule="@daily")
    DAG("manual")  # unscheduled: no start_date needed


def test_max_active_runs_and_dagrun_timeout() -> None:
    spec = DAG("d", max_active_runs=2, dagrun_timeout=90).to_spec()
    assert (spec.max_active_runs, spec.dagrun_timeout) == (2, timedelta(seconds=90))
    assert DAG("e").to_spec().max_active_runs == 16
    with pytest.raises(DagDefinitionError, match="max_active_runs: must be at least 1"):
        DAG("f", max_active_runs=0)
    with pytest.raises(DagDefinitionError, match="dagrun_timeout: must be a positive duration"):
        DAG("g", dagrun_timeout=timedelta(0))


def test_naive_dates_are_read_in_the_dag_timezone_and_stored_in_utc() -> None:
    dag = DAG(
        "d",
        start_date=datetime(2024, 7, 1, 6, 0),
        end_date=date(2024, 12, 1),
        timezone="Europe/Amsterdam",
    )
    spec = dag.to_spec()
    assert spec.start_date == datetime(2024, 7, 1, 4, 0, tzinfo=UTC)  # CEST is UTC+2
    assert spec.end_date == datetime(2024, 11, 30, 23, 0, tzinfo=UTC)  # CET is UTC+1
    assert spec.timezone == "Europe/Amsterdam"


def test_aware_dates_are_converted_to_utc() -> None:
    from datetime import timezone as fixed

    start = datetime(2024, 1, 1, 12, 0, tzinfo=fixed(timedelta(hours=-5)))
    spec = DAG("d", start_date=start).to_spec()
    assert spec.start_date == datetime(2024, 1, 1, 17, 0, tzinfo=UTC)
    assert spec.start_date is not None and spec.start_date.utcoffset() == timedelta(0)


def test_end_date_before_start_date_is_an_error() -> None:
    with pytest.raises(DagDefinitionError, match=r"DAG 'd': end_date .* is before start_date"):
        DAG("d", start_date=datetime(2024, 2, 1), end_date=datetime(2024, 1, 1))


def test_unknown_timezone_is_an_error() -> None:
    with pytest.raises(DagDefinitionError, match="unknown timezone 'Mars/Olympus'"):
        DAG("d", timezone="Mars/Olympus")


def test_invalid_dag_id_names_the_field() -> None:
    with pytest.raises(DagDefinitionError, match="DAG 'my dag': dag_id: ") as caught:
        DAG("my dag")
    assert "validation error" not in str(caught.value)


# --- default_args and params ------------------------------------------------------------


def test_default_args_apply_to_every_task_and_explicit_arguments_win() -> None:
    defaults = {"image": "alpine", "retries": 3, "environment": {"A": "1"}}
    with DAG("d", default_args=defaults) as dag:
        ContainerTask("plain")
        ContainerTask("custom", image="busybox", retries=0, environment={"B": 2})

    spec = dag.to_spec()
    plain, custom = spec.task("plain"), spec.task("custom")
    assert (plain.image, plain.retries, plain.environment) == ("alpine", 3, {"A": "1"})
    assert (custom.image, custom.retries, custom.environment) == ("busybox", 0, {"B": "2"})


def test_none_for_a_required_field_falls_back_to_default_args() -> None:
    with DAG("d", default_args={"image": "alpine", "retries": 2}) as dag:
        ContainerTask("t", image=None, retries=None)  # type: ignore[arg-type]
    assert dag.to_spec().task("t").image == "alpine"
    assert dag.to_spec().task("t").retries == 2


def test_unknown_default_args_key_is_named_with_a_suggestion() -> None:
    with pytest.raises(DagDefinitionError, match=r"unknown key 'retires' in default_args") as e:
        DAG("d", default_args={"image": "alpine", "retires": 3})
    assert "did you mean 'retries'?" in str(e.value)
    assert "DAG 'd'" in str(e.value)


def test_params_accept_plain_values_and_param() -> None:
    dag = DAG(
        "d",
        params={"limit": 100, "mode": Param("fast", type="string", description="how to run")},
    )
    assert dag.to_spec().params == {
        "limit": ParamSpec(default=100),
        "mode": ParamSpec(default="fast", type="string", description="how to run"),
    }


def test_task_params_become_param_specs() -> None:
    with DAG("d") as dag:
        ContainerTask("t", image="alpine", params={"n": Param(1, type="integer")})
    assert dag.to_spec().task("t").params == {"n": ParamSpec(default=1, type="integer")}


def test_param_default_of_the_wrong_type_is_an_error() -> None:
    with pytest.raises(DagDefinitionError, match="param 'n': default 'ten' is not of type"):
        DAG("d", params={"n": Param("ten", type="integer")})
    with pytest.raises(DagDefinitionError, match="default True is not of type 'integer'"):
        DAG("d", params={"n": Param(True, type="integer")})


def test_param_default_must_be_json() -> None:
    with pytest.raises(DagDefinitionError, match=r"param 'when': default .* not JSON-serializable"):
        DAG("d", params={"when": datetime(2024, 1, 1)})


# --- ContainerTask ----------------------------------------------------------------------


def test_container_task_fields_reach_the_spec() -> None:
    with DAG("d") as dag:
        ContainerTask(
            "t",
            image="alpine",
            entrypoint="/bin/sh",
            command="echo {{ ds }}",
            environment={"N": 1, "FLAG": True},
            mounts=["/data:/data:ro", "cache:/cache", Mount(type="tmpfs", target="/tmp")],
            working_dir="/srv",
            user="1000",
            network="none",
            cpus=0.5,
            memory="512m",
            shm_size="64m",
            pull_policy="always",
            retries=2,
            retry_delay=30,
            retry_exponential_backoff=True,
            max_retry_delay=timedelta(minutes=10),
            execution_timeout=timedelta(hours=1),
            skip_exit_codes=(99,),
            doc="does things",
        )
    task = dag.to_spec().task("t")
    assert task.environment == {"N": "1", "FLAG": "true"}
    assert task.mounts == (
        Mount(type="bind", source="/data", target="/data", read_only=True),
        Mount(type="volume", source="cache", target="/cache"),
        Mount(type="tmpfs", target="/tmp"),
    )
    assert task.memory == 512 * 1024**2
    assert task.pull_policy is PullPolicy.ALWAYS
    assert task.retry_delay == timedelta(seconds=30)
    assert task.skip_exit_codes == (99,)
    assert task.doc == "does things"
    assert task.group_id is None


def test_docker_operator_is_container_task() -> None:
    assert DockerOperator is ContainerTask


def test_task_outside_a_dag_is_an_error() -> None:
    with pytest.raises(DagDefinitionError, match=r"task 'lonely' is not in a DAG"):
        ContainerTask("lonely", image="alpine")


def test_task_with_explicit_dag_outside_the_block() -> None:
    dag = DAG("d")
    ContainerTask("t", image="alpine", dag=dag)
    assert dag.to_spec().task_ids == ("t",)


def test_unknown_keyword_names_field_task_and_closest_name() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError) as caught:
        ContainerTask("t", image="alpine", retires=3)  # type: ignore[call-arg]
    assert str(caught.value) == (
        "task 't' in DAG 'd': unknown argument 'retires' (did you mean 'retries'?)"
    )


def test_missing_image_message() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError) as caught:
        ContainerTask("x")
    assert str(caught.value).startswith("task 'x' in DAG 'd' has no image")


def test_duplicate_task_id_names_both_declarations() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError) as caught:
        ContainerTask("t", image="alpine")
        ContainerTask("t", image="busybox")
    message = str(caught.value)
    assert "DAG 'd' already has a task 't'" in message
    assert message.count("test_authoring.py:") == 2


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"cpus": -1}, "cpus", "cpus must be positive"),
        ({"memory": "lots"}, "memory", "is not a size"),
        ({"pull_policy": "sometimes"}, "pull_policy", "'if_not_present', 'always' or 'never'"),
        ({"retries": -1}, "retries", "greater than or equal to 0"),
        ({"mounts": ["nocolon"]}, "mounts", "is not of the form"),
    ],
)
def test_field_errors_name_task_and_field(
    kwargs: dict[str, object], field: str, problem: str
) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError) as caught:
        ContainerTask("t", image="alpine", **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"task 't' in DAG 'd': {field}")
    assert problem in message
    assert "validation error" not in message
    assert "pydantic" not in message


def test_invalid_task_id_is_an_error() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match="task id 'a b' may contain only"):
        ContainerTask("a b", image="alpine")


# --- dependencies -----------------------------------------------------------------------


def test_shift_operators_set_dependencies_and_return_the_right_side() -> None:
    with DAG("d", default_args={"image": "alpine"}) as dag:
        a, b, c, d = (ContainerTask(x) for x in "abcd")
        assert (a >> b) is b
        assert (c << b) is b
        assert (a >> b >> d) is d

    assert edges(dag) == {("a", "b"), ("b", "c"), ("b", "d")}


def test_lists_on_either_side() -> None:
    with DAG("d", default_args={"image": "alpine"}) as dag:
        a, b, c, d, e = (ContainerTask(x) for x in "abcde")
        fan_out = a >> [b, c]
        fan_in = [b, c] >> d
        assert fan_out == [b, c]
        assert fan_in is d
        assert ([d] << e) is e  # e >> d, written from the other side

    assert edges(dag) == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("e", "d")}


def test_set_upstream_and_set_downstream() -> None:
    with DAG("d", default_args={"image": "alpine"}) as dag:
        a, b, c = (ContainerTask(x) for x in "abc")
        b.set_upstream(a)
        b.set_downstream([c])
    assert edges(dag) == {("a", "b"), ("b", "c")}


def test_dependency_on_a_non_task_is_an_error() -> None:
    with DAG("d", default_args={"image": "alpine"}):
        a = ContainerTask("a")
        with pytest.raises(DagDefinitionError, match="cannot make a dependency on 'b'"):
            a >> "b"  # type: ignore[type-var]


def test_dependency_across_dags_is_an_error() -> None:
    with DAG("one", default_args={"image": "alpine"}):
        a = ContainerTask("a")
    with DAG("two", default_args={"image": "alpine"}):
        b = ContainerTask("b")
    with pytest.raises(DagDefinitionError, match="dependencies connect tasks of one DAG"):
        a >> b


def test_chain_follows_airflow_semantics() -> None:
    with DAG("d", default_args={"image": "alpine"}) as dag:
        a, b, c, d, e, f, g = (ContainerTask(x) for x in "abcdefg")
        chain(a, [b, c], [d, e], f, g)

    assert edges(dag) == {
        ("a", "b"),
        ("a", "c"),
        ("b", "d"),
        ("c", "e"),
        ("d", "f"),
        ("e", "f"),
        ("f", "g"),
    }


def test_chain_with_lists_of_different_lengths_is_an_error() -> None:
    with DAG("d", default_args={"image": "alpine"}):
        a, b, c = (ContainerTask(x) for x in "abc")
        with pytest.raises(DagDefinitionError, match=r"same length.*got 2 and 1"):
            chain([a, b], [c])


# --- task groups ------------------------------------------------------------------------


def test_task_group_prefixes_ids_and_records_the_group() -> None:
    with DAG("d", default_args={"image": "alpine"}) as dag, TaskGroup("load") as load:
        ContainerTask("users")
        with TaskGroup("tables"):
            ContainerTask("orders")

    spec = dag.to_spec()
    assert spec.task_ids == ("load.users", "load.tables.orders")
    assert spec.task("load.users").group_id == "load"
    assert spec.task("load.tables.orders").group_id == "load.tables"
    assert [t.task_id for t in load.tasks] == ["load.users", "load.tables.orders"]


def test_group_dependencies_use_roots_and_leaves() -> None:
    with DAG("d", default_args={"image": "alpine"}) as dag:
        start = ContainerTask("start")
        with TaskGroup("g1") as g1:
            a, b, c = (ContainerTask(x) for x in "abc")
            a >> [b, c]
        with TaskGroup("g2") as g2:
            x, y = ContainerTask("x"), ContainerTask("y")
            x >> y
        end = ContainerTask("end")
        start >> g1 >> g2 >> end

    assert edges(dag) == {
        ("start", "g1.a"),
        ("g1.a", "g1.b"),
        ("g1.a", "g1.c"),
        ("g1.b", "g2.x"),
        ("g1.c", "g2.x"),
        ("g2.x", "g2.y"),
        ("g2.y", "end"),
    }


def test_group_on_the_left_of_a_task_list() -> None:
    with DAG("d", default_args={"image": "alpine"}) as dag:
        with TaskGroup("g") as g:
            ContainerTask("a")
        b, c = ContainerTask("b"), ContainerTask("c")
        g >> [b, c]
        [b, c] << g
    assert edges(dag) == {("g.a", "b"), ("g.a", "c")}


def test_group_with_left_shift_and_group_to_group() -> None:
    with DAG("d", default_args={"image": "alpine"}) as dag:
        s = ContainerTask("s")
        with TaskGroup("g") as g:
            ContainerTask("a") >> ContainerTask("b")
        e = ContainerTask("e")
        with TaskGroup("h") as h:
            ContainerTask("x"), ContainerTask("y")
        g << s  # task >> group, written the other way
        e << g  # group >> task
        h << [s, e]
        g >> h  # group >> group: leaves of g to roots of h
    assert edges(dag) == {
        ("s", "g.a"),
        ("g.a", "g.b"),
        ("g.b", "e"),
        ("s", "h.x"),
        ("s", "h.y"),
        ("e", "h.x"),
        ("e", "h.y"),
        ("g.b", "h.x"),
        ("g.b", "h.y"),
    }


def test_empty_group_in_a_dependency_is_an_error() -> None:
    with DAG("d", default_args={"image": "alpine"}):
        a = ContainerTask("a")
        with TaskGroup("empty") as empty:
            pass
        with pytest.raises(DagDefinitionError, match="task group 'empty' has no tasks"):
            a >> empty


def test_duplicate_group_id_and_group_outside_dag() -> None:
    with DAG("d"):
        TaskGroup("g")
        with pytest.raises(DagDefinitionError, match="already has a task group 'g'"):
            TaskGroup("g")
    with pytest.raises(DagDefinitionError, match="task group 'g' is not in a DAG"):
        TaskGroup("g")


# --- to_spec: order, validation, round trip ---------------------------------------------


def test_tasks_are_in_topological_then_declaration_order() -> None:
    with DAG("d", default_args={"image": "alpine"}) as dag:
        load, extract, check, other = (ContainerTask(x) for x in ["load", "extract", "check", "z"])
        extract >> check >> load
        other >> load
        extract >> load

    spec = dag.to_spec()
    assert spec.task_ids == ("extract", "check", "z", "load")
    assert spec.task("load").upstream_task_ids == ("check", "extract", "z")


def test_cycle_names_the_path_and_the_closing_edge() -> None:
    with DAG("d", default_args={"image": "alpine"}) as dag:
        a, b, c = (ContainerTask(x) for x in "abc")
        a >> b >> c >> a
    with pytest.raises(DagDefinitionError) as caught:
        dag.to_spec()
    assert str(caught.value) == "DAG 'd' has a cycle: a >> b >> c >> a (edge c >> a closes it)"


def test_self_dependency_is_a_cycle() -> None:
    with DAG("d", default_args={"image": "alpine"}) as dag:
        a = ContainerTask("a")
        a >> a
    with pytest.raises(DagDefinitionError, match=r"cycle: a >> a \(edge a >> a closes it\)"):
        dag.to_spec()


def test_spec_round_trips_through_json() -> None:
    with DAG(
        "full",
        schedule="0 6 * * 1-5",
        start_date=datetime(2024, 3, 31, 2, 30),
        end_date=datetime(2025, 1, 1),
        timezone="Europe/Amsterdam",
        catchup=False,
        params={"n": Param(3, type="integer", description="count"), "name": "x"},
        tags=("etl",),
        default_args={"image": "alpine", "retry_delay": timedelta(seconds=90)},
    ) as dag:
        with TaskGroup("g"):
            a = ContainerTask(
                "a",
                command=["echo", "{{ params.n }}"],
                mounts=["/in:/in:ro"],
                memory="1g",
                execution_timeout=timedelta(minutes=5),
                params={"p": Param([1, 2], type="array")},
            )
        a >> ContainerTask("b", environment={"X": "1"})
    hourly = DAG("hourly", schedule=timedelta(hours=1), start_date=JAN_1)
    ContainerTask("t", image="alpine", dag=hourly)

    for spec in (dag.to_spec("/dags/full.py"), hourly.to_spec("/dags/full.py")):
        assert DagSpec.model_validate_json(spec.model_dump_json()) == spec


def test_dag_spec_start_date_skipped_by_dst_moves_forward() -> None:
    spec = DAG("d", start_date=datetime(2024, 3, 31, 2, 30), timezone="Europe/Amsterdam")
    # 02:30 does not exist that night in Amsterdam; 03:30 CEST is 01:30 UTC.
    assert spec.to_spec().start_date == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)


# --- models.graph on stored specs --------------------------------------------------------


def _spec(*tasks: tuple[str, tuple[str, ...]]) -> DagSpec:
    return DagSpec(
        dag_id="stored",
        tasks=tuple(TaskSpec(task_id=t, image="alpine", upstream_task_ids=u) for t, u in tasks),
    )


def test_graph_orders_and_validates_stored_specs() -> None:
    spec = _spec(("c", ("b",)), ("b", ("a",)), ("a", ()), ("d", ()))
    validate_dag(spec)
    assert topological_order(spec) == ["a", "b", "c", "d"]


def test_graph_rejects_unknown_upstream_and_duplicates() -> None:
    with pytest.raises(DagDefinitionError, match="task 'b' depends on 'ghost'"):
        validate_dag(_spec(("b", ("ghost",))))
    with pytest.raises(DagDefinitionError, match="two tasks with id 'a'"):
        validate_dag(_spec(("a", ()), ("a", ())))


def test_graph_reports_a_cycle_behind_a_clean_prefix() -> None:
    spec = _spec(("start", ()), ("x", ("start", "z")), ("y", ("x",)), ("z", ("y",)), ("w", ("z",)))
    with pytest.raises(DagDefinitionError) as caught:
        validate_dag(spec)
    assert str(caught.value) == (
        "DAG 'stored' has a cycle: x >> y >> z >> x (edge z >> x closes it)"
    )


# --- collection and import weight -------------------------------------------------------


def test_collector_sees_dags_that_are_not_module_globals() -> None:
    def factory(name: str) -> None:
        with DAG(name, default_args={"image": "alpine"}):
            ContainerTask("t")

    with collecting() as dags:
        for name in ("one", "two"):
            factory(name)
    assert [dag.dag_id for dag in dags] == ["one", "two"]


def test_importing_orchestrator_stays_light() -> None:
    code = (
        "import sys\n"
        "from orchestrator import DAG, ContainerTask\n"
        "import orchestrator.sdk.collect\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'docker', 'sqlalchemy', 'jinja2', 'alembic', 'croniter', 'typer'})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
