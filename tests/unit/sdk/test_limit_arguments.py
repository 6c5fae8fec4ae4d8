"""Pools, priority and concurrency limits as a DAG file declares them."""

from __future__ import annotations

import pytest

from orchestrator import DAG, ContainerTask
from orchestrator.errors import DagDefinitionError
from orchestrator.models.specs import DagSpec, WeightRule


def test_defaults_match_airflow() -> None:
    with DAG("d") as dag:
        ContainerTask("a", image="img")
    spec = dag.to_spec("f.py")
    task = spec.task("a")
    assert spec.max_active_tasks == 16
    assert (task.pool, task.pool_slots, task.priority_weight) == ("default_pool", 1, 1)
    assert task.weight_rule == WeightRule.DOWNSTREAM
    assert task.max_active_tis_per_dag is None


def test_arguments_reach_the_spec_and_survive_json() -> None:
    with DAG("d", max_active_tasks=4, default_args={"pool": "db", "priority_weight": 3}) as dag:
        ContainerTask("a", image="img", pool_slots=2, weight_rule="upstream")
        ContainerTask("b", image="img", pool="other", max_active_tis_per_dag=1)
    spec = DagSpec.model_validate_json(dag.to_spec("f.py").model_dump_json())
    a, b = spec.task("a"), spec.task("b")
    assert spec.max_active_tasks == 4
    assert (a.pool, a.pool_slots, a.priority_weight, a.weight_rule) == ("db", 2, 3, "upstream")
    assert (b.pool, b.priority_weight, b.max_active_tis_per_dag) == ("other", 3, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pool_slots": 0}, r"task 'a' in DAG 'd': pool_slots: must be at least 1"),
        (
            {"weight_rule": "sideways"},
            r"task 'a' in DAG 'd': weight_rule: Input should be 'downstream', 'upstream' or "
            r"'absolute' \(got 'sideways'\)",
        ),
        (
            {"max_active_tis_per_dag": 0},
            r"max_active_tis_per_dag: must be at least 1 \(or None: unlimited\)",
        ),
        (
            {"pool": "my pool"},
            r"task 'a' in DAG 'd': pool: pool name 'my pool' may contain only letters",
        ),
        ({"priority_weight": 2**40}, r"task 'a' in DAG 'd': priority_weight: "),
        ({"pool_slot": 2}, r"unknown argument 'pool_slot' \(did you mean 'pool_slots'\?\)"),
    ],
)
def test_bad_values_are_located_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DagDefinitionError, match=message), DAG("d"):
        ContainerTask("a", image="img", **kwargs)  # type: ignore[arg-type]


def test_bad_max_active_tasks_names_the_dag() -> None:
    with pytest.raises(
        DagDefinitionError, match=r"DAG 'd': max_active_tasks: must be at least 1, got 0"
    ):
        DAG("d", max_active_tasks=0)


def test_a_bad_value_from_default_args_says_where_it_came_from() -> None:
    with (
        pytest.raises(DagDefinitionError, match=r"pool_slots came from the DAG's default_args"),
        DAG("d", default_args={"pool_slots": -1}),
    ):
        ContainerTask("a", image="img")
