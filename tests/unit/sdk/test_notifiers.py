"""Notifiers in DAG files: arguments, default_args, JSON round trip, and located errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orchestrator import DAG, Command, ContainerHook, ContainerTask, Webhook
from orchestrator.errors import DagDefinitionError
from orchestrator.models.specs import DagSpec


def send_alert(context: Any) -> None:
    """An Airflow-style callback: refused, since the scheduler never runs DAG code."""


def test_task_dag_and_default_args_notifiers_round_trip_through_json() -> None:
    hook = Webhook("https://alerts.example/hook", headers={"X-Team": "data"}, timeout=3)
    with DAG(
        "notify",
        default_args={"image": "busybox", "on_failure": hook, "sla": timedelta(minutes=30)},
        on_success=Command(["notify-send", "done"]),
        on_failure=[hook, ContainerHook("alpine", command=["sh", "-c", "echo $X"])],
        on_sla_miss=hook,
    ) as dag:
        ContainerTask("inherits")
        ContainerTask("own", on_failure=[], on_retry=hook, on_success=hook, sla=60)
        ContainerTask("opts_out", on_failure=None, sla=None)
    spec = dag.to_spec()
    assert DagSpec.model_validate_json(spec.model_dump_json()) == spec
    tasks = {t.task_id: t for t in spec.tasks}
    assert tasks["inherits"].on_failure == (hook,)
    assert tasks["inherits"].sla == timedelta(minutes=30)
    assert (tasks["own"].on_failure, tasks["own"].on_retry) == ((), (hook,))
    assert tasks["own"].sla == timedelta(seconds=60)
    assert (tasks["opts_out"].on_failure, tasks["opts_out"].sla) == ((), None)
    assert spec.on_success == (Command(["notify-send", "done"]),)
    assert [n.kind for n in spec.on_failure] == ["webhook", "container"]
    assert spec.on_sla_miss == (hook,)


def test_a_python_callable_is_refused_with_where_it_is_defined_and_what_to_use() -> None:
    with pytest.raises(DagDefinitionError) as err, DAG("d", default_args={"image": "x"}):
        ContainerTask("load", on_failure=send_alert)
    message = str(err.value)
    assert "task 'load' in DAG 'd': on_failure is the Python callable 'send_alert'" in message
    assert f"{__file__}:" in message  # where the function is defined
    assert "Webhook(url)" in message and "ContainerHook(image" in message


def test_a_callable_on_the_dag_or_in_default_args_is_refused_too() -> None:
    with pytest.raises(DagDefinitionError, match="DAG 'd': on_sla_miss is the Python callable"):
        DAG("d", on_sla_miss=send_alert)
    with (
        pytest.raises(DagDefinitionError, match="on_retry is the Python callable"),
        DAG("d2", default_args={"image": "x", "on_retry": [send_alert]}),
    ):
        ContainerTask("t")


def test_airflow_callback_names_point_to_ours() -> None:
    with (
        pytest.raises(DagDefinitionError, match="did you mean 'on_failure'"),
        DAG("d", default_args={"image": "x"}),
    ):
        ContainerTask("t", on_failure_callback=send_alert)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Webhook("ftp://files.example/x"), "must be an http:// or https:// URL"),
        (lambda: Webhook("https://a.example", timeout=0), "greater than 0"),
        (lambda: Command([]), "needs a program to run"),
        (lambda: ContainerHook("alpine", mounts=["./out:/out"]), "must be absolute"),
    ],
)
def test_bad_notifiers_say_what_is_wrong(make: Any, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        make()


def test_a_wrong_value_and_a_bad_sla_are_located_errors() -> None:
    with (
        pytest.raises(
            DagDefinitionError, match="task 't' in DAG 'd': on_success must be a notifier, not str"
        ),
        DAG("d", default_args={"image": "x"}),
    ):
        ContainerTask("t", on_success="https://a.example")  # type: ignore[arg-type]
    with (
        pytest.raises(DagDefinitionError, match="sla must be a positive duration, got -5s"),
        DAG("d2", default_args={"image": "x"}),
    ):
        ContainerTask("t", sla=-5)
