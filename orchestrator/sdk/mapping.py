"""Dynamic task mapping in DAG files: `ContainerTask.partial(...).expand(...)` and `task.output`.

    cities = ContainerTask("cities", image=..., command=[...])     # writes ["amsterdam", ...]
    weather = ContainerTask.partial(
        task_id="weather", image=..., environment={"CITY": "{{ mapped.item }}"}
    ).expand(item=cities.output)                                    # one container per city

`partial` takes every ContainerTask argument that is the same for all instances; `expand` takes
the fields that vary, each a literal list or an upstream task's output (see
`orchestrator.models.mapping` for what one item of each field means). Referring to a task's
output makes that task upstream of the mapped one, as Airflow does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DagDefinitionError
from orchestrator.models.mapping import (
    MAPPABLE_FIELDS,
    LiteralItems,
    MapSource,
    OutputItems,
    check_item,
)
from orchestrator.sdk.convert import closest

if TYPE_CHECKING:
    from orchestrator.sdk.task import ContainerTask

#: Fields that may be given both to partial() (shared) and expand() (merged over, per item).
_MERGED_FIELDS = frozenset({"environment"})


class TaskOutput:
    """A reference to a task's output (the JSON value it writes to `ORCH_OUTPUT_PATH`).

    `task.output` is the whole output; `task.output["cities"]` or `task.output[0]` a value
    inside it. Pass it to `expand(...)`; at run time it must be a JSON list.
    """

    def __init__(self, task: ContainerTask, path: tuple[str | int, ...] = ()) -> None:
        self.task = task
        self.path = path

    def __getitem__(self, key: str | int) -> TaskOutput:
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise DagDefinitionError(
                f"{self!r}[{key!r}]: index an output with a key (string) or a position (integer)"
            )
        return TaskOutput(self.task, (*self.path, key))

    def to_source(self) -> OutputItems:
        return OutputItems(task_id=self.task.task_id, path=self.path)

    def __repr__(self) -> str:
        return f"{self.task.task_id}.output" + "".join(f"[{step!r}]" for step in self.path)


class PartialTask:
    """What `ContainerTask.partial(...)` returns: call `.expand(...)` on it to make the task."""

    def __init__(self, task_id: str, arguments: dict[str, Any]) -> None:
        self.task_id = task_id
        self.arguments = arguments

    def expand(self, **fields: Sequence[Any] | TaskOutput) -> ContainerTask:
        """Make the mapped task: one instance per item, or per combination of items (cross
        product, the last field varying fastest) when several fields are given."""
        from orchestrator.sdk.task import ContainerTask

        where = f"task '{self.task_id}'"
        if not fields:
            raise DagDefinitionError(
                f"{where}: expand() needs at least one field to map over, e.g. "
                "expand(command=[...]) or expand(item=other.output)"
            )
        for name in fields:
            if name not in MAPPABLE_FIELDS:
                raise DagDefinitionError(
                    f"{where}: expand(): '{name}' cannot be mapped{closest(name, MAPPABLE_FIELDS)}"
                    f"; mappable fields: {', '.join(MAPPABLE_FIELDS)}"
                )
            if name in self.arguments and name not in _MERGED_FIELDS:
                raise DagDefinitionError(
                    f"{where}: '{name}' is given to both partial() and expand(); give it to "
                    "partial() for every instance or to expand() to vary it, not both"
                )
        task = ContainerTask(self.task_id, **self.arguments)
        where = f"task '{task.task_id}' in DAG '{task.dag.dag_id}'"
        sources: dict[str, MapSource] = {}
        for name, value in fields.items():
            sources[name] = _source(where, name, value)
            if isinstance(value, TaskOutput):
                value.task.add_edge_to(task)
        task.spec = task.spec.model_copy(update={"expand": sources})
        return task


def _source(where: str, name: str, value: object) -> MapSource:
    from orchestrator.sdk.task import ContainerTask

    if isinstance(value, TaskOutput):
        return value.to_source()
    if isinstance(value, ContainerTask):
        raise DagDefinitionError(
            f"{where}: expand({name}={value.task_id}): to map over a task's output, pass "
            f"{value.task_id}.output"
        )
    if not isinstance(value, list | tuple):
        raise DagDefinitionError(
            f"{where}: expand({name}=...) takes a list or an upstream task's output "
            f"(task.output), not {type(value).__name__} {_short(value)}"
        )
    for index, item in enumerate(value):
        problem = check_item(name, item)
        if problem is not None:
            raise DagDefinitionError(f"{where}: expand({name}=...): item {index}: {problem}")
        try:
            json.dumps(item)
        except (TypeError, ValueError):
            raise DagDefinitionError(
                f"{where}: expand({name}=...): item {index} {_short(item)} is not JSON-serializable"
            ) from None
    return LiteralItems(items=tuple(value))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
