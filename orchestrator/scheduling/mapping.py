"""Dynamic task mapping at run time: expanding a mapped task, and the state of the whole.

Pure functions of (task spec, upstream outputs, instance states, now).

Decisions recorded here:
- A mapped task keeps its `map_index` -1 row as the summary row. When its trigger rule lets it
  run, it is expanded instead of launched: one instance per item (`map_index` 0..n-1), each
  its own container with its own retries. The summary row stays `none` while instances are
  unfinished and then takes their aggregate state (`aggregate_state`), which is what the run
  outcome sees. Downstream trigger rules count every instance, as Airflow's do.
- Zero items skip the task (Airflow's rule). An output that is missing or not a list, or more
  items than `max_map_length`, fail the summary row at once with a message saying which; a
  retry would read the same output, so none is made.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.models.mapping import LiteralItems, OutputItems, check_item
from orchestrator.models.specs import TaskSpec
from orchestrator.models.states import FAILED_TASK_STATES, TaskState


@dataclass(frozen=True)
class Expansion:
    """The result of expanding a mapped task: one dict of values per map index, or an error."""

    values: tuple[dict[str, Any], ...] = ()
    error: str | None = None

    @property
    def state(self) -> TaskState | None:
        """The summary row's state right after expanding: None if instances were made."""
        if self.error is not None:
            return TaskState.FAILED
        return TaskState.SKIPPED if not self.values else None


def expand(task: TaskSpec, outputs: Mapping[str, Any], max_length: int) -> Expansion:
    """Expand `task` over its sources, reading upstream outputs from `outputs` (by task id).

    The cross product of several fields keeps their declared order, the last varying fastest.
    """
    columns: list[tuple[str, list[Any]]] = []
    for name, source in task.expand.items():
        items, error = _items(name, source, outputs)
        if error is not None:
            return Expansion(error=f"cannot expand {name!r}: {error}")
        assert items is not None
        if len(items) > max_length:
            return Expansion(error=_too_long(f"{name!r} has {len(items)} items", max_length))
        for index, item in enumerate(items):
            problem = check_item(name, item)
            if problem is not None:
                return Expansion(error=f"cannot expand {name!r}: item {index}: {problem}")
        columns.append((name, items))
    total = 1
    for _, items in columns:
        total *= len(items)
    if total > max_length:
        sizes = " x ".join(str(len(items)) for _, items in columns)
        return Expansion(
            error=_too_long(f"the cross product has {sizes} = {total} items", max_length)
        )
    names = [name for name, _ in columns]
    return Expansion(
        values=tuple(
            dict(zip(names, combination, strict=True))
            for combination in itertools.product(*(items for _, items in columns))
        )
    )


def _items(
    name: str, source: LiteralItems | OutputItems, outputs: Mapping[str, Any]
) -> tuple[list[Any] | None, str | None]:
    if isinstance(source, LiteralItems):
        return list(source.items), None
    if source.task_id not in outputs:
        return None, (
            f"task {source.task_id!r} has no output to map over (it wrote nothing to "
            "ORCH_OUTPUT_PATH, or did not succeed); it must write a JSON list"
        )
    value = outputs[source.task_id]
    for depth, step in enumerate(source.path):
        where = OutputItems(task_id=source.task_id, path=source.path[:depth]).describe()
        if isinstance(step, str) and isinstance(value, dict):
            if step not in value:
                keys = ", ".join(repr(k) for k in list(value)[:10])
                return None, f"{where} has no key {step!r} (keys: {keys})"
            value = value[step]
        elif isinstance(step, int) and isinstance(value, list):
            if not -len(value) <= step < len(value):
                return None, f"{where} has {len(value)} elements; index {step} is out of range"
            value = value[step]
        else:
            return None, f"cannot index {where} ({_json_type(value)}) with {step!r}"
    if not isinstance(value, list):
        return None, f"{source.describe()} must be a JSON list, got {_preview(value)}"
    return value, None


def _too_long(what: str, limit: int) -> str:
    return (
        f"{what}, over the limit of {limit} mapped instances (ORCH_MAX_MAP_LENGTH); map over "
        "fewer items, or raise the limit"
    )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _preview(value: Any) -> str:
    text = json.dumps(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{_json_type(value)}: {text}"


def aggregate_state(states: Iterable[TaskState]) -> TaskState:
    """The state of a mapped task as a whole, from its instances' states.

    Unfinished while any instance is (reported as `running`); then `failed` if any instance
    failed, `skipped` if every instance was skipped, else `success`.
    """
    listed = list(states)
    if not all(state.is_finished for state in listed):
        return TaskState.RUNNING
    if any(state in FAILED_TASK_STATES for state in listed):
        return TaskState.FAILED
    if listed and all(state in (TaskState.SKIPPED, TaskState.REMOVED) for state in listed):
        return TaskState.SKIPPED
    return TaskState.SUCCESS


@dataclass(frozen=True)
class InstanceView:
    """What is known of one mapped instance."""

    state: TaskState
    next_try_at: datetime | None = None


@dataclass
class InstanceDecisions:
    """What happens to a mapped task's instances now."""

    schedule: list[int] = field(default_factory=list)  # retry delay passed: take a slot again
    settle: TaskState | None = None  # every instance finished: the summary row's final state
    next_retry: datetime | None = None  # earliest retry still to come


def decide_instances(
    instances: Mapping[int, InstanceView], summary: TaskState, now: datetime
) -> InstanceDecisions:
    """Retries of a mapped task's instances, and the summary row's state once all finished.

    `summary` is the summary row's current state; it settles only while still `none`.
    """
    decisions = InstanceDecisions()
    for map_index in sorted(instances):
        view = instances[map_index]
        if view.state != TaskState.UP_FOR_RETRY:
            continue
        if view.next_try_at is None or view.next_try_at <= now:
            decisions.schedule.append(map_index)
        elif decisions.next_retry is None or view.next_try_at < decisions.next_retry:
            decisions.next_retry = view.next_try_at
    overall = aggregate_state(view.state for view in instances.values())
    if instances and summary == TaskState.NONE and overall.is_finished:
        decisions.settle = overall
    return decisions


def ordered_outputs(outputs: Sequence[tuple[int, Any]], count: int) -> list[Any]:
    """A mapped task's outputs as one list in map-index order, None where an instance has none."""
    result: list[Any] = [None] * count
    for map_index, value in outputs:
        if 0 <= map_index < count:
            result[map_index] = value
    return result
