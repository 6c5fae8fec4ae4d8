"""Typed params: validating run conf against the params' declarations."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.models.params import (
    ParamsInvalid,
    default_problems,
    describe,
    is_required,
    validate_params,
)
from orchestrator.models.specs import ParamSpec as P

PARAMS = {
    "rows": P(default=10, type="integer", minimum=1, maximum=100),
    "ratio": P(default=0.5, type="number"),
    "mode": P(default="fast", type="string", enum=("fast", "slow")),
    "name": P(default="x", type="string", min_length=1, max_length=5),
    "flag": P(default=False, type="boolean"),
    "tags": P(default=[], type="array", max_length=2),
    "opts": P(default={}, type="object"),
    "anything": P(default=None),
    "day": P(type="string"),  # required: no default
    "my-odd name": P(default=1, type="integer"),
}
GOOD = {"day": "2026-03-14"}


def check(conf: dict[str, Any]) -> dict[str, Any]:
    return validate_params(PARAMS, {**GOOD, **conf})


def test_defaults_fill_in_and_conf_overrides_them() -> None:
    assert check({"rows": 7, "my-odd name": 2}) == {
        "rows": 7,
        "ratio": 0.5,
        "mode": "fast",
        "name": "x",
        "flag": False,
        "tags": [],
        "opts": {},
        "anything": None,
        "day": "2026-03-14",
        "my-odd name": 2,
    }


def test_unknown_keys_pass_through() -> None:
    assert check({"extra": {"a": [1]}})["extra"] == {"a": [1]}


@pytest.mark.parametrize(
    ("conf", "words"),
    [
        ({"rows": 7}, None),
        ({"rows": 1}, None),
        ({"rows": 100}, None),
        ({"ratio": 3}, None),  # an integer is a number
        ({"mode": "slow"}, None),
        ({"tags": ["a", "b"]}, None),
        ({"anything": [1, "two"]}, None),
        ({"rows": "7"}, "param 'rows' expects integer, >= 1, <= 100, got \"7\""),
        ({"rows": 7.5}, "param 'rows' expects integer"),
        ({"rows": True}, "got true"),
        ({"rows": 0}, "got 0 (input should be greater than or equal to 1)"),
        ({"rows": 101}, "got 101"),
        ({"ratio": "half"}, "param 'ratio' expects number, got \"half\" (input should be a valid"),
        ({"ratio": False}, "param 'ratio' expects number, got false"),
        ({"mode": "medium"}, 'param \'mode\' expects string, one of "fast", "slow", got "medium"'),
        ({"name": ""}, "param 'name' expects string, length >= 1, length <= 5, got \"\""),
        ({"name": "toolong"}, 'got "toolong"'),
        ({"flag": "yes"}, "param 'flag' expects boolean, got \"yes\""),
        ({"flag": 1}, "param 'flag' expects boolean, got 1"),
        ({"tags": "a,b"}, "param 'tags' expects array, length <= 2, got \"a,b\""),
        ({"tags": [1, 2, 3]}, "got [1, 2, 3]"),
        ({"opts": [1]}, "param 'opts' expects object, got [1]"),
        ({"day": None}, "param 'day' expects string, got null"),
        ({"my-odd name": "x"}, "param 'my-odd name' expects integer, got \"x\""),
    ],
)
def test_conf_matrix(conf: dict[str, Any], words: str | None) -> None:
    if words is None:
        check(conf)
        return
    with pytest.raises(ParamsInvalid) as info:
        check(conf)
    assert len(info.value.problems) == 1
    assert words in info.value.problems[0]


def test_a_required_param_must_be_given() -> None:
    with pytest.raises(ParamsInvalid, match="param 'day' \\(string\\) is required"):
        validate_params(PARAMS, {})
    assert is_required(P(type="string")) and is_required(P(type="integer"))
    assert not is_required(P()) and not is_required(P(type="null"))
    assert not is_required(P(default="", type="string"))


def test_every_failing_param_is_reported() -> None:
    with pytest.raises(ParamsInvalid) as info:
        validate_params(PARAMS, {"rows": "x", "mode": "y"})
    assert [p.split()[1] for p in info.value.problems] == ["'rows'", "'mode'", "'day'"]


def test_enum_compares_json_values() -> None:
    params = {"n": P(default=1, enum=(1, 2))}
    assert validate_params(params, {"n": 2}) == {"n": 2}
    with pytest.raises(ParamsInvalid, match="got true"):
        validate_params(params, {"n": True})


def test_defaults_that_break_their_own_declaration() -> None:
    assert default_problems(PARAMS) == []
    problems = default_problems(
        {
            "n": P(default=0, type="integer", minimum=1),
            "m": P(default="z", type="string", enum=("a", "b")),
        }
    )
    assert problems[0].startswith("param 'n' expects integer, >= 1, but its default is 0")
    assert problems[1].startswith('param \'m\' expects string, one of "a", "b", but its default')


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"type": "string", "minimum": 1}, "minimum and maximum need type 'integer' or 'number'"),
        ({"type": "integer", "max_length": 3}, "min_length and max_length need type 'string'"),
        ({"enum": ()}, "enum must list at least one value"),
        ({"type": "string", "min_length": -1}, "greater than or equal to 0"),
    ],
)
def test_constraints_must_fit_the_type(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        P(**kwargs)


def test_describe() -> None:
    assert describe(P(type="number", minimum=0.5, maximum=2)) == "number, >= 0.5, <= 2"
    assert describe(P()) == "any JSON value"
