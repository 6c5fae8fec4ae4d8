"""Turning what users write in DAG files into spec values, with messages that name the place.

Decisions recorded here:
- A schedule string is a preset (`@once @hourly @daily @weekly @monthly @yearly @annually`)
  or a cron expression croniter accepts; anything else is refused at load time, naming the
  DAG and the expression. A `timedelta` schedule must be positive. A scheduled DAG needs a
  `start_date` (as in Airflow: it is where its first data interval begins).
- Naive dates are read in the DAG's timezone and stored as UTC, by `pendulum.datetime`'s rules:
  a wall time skipped by a DST change moves forward (02:30 -> 03:30), an ambiguous one is taken
  after the change. A `date` means midnight of that day; ISO strings are accepted too.
- A `Param` default of None with a declared type (other than "null") means "no default: must
  be supplied when the run is triggered"; any other default must be JSON-serializable and
  satisfy its own declaration (type, enum, bounds, lengths). A scheduled DAG cannot have
  such required params (its scheduled runs have no conf to supply them), as in Airflow.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Literal

from pydantic import ValidationError

from orchestrator.errors import DagDefinitionError
from orchestrator.models.params import default_problems, is_required
from orchestrator.models.specs import CronSchedule, DeltaSchedule, ParamSpec

ParamType = Literal["string", "integer", "number", "boolean", "array", "object", "null"]
ScheduleArg = str | timedelta | CronSchedule | DeltaSchedule | None
DateArg = datetime | date | str | None


@dataclass(frozen=True)
class Param:
    """A run parameter with a default, an optional JSON type, a description and constraints.

    `params={"limit": Param(100, type="integer", minimum=1, description="rows per batch")}`;
    a plain value (`params={"limit": 100}`) is a Param with that default and no type.
    `enum` lists the allowed values; `minimum`/`maximum` bound numbers; `min_length`/
    `max_length` bound strings and arrays. `Param(type="string")` (no default) is required:
    every run must give it in its conf.
    """

    default: Any = None
    type: ParamType | None = None
    description: str | None = None
    enum: Sequence[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None


def closest(name: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the most similar choice, or an empty string."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def describe_validation_error(where: str, error: ValidationError) -> str:
    """One readable line per invalid field of a pydantic error: `<where>: <field>: <problem>`.

    Alternatives tried for a union field (`str` or `tuple[str, ...]`) are joined with "or".
    """
    problems: dict[str, list[str]] = {}
    inputs: dict[str, Any] = {}
    for problem in error.errors():
        parts = [part for part in problem["loc"] if not _is_type_tag(part)]
        field = "".join(
            f"[{part}]" if isinstance(part, int) else (f".{part}" if i else str(part))
            for i, part in enumerate(parts)
        )
        field = field or "value"
        message = str(problem["msg"])
        if problem["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        else:
            inputs[field] = problem.get("input")
        if message not in problems.setdefault(field, []):
            problems[field].append(message)
    lines = []
    for field, messages in problems.items():
        got = f" (got {_short_repr(inputs[field])})" if field in inputs else ""
        lines.append(f"{where}: {field}: {' or '.join(messages)}{got}")
    return "\n".join(lines)


def _is_type_tag(part: str | int) -> bool:
    """True for the loc entries pydantic adds per union member (`str`, `tuple[str, ...]`)."""
    return isinstance(part, str) and (
        part in {"str", "int", "float", "bool", "dict", "list", "tuple", "none", "is-instance"}
        or not part.isidentifier()
    )


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def to_schedule(where: str, schedule: ScheduleArg) -> CronSchedule | DeltaSchedule | None:
    """A cron string or preset, a positive `timedelta`, a schedule spec, or None."""
    if schedule is None or isinstance(schedule, CronSchedule | DeltaSchedule):
        return schedule
    if isinstance(schedule, str):
        if not schedule.strip():
            raise DagDefinitionError(
                f"{where}: schedule is an empty string; use a cron expression, a preset such "
                "as '@daily', a timedelta, or None for manual runs only"
            )
        expression = schedule.strip()
        check_cron(where, expression)
        return CronSchedule(expression=expression)
    if isinstance(schedule, timedelta):
        if schedule <= timedelta(0):
            raise DagDefinitionError(f"{where}: schedule interval must be positive, got {schedule}")
        return DeltaSchedule(every=schedule)
    raise DagDefinitionError(
        f"{where}: schedule must be a cron string, a preset such as '@daily', a timedelta or "
        f"None, not {type(schedule).__name__} {schedule!r}"
    )


_PRESETS = {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually"}


def check_cron(where: str, expression: str) -> None:
    """Refuse a schedule string that is neither a preset nor a valid cron expression."""
    if expression.startswith("@"):
        if expression not in _PRESETS:
            raise DagDefinitionError(
                f"{where}: schedule {expression!r} is not a preset; use one of"
                f" {', '.join(sorted(_PRESETS))}{closest(expression, _PRESETS)}"
            )
        return
    from croniter import croniter  # imported here: unscheduled DAGs need not pay for it

    problem = None
    fields = len(expression.split())
    if fields != 5:
        # croniter reads a sixth field as seconds and a seventh as the year: a year in the
        # past would make a valid-looking schedule that never fires again
        problem = f"it has {fields} field{'s' if fields != 1 else ''}, not 5"
    try:
        if problem is None:
            croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except Exception as exc:  # croniter raises several types for bad expressions
        problem = str(exc) or type(exc).__name__
        if "find next date" in problem:
            problem = "it never fires"
    if problem is not None:
        raise DagDefinitionError(
            f"{where}: schedule {expression!r} is not a valid cron expression ({problem}); use"
            " five fields 'minute hour day-of-month month day-of-week' (e.g. '0 6 * * 1-5')"
            " or a preset such as '@daily'"
        )


def timezone_name(where: str, timezone: str | tzinfo) -> str:
    """The IANA name of a timezone given by name or as a tzinfo (pendulum, zoneinfo, UTC)."""
    if isinstance(timezone, tzinfo):
        name = getattr(timezone, "name", None) or getattr(timezone, "key", None)
        if not isinstance(name, str):
            name = "UTC" if timezone.utcoffset(None) == timedelta(0) else None
        if name is None:
            raise DagDefinitionError(
                f"{where}: timezone {timezone!r} has no IANA name; pass a name like "
                "'Europe/Amsterdam'"
            )
        timezone = name
    if timezone in ("UTC", "utc", "Etc/UTC"):
        return "UTC"
    import pendulum  # imported here: most DAGs run in UTC and need not pay for it

    try:
        pendulum.timezone(timezone)
    except Exception as exc:
        raise DagDefinitionError(
            f"{where}: unknown timezone {timezone!r}; use an IANA name like 'Europe/Amsterdam'"
        ) from exc
    return timezone


def to_utc(where: str, field: str, value: DateArg, timezone: str) -> datetime | None:
    """A UTC-aware datetime; naive values and dates are read in `timezone`."""
    if value is None:
        return None
    if isinstance(value, str):
        import pendulum

        try:
            parsed = pendulum.parse(value, tz=timezone)
        except Exception as exc:
            raise DagDefinitionError(
                f"{where}: {field} {value!r} is not an ISO 8601 date or datetime"
            ) from exc
        if not isinstance(parsed, datetime):
            raise DagDefinitionError(f"{where}: {field} {value!r} is not a date or datetime")
        value = parsed
    elif not isinstance(value, datetime):
        if not isinstance(value, date):
            raise DagDefinitionError(
                f"{where}: {field} must be a datetime or a date, not {type(value).__name__}"
            )
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        import pendulum

        value = pendulum.datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tz=timezone,
        )
    utc = value.astimezone(UTC)
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, UTC
    )


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def to_param_specs(where: str, params: Mapping[str, Any] | None) -> dict[str, ParamSpec]:
    """ParamSpecs from plain defaults, `Param`s or ParamSpecs."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise DagDefinitionError(f"{where}: params must be a dict, not {type(params).__name__}")
    specs: dict[str, ParamSpec] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise DagDefinitionError(f"{where}: param names must be non-empty strings: {name!r}")
        if isinstance(value, ParamSpec):
            _check_param(f"{where}: param '{name}'", Param(value.default, value.type))
            specs[name] = value
            continue
        param = value if isinstance(value, Param) else Param(value)
        _check_param(f"{where}: param '{name}'", param)
        try:
            specs[name] = ParamSpec(
                default=param.default,
                type=param.type,
                description=param.description,
                enum=tuple(param.enum) if param.enum is not None else None,
                minimum=param.minimum,
                maximum=param.maximum,
                min_length=param.min_length,
                max_length=param.max_length,
            )
        except ValidationError as exc:
            raise DagDefinitionError(
                describe_validation_error(f"{where}: param '{name}'", exc)
            ) from None
    problems = default_problems(specs)
    if problems:
        raise DagDefinitionError(
            f"{where}: {problems[0]}; fix the default or the param's declaration"
        )
    return specs


def check_required_params(where: str, scheduled: bool, params: Mapping[str, ParamSpec]) -> None:
    """A scheduled DAG's params all need defaults: its scheduled runs have no conf."""
    required = [name for name, param in params.items() if is_required(param)]
    if scheduled and required:
        raise DagDefinitionError(
            f"{where}: param '{required[0]}' has no default, but the DAG has a schedule and its"
            " scheduled runs have no conf to supply it; give it a default or set schedule=None"
        )


def _check_param(where: str, param: Param) -> None:
    try:
        json.dumps(param.default)
    except (TypeError, ValueError):
        raise DagDefinitionError(
            f"{where}: default {_short_repr(param.default)} is not JSON-serializable"
        ) from None
    if param.type is None or param.default is None:
        return
    allowed = _JSON_TYPES.get(param.type)
    if allowed is None:
        return  # an unknown type name is reported by ParamSpec's own validation
    is_bool = isinstance(param.default, bool)
    if not isinstance(param.default, allowed) or (is_bool and param.type != "boolean"):
        raise DagDefinitionError(
            f"{where}: default {_short_repr(param.default)} is not of type {param.type!r}"
        )
