"""The example sensor DAG through the CLI: the sensor waits for the delivery, then it is used."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import REPO, Cli

pytestmark = pytest.mark.docker


def test_example_sensor_dag_waits_for_the_delivery(cli: Cli) -> None:
    # the example's data volume, renamed for this test (the runtime creates it labelled)
    text = (REPO / "dags" / "example_sensor.py").read_text()
    volume = f"{cli.env['ORCH_INSTANCE_NAME']}-sensor-data"
    cli.add_dag("example_sensor.py", text.replace("orchestrator-example-sensor-data", volume))
    result = cli("dags", "test", "example_sensor", "--date", "2026-03-14")
    assert "run test__2026-03-14T00:00:00+00:00 of example_sensor: success" in result.stdout
    assert "wait_for_orders: up_for_reschedule" in result.stdout  # waited without a slot

    run_id = cli.json("runs", "list", "example_sensor")[0]["run_id"]
    shown = cli.json("runs", "show", "example_sensor", run_id)
    tis = {ti["task_id"]: ti for ti in shown["task_instances"]}
    assert {k: (ti["state"], ti["try_number"]) for k, ti in tis.items()} == {
        "deliver": ("success", 1),
        "wait_for_orders": ("success", 1),
        "count_orders": ("success", 1),
    }
    assert tis["count_orders"]["output"] == 3
    log = cli("tasks", "logs", "example_sensor", run_id, "wait_for_orders").stdout
    assert "poke 1: looking for /data/20260314/_SUCCESS" in log
    assert "poke 2: looking" in log and "not yet (exit 75)" in log
