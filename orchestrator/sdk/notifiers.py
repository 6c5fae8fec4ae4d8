"""Checking the notifiers a DAG file passes (`on_failure=Webhook(...)`, lists of them).

A Python callable, Airflow's way, is refused at load time: the scheduler never runs DAG code,
so it could not call it. The error names the DAG, the task, the argument and where the
function is defined, and says what to use instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.errors import DagDefinitionError
from orchestrator.models.notifiers import Command, ContainerHook, Notifier, Webhook
from orchestrator.sdk.convert import describe_validation_error

#: What DAG files may pass as notifiers: one, a list of them, or None.
NotifierArg = Webhook | Command | ContainerHook | Sequence[Webhook | Command | ContainerHook] | None
#: Task arguments (and default_args keys) holding notifiers.
TASK_NOTIFIER_ARGUMENTS = ("on_success", "on_failure", "on_retry")
_KINDS = (Webhook, Command, ContainerHook)
_USE_INSTEAD = (
    "a notifier is data the scheduler acts on, not Python code it would run: use "
    "Webhook(url), Command([program, ...]) or ContainerHook(image, command=...), or a list "
    "of them"
)


def to_notifiers(where: str, argument: str, value: Any) -> tuple[Notifier, ...]:
    """The notifiers given for `argument`: one, a list or tuple, or None (none)."""
    if value is None:
        return ()
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    result: list[Notifier] = []
    for item in items:
        if isinstance(item, _KINDS):
            result.append(item)
        elif isinstance(item, Mapping):
            result.append(_from_mapping(where, argument, item))
        elif callable(item):
            raise DagDefinitionError(
                f"{where}: {argument} is the Python callable {_describe_callable(item)}; "
                f"the scheduler never runs code from DAG files, so it cannot call it. "
                f"{_USE_INSTEAD[0].upper()}{_USE_INSTEAD[1:]}."
            )
        else:
            raise DagDefinitionError(
                f"{where}: {argument} must be a notifier, not {type(item).__name__} "
                f"{item!r}; {_USE_INSTEAD}"
            )
    return tuple(result)


def _from_mapping(where: str, argument: str, item: Mapping[str, Any]) -> Notifier:
    kinds: dict[str, type[BaseModel]] = {
        "webhook": Webhook,
        "command": Command,
        "container": ContainerHook,
    }
    kind = kinds.get(str(item.get("kind")))
    if kind is None:
        raise DagDefinitionError(
            f"{where}: {argument}: a notifier given as a dict needs 'kind' set to 'webhook', "
            f"'command' or 'container'; {_USE_INSTEAD}"
        )
    try:
        notifier: BaseModel = kind.model_validate(dict(item))
    except ValidationError as exc:
        raise DagDefinitionError(describe_validation_error(f"{where}: {argument}", exc)) from None
    assert isinstance(notifier, _KINDS)
    return notifier


def _describe_callable(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    try:
        path = inspect.getsourcefile(fn)
        _, line = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return f"{name!r}"
    return f"{name!r} (defined at {path}:{line})"
