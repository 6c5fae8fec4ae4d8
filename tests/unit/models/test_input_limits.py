"""Inputs the fuzz tier found that escaped as the wrong exception; each now gets a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import DAG
from orchestrator.errors import DagDefinitionError, InvalidConf
from orchestrator.models.launch import OUTPUT_FILE_NAME
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.sdk.convert import check_cron
from orchestrator.services.containers import read_output
from orchestrator.services.runs import parse_conf

DEEP = "[" * 100_000 + "]" * 100_000
LONG_INT = "7" * 5000


@pytest.mark.parametrize(
    ("text", "why"),
    [(DEEP, "nested too deeply"), (LONG_INT, "digits"), ('{"x": NaN}', "NaN is not a JSON value")],
)
def test_conf_that_json_cannot_hold_is_invalid_conf(text: str, why: str) -> None:
    with pytest.raises(InvalidConf, match=why):
        parse_conf(text)


@pytest.mark.parametrize(
    ("raw", "why"),
    [(DEEP.encode(), "nested too deeply"), (LONG_INT.encode(), "digits"), (b"Infinity", "finite")],
)
def test_such_output_files_fail_the_task_with_a_message(
    tmp_path: Path, raw: bytes, why: str
) -> None:
    (tmp_path / OUTPUT_FILE_NAME).write_bytes(raw)
    result = read_output(tmp_path, max_bytes=10**6)
    assert result.json_text is None and result.error is not None and why in result.error


@pytest.mark.parametrize("value", [1e20, float("inf"), 10**30])
def test_durations_too_long_for_dates_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="at most"):
        TaskSpec(task_id="t", image="i", retry_delay=value)
    with pytest.raises(ValueError, match="at most"):
        DagSpec(dag_id="d", dagrun_timeout=value)


def test_sizes_too_large_are_refused() -> None:
    with pytest.raises(ValueError, match="too large"):
        TaskSpec(task_id="t", image="i", memory="9" * 400)


def test_tags_none_means_no_tags() -> None:
    with DAG("tagless", tags=None) as dag:  # type: ignore[arg-type]
        pass
    assert dag.to_spec(fileloc="/x.py").tags == ()


@pytest.mark.parametrize("expression", ["0 0 1 1 * 0 2001", "* * * * * *", "0 0 *"])
def test_cron_needs_exactly_five_fields(expression: str) -> None:
    with pytest.raises(DagDefinitionError, match="not 5"):
        check_cron("DAG 'd'", expression)
