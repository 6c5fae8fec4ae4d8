"""Declaring sensors in a DAG file: defaults, default_args, and located errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orchestrator import DAG, ContainerTask
from orchestrator.errors import DagDefinitionError
from orchestrator.models.sensors import SensorMode, SensorSpec


def build(default_args: dict[str, Any] | None = None, **kw: Any) -> ContainerTask:
    with DAG("d", default_args=default_args or {}):
        return ContainerTask("wait", image="busybox", **kw)


def test_a_sensor_has_airflows_defaults() -> None:
    spec = build(sensor=True).to_spec().sensor
    assert spec == SensorSpec(
        poke_interval=timedelta(seconds=60),
        timeout=timedelta(days=7),
        mode=SensorMode.POKE,
        not_ready_exit_code=75,
        soft_fail=False,
    )


def test_sensor_arguments_accept_seconds_and_timedeltas() -> None:
    spec = build(
        sensor=True,
        poke_interval=5,
        timeout=timedelta(hours=1),
        mode="reschedule",
        not_ready_exit_code=3,
        soft_fail=True,
    ).to_spec()
    assert spec.sensor is not None
    assert spec.sensor.poke_interval == timedelta(seconds=5)
    assert spec.sensor.timeout == timedelta(hours=1)
    assert (spec.sensor.mode, spec.sensor.not_ready_exit_code, spec.sensor.soft_fail) == (
        SensorMode.RESCHEDULE,
        3,
        True,
    )


def test_a_plain_task_is_not_a_sensor() -> None:
    assert build().to_spec().sensor is None


def test_sensor_default_args_apply_to_sensors_only() -> None:
    defaults = {"poke_interval": 10, "mode": "reschedule"}
    with DAG("d", default_args=defaults) as dag:
        ContainerTask("wait", image="busybox", sensor=True)
        ContainerTask("work", image="busybox")
    spec = dag.to_spec("f.py")
    waiting = spec.task("wait").sensor
    assert waiting is not None and waiting.poke_interval == timedelta(seconds=10)
    assert waiting.mode == SensorMode.RESCHEDULE
    assert spec.task("work").sensor is None


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"poke_interval": 5, "mode": "reschedule"},
            "task 'wait' in DAG 'd': mode, poke_interval only apply to sensors: pass sensor=True",
        ),
        (
            {"sensor": True, "poke_interval": 0},
            "task 'wait' in DAG 'd': poke_interval: must be positive, got 0s",
        ),
        (
            {"sensor": True, "timeout": -1},
            "task 'wait' in DAG 'd': timeout: must be positive, got -1s",
        ),
        (
            {"sensor": True, "not_ready_exit_code": 0},
            "task 'wait' in DAG 'd': not_ready_exit_code: cannot be 0",
        ),
        (
            {"sensor": True, "skip_exit_codes": [75]},
            "task 'wait' in DAG 'd': not_ready_exit_code 75 is also in skip_exit_codes",
        ),
        (
            {"sensor": True, "mode": "poll"},
            "task 'wait' in DAG 'd': mode: Input should be 'poke' or 'reschedule'",
        ),
        ({"sensor": "yes"}, "task 'wait' in DAG 'd': sensor must be True or False"),
    ],
)
def test_bad_sensor_arguments_are_located_errors(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(DagDefinitionError) as info:
        build(**kw)
    assert str(info.value).startswith(message)


def test_unknown_sensor_argument_suggests_the_right_one() -> None:
    with pytest.raises(DagDefinitionError, match="did you mean 'poke_interval'"):
        build(sensor=True, poke_intervall=5)
