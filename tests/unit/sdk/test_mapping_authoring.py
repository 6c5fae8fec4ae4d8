"""Declaring mapped tasks: `partial(...).expand(...)`, `task.output`, and load-time errors."""

from __future__ import annotations

import pytest

from orchestrator import DAG, ContainerTask, TaskGroup
from orchestrator.errors import DagDefinitionError
from orchestrator.models.mapping import LiteralItems, OutputItems
from orchestrator.models.specs import DagSpec


def test_expand_over_an_upstream_output_adds_the_dependency_and_round_trips() -> None:
    with DAG("weather") as dag:
        cities = ContainerTask("cities", image="busybox", command=["sh", "-c", "echo"])
        ContainerTask.partial(
            task_id="fetch",
            image="busybox",
            environment={"CITY": "{{ mapped.item }}"},
            retries=2,
        ).expand(item=cities.output)

    spec = dag.to_spec("weather.py")
    fetch = spec.task("fetch")
    assert fetch.upstream_task_ids == ("cities",)  # added by referring to its output
    assert fetch.expand == {"item": OutputItems(task_id="cities")}
    assert fetch.environment == {"CITY": "{{ mapped.item }}"} and fetch.retries == 2
    assert DagSpec.model_validate_json(spec.model_dump_json()) == spec


def test_literal_lists_and_several_fields_keep_their_order() -> None:
    with DAG("d") as dag:
        ContainerTask.partial(task_id="m", image="busybox").expand(
            command=[["echo", "a"], "echo b"], environment=[{"N": 1}, {"N": 2}]
        )
    task = dag.to_spec().task("m")
    assert list(task.expand) == ["command", "environment"]
    assert task.expand["command"] == LiteralItems(items=(["echo", "a"], "echo b"))
    restored = DagSpec.model_validate_json(dag.to_spec().model_dump_json())
    assert list(restored.task("m").expand) == ["command", "environment"]


def test_indexing_an_output_maps_over_a_value_inside_it() -> None:
    with DAG("d") as dag:
        up = ContainerTask("up", image="busybox")
        ContainerTask.partial(task_id="m", image="busybox").expand(item=up.output["cities"][0])
    assert dag.to_spec().task("m").expand["item"] == OutputItems(task_id="up", path=("cities", 0))


def test_a_mapped_task_in_a_group_gets_the_prefixed_id_and_can_be_chained() -> None:
    with DAG("d") as dag:
        up = ContainerTask("up", image="busybox")
        with TaskGroup("load"):
            m = ContainerTask.partial(task_id="m", image="busybox").expand(item=up.output)
        m >> ContainerTask("report", image="busybox")
    spec = dag.to_spec()
    assert spec.task_ids == ("up", "load.m", "report")
    assert spec.task("report").upstream_task_ids == ("load.m",)


def test_an_unknown_field_is_named_with_the_closest_one() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError) as err:
        ContainerTask.partial(task_id="m", image="busybox").expand(comand=["a"])  # type: ignore[arg-type]
    assert "task 'm': expand(): 'comand' cannot be mapped (did you mean 'command'?)" in str(
        err.value
    )
    assert "command, entrypoint, environment, item" in str(err.value)


def test_a_non_list_literal_is_refused() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError) as err:
        ContainerTask.partial(task_id="m", image="busybox").expand(item="paris")
    assert "task 'm' in DAG 'd': expand(item=...) takes a list or an upstream task's output" in (
        str(err.value)
    )
    assert "not str 'paris'" in str(err.value)


def test_passing_the_task_instead_of_its_output_says_what_to_write() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError) as err:
        up = ContainerTask("up", image="busybox")
        ContainerTask.partial(task_id="m", image="busybox").expand(item=up)  # type: ignore[arg-type]
    assert "pass up.output" in str(err.value)


def test_a_literal_item_of_the_wrong_shape_is_located() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError) as err:
        ContainerTask.partial(task_id="m", image="busybox").expand(command=["ok", 3])
    assert "task 'm' in DAG 'd': expand(command=...): item 1:" in str(err.value)


def test_a_field_given_to_partial_and_expand_is_refused_except_environment() -> None:
    with DAG("d") as dag, pytest.raises(DagDefinitionError) as err:
        ContainerTask.partial(task_id="m", image="busybox", command=["x"]).expand(command=["y"])
    assert "'command' is given to both partial() and expand()" in str(err.value)
    with DAG("e") as dag:
        ContainerTask.partial(task_id="m", image="busybox", environment={"A": "1"}).expand(
            environment=[{"B": "2"}]
        )
    assert dag.to_spec().task("m").environment == {"A": "1"}


def test_an_unknown_partial_argument_is_refused() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match="unknown argument 'imag'"):
        ContainerTask.partial(task_id="m", imag="busybox")  # type: ignore[call-arg]


def test_mapping_over_another_dags_task_is_refused() -> None:
    with DAG("other"):
        elsewhere = ContainerTask("up", image="busybox")
    with DAG("d"), pytest.raises(DagDefinitionError, match="dependencies connect tasks of one"):
        ContainerTask.partial(task_id="m", image="busybox").expand(item=elsewhere.output)


def test_mapping_over_a_downstream_task_is_a_cycle() -> None:
    with DAG("d") as dag:
        first = ContainerTask("first", image="busybox")
        later = ContainerTask("later", image="busybox")
        first >> later
        m = ContainerTask.partial(task_id="m", image="busybox").expand(item=later.output)
        m >> first
    with pytest.raises(DagDefinitionError, match="has a cycle"):
        dag.to_spec()


def test_static_generation_in_a_loop_keeps_working() -> None:
    cities = ["amsterdam", "paris", "tokyo"]
    with DAG("static") as dag:
        start = ContainerTask("start", image="busybox")
        loads = [
            ContainerTask(f"load_{city}", image="busybox", environment={"CITY": city})
            for city in cities
        ]
        start >> loads >> ContainerTask("report", image="busybox")
    spec = dag.to_spec()
    assert spec.task_ids == ("start", "load_amsterdam", "load_paris", "load_tokyo", "report")
    assert spec.task("report").upstream_task_ids == ("load_amsterdam", "load_paris", "load_tokyo")
    assert spec.task("load_paris").environment == {"CITY": "paris"}
    assert all(not task.expand for task in spec.tasks)
