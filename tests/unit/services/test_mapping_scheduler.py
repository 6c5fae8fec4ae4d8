"""Mapped tasks in the scheduler, on the fake runtime: expansion, instances, retries, outputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LABEL_MAP_INDEX, LABEL_TASK, LABEL_TRY, LaunchRequest
from orchestrator.models.mapping import LiteralItems, OutputItems
from orchestrator.models.specs import TriggerRule
from orchestrator.models.states import RunState
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness, spec, t

CITIES = ["amsterdam", "paris", "tokyo"]


@pytest.fixture
def make_mapped(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> Callable[..., Harness]:
    def factory(
        script: Callable[[LaunchRequest], FakeBehavior] | None = None,
        settings_update: dict[str, Any] | None = None,
    ) -> Harness:
        chosen = settings.model_copy(update=settings_update or {})
        return Harness(chosen, sessions, clock, script)

    return factory


def instances(h: Harness, run_id: str, task_id: str) -> list[Any]:
    """The mapped instances of a task, by map index."""
    with h.sessions() as session:
        run = run_store.get_run(session, "d", run_id)
        rows = run_store.task_instances(session, run.id)
        mapped = [ti for ti in rows if ti.task_id == task_id and ti.map_index >= 0]
        return sorted(mapped, key=lambda ti: ti.map_index)


def summaries(h: Harness, run_id: str) -> dict[str, Any]:
    """The run's task instances by task id; a mapped task's summary row (`map_index` -1)."""
    with h.sessions() as session:
        run = run_store.get_run(session, "d", run_id)
        rows = run_store.task_instances(session, run.id)
        return {ti.task_id: ti for ti in rows if ti.map_index == -1}


def task_of(request: LaunchRequest) -> str:
    return request.labels[LABEL_TASK]


def weather_script(request: LaunchRequest) -> FakeBehavior:
    """`cities` lists three cities; `fetch` upper-cases its city, failing paris's first try."""
    if task_of(request) == "cities":
        return FakeBehavior(output=CITIES)
    if task_of(request) == "fetch":
        city = request.environment["CITY"]
        if city == "paris" and request.labels[LABEL_TRY] == "1":
            return FakeBehavior(exit_code=1, logs=b"paris is down\n")
        return FakeBehavior(output=city.upper(), logs=f"weather for {city}\n".encode())
    return FakeBehavior()


def weather_dag(**fetch: Any) -> Any:
    fetch.setdefault("retries", 1)
    fetch.setdefault("retry_delay", 30)
    return spec(
        t("cities"),
        t(
            "fetch",
            "cities",
            environment={"CITY": "{{ mapped.item }}", "INDEX": "{{ map_index }}"},
            expand={"item": OutputItems(task_id="cities")},
            **fetch,
        ),
        t(
            "report",
            "fetch",
            environment={"ALL": "{{ outputs.fetch | tojson }}"},
            command=["echo", "{{ ti.xcom_pull(task_ids='fetch') | join(',') }}"],
        ),
    )


def test_one_instance_per_item_with_its_own_retry_and_the_list_downstream(
    make_mapped: Callable[..., Harness],
) -> None:
    h = make_mapped(weather_script)
    run_id = h.trigger(weather_dag())
    h.tick(3)

    fetched = [r for r in h.runtime.created if task_of(r) == "fetch"]
    assert [r.environment["CITY"] for r in fetched] == CITIES
    assert [r.environment["ORCH_MAP_INDEX"] for r in fetched] == ["0", "1", "2"]
    assert [r.environment["INDEX"] for r in fetched] == ["0", "1", "2"]
    assert [r.labels[LABEL_MAP_INDEX] for r in fetched] == ["0", "1", "2"]
    assert all("-fetch-" in r.name and f"-m{i}-t1" in r.name for i, r in enumerate(fetched))
    rows = instances(h, run_id, "fetch")
    assert [(ti.map_index, ti.state, ti.try_number) for ti in rows] == [
        (0, "success", 1),
        (1, "up_for_retry", 1),
        (2, "success", 1),
    ]
    assert summaries(h, run_id)["fetch"].state == "none"  # the summary waits for every instance
    assert summaries(h, run_id)["report"].state == "none"
    assert not [r for r in h.runtime.created if task_of(r) == "report"]

    h.clock.advance(seconds=31)
    h.tick(3)
    rows = instances(h, run_id, "fetch")
    assert [(ti.state, ti.try_number) for ti in rows] == [
        ("success", 1),
        ("success", 2),
        ("success", 1),
    ]
    summary = summaries(h, run_id)["fetch"]
    assert summary.state == "success"
    assert summary.state_detail == "mapped instances: 3 success"
    report = [r for r in h.runtime.created if task_of(r) == "report"]
    assert len(report) == 1
    assert json.loads(report[0].environment["ALL"]) == ["AMSTERDAM", "PARIS", "TOKYO"]
    assert report[0].command == ("echo", "AMSTERDAM,PARIS,TOKYO")
    assert h.run_state(run_id) == RunState.SUCCESS
    # each instance has its own log per attempt
    with h.sessions() as session:
        first = ti_store.get_attempt(session, rows[1].id, 1)
        second = ti_store.get_attempt(session, rows[1].id, 2)
        assert first is not None and second is not None
        assert "paris is down" in Path(first.log_path).read_text()
        assert "weather for paris" in Path(second.log_path).read_text()
        assert "map_index=1" in second.log_path


def test_zero_items_skip_the_mapped_task_and_its_all_success_children(
    make_mapped: Callable[..., Harness],
) -> None:
    h = make_mapped(lambda r: FakeBehavior(output=[] if task_of(r) == "cities" else "x"))
    run_id = h.trigger(weather_dag())
    h.tick(2)
    tis = summaries(h, run_id)
    assert tis["fetch"].state == "skipped"
    assert tis["fetch"].state_detail == "mapped over zero items: skipped"
    assert tis["report"].state == "skipped"
    assert instances(h, run_id, "fetch") == []
    assert h.run_state(run_id) == RunState.SUCCESS


def test_an_output_that_is_not_a_list_fails_the_task_with_a_message(
    make_mapped: Callable[..., Harness],
) -> None:
    h = make_mapped(lambda r: FakeBehavior(output={"cities": CITIES}))
    run_id = h.trigger(weather_dag())
    h.tick(2)
    tis = summaries(h, run_id)
    assert tis["fetch"].state == "failed"
    assert "the output of task 'cities' must be a JSON list, got an object" in (
        tis["fetch"].state_detail
    )
    assert tis["report"].state == "upstream_failed"
    assert [task_of(r) for r in h.runtime.created] == ["cities"]
    assert h.run_state(run_id) == RunState.FAILED


def test_more_items_than_max_map_length_fail_the_task(make_mapped: Callable[..., Harness]) -> None:
    h = make_mapped(weather_script, settings_update={"max_map_length": 2})
    run_id = h.trigger(weather_dag())
    h.tick(2)
    detail = summaries(h, run_id)["fetch"].state_detail
    assert summaries(h, run_id)["fetch"].state == "failed"
    assert "'item' has 3 items, over the limit of 2 mapped instances" in detail
    assert instances(h, run_id, "fetch") == []


def test_a_failed_instance_fails_the_task_and_all_done_children_see_the_gap(
    make_mapped: Callable[..., Harness],
) -> None:
    h = make_mapped(weather_script)
    dag = weather_dag(retries=0)
    report = dag.task("report").model_copy(update={"trigger_rule": TriggerRule.ALL_DONE})
    dag = dag.model_copy(update={"tasks": (*dag.tasks[:2], report)})
    run_id = h.trigger(dag)
    h.tick(3)
    summary = summaries(h, run_id)["fetch"]
    assert summary.state == "failed"
    assert summary.state_detail == "mapped instances: 1 failed, 2 success"
    report_request = next(r for r in h.runtime.created if task_of(r) == "report")
    assert json.loads(report_request.environment["ALL"]) == ["AMSTERDAM", None, "TOKYO"]
    assert summaries(h, run_id)["report"].state == "success"
    assert h.run_state(run_id) == RunState.SUCCESS  # the leaf handled it, as in Airflow


def test_a_failed_leaf_instance_fails_the_run(make_mapped: Callable[..., Harness]) -> None:
    h = make_mapped(weather_script)
    dag = weather_dag(retries=0)
    run_id = h.trigger(dag.model_copy(update={"tasks": dag.tasks[:2]}))
    h.tick(3)
    assert summaries(h, run_id)["fetch"].state == "failed"
    assert h.run_state(run_id) == RunState.FAILED


def test_literal_items_are_rendered_but_items_from_outputs_are_passed_verbatim(
    make_mapped: Callable[..., Harness],
) -> None:
    h = make_mapped(lambda r: FakeBehavior(output=["echo {{ ds }}"]))
    run_id = h.trigger(
        spec(
            t("up"),
            t("from_output", "up", expand={"command": OutputItems(task_id="up")}),
            t(
                "from_literal",
                environment={"BASE": "kept"},
                expand={
                    "command": LiteralItems(items=(["echo", "{{ ds }}"],)),
                    "environment": LiteralItems(items=({"DAY": "{{ ds_nodash }}", "N": 2},)),
                },
            ),
        )
    )
    h.tick(3)
    by_task = {task_of(r): r for r in h.runtime.created}
    assert by_task["from_output"].command == "echo {{ ds }}"
    assert by_task["from_literal"].command == ("echo", "2026-03-14")
    env = by_task["from_literal"].environment
    assert (env["BASE"], env["DAY"], env["N"]) == ("kept", "20260314", "2")
    assert h.run_state(run_id) == RunState.SUCCESS


def test_a_cross_product_runs_every_combination(make_mapped: Callable[..., Harness]) -> None:
    h = make_mapped()
    run_id = h.trigger(
        spec(
            t(
                "m",
                command=["echo", "{{ mapped.item }}", "{{ mapped.environment.SIZE }}"],
                expand={
                    "item": LiteralItems(items=("a", "b")),
                    "environment": LiteralItems(items=({"SIZE": "s"}, {"SIZE": "l"})),
                },
            )
        )
    )
    h.tick(2)
    commands = [r.command for r in h.runtime.created]
    assert commands == [
        ("echo", "a", "s"),
        ("echo", "a", "l"),
        ("echo", "b", "s"),
        ("echo", "b", "l"),
    ]
    assert [ti.map_values for ti in instances(h, run_id, "m")][1] == {
        "item": "a",
        "environment": {"SIZE": "l"},
    }


def test_instances_share_the_parallelism_limit(make_mapped: Callable[..., Harness]) -> None:
    h = make_mapped(settings_update={"parallelism": 2})
    h.runtime.script = lambda r: FakeBehavior(hang=True)
    run_id = h.trigger(spec(t("m", expand={"item": LiteralItems(items=tuple(range(5)))})))
    h.tick(2)
    running = [ti.map_index for ti in instances(h, run_id, "m") if ti.state == "running"]
    assert running == [0, 1]
    assert len(h.runtime.created) == 2
