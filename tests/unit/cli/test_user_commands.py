"""`users` commands, what `orchestrator web` says on start-up, and `orchestrator standalone`."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from orchestrator.cli.context import AppContext
from orchestrator.cli.main import app
from orchestrator.errors import AccountError, UserNotFound
from orchestrator.runtime.fake import FakeRuntime
from orchestrator.services.health import scheduler_status
from orchestrator.services.users import STANDALONE_PASSWORD_FILE
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


def test_users_list_says_how_to_create_the_first_user(runner: CliRunner) -> None:
    assert "orchestrator users create NAME --role admin" in invoke(runner, "users", "list")


def test_standalone_creates_an_admin_prints_its_password_and_runs_the_scheduler(
    runner: CliRunner, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AppContext, "runtime", FakeRuntime())
    served: list[dict[str, Any]] = []

    def serve(app_: Any, **kw: Any) -> None:  # the web server, until the scheduler beat once
        served.append(kw)
        deadline = time.monotonic() + 20
        while scheduler_status(settings, datetime.now(UTC)).heartbeat_at is None:
            assert time.monotonic() < deadline, "the scheduler never ran"
            time.sleep(0.05)
        with TestClient(app_) as client:
            served.append({"health": client.get("/health").json()["scheduler"]["status"]})

    monkeypatch.setattr(uvicorn, "run", serve)
    first = invoke(runner, "standalone", "--port", "9998")
    found = re.search(r"created user 'admin' with password (\S+) \(kept in (.+)\)", first)
    assert found is not None, first
    password, kept = found.groups()
    assert kept == str(settings.home / STANDALONE_PASSWORD_FILE)
    assert (settings.home / STANDALONE_PASSWORD_FILE).stat().st_mode & 0o077 == 0
    assert served[0] == {"host": "127.0.0.1", "port": 9998}
    assert served[1] == {"health": "healthy"}
    with TestClient(create_app(settings)) as client:
        users = client.get("/api/v1/users", auth=("admin", password))
        assert users.status_code == 200 and users.json()[0]["role"] == "admin"

    again = invoke(runner, "standalone")
    assert f"user 'admin' with password {password}" in again and "created" not in again
    (settings.home / STANDALONE_PASSWORD_FILE).write_text("changed since\n")
    other = invoke(runner, "standalone")
    assert "sign in as one of the users of `orchestrator users list`" in other
    assert password not in other
