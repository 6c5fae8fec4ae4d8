"""Reading JSON that users hand us (run conf, task outputs) strictly and without surprises."""

from __future__ import annotations

import json
from typing import Any


class BadJson(ValueError):
    """Text that is not one strict JSON value; the message says why (and where)."""


def _refuse_constant(name: str) -> Any:
    raise BadJson(f"{name} is not a JSON value (JSON numbers are finite)")


def loads_strict(text: str | bytes) -> Any:
    """Parse one JSON value. Unlike `json.loads`, refuses `NaN` and `Infinity` (they are not
    JSON, and stores and other tools reject them), and reports nesting too deep to parse or
    integers too long to convert as `BadJson` instead of RecursionError or a bare ValueError."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except BadJson:
        raise
    except json.JSONDecodeError as exc:
        raise BadJson(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise BadJson(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise BadJson("nested too deeply to parse") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise BadJson(str(exc)) from None
