"""Rendering a task's fields: values, template files, mounts, errors, and side-effect freedom."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import TemplateError
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import DagSpec, Mount, ParamSpec, TaskSpec
from orchestrator.templating import RenderedTask, make_environment, render_string, render_task

LOGICAL = datetime(2026, 3, 14, tzinfo=UTC)
RUN = RunInfo(
    run_id="scheduled__2026-03-14T00:00:00+00:00",
    run_type="scheduled",
    logical_date=LOGICAL,
    data_interval_start=LOGICAL,
    data_interval_end=LOGICAL + timedelta(days=1),
    conf={"table": "sales"},
)


def make_dag(folder: Path | None, *tasks: TaskSpec, **overrides: Any) -> DagSpec:
    upstream = TaskSpec(task_id="extract", image="extract:1")
    fields: dict[str, Any] = {
        "dag_id": "etl",
        "fileloc": str(folder / "etl.py") if folder else "",
        "params": {"region": ParamSpec(default="eu")},
        "tasks": (upstream, *tasks),
    }
    fields.update(overrides)
    return DagSpec(**fields)


def load_task(**fields: Any) -> TaskSpec:
    fields.setdefault("image", "loader:1")
    return TaskSpec(task_id="load", upstream_task_ids=("extract",), **fields)


def render(
    folder: Path | None,
    *,
    outputs: dict[str, Any] | None = None,
    map_index: int = -1,
    **fields: Any,
) -> RenderedTask:
    task = load_task(**fields)
    dag = make_dag(folder, task)
    return render_task(dag, task, RUN, try_number=1, map_index=map_index, outputs=outputs or {})


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- fields ------------------------------------------------------------------------------------


def test_every_templated_field_is_rendered(tmp_path: Path) -> None:
    rendered = render(
        tmp_path,
        image="registry/{{ params.region }}/loader:{{ ds_nodash }}",
        command=["load", "--day", "{{ ds }}", "--table={{ params.table }}"],
        entrypoint=["/bin/{{ 'sh' }}", "-c"],
        environment={"DAY_{{ ds }}": "{{ data_interval_end | ds }}", "PLAIN": "x"},
        mounts=[
            Mount(type="volume", source="cache-{{ params.region }}", target="/cache/{{ ds }}"),
            Mount(type="tmpfs", target="/tmp/{{ ds_nodash }}"),
        ],
        working_dir="/srv/{{ ds }}",
    )
    assert rendered.image == "registry/eu/loader:20260314"
    assert rendered.command == ("load", "--day", "2026-03-14", "--table=sales")
    assert rendered.entrypoint == ("/bin/sh", "-c")
    # Values are rendered, keys are not.
    assert rendered.environment == {"DAY_{{ ds }}": "2026-03-15", "PLAIN": "x"}
    assert rendered.mounts == (
        Mount(type="volume", source="cache-eu", target="/cache/2026-03-14"),
        Mount(type="tmpfs", target="/tmp/20260314"),
    )
    assert rendered.working_dir == "/srv/2026-03-14"


def test_string_command_and_absent_fields(tmp_path: Path) -> None:
    rendered = render(tmp_path, command="echo {{ run_id }}", entrypoint="tini --")
    assert rendered.command == "echo scheduled__2026-03-14T00:00:00+00:00"
    assert rendered.entrypoint == "tini --"
    assert rendered.environment == {}
    assert rendered.mounts == ()
    assert rendered.working_dir is None
    assert render(tmp_path).command is None


def test_results_are_strings(tmp_path: Path) -> None:
    rendered = render(
        tmp_path,
        command=["{{ 1 + 1 }}", "{{ [1, 2] }}", "{{ none }}", "{{ true }}"],
    )
    assert rendered.command == ("2", "[1, 2]", "None", "True")


def test_tojson_of_an_upstream_dict(tmp_path: Path) -> None:
    output = {"rows": 3, "note": "<a & 'b'>", "päth": ["x"], "when": None}
    rendered = render(
        tmp_path,
        outputs={"extract": output},
        environment={"SUMMARY": "{{ outputs.extract | tojson }}"},
        command=["{{ outputs.extract | tojson(indent=2) }}"],
    )
    # Plain JSON: no HTML escaping, keys in the order the task wrote them.
    assert (
        rendered.environment["SUMMARY"]
        == '{"rows": 3, "note": "<a & \'b\'>", "päth": ["x"], "when": null}'
    )
    assert json.loads(rendered.environment["SUMMARY"]) == output
    assert json.loads(rendered.command[0]) == output  # type: ignore[index]


def test_tojson_of_dates(tmp_path: Path) -> None:
    rendered = render(tmp_path, command=["{{ {'at': logical_date} | tojson }}"])
    assert rendered.command == ('{"at": "2026-03-14T00:00:00+00:00"}',)


def test_text_without_markup_passes_through(tmp_path: Path) -> None:
    text = "awk '{ print $1 }' {x} %s \n"
    assert render(tmp_path, command=["sh", "-c", text]).command == ("sh", "-c", text)


def test_trailing_newline_is_kept(tmp_path: Path) -> None:
    assert render(tmp_path, command="echo {{ ds }}\n").command == "echo 2026-03-14\n"


def test_rendered_task_is_json_and_round_trips(tmp_path: Path) -> None:
    rendered = render(
        tmp_path,
        command=["a", "{{ ds }}"],
        environment={"K": "v"},
        mounts=["./data:/data:ro", "cache:/cache"],
    )
    dumped = rendered.model_dump(mode="json")
    json.dumps(dumped)
    assert RenderedTask.model_validate(dumped) == rendered


def test_render_string() -> None:
    assert render_string("{{ a }}-{{ b | tojson }}", {"a": 1, "b": {"c": [True]}}) == (
        '1-{"c": [true]}'
    )
    with pytest.raises(TemplateError, match=r"cannot render '\{\{ missing \}\}': 'missing' is"):
        render_string("{{ missing }}", {})


# --- template files ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["query.sql", "run.sh", "payload.json"])
def test_a_file_next_to_the_dag_is_loaded_and_rendered(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "day={{ ds }} table={{ params.table }}\n")
    rendered = render(tmp_path, command=["sh", "-c", name], environment={"BODY": f" {name} "})
    assert rendered.command == ("sh", "-c", "day=2026-03-14 table=sales\n")
    assert rendered.environment == {"BODY": "day=2026-03-14 table=sales\n"}


def test_a_file_in_a_subfolder_and_a_string_command(tmp_path: Path) -> None:
    write(tmp_path, "sql/load.sql", "INSERT {{ ds }}")
    assert render(tmp_path, command="sql/load.sql").command == "INSERT 2026-03-14"
    assert render(tmp_path, command="./sql/load.sql").command == "INSERT 2026-03-14"


def test_a_missing_file_is_rendered_as_written(tmp_path: Path) -> None:
    rendered = render(tmp_path, command=["bash", "scripts/{{ ds }}.sh", "nothing.sql"])
    assert rendered.command == ("bash", "scripts/2026-03-14.sh", "nothing.sql")


def test_paths_outside_the_dag_folder_are_never_loaded(tmp_path: Path) -> None:
    dag_folder = tmp_path / "dags"
    dag_folder.mkdir()
    secret = write(tmp_path, "secret.sh", "SECRET")
    (dag_folder / "link.sh").symlink_to(secret)
    rendered = render(
        dag_folder,
        command=["../secret.sh", str(secret), "link.sh", "sub/../../secret.sh"],
    )
    assert rendered.command == ("../secret.sh", str(secret), "link.sh", "sub/../../secret.sh")


def test_an_expression_passes_a_file_name_literally(tmp_path: Path) -> None:
    write(tmp_path, "run.sh", "echo body")
    assert render(tmp_path, command=["bash", "{{ 'run.sh' }}"]).command == ("bash", "run.sh")


def test_image_mounts_and_working_dir_are_never_loaded_from_files(tmp_path: Path) -> None:
    write(tmp_path, "config.json", "{}")
    rendered = render(
        tmp_path,
        image="config.json",
        mounts=["./config.json:/etc/app/config.json:ro"],
        working_dir="config.json",
    )
    assert rendered.image == "config.json"
    assert rendered.mounts[0].source == str(tmp_path / "config.json")
    assert rendered.working_dir == "config.json"


def test_without_a_fileloc_nothing_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "query.sql", "SELECT 1")
    monkeypatch.chdir(tmp_path)
    assert render(None, command=["query.sql"]).command == ("query.sql",)


def test_includes_come_from_the_dag_folder(tmp_path: Path) -> None:
    write(tmp_path, "macros.j2", "{% macro day() %}{{ ds }}{% endmacro %}")
    write(tmp_path, "header.txt", "-- {{ dag.dag_id }}\n")
    rendered = render(
        tmp_path,
        command=[
            "{% include 'header.txt' %}",
            "{% from 'macros.j2' import day with context %}{{ day() }}",
        ],
    )
    assert rendered.command == ("-- etl\n", "2026-03-14")


# --- mounts ------------------------------------------------------------------------------------


def test_relative_bind_sources_resolve_against_the_dag_folder(tmp_path: Path) -> None:
    rendered = render(
        tmp_path,
        mounts=[
            "./data:/data",
            "../shared:/shared:ro",
            Mount(type="bind", source="data/{{ ds }}", target="/in"),
            Mount(type="bind", source="{{ './out/' ~ ds_nodash }}", target="/out"),
        ],
    )
    assert [m.source for m in rendered.mounts] == [
        str(tmp_path / "data"),
        str(tmp_path.parent / "shared"),
        str(tmp_path / "data" / "2026-03-14"),
        str(tmp_path / "out" / "20260314"),
    ]
    assert rendered.mounts[1].read_only


def test_home_expands_and_absolute_paths_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/home/ops")
    rendered = render(tmp_path, mounts=["~/cache:/cache", "/srv/data/{{ ds }}:/data"])
    assert [m.source for m in rendered.mounts] == ["/home/ops/cache", "/srv/data/2026-03-14"]


def test_volume_names_are_not_paths(tmp_path: Path) -> None:
    rendered = render(tmp_path, mounts=["pgdata:/var/lib/postgresql"])
    assert rendered.mounts == (Mount(type="volume", source="pgdata", target="/var/lib/postgresql"),)


def test_a_relative_bind_without_a_dag_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"mounts\[0\]\.source './data' is relative"):
        render(None, mounts=["./data:/data"])


def test_a_mount_rendering_to_nothing_fails(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"task 'load': mounts\[0\] is invalid once rendered"):
        render(tmp_path, mounts=[Mount(type="volume", source="{{ '' }}", target="/x")])


# --- errors ------------------------------------------------------------------------------------


def test_undefined_names_the_dag_task_field_template_and_cause(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, command=["load", "{{ params.nope }}"])
    assert str(caught.value) == (
        "DAG 'etl', task 'load': cannot render command[1] '{{ params.nope }}': "
        "'dict object' has no attribute 'nope'"
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"image": "{{ nope }}"}, "image"),
        ({"command": "{{ nope }}"}, "command"),
        ({"command": ["a", "b", "{{ nope }}"]}, r"command\[2\]"),
        ({"entrypoint": ["{{ nope }}"]}, r"entrypoint\[0\]"),
        ({"environment": {"OK": "1", "SUMMARY": "{{ nope }}"}}, r"environment\['SUMMARY'\]"),
        ({"mounts": ["/{{ nope }}:/x"]}, r"mounts\[0\]\.source"),
        ({"mounts": ["/x:/{{ nope }}"]}, r"mounts\[0\]\.target"),
        ({"working_dir": "{{ nope }}"}, "working_dir"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, fields: dict[str, Any], field: str) -> None:
    with pytest.raises(TemplateError, match=rf"^DAG 'etl', task 'load': cannot render {field} "):
        render(tmp_path, **fields)


def test_a_mapped_task_error_names_the_map_index(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"^DAG 'etl', task 'load' \(map index 3\): "):
        render(tmp_path, map_index=3, command=["{{ nope }}"])


def test_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"command\[0\] '\{\{ ds': syntax error: unexpected"):
        render(tmp_path, command=["{{ ds "])


def test_an_exception_inside_a_call_or_filter(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"command\[0\] .*: ValueError: time data 'soon'"):
        render(tmp_path, command=["{{ macros.ds_add('soon', 1) }}"])
    with pytest.raises(TemplateError, match=r"ZeroDivisionError: integer division"):
        render(tmp_path, command=["{{ 1 // 0 }}"])
    with pytest.raises(TemplateError, match=r"TypeError: .*not JSON serializable"):
        render(tmp_path, command=["{{ macros | tojson }}"])


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ dag.__class__.__init__.__globals__ }}",
        "{{ macros.ds_add.__globals__ }}",
        "{{ ti._outputs }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_sandbox_escapes_are_template_errors(tmp_path: Path, template: str) -> None:
    with pytest.raises(TemplateError, match="cannot render command"):
        render(tmp_path, command=template)


def test_huge_results_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="longer than"):
        render(tmp_path, command="{{ 'x' * 10**9 }}")
    with pytest.raises(TemplateError, match="bits"):
        render(tmp_path, command="{{ 2 ** 10000000 }}")
    assert render(tmp_path, command="{{ 'ab' * 3 }} {{ 2 ** 10 }}").command == "ababab 1024"


def test_strict_outputs_error_is_a_template_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, environment={"IN": "{{ outputs.extract.rows }}"})
    assert str(caught.value).startswith(
        "DAG 'etl', task 'load': cannot render environment['IN'] '{{ outputs.extract.rows }}': "
        "task 'extract' has no output"
    )


def test_a_multi_line_inline_template_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(
        TemplateError, match=r"command\[2\] line 3 'echo \{\{ nope \}\}': 'nope' is"
    ):
        render(tmp_path, command=["sh", "-c", "set -e\necho {{ ds }}\necho {{ nope }}\n"])


def test_an_error_in_a_template_file_names_file_and_line(tmp_path: Path) -> None:
    write(
        tmp_path, "sql/load.sql", "SELECT 1\nFROM {{ params.table }}\nWHERE x = {{ params.nope }}\n"
    )
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, command=["psql", "-c", "sql/load.sql"])
    assert str(caught.value) == (
        "DAG 'etl', task 'load': cannot render command[2] from template file 'sql/load.sql' "
        "line 3: 'dict object' has no attribute 'nope'"
    )


def test_a_syntax_error_in_a_template_file_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "run.sh", "echo ok\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"from template file 'run.sh' line 2: syntax error"):
        render(tmp_path, command="run.sh")


def test_an_error_in_an_included_file_names_it(tmp_path: Path) -> None:
    write(tmp_path, "part.txt", "ok\n{{ nope }}")
    with pytest.raises(TemplateError, match=r"\(in template file 'part.txt' line 2\): 'nope' is"):
        render(tmp_path, command="{% include 'part.txt' %}")


@pytest.mark.parametrize("folder_given", [True, False])
def test_a_missing_include_is_a_template_error(tmp_path: Path, folder_given: bool) -> None:
    with pytest.raises(TemplateError, match=r"template file 'nope\.txt' not found"):
        render(tmp_path if folder_given else None, command="{% include 'nope.txt' %}")


def test_an_include_cannot_escape_the_dag_folder(tmp_path: Path) -> None:
    dag_folder = tmp_path / "dags"
    dag_folder.mkdir()
    write(tmp_path, "secret.txt", "SECRET")
    with pytest.raises(TemplateError, match="not found"):
        render(dag_folder, command="{% include '../secret.txt' %}")


# --- no side effects ---------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(folder)): (
            path.read_bytes() if path.is_file() else b"",
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
    }


def test_rendering_writes_nothing_and_is_deterministic(tmp_path: Path) -> None:
    write(tmp_path, "run.sh", "echo {{ ds }} {{ outputs.extract | tojson }}\n")
    write(tmp_path, "part.txt", "{{ params.region }}")
    before = snapshot(tmp_path)
    fields: dict[str, Any] = {
        "command": ["bash", "-c", "run.sh"],
        "environment": {"A": "{% include 'part.txt' %}", "B": "{{ ts }}"},
        "mounts": ["./data:/data"],
        "outputs": {"extract": {"b": 1, "a": [2]}},
    }
    first = render(tmp_path, **fields)
    second = render(tmp_path, **fields)
    assert first == second
    assert first.model_dump(mode="json") == second.model_dump(mode="json")
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "data").exists()


def test_environment_is_fresh_per_folder(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "A")
    env = make_environment(tmp_path)
    assert env.get_template("a.txt").render() == "A"
    assert env.sandboxed
