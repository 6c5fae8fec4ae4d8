"""`conn` and `var` in templates, task `secrets`, and what rendered records may hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.errors import SecretNotFound, TemplateError
from orchestrator.models.run_info import RunInfo
from orchestrator.models.secrets import Connection, SecretRef
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.templating import RenderedTask, render_task

LOGICAL = datetime(2026, 3, 14, tzinfo=UTC)
RUN = RunInfo(
    run_id="manual__1",
    run_type="manual",
    logical_date=LOGICAL,
    data_interval_start=LOGICAL,
    data_interval_end=LOGICAL + timedelta(days=1),
)
PASSWORD = "Hunter2!pw"


class Source:
    """An in-memory SecretSource that counts lookups."""

    def __init__(self) -> None:
        self.connections = {
            "my_db": Connection.from_uri(
                "my_db", "postgresql://app:Hunter2%21pw@db:5432/sales?sslmode=require"
            )
        }
        self.variables = {"region": "eu", "cfg": '{"batch": {"size": 500}}', "api_token": "tok-999"}
        self.environment = {"HOST_TOKEN": "host-tok-777"}
        self.lookups: list[str] = []

    def connection(self, conn_id: str) -> Connection:
        self.lookups.append(f"conn:{conn_id}")
        if conn_id not in self.connections:
            raise SecretNotFound(f"connection {conn_id!r} is not defined")
        return self.connections[conn_id]

    def variable(self, name: str) -> str:
        self.lookups.append(f"var:{name}")
        if name not in self.variables:
            raise SecretNotFound(f"variable {name!r} is not defined")
        return self.variables[name]

    def environ(self, name: str) -> str:
        if name not in self.environment:
            raise SecretNotFound(f"environment variable {name!r} is not set")
        return self.environment[name]


def render(source: Source | None, **fields: Any) -> RenderedTask:
    fields.setdefault("image", "loader:1")
    task = TaskSpec(task_id="load", **fields)
    dag = DagSpec(dag_id="etl", fileloc="", tasks=(task,))
    return render_task(dag, task, RUN, try_number=1, outputs={}, secrets=source)


def test_templates_read_connections_and_variables() -> None:
    rendered = render(
        Source(),
        command=["psql", "-h", "{{ conn.my_db.host }}", "{{ conn.my_db.schema }}"],
        environment={
            "PORT": "{{ conn.my_db.port }}",
            "SSL": "{{ conn.my_db.extra.sslmode }}",
            "REGION": "{{ var.value.region }}",
            "BATCH": "{{ var.json.cfg.batch.size }}",
            "DEFAULTED": "{{ var.value.get('missing', 'fallback') }}",
            "PW": "{{ conn.my_db.password }}",
            "PW_ENCODED": "{{ conn.my_db.password | urlencode }}",
        },
    )
    assert rendered.command == ("psql", "-h", "db", "sales")
    env = rendered.environment
    assert (env["PORT"], env["SSL"], env["REGION"], env["BATCH"]) == (
        "5432",
        "require",
        "eu",
        "500",
    )
    assert env["DEFAULTED"] == "fallback"
    assert env["PW"] == PASSWORD  # the launch gets the real value ...
    dumped = json.dumps(rendered.model_dump(mode="json"))
    assert PASSWORD not in dumped and '"PW": "***"' in dumped  # ... the record never does
    assert "Hunter2%21pw" not in dumped and '"PW_ENCODED": "***"' in dumped
    assert PASSWORD not in repr(rendered)


def test_lookups_are_lazy() -> None:
    source = Source()
    render(source, command=["echo", "{{ ds }}"])
    assert source.lookups == []
    render(source, command=["echo", "{{ conn.my_db.host }}", "{{ conn.my_db.login }}"])
    assert source.lookups == ["conn:my_db"]  # once per render, only what was used


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("{{ conn.nope.host }}", "conn.nope: connection 'nope' is not defined"),
        ("{{ var.value.nope }}", "var.value.nope: variable 'nope' is not defined"),
        ("{{ var.json.region }}", "variable 'region' is not JSON"),
    ],
)
def test_unknown_ids_are_template_errors_naming_them(template: str, named: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(Source(), command=["x", template])
    assert named in str(caught.value)
    assert "task 'load'" in str(caught.value) and "command[1]" in str(caught.value)


def test_without_a_source_conn_and_var_are_refused() -> None:
    with pytest.raises(TemplateError, match="connection 'my_db' cannot be read here"):
        render(None, command="{{ conn.my_db.host }}")


def test_task_secrets_are_resolved_but_only_referenced_in_the_record() -> None:
    rendered = render(
        Source(),
        secrets={
            "DB_PASSWORD": SecretRef(source="conn", key="my_db", field="password"),
            "DB_URI": SecretRef(source="conn", key="my_db", field="uri"),
            "API_TOKEN": SecretRef(source="var", key="api_token"),
            "TOKEN": SecretRef(source="env", key="HOST_TOKEN"),
        },
        command=["sh", "-c", "echo {{ var.value.api_token }}"],
    )
    assert rendered.secret_env["DB_PASSWORD"] == PASSWORD
    assert rendered.secret_env["API_TOKEN"] == "tok-999"
    assert rendered.secret_env["TOKEN"] == "host-tok-777"
    assert Connection.from_uri("my_db", rendered.secret_env["DB_URI"]).password == PASSWORD
    record = rendered.model_dump(mode="json")
    text = json.dumps(record)
    for value in ("tok-999", "host-tok-777", PASSWORD, "Hunter2%21pw"):
        assert value not in text
    assert record["secrets"] == {
        "DB_PASSWORD": "conn:my_db.password",
        "DB_URI": "conn:my_db.uri",
        "API_TOKEN": "var:api_token",
        "TOKEN": "env:HOST_TOKEN",
    }
    assert record["command"] == ["sh", "-c", "echo ***"]  # a sensitive variable's name
    assert "secret_env" not in record and "sensitive" not in record


def test_an_unresolvable_secret_names_the_task_the_variable_and_the_id() -> None:
    with pytest.raises(TemplateError) as caught:
        render(Source(), secrets={"DB": SecretRef(source="conn", key="other_db")})
    message = str(caught.value)
    assert "DAG 'etl', task 'load'" in message and "secret DB (conn:other_db.password)" in message
    assert "connection 'other_db' is not defined" in message


def test_error_messages_never_carry_a_value_the_template_read() -> None:
    with pytest.raises(TemplateError) as caught:
        render(Source(), command=["{{ conn.my_db.password ~ undefined_name }}"])
    assert PASSWORD not in str(caught.value)
    with pytest.raises(TemplateError) as caught:
        render(Source(), command=["{{ conn.my_db.password | int(strict) }}"])
    assert PASSWORD not in str(caught.value)
