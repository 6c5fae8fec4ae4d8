"""Typed params and depends_on_past as a DAG file declares them."""

from __future__ import annotations

import pytest

from orchestrator import DAG, ContainerTask, Param
from orchestrator.errors import DagDefinitionError
from orchestrator.models.specs import ParamSpec


def test_param_constraints_reach_the_spec() -> None:
    dag = DAG(
        "d",
        params={
            "rows": Param(10, type="integer", minimum=1, maximum=100),
            "mode": Param("fast", type="string", enum=["fast", "slow"]),
            "name": Param("ab", type="string", min_length=1, max_length=8),
            "day": Param(type="string", description="the day to load"),
        },
    )
    params = dag.to_spec().params
    assert params["rows"] == ParamSpec(default=10, type="integer", minimum=1, maximum=100)
    assert params["mode"].enum == ("fast", "slow")
    assert (params["name"].min_length, params["name"].max_length) == (1, 8)
    assert params["day"] == ParamSpec(type="string", description="the day to load")


@pytest.mark.parametrize(
    ("param", "words"),
    [
        (
            Param(0, type="integer", minimum=1),
            "param 'n' expects integer, >= 1, but its default is 0",
        ),
        (Param("x", type="string", enum=["a"]), 'but its default is "x"'),
        (Param("", type="string", min_length=1), 'but its default is ""'),
        (Param("1", type="string", minimum=1), "minimum and maximum need type 'integer'"),
    ],
)
def test_a_default_that_breaks_its_declaration_is_a_located_error(param: Param, words: str) -> None:
    with pytest.raises(DagDefinitionError, match="DAG 'd'") as info:
        DAG("d", params={"n": param})
    assert words in str(info.value)


def test_a_task_param_default_is_checked_too() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match=r"task 't' in DAG 'd'.*param 'n'"):
        ContainerTask("t", image="alpine", params={"n": Param(5, type="integer", maximum=3)})


def test_a_scheduled_dag_cannot_have_required_params() -> None:
    with pytest.raises(DagDefinitionError, match="param 'day' has no default, but the DAG has a"):
        DAG("d", schedule="@daily", start_date="2026-01-01", params={"day": Param(type="string")})
    DAG("manual", schedule=None, params={"day": Param(type="string")})


def test_depends_on_past_argument_and_default_args() -> None:
    with DAG("d", default_args={"image": "alpine", "depends_on_past": True}) as dag:
        ContainerTask("a")
        ContainerTask("b", depends_on_past=False)
        ContainerTask("c", depends_on_past=None)  # None: not given, default_args apply
    spec = dag.to_spec()
    assert [t.depends_on_past for t in spec.tasks] == [True, False, True]
    with DAG("plain") as plain:
        ContainerTask("a", image="alpine")
    assert plain.to_spec().tasks[0].depends_on_past is False
