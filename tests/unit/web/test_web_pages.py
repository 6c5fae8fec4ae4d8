"""Pages: signing in and out, the session cookie, CSRF tokens, and the auth-off banner."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.services.users import Role
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import users as user_store
from orchestrator.web import create_app
from orchestrator.web.secret_key import SECRET_KEY_FILE
from tests.support import FixedClock
from tests.unit.web.conftest import Web, page_token, sign_in

BANNER = "Authentication is off"


def test_pages_redirect_to_login_and_come_back_after_signing_in(web: Web) -> None:
    first = web.client.get("/", follow_redirects=False)
    assert (first.status_code, first.headers["location"]) == (303, "/login?next=/")
    form = web.client.get("/login?next=/")
    assert form.status_code == 200 and 'name="password"' in form.text
    assert BANNER not in form.text

    wrong = sign_in(web.client, "viewer", "nope")
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text

    signed_in = sign_in(web.client, "viewer", "secret-viewer", follow_redirects=False)
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/")
    home = web.client.get("/")
    assert home.status_code == 200
    assert "viewer (viewer)" in home.text and 'href="/dags/d"' in home.text
    # the session cookie also serves the API, with the user's role
    assert web.client.get("/api/v1/dags").status_code == 200
    assert web.client.post("/api/v1/dags/d/runs", json={}).status_code == 403

    token = page_token(web.client, "/")
    out = web.client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    assert web.client.get("/", follow_redirects=False).status_code == 303
    assert web.client.get("/api/v1/dags").status_code == 401


def test_login_never_redirects_off_site(web: Web) -> None:
    response = sign_in(
        web.client, "admin", "secret-admin", next="//evil.example/", follow_redirects=False
    )
    assert response.headers["location"] == "/"


def test_sessions_survive_a_restart_with_the_generated_key(
    web: Web, settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    sign_in(web.client, "admin", "secret-admin")
    key_file = settings.home / SECRET_KEY_FILE
    assert key_file.exists() and key_file.stat().st_mode & 0o077 == 0
    with TestClient(create_app(settings, sessions, clock)) as restarted:
        restarted.cookies = web.client.cookies
        assert restarted.get("/api/v1/users").status_code == 200


def test_a_configured_secret_key_signs_the_cookies(
    web: Web, settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    sign_in(web.client, "admin", "secret-admin")
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
        # the API's documentation pages say so too
        assert BANNER in client.get("/openapi.json").json()["info"]["description"]
        assert "no-users" not in client.get("/login").text


def test_a_fresh_install_s_login_page_says_how_to_make_the_first_user(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with TestClient(create_app(settings, sessions, clock)) as client:
        page = client.get("/login").text
        assert "No users exist yet" in page
        assert "orchestrator users create NAME --role admin" in page
        assert client.get("/api/v1/dags").status_code == 401
        assert BANNER not in client.get("/openapi.json").json()["info"]["description"]


def test_once_a_user_exists_the_login_page_gives_no_hint(web: Web) -> None:
    assert "No users exist yet" not in web.client.get("/login").text


def test_auth_off_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_WEB_AUTH", "off")
    assert Settings().web_auth is False
    monkeypatch.setenv("ORCH_WEB_AUTH", "on")
    assert Settings().web_auth is True


def test_a_sign_in_without_the_form_s_token_is_refused(web: Web) -> None:
    forged = web.client.post(
        "/login", data={"username": "admin", "password": "secret-admin", "next": "/"}
    )
    assert forged.status_code == 403 and "The form expired" in forged.text
    assert web.client.get("/", follow_redirects=False).status_code == 303  # not signed in
    stale = web.client.post(
        "/login",
        data={"username": "admin", "password": "secret-admin", "csrf_token": "guessed"},
    )
    assert stale.status_code == 403


def test_signing_in_gives_the_session_a_new_token(web: Web) -> None:
    before = page_token(web.client)
    sign_in(web.client, "operator", "secret-operator")
    after = page_token(web.client, "/")
    assert after != before
    refused = web.client.post("/dags/d/pause", data={"paused": "true", "csrf_token": before})
    assert refused.status_code == 403


def test_forms_posted_without_the_session_s_token_change_nothing(web: Web) -> None:
    sign_in(web.client, "admin", "secret-admin")
    run = f"/dags/d/runs/{web.run_id}"
    forged = [
        ("/dags/d/pause", {"paused": "true"}),
        ("/dags/d/trigger", {"conf": "{}"}),
        (run + "/clear", {}),
        (run + "/mark", {"state": "failed"}),
        (run + "/tasks/a/mark", {"state": "failed"}),
    ]
    for path, data in forged:
        for token in (None, "not-the-token"):
            body = data if token is None else {**data, "csrf_token": token}
            response = web.client.post(path, data=body)
            assert response.status_code == 403, path
            assert "CSRF token" in response.json()["detail"]
    assert web.client.post("/logout").status_code == 403
    assert web.client.get("/", follow_redirects=False).status_code == 200  # still signed in
    with web.harness.sessions() as session:
        assert not dag_store.get_dag_row(session, "d").is_paused
        assert run_store.count_runs(session, "d") == 1
        assert user_store.audit_entries(session) == []
    assert {ti.state for ti in web.harness.tis(web.run_id).values()} == {"success"}


def test_session_signed_api_calls_that_change_things_need_the_token_header(web: Web) -> None:
    sign_in(web.client, "operator", "secret-operator")
    assert web.client.get("/api/v1/dags").status_code == 200  # reading needs none
    refused = web.client.patch("/api/v1/dags/d", json={"paused": True})
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    token = page_token(web.client, "/")
    allowed = web.client.patch(
        "/api/v1/dags/d", json={"paused": True}, headers={"X-CSRF-Token": token}
    )
    assert allowed.status_code == 200 and allowed.json()["paused"] is True
    # a bearer token needs no CSRF token: a browser never sends one on another site's behalf
    operator = web.auth(Role.OPERATOR)
    bearer = web.client.patch("/api/v1/dags/d", json={"paused": False}, headers=operator)
    assert bearer.status_code == 200


def test_with_auth_off_forms_still_need_the_token(
    web: Web, settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    open_settings = settings.model_copy(update={"web_auth": False})
    with TestClient(create_app(open_settings, sessions, clock)) as client:
        assert client.post("/dags/d/pause", data={"paused": "true"}).status_code == 403
        token = page_token(client, "/")
        allowed = client.post("/dags/d/pause", data={"paused": "true", "csrf_token": token})
        assert allowed.status_code == 200
    with sessions() as session:
        assert dag_store.get_dag_row(session, "d").is_paused
