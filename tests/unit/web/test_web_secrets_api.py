"""`/api/v1/connections` and `/api/v1/variables`: admins only, secrets never in clear, stored
encrypted, audited, and the error answers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.services.secrets import SecretsService
from orchestrator.services.users import Role
from orchestrator.store import users as user_store
from orchestrator.store.tables import ConnectionRow, VariableRow
from orchestrator.web import create_app
from tests.unit.web.conftest import Web

PASSWORD = "p@ss:w0rd/secret"
VALUE = "k-1234567890"
CONN = {
    "conn_type": "postgresql",
    "host": "db.example",
    "port": 5432,
    "login": "etl",
    "password": PASSWORD,
    "schema": "sales",
    "extra": {"sslmode": "require"},
    "description": "the sales database",
}
SECRET_ENDPOINTS = [
    ("get", "/api/v1/connections", None),
    ("get", "/api/v1/connections/db", None),
    ("put", "/api/v1/connections/db", CONN),
    ("delete", "/api/v1/connections/db", None),
    ("get", "/api/v1/variables", None),
    ("get", "/api/v1/variables/api_key", None),
    ("put", "/api/v1/variables/api_key", {"value": VALUE}),
    ("delete", "/api/v1/variables/api_key", None),
]


def put_connection(web: Web, body: dict[str, Any], conn_id: str = "db") -> Any:
    return web.client.put(f"/api/v1/connections/{conn_id}", json=body, headers=web.auth(Role.ADMIN))


def put_variable(web: Web, body: dict[str, Any], name: str = "api_key") -> Any:
    return web.client.put(f"/api/v1/variables/{name}", json=body, headers=web.auth(Role.ADMIN))


def service(web: Web) -> Any:
    session = web.harness.sessions()
    return session, SecretsService(web.harness.settings, session, environ={})


def audit(web: Web) -> list[tuple[str, str | None]]:
    with web.harness.sessions() as session:
        return [(e.action, e.detail) for e in user_store.audit_entries(session)]


@pytest.mark.parametrize(("method", "path", "body"), SECRET_ENDPOINTS)
def test_without_credentials_the_answer_is_401(
    web: Web, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = web.client.request(method, path, json=body)
    assert response.status_code == 401
    assert "authentication required" in response.json()["detail"]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
@pytest.mark.parametrize(("method", "path", "body"), SECRET_ENDPOINTS)
def test_viewers_and_operators_are_refused(
    web: Web, role: Role, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = web.client.request(method, path, json=body, headers=web.auth(role))
    assert response.status_code == 403
    assert "needs admin" in response.json()["detail"]
    assert audit(web) == []


def test_an_admin_stores_a_connection_encrypted_and_sees_it_masked(web: Web) -> None:
    made = put_connection(web, CONN)
    assert made.status_code == 201
    shown = made.json()
    assert PASSWORD not in made.text and "require" not in made.text
    assert (shown["password"], shown["extra"]) == ("***", "***")
    assert (shown["host"], shown["port"], shown["schema"]) == ("db.example", 5432, "sales")
    listed = web.client.get("/api/v1/connections", headers=web.auth(Role.ADMIN))
    assert [c["conn_id"] for c in listed.json()] == ["db"] and PASSWORD not in listed.text
    one = web.client.get("/api/v1/connections/db", headers=web.auth(Role.ADMIN))
    assert one.json() == shown
    session, secrets = service(web)
    with session:
        row = session.get(ConnectionRow, "db")
        assert row is not None and PASSWORD not in (row.password or "")  # encrypted
        connection = secrets.get_connection("db")  # what a task receives
        assert (connection.password, connection.extra) == (PASSWORD, {"sslmode": "require"})
    assert audit(web) == [("connection.set", "db (created)")]


def test_replacing_a_connection_keeps_the_secrets_left_out(web: Web) -> None:
    put_connection(web, CONN)
    changed = put_connection(web, {"conn_type": "postgresql", "host": "db2.example"})
    assert changed.status_code == 200
    assert (changed.json()["host"], changed.json()["password"]) == ("db2.example", "***")
    assert changed.json()["description"] == "the sales database"
    session, secrets = service(web)
    with session:
        connection = secrets.get_connection("db")
        assert (connection.host, connection.port, connection.password) == (
            "db2.example",
            None,
            PASSWORD,
        )
        assert connection.extra == {"sslmode": "require"}
    cleared = put_connection(web, {"conn_type": "postgresql", "password": None, "extra": None})
    assert (cleared.json()["password"], cleared.json()["extra"]) == (None, None)
    assert [a for a, _ in audit(web)] == ["connection.set"] * 3
    assert audit(web)[0] == ("connection.set", "db (replaced)")


def test_a_connection_from_a_uri(web: Web) -> None:
    made = put_connection(web, {"uri": "mysql://app:s%40cret@mysql.example:3306/shop"}, "shop")
    assert made.status_code == 201
    assert (made.json()["conn_type"], made.json()["login"]) == ("mysql", "app")
    assert "s@cret" not in made.text and "s%40cret" not in made.text
    session, secrets = service(web)
    with session:
        assert secrets.get_connection("shop").password == "s@cret"


@pytest.mark.parametrize(
    "body",
    [
        {},  # neither uri nor conn_type
        {"uri": "postgresql://h", "host": "other"},  # both
        {"conn_type": "postgresql", "port": 0},
        {"conn_type": "postgresql", "port": "five"},
        {"conn_type": "not a type"},
        {"conn_type": "postgresql", "extra": ["a"]},
        {"conn_type": "postgresql", "unknown": 1},
        {"uri": "no-scheme-here"},
        {"uri": "postgresql://h:notaport/db"},
    ],
)
def test_invalid_connection_bodies_are_422_and_store_nothing(
    web: Web, body: dict[str, Any]
) -> None:
    response = put_connection(web, body)
    assert response.status_code == 422, response.text
    assert web.client.get("/api/v1/connections", headers=web.auth(Role.ADMIN)).json() == []
    assert audit(web) == []


def test_a_refused_body_never_echoes_the_password(web: Web) -> None:
    response = put_connection(web, {"password": PASSWORD, "port": "x"})
    assert response.status_code == 422
    assert PASSWORD not in response.text
    assert {tuple(p["loc"]) for p in response.json()["detail"]} >= {("body", "port")}


def test_a_bad_connection_id_is_422(web: Web) -> None:
    assert put_connection(web, CONN, conn_id="has space").status_code == 422


def test_unknown_connections_are_404(web: Web) -> None:
    admin = web.auth(Role.ADMIN)
    assert web.client.get("/api/v1/connections/nope", headers=admin).status_code == 404
    gone = web.client.delete("/api/v1/connections/nope", headers=admin)
    assert gone.status_code == 404 and "no stored connection 'nope'" in gone.json()["detail"]
    assert audit(web) == []


def test_deleting_a_connection_is_audited(web: Web) -> None:
    put_connection(web, CONN)
    assert (
        web.client.delete("/api/v1/connections/db", headers=web.auth(Role.ADMIN)).status_code == 204
    )
    assert web.client.get("/api/v1/connections/db", headers=web.auth(Role.ADMIN)).status_code == 404
    assert audit(web)[0] == ("connection.delete", "db")


def test_without_a_fernet_key_nothing_is_stored_and_the_message_says_what_to_do(
    web: Web,
) -> None:
    keyless = web.harness.settings.model_copy(update={"fernet_key": None})
    app = create_app(keyless, web.harness.sessions, web.harness.clock)
    with TestClient(app) as client:
        response = client.put(
            "/api/v1/variables/api_key", json={"value": VALUE}, headers=web.auth(Role.ADMIN)
        )
    assert response.status_code == 400
    assert "ORCH_FERNET_KEY is not set" in response.json()["detail"]
    assert VALUE not in response.text
    assert audit(web) == []


def test_an_admin_sets_variables_masked_and_replaces_them(web: Web) -> None:
    made = put_variable(web, {"value": VALUE, "description": "the API key"})
    assert made.status_code == 201
    assert made.json()["value"] == "***" and VALUE not in made.text
    replaced = put_variable(web, {"value": "k-2"})
    assert replaced.status_code == 200
    assert replaced.json()["description"] == "the API key"  # kept
    listed = web.client.get("/api/v1/variables", headers=web.auth(Role.ADMIN)).json()
    assert [(v["name"], v["value"]) for v in listed] == [("api_key", "***")]
    one = web.client.get("/api/v1/variables/api_key", headers=web.auth(Role.ADMIN)).json()
    assert one["value"] == "***"
    session, secrets = service(web)
    with session:
        row = session.get(VariableRow, "api_key")
        assert row is not None and "k-2" not in row.value  # encrypted
        assert secrets.get_variable("api_key") == "k-2"
    assert audit(web) == [
        ("variable.set", "api_key (replaced)"),
        ("variable.set", "api_key (created)"),
    ]


@pytest.mark.parametrize(
    "body", [{}, {"value": 5}, {"value": "v", "extra": True}, {"description": "no value"}]
)
def test_invalid_variable_bodies_are_422(web: Web, body: dict[str, Any]) -> None:
    assert put_variable(web, body).status_code == 422
    assert put_variable(web, {"value": "v"}, name="-bad name").status_code == 422
    assert audit(web) == []


def test_unknown_variables_are_404_and_deleting_is_audited(web: Web) -> None:
    admin = web.auth(Role.ADMIN)
    assert web.client.get("/api/v1/variables/nope", headers=admin).status_code == 404
    assert web.client.delete("/api/v1/variables/nope", headers=admin).status_code == 404
    put_variable(web, {"value": VALUE})
    assert web.client.delete("/api/v1/variables/api_key", headers=admin).status_code == 204
    assert web.client.get("/api/v1/variables/api_key", headers=admin).status_code == 404
    assert audit(web)[0] == ("variable.delete", "api_key")


def test_the_openapi_document_lists_them(web: Web) -> None:
    paths = web.client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/connections/{conn_id}", "/api/v1/variables/{name}"} <= set(paths)
