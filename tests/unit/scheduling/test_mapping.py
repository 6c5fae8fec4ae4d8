"""Expanding mapped tasks, their aggregate state and instance retries: pure, with a fixed time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.models.mapping import LiteralItems, OutputItems
from orchestrator.models.specs import DagSpec, TaskSpec, TriggerRule
from orchestrator.models.states import TaskState
from orchestrator.scheduling.mapping import (
    InstanceView,
    aggregate_state,
    decide_instances,
    expand,
    ordered_outputs,
)
from orchestrator.scheduling.readiness import TaskView, decide

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
S = TaskState


def mapped(**sources: Any) -> TaskSpec:
    return TaskSpec(task_id="m", image="img", upstream_task_ids=("up",), expand=sources)


def literal(*items: Any) -> LiteralItems:
    return LiteralItems(items=items)


def test_a_literal_list_gives_one_instance_per_item_in_order() -> None:
    result = expand(mapped(item=literal("a", "b", "c")), {}, 1024)
    assert result.error is None and result.state is None
    assert result.values == ({"item": "a"}, {"item": "b"}, {"item": "c"})


def test_an_upstream_output_list_is_expanded() -> None:
    task = mapped(command=OutputItems(task_id="up"))
    result = expand(task, {"up": [["echo", "x"], "echo y"]}, 1024)
    assert result.values == ({"command": ["echo", "x"]}, {"command": "echo y"})


def test_a_value_inside_the_output_can_be_mapped_over() -> None:
    task = mapped(item=OutputItems(task_id="up", path=("cities", 0)))
    result = expand(task, {"up": {"cities": [["paris", "lyon"]]}}, 1024)
    assert [v["item"] for v in result.values] == ["paris", "lyon"]


def test_several_fields_expand_as_a_cross_product_last_varying_fastest() -> None:
    task = mapped(
        item=literal(1, 2),
        environment=literal({"MODE": "a"}, {"MODE": "b"}, {"MODE": "c"}),
    )
    result = expand(task, {}, 1024)
    assert [(v["item"], v["environment"]["MODE"]) for v in result.values] == [
        (1, "a"),
        (1, "b"),
        (1, "c"),
        (2, "a"),
        (2, "b"),
        (2, "c"),
    ]


def test_zero_items_skip_the_task() -> None:
    result = expand(mapped(item=OutputItems(task_id="up")), {"up": []}, 1024)
    assert result.values == () and result.error is None
    assert result.state == S.SKIPPED


def test_more_items_than_the_limit_fail_naming_the_length_and_the_limit() -> None:
    result = expand(mapped(item=OutputItems(task_id="up")), {"up": list(range(11))}, 10)
    assert result.state == S.FAILED
    assert "11 items" in str(result.error) and "limit of 10" in str(result.error)
    assert "ORCH_MAX_MAP_LENGTH" in str(result.error)


def test_a_cross_product_over_the_limit_fails_too() -> None:
    result = expand(mapped(item=literal(*range(4)), command=literal(*"abc")), {}, 10)
    assert result.state == S.FAILED
    assert "4 x 3 = 12 items" in str(result.error)
    assert expand(mapped(item=literal(*range(5)), command=literal("a", "b")), {}, 10).error is None


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ({"cities": ["a"]}, "must be a JSON list, got an object"),
        ("paris", "must be a JSON list, got a string"),
        (None, "must be a JSON list, got null"),
        (3, "must be a JSON list, got a number"),
    ],
)
def test_an_output_that_is_not_a_list_fails_the_task(output: Any, expected: str) -> None:
    result = expand(mapped(item=OutputItems(task_id="up")), {"up": output}, 1024)
    assert result.state == S.FAILED
    assert "cannot expand 'item'" in str(result.error)
    assert "task 'up'" in str(result.error) and expected in str(result.error)


def test_a_missing_output_says_the_upstream_must_write_a_list() -> None:
    result = expand(mapped(item=OutputItems(task_id="up")), {}, 1024)
    assert result.state == S.FAILED
    assert "task 'up' has no output to map over" in str(result.error)


def test_a_missing_key_in_the_output_names_the_keys_there_are() -> None:
    task = mapped(item=OutputItems(task_id="up", path=("citys",)))
    result = expand(task, {"up": {"cities": []}}, 1024)
    assert "has no key 'citys' (keys: 'cities')" in str(result.error)


def test_an_item_of_the_wrong_shape_fails_naming_its_index() -> None:
    result = expand(mapped(command=OutputItems(task_id="up")), {"up": ["ok", 5]}, 1024)
    assert result.state == S.FAILED
    assert "item 1: a command item must be a string or a list of strings" in str(result.error)
    env = expand(mapped(environment=OutputItems(task_id="up")), {"up": [{"A": [1]}]}, 1024)
    assert "environment variable 'A' must be a string or number" in str(env.error)


def test_aggregate_state_of_instances() -> None:
    assert aggregate_state([S.SUCCESS, S.RUNNING]) == S.RUNNING
    assert aggregate_state([S.SUCCESS, S.UP_FOR_RETRY]) == S.RUNNING
    assert aggregate_state([S.SUCCESS, S.SUCCESS]) == S.SUCCESS
    assert aggregate_state([S.SUCCESS, S.SKIPPED]) == S.SUCCESS
    assert aggregate_state([S.SKIPPED, S.SKIPPED]) == S.SKIPPED
    assert aggregate_state([S.SUCCESS, S.FAILED, S.SKIPPED]) == S.FAILED


def test_instance_retries_are_due_once_their_delay_passed() -> None:
    later = NOW + timedelta(seconds=30)
    instances = {
        0: InstanceView(S.SUCCESS),
        1: InstanceView(S.UP_FOR_RETRY, NOW),
        2: InstanceView(S.UP_FOR_RETRY, later),
    }
    decisions = decide_instances(instances, S.NONE, NOW)
    assert decisions.schedule == [1]
    assert decisions.next_retry == later
    assert decisions.settle is None
    assert decide_instances(instances, S.NONE, later).schedule == [1, 2]


def test_the_summary_settles_once_every_instance_finished() -> None:
    done = {0: InstanceView(S.SUCCESS), 1: InstanceView(S.FAILED)}
    assert decide_instances(done, S.NONE, NOW).settle == S.FAILED
    assert decide_instances(done, S.FAILED, NOW).settle is None  # settled already
    ok = {0: InstanceView(S.SUCCESS), 1: InstanceView(S.SUCCESS)}
    assert decide_instances(ok, S.NONE, NOW).settle == S.SUCCESS


def test_ordered_outputs_keep_map_index_positions() -> None:
    assert ordered_outputs([(2, "c"), (0, "a")], 3) == ["a", None, "c"]


def dag_with_child(rule: TriggerRule) -> DagSpec:
    return DagSpec(
        dag_id="d",
        tasks=(
            TaskSpec(task_id="m", image="img", expand={"item": literal(1, 2, 3)}),
            TaskSpec(task_id="after", image="img", upstream_task_ids=("m",), trigger_rule=rule),
        ),
    )


def test_downstream_trigger_rules_count_each_mapped_instance() -> None:
    instances = (S.SUCCESS, S.RUNNING, S.RUNNING)
    views = {"m": TaskView(S.RUNNING, instances=instances), "after": TaskView(S.NONE)}
    assert decide(dag_with_child(TriggerRule.ALL_SUCCESS), views, NOW).schedule == []
    assert decide(dag_with_child(TriggerRule.ONE_SUCCESS), views, NOW).schedule == ["after"]
    failed = {
        "m": TaskView(S.RUNNING, instances=(S.SUCCESS, S.FAILED, S.RUNNING)),
        "after": TaskView(S.NONE),
    }
    assert decide(dag_with_child(TriggerRule.ONE_FAILED), failed, NOW).schedule == ["after"]
    assert decide(dag_with_child(TriggerRule.ALL_SUCCESS), failed, NOW).upstream_failed == ["after"]
    all_done = {
        "m": TaskView(S.FAILED, instances=(S.SUCCESS, S.FAILED, S.SKIPPED)),
        "after": TaskView(S.NONE),
    }
    assert decide(dag_with_child(TriggerRule.ALL_DONE), all_done, NOW).schedule == ["after"]


def test_a_running_mapped_task_is_not_scheduled_again() -> None:
    views = {"m": TaskView(S.RUNNING, instances=(S.RUNNING,)), "after": TaskView(S.NONE)}
    assert "m" not in decide(dag_with_child(TriggerRule.ALL_SUCCESS), views, NOW).schedule
