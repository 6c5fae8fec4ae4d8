"""`users` commands and what `orchestrator web` says on start-up."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.errors import AccountError, UserNotFound
from orchestrator.settings import Settings
from orchestrator.web import create_app


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ORCH_HOME", str(settings.home))
    return CliRunner()


def invoke(runner: CliRunner, *args: str, code: int = 0, stdin: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == code, result.output
    return result.output


def test_create_list_token_and_delete_users(runner: CliRunner, settings: Settings) -> None:
    assert "created user ann (admin)" in invoke(
        runner, "users", "create", "ann", "--role", "admin", "--password", "pw1"
    )
    prompted = invoke(runner, "users", "create", "bob", "--role", "viewer", stdin="pw2\npw2\n")
    assert "created user bob (viewer)" in prompted and "pw2" not in prompted
    listed = invoke(runner, "users", "list")
    assert "ann" in listed and "admin" in listed and "bob" in listed

    token = invoke(runner, "users", "token", "bob").strip()
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/dags", headers=headers).status_code == 200
        assert client.get("/api/v1/users", headers=headers).status_code == 403
        invoke(runner, "users", "delete", "bob")
        assert client.get("/api/v1/dags", headers=headers).status_code == 401
    assert "bob" not in invoke(runner, "users", "list")


def test_bad_user_commands_say_what_was_wrong(runner: CliRunner) -> None:
    bad_role = runner.invoke(app, ["users", "create", "x", "--role", "root", "--password", "p"])
    assert isinstance(bad_role.exception, AccountError)
    assert "viewer, operator, admin" in str(bad_role.exception)
    invoke(runner, "users", "create", "x", "--role", "viewer", "--password", "p")
    again = runner.invoke(app, ["users", "create", "x", "--role", "viewer", "--password", "p"])
    assert isinstance(again.exception, AccountError)
    missing = runner.invoke(app, ["users", "delete", "nobody"])
    assert isinstance(missing.exception, UserNotFound)


def test_web_says_how_to_create_the_first_user(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: started.update(kw))
    result = runner.invoke(app, ["web", "--port", "9999"])
    assert result.exit_code == 0, result.output
    assert "orchestrator users create NAME --role admin" in result.output
    assert started == {"host": "127.0.0.1", "port": 9999}

    invoke(runner, "users", "create", "ann", "--role", "admin", "--password", "pw")
    quiet = runner.invoke(app, ["web"])
    assert "users create" not in quiet.output
    monkeypatch.setenv("ORCH_WEB_AUTH", "off")
    assert "authentication is off" in runner.invoke(app, ["web"]).output
