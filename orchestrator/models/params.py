"""Typed run params: a pydantic model built from `ParamSpec`s, against which run conf is checked.

Each param's JSON `type` maps to a strict pydantic type (no coercion: `"5"` is not an
integer, `true` is not a number), with its `enum`, `minimum`/`maximum` and
`min_length`/`max_length`. A param is required when its default is None and it declares a
type other than `"null"`: a run must then supply it in its conf. An untyped param takes any
JSON value. Conf keys that no param declares are allowed and passed through unchanged (as
Airflow allows them).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)

from orchestrator.models.specs import ParamSpec

_TYPES: dict[str, Any] = {
    "string": StrictStr,
    "integer": StrictInt,
    "number": StrictInt | StrictFloat,
    "boolean": StrictBool,
    "array": list[Any],
    "object": dict[str, Any],
    "null": None,
}


class ParamsInvalid(ValueError):
    """Values that do not satisfy their params; `problems` has one line per param."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def is_required(param: ParamSpec) -> bool:
    """True when a run must supply the param: no default (None) and a non-null type."""
    return param.default is None and param.type not in (None, "null")


def describe(param: ParamSpec) -> str:
    """The param's declaration in words: `integer, >= 1, <= 10`, `string, one of 'a', 'b'`."""
    parts: list[str] = [param.type or "any JSON value"]
    if param.enum is not None:
        parts.append("one of " + ", ".join(json.dumps(v) for v in param.enum))
    if param.minimum is not None:
        parts.append(f">= {param.minimum:g}")
    if param.maximum is not None:
        parts.append(f"<= {param.maximum:g}")
    if param.min_length is not None:
        parts.append(f"length >= {param.min_length}")
    if param.max_length is not None:
        parts.append(f"length <= {param.max_length}")
    return ", ".join(parts)


def params_model(params: Mapping[str, ParamSpec]) -> type[BaseModel]:
    """A pydantic model with one field per param (aliased by the param's name, so any name
    works), carrying its type, constraints and default; required params have no default.

    Models are built once per declaration (building one costs far more than validating)."""
    key = json.dumps([[name, param.model_dump(mode="json")] for name, param in params.items()])
    return _params_model(key)


@functools.lru_cache(maxsize=256)
def _params_model(key: str) -> type[BaseModel]:
    params = {name: ParamSpec.model_validate(spec) for name, spec in json.loads(key)}
    fields: dict[str, Any] = {}
    for i, (name, param) in enumerate(params.items()):
        default: Any = ... if is_required(param) else param.default
        fields[f"p{i}"] = (_annotation(param), Field(default, alias=name))
    model: type[BaseModel] = create_model(
        "Params", __config__=ConfigDict(extra="ignore", populate_by_name=False), **fields
    )
    return model


def validate_params(params: Mapping[str, ParamSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """The params' values: defaults, overridden by `values` (run conf), validated.

    Keys of `values` no param declares are passed through as given. Raises ParamsInvalid
    naming each failing param, what it expects and the value given.
    """
    if not params:
        return dict(values)
    declared = {name: values[name] for name in params if name in values}
    try:
        model = params_model(params).model_validate(declared)
    except ValidationError as exc:
        raise ParamsInvalid(_problems(params, exc)) from None
    result = dict(values)
    result.update(model.model_dump(by_alias=True))
    return result


def default_problems(params: Mapping[str, ParamSpec]) -> list[str]:
    """Params whose own default does not satisfy their declaration (checked at load time)."""
    with_defaults = {name: p for name, p in params.items() if not is_required(p)}
    try:
        params_model(with_defaults).model_validate({n: p.default for n, p in with_defaults.items()})
    except ValidationError as exc:
        return _problems(with_defaults, exc, given="but its default is")
    return []


def _annotation(param: ParamSpec) -> Any:
    base = Any if param.type is None else _TYPES[param.type]
    constraints: dict[str, Any] = {}
    if param.minimum is not None:
        constraints["ge"] = param.minimum
    if param.maximum is not None:
        constraints["le"] = param.maximum
    if param.min_length is not None:
        constraints["min_length"] = param.min_length
    if param.max_length is not None:
        constraints["max_length"] = param.max_length
    metadata: list[Any] = [Field(**constraints)] if constraints else []
    if param.enum is not None:
        metadata.append(AfterValidator(_one_of(param.enum)))
    return Annotated[base, *metadata] if metadata else base


def _one_of(choices: tuple[Any, ...]) -> Any:
    def check(value: Any) -> Any:
        # compared as JSON, so that True is not taken for 1, nor 1.0 for 1
        if json.dumps(value, sort_keys=True) not in {
            json.dumps(c, sort_keys=True) for c in choices
        }:
            raise ValueError("not one of the allowed values")
        return value

    return check


def _problems(
    params: Mapping[str, ParamSpec], error: ValidationError, given: str = "got"
) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "?"
        if name in seen or name not in params:
            continue
        seen.add(name)
        param = params[name]
        if item["type"] == "missing":
            problems.append(
                f"param {name!r} ({describe(param)}) is required and has no default:"
                f" give it in the run's conf"
            )
            continue
        reason = str(item["msg"]).removeprefix("Value error, ")
        if param.type == "number" and item["type"] in ("int_type", "float_type"):
            reason = "input should be a valid number"
        problems.append(
            f"param {name!r} expects {describe(param)}, {given} {_show(item.get('input'))}"
            f" ({reason[:1].lower()}{reason[1:]})"
        )
    return problems


def _show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
