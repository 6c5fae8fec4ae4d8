"""Random template text, run conf and task output files: a value or the clear error of each
input, never another exception."""

from __future__ import annotations

import json
import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import InvalidConf, TemplateError
from orchestrator.models.launch import OUTPUT_FILE_NAME
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import DagSpec, ParamSpec, TaskSpec
from orchestrator.services.containers import read_output
from orchestrator.services.runs import parse_conf, validate_conf
from orchestrator.templating import render_task
from orchestrator.templating.render import render_string
from tests.fuzz.strategies import fuzz, json_like

_FRAGMENTS = st.sampled_from(
    [
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        " ds ",
        " params.x ",
        " outputs.up ",
        " | tojson ",
        " | upper",
        "'a' * 9999999",
        "2 ** 999999",
        " range(10) ",
        "for x in ",
        " endfor ",
        "if",
        " ''.__class__ ",
        " macros.ds_add(ds, 1) ",
        " ti.xcom_pull(task_ids='up') ",
        "{% include 'x.sql' %}",
        "\n",
        "x",
    ]
)
templates = st.one_of(st.text(max_size=30), st.lists(_FRAGMENTS, max_size=8).map("".join))

WHEN = datetime(2026, 3, 14, tzinfo=UTC)
RUN = RunInfo(
    run_id="r",
    run_type="manual",
    logical_date=WHEN,
    data_interval_start=WHEN,
    data_interval_end=WHEN,
    conf={"x": 1},
)


@fuzz(400)
@given(templates)
def test_template_strings_render_or_raise_a_template_error(template: str) -> None:
    try:
        result = render_string(template, {"ds": "2026-03-14", "params": {"x": 1}})
    except TemplateError as exc:
        assert str(exc).startswith("cannot render")
        return
    assert isinstance(result, str)


@fuzz(200)
@given(templates, templates, templates, st.one_of(st.none(), json_like))
def test_tasks_render_or_raise_a_template_error(
    command: str, env_value: str, mount_source: str, upstream_output: Any
) -> None:
    task = TaskSpec(
        task_id="t",
        image="img",
        command=("run", command),
        environment={"E": env_value},
        mounts=({"type": "bind", "source": mount_source or "/x", "target": "/m"},),
    )
    dag = DagSpec(dag_id="d", fileloc="/nonexistent/dags/d.py", tasks=(task,))
    try:
        rendered = render_task(dag, task, RUN, try_number=1, outputs={"up": upstream_output})
    except TemplateError as exc:
        assert str(exc).startswith("DAG 'd', task 't'")
        return
    assert rendered.command is not None and rendered.mounts[0].target == "/m"


conf_texts = st.one_of(
    st.text(max_size=40),
    json_like.map(lambda value: json.dumps(value, allow_nan=True)),
    st.integers(min_value=1, max_value=3000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(min_value=4000, max_value=6000).map(lambda digits: '{"n": ' + "7" * digits + "}"),
    st.sampled_from(['{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}', "{", '{"a": 1}']),
)


@fuzz(300)
@given(conf_texts)
def test_conf_text_parses_to_an_object_or_raises_invalid_conf(text: str) -> None:
    try:
        conf = parse_conf(text)
    except InvalidConf as exc:
        assert str(exc).startswith("--conf")
        return
    assert isinstance(conf, dict)
    json.dumps(conf, allow_nan=False)  # what is accepted can be stored as JSON


param_specs = st.builds(
    ParamSpec,
    default=json_like,
    type=st.sampled_from([None, "string", "integer", "number", "boolean", "array", "object"]),
)


# params whose default breaks their own type are refused when a DAG loads; pydantic warns
# while dumping them here, which is beside the point of this test
@pytest.mark.filterwarnings("ignore::UserWarning")
@fuzz(300)
@given(
    st.dictionaries(st.sampled_from(["x", "y"]), param_specs),
    st.dictionaries(st.text(max_size=3), json_like),
)
def test_conf_validates_against_params_or_raises_invalid_conf(
    params: dict[str, ParamSpec], conf: dict[str, Any]
) -> None:
    spec = DagSpec(dag_id="d", params=params)
    try:
        values = validate_conf(spec, conf)
    except InvalidConf as exc:
        assert "conf for DAG 'd'" in str(exc)
        return
    assert set(params) <= set(values)


output_bytes = st.one_of(
    st.binary(max_size=64),
    conf_texts.map(str.encode),
    json_like.map(lambda value: json.dumps(value, allow_nan=True).encode()),
    st.sampled_from([b"\xef\xbb\xbf1", b"\xff\xfe1\x00", b"  \n", b"1 2", b'"\xed\xa0\x80"']),
)


@fuzz(400)
@given(output_bytes)
def test_output_files_give_a_value_or_a_clear_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / OUTPUT_FILE_NAME).write_bytes(raw)
        result = read_output(Path(folder), max_bytes=100_000)
    if result.error is not None:
        assert result.json_text is None and result.error.startswith("output file")
        return
    if result.json_text is not None:
        value = json.loads(result.json_text)
        assert not isinstance(value, float) or math.isfinite(value)
        assert result.value() == value
