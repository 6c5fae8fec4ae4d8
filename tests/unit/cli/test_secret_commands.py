"""`connections`, `variables` and `secrets` commands, and `tasks render` with secrets."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.errors import SecretError
from orchestrator.settings import Settings

DAG_FILE = """
from orchestrator import DAG, ContainerTask, Secret

with DAG("sec"):
    ContainerTask(
        "load",
        image="img",
        command=["connect", "{{ conn.my_db.login }}:{{ conn.my_db.password }}@"
                 "{{ conn.my_db.host }}"],
        secrets={"DB_PASSWORD": Secret.conn("my_db")},
    )
"""
PASSWORD = "p@ss/w0rd-51"


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ORCH_HOME", str(settings.home))
    monkeypatch.setenv("ORCH_DAGS_FOLDER", str(settings.resolved_dags_folder))
    (settings.resolved_dags_folder / "sec.py").write_text(DAG_FILE)
    return CliRunner()


def invoke(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_connections_and_variables_round_trip_without_showing_secrets(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = invoke(runner, "secrets", "generate-key").strip()
    monkeypatch.setenv("ORCH_FERNET_KEY", key)
    uri = "postgresql://app:p%40ss%2Fw0rd-51@db.example:5432/sales?sslmode=require"
    assert "added connection my_db" in invoke(runner, "connections", "add", "my_db", "--uri", uri)
    invoke(runner, "connections", "add", "api", "--type", "http", "--password", "tok-8")
    listed = invoke(runner, "connections", "list")
    assert "db.example" in listed and "***" in listed
    assert PASSWORD not in listed and "tok-8" not in listed and "sslmode" not in listed
    invoke(runner, "variables", "set", "api_key", "value-77")
    assert invoke(runner, "variables", "get", "api_key").strip() == "value-77"
    assert "value-77" not in invoke(runner, "variables", "list")
    rendered = invoke(runner, "tasks", "render", "sec", "load")
    assert "app:***@db.example" in rendered and "conn:my_db.password" in rendered
    assert PASSWORD not in rendered
    invoke(runner, "connections", "delete", "api")
    invoke(runner, "variables", "delete", "api_key")
    assert "api" not in invoke(runner, "connections", "list").split()


def test_without_a_key_adding_fails_and_says_how_to_make_one(runner: CliRunner) -> None:
    result = runner.invoke(app, ["variables", "set", "x", "1"])
    assert isinstance(result.exception, SecretError)
    assert "orchestrator secrets generate-key" in str(result.exception)


def test_uri_and_fields_are_exclusive(runner: CliRunner) -> None:
    output = invoke(runner, "connections", "add", "c", "--uri", "pg://h", "--host", "x", code=1)
    assert "either --uri or --type" in output
