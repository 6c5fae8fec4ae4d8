"""Dynamic task mapping, as declared: what a mapped task expands over, and what an item may be.

`ContainerTask.partial(...).expand(field=source)` stores one `MapSource` per expanded field in
`TaskSpec.expand`, in the order given. A source is a literal list written in the DAG file, or
an upstream task's output (optionally indexed into: `task.output["cities"]`), which must be a
JSON list when the mapped task becomes ready. Several fields expand as a cross product, the
last field varying fastest (as Airflow and `itertools.product` do).

The fields a mapped task may expand, and what one item of each means:

- `command`, `entrypoint`: a string (split shell-style, like the unmapped field) or a list of
  strings; it replaces the partial's value.
- `environment`: an object of variable names to scalars; merged over the partial's variables.
- `item`: any JSON value; sets no field, it is only seen by templates as `{{ mapped.item }}`.

Every mapped instance's templates see its values as `mapped` (`{{ mapped.command }}`, ...).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

#: The task fields `expand` accepts, in the order the docs list them.
MappableField = Literal["command", "entrypoint", "environment", "item"]
MAPPABLE_FIELDS: tuple[str, ...] = get_args(MappableField)
#: The longest a mapped task may expand when the setting is not given (Airflow's default).
DEFAULT_MAX_MAP_LENGTH = 1024


class _MapSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LiteralItems(_MapSpec):
    """Items written in the DAG file; templates in them are rendered per instance."""

    kind: Literal["literal"] = "literal"
    items: tuple[Any, ...]


class OutputItems(_MapSpec):
    """An upstream task's output (a JSON list at run time), or a value inside it.

    `path` indexes into the output: `("cities",)` reads `output["cities"]`, `(0,)` the first
    element. Items read from an output are data: they are passed on verbatim, never rendered
    as templates.
    """

    kind: Literal["output"] = "output"
    task_id: str
    path: tuple[str | int, ...] = ()

    def describe(self) -> str:
        """`task 'x' output["cities"][0]`, for messages."""
        index = "".join(f"[{step!r}]" for step in self.path)
        return f"the output of task {self.task_id!r}{index}"


MapSource = Annotated[LiteralItems | OutputItems, Field(discriminator="kind")]


def check_item(field: str, item: Any) -> str | None:
    """Why `item` cannot be one value of the mapped `field`, or None if it can."""
    if field in ("command", "entrypoint"):
        if isinstance(item, str):
            return None
        if isinstance(item, list | tuple) and all(isinstance(part, str) for part in item):
            return None
        return f"a {field} item must be a string or a list of strings, not {_short(item)}"
    if field == "environment":
        if not isinstance(item, dict):
            return f"an environment item must be an object of variables, not {_short(item)}"
        for name, value in item.items():
            if not isinstance(name, str) or not name or "=" in name:
                return f"environment variable name {name!r} must be a non-empty string without '='"
            if not isinstance(value, str | int | float | bool):
                return (
                    f"environment variable {name!r} must be a string or number, not {_short(value)}"
                )
        return None
    if field == "item":
        return None
    return f"{field!r} cannot be mapped; mappable fields: {', '.join(MAPPABLE_FIELDS)}"


def env_value(value: Any) -> str:
    """An environment item's value as the container sees it (booleans as `true`/`false`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _short(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"
