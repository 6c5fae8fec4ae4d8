"""Pages: signing in and out, the session cookie, and the auth-off banner."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.settings import Settings
from orchestrator.web import create_app
from orchestrator.web.secret_key import SECRET_KEY_FILE
from tests.support import FixedClock
from tests.unit.web.conftest import Web

BANNER = "Authentication is off"


def test_pages_redirect_to_login_and_come_back_after_signing_in(web: Web) -> None:
    first = web.client.get("/", follow_redirects=False)
    assert (first.status_code, first.headers["location"]) == (303, "/login?next=/")
    form = web.client.get("/login?next=/")
    assert form.status_code == 200 and 'name="password"' in form.text
    assert BANNER not in form.text

    wrong = web.client.post("/login", data={"username": "viewer", "password": "nope", "next": "/"})
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text

    signed_in = web.client.post(
        "/login",
        data={"username": "viewer", "password": "secret-viewer", "next": "/"},
        follow_redirects=False,
    )
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/")
    home = web.client.get("/")
    assert home.status_code == 200
    assert "viewer (viewer)" in home.text and 'href="/dags/d"' in home.text
    # the session cookie also serves the API, with the user's role
    assert web.client.get("/api/v1/dags").status_code == 200
    assert web.client.post("/api/v1/dags/d/runs", json={}).status_code == 403

    out = web.client.post("/logout", follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    assert web.client.get("/", follow_redirects=False).status_code == 303
    assert web.client.get("/api/v1/dags").status_code == 401


def test_login_never_redirects_off_site(web: Web) -> None:
    response = web.client.post(
        "/login",
        data={"username": "admin", "password": "secret-admin", "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_sessions_survive_a_restart_with_the_generated_key(
    web: Web, settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    web.client.post("/login", data={"username": "admin", "password": "secret-admin"})
    key_file = settings.home / SECRET_KEY_FILE
    assert key_file.exists() and key_file.stat().st_mode & 0o077 == 0
    with TestClient(create_app(settings, sessions, clock)) as restarted:
        restarted.cookies = web.client.cookies
        assert restarted.get("/api/v1/users").status_code == 200


def test_a_configured_secret_key_signs_the_cookies(
    web: Web, settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    web.client.post("/login", data={"username": "admin", "password": "secret-admin"})
    other = settings.model_copy(update={"web_secret_key": SecretStr("another key")})
    with TestClient(create_app(other, sessions, clock)) as client:
        client.cookies = web.client.cookies
        assert client.get("/api/v1/users").status_code == 401


def test_with_auth_off_every_page_says_so_and_the_api_works_without_credentials(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    open_settings = settings.model_copy(update={"web_auth": False})
    with TestClient(create_app(open_settings, sessions, clock)) as client:
        home = client.get("/")
        assert home.status_code == 200 and BANNER in home.text
        assert BANNER in client.get("/login").text
        assert client.get("/api/v1/dags").status_code == 200
        assert client.put("/api/v1/pools/p", json={"slots": 1}).status_code == 200
        audit = client.get("/api/v1/audit").json()
        assert audit[0]["username"] == "anonymous"


def test_auth_off_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_WEB_AUTH", "off")
    assert Settings().web_auth is False
    monkeypatch.setenv("ORCH_WEB_AUTH", "on")
    assert Settings().web_auth is True
