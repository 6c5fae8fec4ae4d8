"""Dynamic task mapping on real containers: one container per city from an upstream list."""

from __future__ import annotations

import json

import pytest

from orchestrator.models.mapping import OutputItems
from orchestrator.store import runs as run_store
from tests.integration.harness import Env, sh, wait_removed

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]

CITIES = ["amsterdam", "paris", "tokyo"]


def test_one_container_per_city_and_the_list_of_outputs_downstream(env: Env) -> None:
    cities = sh("cities", f"echo '{json.dumps(CITIES)}' > \"$ORCH_OUTPUT_PATH\"")
    fetch = sh(
        "fetch",
        'echo "city $CITY map_index $ORCH_MAP_INDEX try $ORCH_TRY_NUMBER"; '
        'if [ "$CITY" = paris ] && [ "$ORCH_TRY_NUMBER" = 1 ]; then exit 1; fi; '
        'printf \'"%s:%s"\' "$CITY" "$ORCH_MAP_INDEX" > "$ORCH_OUTPUT_PATH"',
        "cities",
        environment={"CITY": "{{ mapped.item }}"},
        expand={"item": OutputItems(task_id="cities")},
        retries=1,
        retry_delay=0,
    )
    report = sh(
        "report",
        'echo "got $ALL"; echo "$ALL" > "$ORCH_OUTPUT_PATH"',
        "fetch",
        environment={"ALL": "{{ outputs.fetch | tojson }}"},
    )
    env.run(cities, fetch, report, timeout=240)
    assert env.run_state == "success"

    with env.sessions() as session:
        run = run_store.get_run(session, "it", env.run_id)
        rows = run_store.task_instances(session, run.id)
    summary = {ti.task_id: ti for ti in rows if ti.map_index == -1}
    mapped = sorted((ti for ti in rows if ti.map_index >= 0), key=lambda ti: ti.map_index)

    assert [(ti.map_index, ti.state) for ti in mapped] == [
        (0, "success"),
        (1, "success"),
        (2, "success"),
    ]
    assert [ti.try_number for ti in mapped] == [1, 2, 1]  # paris failed once and was retried
    assert [json.loads(ti.output_json) for ti in mapped] == ["amsterdam:0", "paris:1", "tokyo:2"]
    for ti in mapped:
        assert "-it-fetch-" in ti.container_name
        assert ti.container_name.endswith(f"-m{ti.map_index}-t{ti.try_number}")
        city = CITIES[ti.map_index]
        assert f"city {city} map_index {ti.map_index} try {ti.try_number}" in env.log(
            ti, ti.try_number
        )
    assert "city paris map_index 1 try 1" in env.log(mapped[1], 1)
    assert "exited with code 1" in env.log(mapped[1], 1)

    assert summary["fetch"].state == "success"
    assert json.loads(summary["report"].output_json) == ["amsterdam:0", "paris:1", "tokyo:2"]
    assert 'got ["amsterdam:0", "paris:1", "tokyo:2"]' in env.log(summary["report"])
    assert wait_removed(env) == []
