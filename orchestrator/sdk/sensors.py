"""The sensor arguments of ContainerTask: `sensor=True` and how it pokes.

    ContainerTask(
        task_id="wait_for_file",
        image="busybox",
        command=["sh", "-c", "test -f /data/ready || exit 75"],
        sensor=True,
        poke_interval=30,              # seconds or a timedelta (default 60 s)
        timeout=timedelta(hours=6),    # from the first poke (default 7 days)
        mode="reschedule",             # or "poke" (the default): see models/sensors.py
        not_ready_exit_code=75,        # the exit code that means "not yet" (default 75)
        soft_fail=True,                # on timeout: skipped instead of failed
    )

Sensor settings in a DAG's `default_args` apply to its sensors and are ignored by other tasks
(as in Airflow); given explicitly to a task that is not a sensor, they are an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import DagDefinitionError
from orchestrator.models.sensors import SensorSpec
from orchestrator.sdk.convert import describe_validation_error

#: How a sensor pokes; meaningful only with `sensor=True`.
POKE_ARGUMENTS = frozenset({"poke_interval", "timeout", "mode", "not_ready_exit_code", "soft_fail"})
#: The ContainerTask keywords (and `default_args` keys) this module handles.
SENSOR_ARGUMENTS = frozenset({"sensor", *POKE_ARGUMENTS})


def take_sensor_spec(
    where: str, fields: dict[str, Any], given: Mapping[str, Any]
) -> SensorSpec | None:
    """Remove the sensor arguments from a task's merged `fields` and return its SensorSpec
    (None for a task that is not a sensor). `given` are the task's own keyword arguments.
    Raises DagDefinitionError naming the task and the argument at fault."""
    sensor = fields.pop("sensor", None)
    args = {name: value for name in POKE_ARGUMENTS if (value := fields.pop(name, None)) is not None}
    if sensor is not None and not isinstance(sensor, bool):
        raise DagDefinitionError(f"{where}: sensor must be True or False, not {sensor!r}")
    if not sensor:
        explicit = sorted(name for name in POKE_ARGUMENTS if given.get(name) is not None)
        if explicit:
            raise DagDefinitionError(
                f"{where}: {', '.join(explicit)} only apply to sensors: pass sensor=True to"
                " make this task a sensor, or remove them"
            )
        return None
    try:
        spec = SensorSpec(**args)
    except ValidationError as exc:
        raise DagDefinitionError(describe_validation_error(where, exc)) from None
    if spec.not_ready_exit_code in (fields.get("skip_exit_codes") or ()):
        raise DagDefinitionError(
            f"{where}: not_ready_exit_code {spec.not_ready_exit_code} is also in"
            " skip_exit_codes: one exit code cannot mean both 'not yet' and 'skipped';"
            " change one of them"
        )
    return spec
