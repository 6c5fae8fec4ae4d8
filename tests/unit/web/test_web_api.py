"""The REST API: every endpoint, every role, and the error answers."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from orchestrator.services.users import Role
from orchestrator.store import dags as dag_store
from tests.unit.web.conftest import Web

RUN = "/api/v1/dags/d/runs/{run_id}"

ENDPOINTS = [
    ("get", "/api/v1/dags"),
    ("get", "/api/v1/dags/d"),
    ("patch", "/api/v1/dags/d"),
    ("get", "/api/v1/dags/d/runs"),
    ("post", "/api/v1/dags/d/runs"),
    ("get", RUN),
    ("patch", RUN),
    ("post", RUN + "/clear"),
    ("get", RUN + "/tasks"),
    ("get", RUN + "/tasks/a"),
    ("patch", RUN + "/tasks/a"),
    ("get", RUN + "/tasks/a/logs"),
    ("get", "/api/v1/import-errors"),
    ("get", "/api/v1/pools"),
    ("put", "/api/v1/pools/p"),
    ("delete", "/api/v1/pools/p"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("delete", "/api/v1/users/viewer"),
    ("get", "/api/v1/audit"),
]


#: Every endpoint with the least role it needs and a body it accepts.
ROLES = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
NEEDS: list[tuple[str, str, Role, dict[str, Any] | None]] = [
    ("get", "/api/v1/dags", Role.VIEWER, None),
    ("get", "/api/v1/dags/d", Role.VIEWER, None),
    ("patch", "/api/v1/dags/d", Role.OPERATOR, {"paused": False}),
    ("get", "/api/v1/dags/d/runs", Role.VIEWER, None),
    ("post", "/api/v1/dags/d/runs", Role.OPERATOR, {}),
    ("get", RUN, Role.VIEWER, None),
    ("patch", RUN, Role.OPERATOR, {"state": "success"}),
    ("post", RUN + "/clear", Role.OPERATOR, {"failed_only": True}),
    ("get", RUN + "/tasks", Role.VIEWER, None),
    ("get", RUN + "/tasks/a", Role.VIEWER, None),
    ("patch", RUN + "/tasks/a", Role.OPERATOR, {"state": "success"}),
    ("get", RUN + "/tasks/a/logs", Role.VIEWER, None),
    ("get", "/api/v1/import-errors", Role.VIEWER, None),
    ("get", "/api/v1/pools", Role.VIEWER, None),
    ("put", "/api/v1/pools/p", Role.ADMIN, {"slots": 2}),
    ("delete", "/api/v1/pools/p", Role.ADMIN, None),
    ("get", "/api/v1/users", Role.ADMIN, None),
    ("post", "/api/v1/users", Role.ADMIN, {"username": "z", "password": "p", "role": "viewer"}),
    ("delete", "/api/v1/users/viewer", Role.ADMIN, None),
    ("get", "/api/v1/audit", Role.ADMIN, None),
    ("get", "/api/v1/connections", Role.ADMIN, None),
    ("put", "/api/v1/connections/c", Role.ADMIN, {"uri": "postgresql://u:pw@h/db"}),
    ("get", "/api/v1/connections/c", Role.ADMIN, None),
    ("delete", "/api/v1/connections/c", Role.ADMIN, None),
    ("get", "/api/v1/variables", Role.ADMIN, None),
    ("put", "/api/v1/variables/v", Role.ADMIN, {"value": "x"}),
    ("get", "/api/v1/variables/v", Role.ADMIN, None),
    ("delete", "/api/v1/variables/v", Role.ADMIN, None),
]


def test_the_role_table_covers_every_endpoint(web: Web) -> None:
    paths = web.client.get("/openapi.json").json()["paths"]
    operations = [
        (method, path)
        for path, methods in paths.items()
        if path.startswith("/api/v1") and path != "/api/v1/health"
        for method in methods
    ]
    assert len({(m, p) for m, p, _, _ in NEEDS}) == len(NEEDS) == len(operations)


@pytest.mark.parametrize(("method", "path", "needs", "body"), NEEDS)
def test_every_endpoint_refuses_lower_roles_and_serves_the_others(
    web: Web, method: str, path: str, needs: Role, body: dict[str, Any] | None
) -> None:
    url = path.format(run_id=web.run_id)
    admin = web.auth(Role.ADMIN)
    for made, made_body in [
        ("/api/v1/pools/p", {"slots": 1}),
        ("/api/v1/connections/c", {"conn_type": "http"}),
        ("/api/v1/variables/v", {"value": "x"}),
    ]:  # what the endpoints read and delete
        assert web.client.put(made, json=made_body, headers=admin).status_code in (200, 201)
    for role in ROLES:  # lowest first: a deleting call by the role it needs comes last
        web.harness.clock.advance(minutes=1)  # a trigger's run id is new each time
        response = web.client.request(method, url, json=body, headers=web.auth(role))
        if role.allows(needs):
            assert response.status_code < 400, (role, response.status_code, response.text)
        else:
            assert response.status_code == 403, (role, response.status_code, response.text)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_api_endpoint_answers_401_in_json_without_credentials(
    web: Web, method: str, path: str
) -> None:
    response = web.client.request(method, path.format(run_id=web.run_id), json={})
    assert response.status_code == 401
    assert "authentication required" in response.json()["detail"]
    assert "Bearer" in response.headers["www-authenticate"]


def test_a_wrong_token_or_password_is_refused(web: Web) -> None:
    bad_token = web.client.get("/api/v1/dags", headers={"Authorization": "Bearer nope"})
    basic = base64.b64encode(b"admin:wrong").decode()
    bad_basic = web.client.get("/api/v1/dags", headers={"Authorization": f"Basic {basic}"})
    assert (bad_token.status_code, bad_basic.status_code) == (401, 401)


def test_basic_auth_with_the_right_password_works(web: Web) -> None:
    basic = base64.b64encode(b"viewer:secret-viewer").decode()
    response = web.client.get("/api/v1/dags", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200


def test_dag_list_shows_paused_flag_and_latest_run(web: Web) -> None:
    body = web.client.get("/api/v1/dags", headers=web.auth(Role.VIEWER)).json()
    assert body["total"] == 1
    listed = body["dags"][0]
    assert (listed["dag_id"], listed["paused"], listed["tasks"]) == ("d", False, 2)
    assert listed["last_run"]["run_id"] == web.run_id
    assert listed["last_run"]["state"] == "success"
    assert listed["next_run"] is None  # manual-only DAG


def test_one_dag_shows_its_tasks_and_params(web: Web) -> None:
    body = web.client.get("/api/v1/dags/d", headers=web.auth(Role.VIEWER)).json()
    assert [(t["task_id"], t["upstream_task_ids"]) for t in body["task_list"]] == [
        ("a", []),
        ("b", ["a"]),
    ]
    assert body["params"]["rows"]["default"] == 1


def test_unknown_dag_is_404_with_a_message(web: Web) -> None:
    response = web.client.get("/api/v1/dags/nope", headers=web.auth(Role.VIEWER))
    assert response.status_code == 404
    assert "no DAG 'nope'" in response.json()["detail"]


def test_pausing_needs_an_operator_and_is_audited(web: Web) -> None:
    denied = web.client.patch(
        "/api/v1/dags/d", json={"paused": True}, headers=web.auth(Role.VIEWER)
    )
    assert denied.status_code == 403
    assert "operator" in denied.json()["detail"]
    paused = web.client.patch(
        "/api/v1/dags/d", json={"paused": True}, headers=web.auth(Role.OPERATOR)
    )
    assert paused.status_code == 200 and paused.json()["paused"] is True
    with web.harness.sessions() as session:
        assert dag_store.get_dag_row(session, "d").is_paused
    audit = web.client.get("/api/v1/audit", headers=web.auth(Role.ADMIN)).json()
    assert (audit[0]["username"], audit[0]["action"], audit[0]["dag_id"]) == (
        "operator",
        "pause",
        "d",
    )
    bad = web.client.patch("/api/v1/dags/d", json={"paused": "maybe"}, headers=web.auth(Role.ADMIN))
    assert bad.status_code == 422


def trigger(web: Web, role: Role = Role.OPERATOR, **body: Any) -> Any:
    return web.client.post("/api/v1/dags/d/runs", json=body, headers=web.auth(role))


def test_trigger_queues_a_run_with_its_conf(web: Web) -> None:
    assert trigger(web, Role.VIEWER).status_code == 403
    response = trigger(web, run_id="by-api", conf={"rows": 5})
    assert response.status_code == 201
    assert (response.json()["run_id"], response.json()["state"]) == ("by-api", "queued")
    shown = web.client.get("/api/v1/dags/d/runs/by-api", headers=web.auth(Role.VIEWER)).json()
    assert shown["conf"] == {"rows": 5}
    audit = web.client.get("/api/v1/audit", headers=web.auth(Role.ADMIN)).json()
    assert (audit[0]["action"], audit[0]["run_id"]) == ("trigger", "by-api")


def test_a_logical_date_without_an_offset_is_utc(web: Web) -> None:
    response = trigger(web, run_id="naive", logical_date="2026-02-01T06:00:00")
    assert response.status_code == 201
    assert response.json()["logical_date"] == "2026-02-01T06:00:00Z"


def test_trigger_with_conf_that_does_not_fit_the_params_is_422_and_stores_nothing(
    web: Web,
) -> None:
    response = trigger(web, run_id="bad", conf={"rows": 0})
    assert response.status_code == 422
    assert "rows" in response.json()["detail"]
    missing = web.client.get("/api/v1/dags/d/runs/bad", headers=web.auth(Role.VIEWER))
    assert missing.status_code == 404


def test_trigger_refuses_bad_bodies_taken_run_ids_and_unknown_dags(web: Web) -> None:
    assert trigger(web, conf=[1, 2]).status_code == 422
    assert trigger(web, confs={}).status_code == 422  # unknown field
    assert trigger(web, run_id=web.run_id).status_code == 409
    unknown = web.client.post("/api/v1/dags/nope/runs", json={}, headers=web.auth(Role.ADMIN))
    assert unknown.status_code == 404


def test_a_dag_whose_file_is_gone_cannot_be_triggered(web: Web) -> None:
    with web.harness.sessions.begin() as session:
        dag_store.deactivate_missing_files(session, set())
    response = trigger(web)
    assert response.status_code == 400
    assert "no longer in the DAGs folder" in response.json()["detail"]


def test_runs_are_listed_newest_first_in_pages(web: Web) -> None:
    for day in (2, 3):
        assert trigger(web, run_id=f"r{day}", logical_date=f"2026-01-0{day}T00:00:00Z").is_success
    first = web.client.get("/api/v1/dags/d/runs?limit=2", headers=web.auth(Role.VIEWER)).json()
    assert first["total"] == 3
    assert [r["run_id"] for r in first["runs"]] == [web.run_id, "r3"]
    second = web.client.get(
        "/api/v1/dags/d/runs?limit=2&offset=2", headers=web.auth(Role.VIEWER)
    ).json()
    assert [r["run_id"] for r in second["runs"]] == ["r2"]
    bad = web.client.get("/api/v1/dags/d/runs?limit=0", headers=web.auth(Role.VIEWER))
    assert bad.status_code == 422


def test_unknown_run_is_404(web: Web) -> None:
    response = web.client.get("/api/v1/dags/d/runs/nope", headers=web.auth(Role.VIEWER))
    assert response.status_code == 404
    assert "no run 'nope'" in response.json()["detail"]


def test_clearing_a_task_with_downstream_requeues_the_run(web: Web) -> None:
    path = RUN.format(run_id=web.run_id) + "/clear"
    body = {"task_ids": ["a"], "downstream": True}
    assert web.client.post(path, json=body, headers=web.auth(Role.VIEWER)).status_code == 403
    response = web.client.post(path, json=body, headers=web.auth(Role.OPERATOR))
    assert response.status_code == 200
    changes = response.json()
    assert [(c["task_id"], c["from_state"], c["to_state"]) for c in changes["tasks"]] == [
        ("a", "success", "none"),
        ("b", "success", "none"),
    ]
    assert (changes["run_state_before"], changes["run_state"]) == ("success", "queued")
    failed_only = web.client.post(path, json={"failed_only": True}, headers=web.auth(Role.ADMIN))
    assert failed_only.json()["tasks"] == []
    unknown = web.client.post(path, json={"task_ids": ["zz"]}, headers=web.auth(Role.ADMIN))
    assert unknown.status_code == 404


def test_marking_a_run_failed_then_success(web: Web) -> None:
    assert trigger(web, run_id="m").status_code == 201
    path = RUN.format(run_id="m")
    denied = web.client.patch(path, json={"state": "failed"}, headers=web.auth(Role.VIEWER))
    assert denied.status_code == 403
    failed = web.client.patch(path, json={"state": "failed"}, headers=web.auth(Role.OPERATOR))
    assert failed.status_code == 200 and failed.json()["run_state"] == "failed"
    assert {c["to_state"] for c in failed.json()["tasks"]} == {"skipped"}
    done = web.client.patch(path, json={"state": "success"}, headers=web.auth(Role.OPERATOR))
    assert done.json()["run_state"] == "success"
    bad = web.client.patch(path, json={"state": "running"}, headers=web.auth(Role.OPERATOR))
    assert bad.status_code == 422


def test_task_instances_of_a_run(web: Web) -> None:
    path = RUN.format(run_id=web.run_id) + "/tasks"
    listed = web.client.get(path, headers=web.auth(Role.VIEWER)).json()
    assert [(ti["task_id"], ti["state"], ti["output"]) for ti in listed] == [
        ("a", "success", "a"),
        ("b", "success", "b"),
    ]
    one = web.client.get(path + "/b", headers=web.auth(Role.VIEWER)).json()
    assert (one["try_number"], one["exit_code"]) == (1, 0)
    assert web.client.get(path + "/zz", headers=web.auth(Role.VIEWER)).status_code == 404


def test_marking_a_task_failed(web: Web) -> None:
    path = RUN.format(run_id=web.run_id) + "/tasks/b"
    denied = web.client.patch(path, json={"state": "failed"}, headers=web.auth(Role.VIEWER))
    assert denied.status_code == 403
    marked = web.client.patch(path, json={"state": "failed"}, headers=web.auth(Role.OPERATOR))
    assert marked.status_code == 200
    assert [(c["task_id"], c["to_state"]) for c in marked.json()["tasks"]] == [("b", "failed")]
    shown = web.client.get(path, headers=web.auth(Role.VIEWER)).json()
    assert shown["state"] == "failed"


def test_logs_of_an_attempt(web: Web) -> None:
    path = RUN.format(run_id=web.run_id) + "/tasks/a/logs"
    response = web.client.get(path, headers=web.auth(Role.VIEWER))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "hello from a\nsecond line\n" in response.text
    again = web.client.get(path + "?try_number=1", headers=web.auth(Role.VIEWER))
    assert again.text == response.text
    none = web.client.get(path + "?try_number=7", headers=web.auth(Role.VIEWER))
    assert none.status_code == 404 and "no attempt 7" in none.json()["detail"]


def test_following_the_log_of_a_finished_attempt_returns_all_of_it_and_ends(web: Web) -> None:
    path = RUN.format(run_id=web.run_id) + "/tasks/b/logs"
    whole = web.client.get(path, headers=web.auth(Role.VIEWER)).text
    with web.client.stream("GET", path + "?follow=true", headers=web.auth(Role.VIEWER)) as r:
        followed = b"".join(r.iter_bytes()).decode()
    assert followed == whole and "hello from b" in followed


def test_import_errors_are_listed(web: Web) -> None:
    with web.harness.sessions.begin() as session:
        dag_store.record_file_result(
            session, "/dags/broken.py", [], "SyntaxError: bad", web.harness.clock.now()
        )
    errors = web.client.get("/api/v1/import-errors", headers=web.auth(Role.VIEWER)).json()
    assert [(e["fileloc"], e["error"]) for e in errors] == [("/dags/broken.py", "SyntaxError: bad")]


def test_pools_are_read_by_anyone_and_managed_by_admins(web: Web) -> None:
    listed = web.client.get("/api/v1/pools", headers=web.auth(Role.VIEWER)).json()
    assert [p["name"] for p in listed] == ["default_pool"]
    body = {"slots": 3, "description": "db"}
    put = web.client.put("/api/v1/pools/db", json=body, headers=web.auth(Role.OPERATOR))
    assert put.status_code == 403
    made = web.client.put("/api/v1/pools/db", json=body, headers=web.auth(Role.ADMIN))
    assert made.status_code == 200
    assert (made.json()["slots"], made.json()["open"]) == (3, 3)
    negative = web.client.put("/api/v1/pools/db", json={"slots": -1}, headers=web.auth(Role.ADMIN))
    assert negative.status_code == 400 and "slots" in negative.json()["detail"]
    wrong_type = web.client.put(
        "/api/v1/pools/db", json={"slots": "x"}, headers=web.auth(Role.ADMIN)
    )
    assert wrong_type.status_code == 422
    denied = web.client.delete("/api/v1/pools/db", headers=web.auth(Role.OPERATOR))
    assert denied.status_code == 403
    assert web.client.delete("/api/v1/pools/db", headers=web.auth(Role.ADMIN)).status_code == 204
    gone = web.client.delete("/api/v1/pools/db", headers=web.auth(Role.ADMIN))
    assert gone.status_code == 404
    default = web.client.delete("/api/v1/pools/default_pool", headers=web.auth(Role.ADMIN))
    assert default.status_code == 400
    actions = [
        e["action"] for e in web.client.get("/api/v1/audit", headers=web.auth(Role.ADMIN)).json()
    ]
    assert actions[:2] == ["pool.delete", "pool.set"]


def test_users_are_managed_by_admins_only(web: Web) -> None:
    assert web.client.get("/api/v1/users", headers=web.auth(Role.OPERATOR)).status_code == 403
    body = {"username": "carol", "password": "pw", "role": "operator"}
    denied = web.client.post("/api/v1/users", json=body, headers=web.auth(Role.OPERATOR))
    assert denied.status_code == 403
    made = web.client.post("/api/v1/users", json=body, headers=web.auth(Role.ADMIN))
    assert made.status_code == 201
    again = web.client.post("/api/v1/users", json=body, headers=web.auth(Role.ADMIN))
    assert again.status_code == 400 and "exists already" in again.json()["detail"]
    bad_role = {**body, "username": "dave", "role": "root"}
    assert (
        web.client.post("/api/v1/users", json=bad_role, headers=web.auth(Role.ADMIN)).status_code
        == 422
    )
    names = [
        u["username"] for u in web.client.get("/api/v1/users", headers=web.auth(Role.ADMIN)).json()
    ]
    assert names == ["admin", "carol", "operator", "viewer"]
    assert web.client.delete("/api/v1/users/carol", headers=web.auth(Role.ADMIN)).status_code == 204
    assert web.client.delete("/api/v1/users/carol", headers=web.auth(Role.ADMIN)).status_code == 404


def test_deleting_a_user_revokes_their_token(web: Web) -> None:
    assert (
        web.client.delete("/api/v1/users/viewer", headers=web.auth(Role.ADMIN)).status_code == 204
    )
    assert web.client.get("/api/v1/dags", headers=web.auth(Role.VIEWER)).status_code == 401


def test_openapi_is_served_at_docs(web: Web) -> None:
    assert web.client.get("/docs").status_code == 200
    paths = web.client.get("/openapi.json").json()["paths"]
    assert "/api/v1/dags/{dag_id}/runs/{run_id}/clear" in paths
