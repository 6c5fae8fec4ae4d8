"""End-to-end: the mapping example DAG through the CLI, one container per city."""

from __future__ import annotations

import shutil

from tests.e2e.conftest import REPO, Cli


def test_example_mapping_runs_one_container_per_city_then_summarises(cli: Cli) -> None:
    shutil.copy(REPO / "dags" / "example_mapping.py", cli.dags / "example_mapping.py")
    result = cli(
        "dags",
        "test",
        "example_mapping",
        "--date",
        "2026-03-14",
        "--conf",
        '{"cities": ["oslo", "lima", "amsterdam", "rome"]}',
        timeout=300,
    )
    assert "run test__2026-03-14T00:00:00+00:00 of example_mapping: success" in result.stdout
    assert "weather on 2026-03-14 for 4 cities" in result.stdout  # the summary's log, live

    run_id = cli.json("runs", "list", "example_mapping")[0]["run_id"]
    shown = cli.json("runs", "show", "example_mapping", run_id)["task_instances"]
    weather = sorted(
        (ti for ti in shown if ti["task_id"] == "weather" and ti["map_index"] >= 0),
        key=lambda ti: ti["map_index"],
    )
    assert [(ti["map_index"], ti["state"]) for ti in weather] == [
        (0, "success"),
        (1, "success"),
        (2, "success"),
        (3, "success"),
    ]
    assert [ti["map_values"] for ti in weather] == [
        {"item": "oslo"},
        {"item": "lima"},
        {"item": "amsterdam"},
        {"item": "rome"},
    ]
    assert [ti["output"] for ti in weather] == [
        {"city": "oslo", "temp_c": 12},
        {"city": "lima", "temp_c": 12},
        {"city": "amsterdam", "temp_c": 27},
        {"city": "rome", "temp_c": 12},
    ]
    assert all(ti["container_name"].endswith(f"-m{ti['map_index']}-t1") for ti in weather)
    summary_row = next(ti for ti in shown if ti["task_id"] == "weather" and ti["map_index"] == -1)
    assert summary_row["state"] == "success"

    log = cli("tasks", "logs", "example_mapping", run_id, "weather", "--map-index", "2").stdout
    assert "instance 2: measuring amsterdam" in log
    summary_log = cli("tasks", "logs", "example_mapping", run_id, "summary").stdout
    assert "amsterdam      27 C" in summary_log
