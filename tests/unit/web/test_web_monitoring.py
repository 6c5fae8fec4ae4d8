"""`/metrics` and `/health`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.services.health import LoopTimes
from orchestrator.services.reconcile import update_status_file, write_heartbeat
from orchestrator.services.users import Role
from orchestrator.store import dags as dag_store
from orchestrator.store import stats
from orchestrator.web.metrics import RESULTS, attempt_result
from tests.unit.web.conftest import Web


def metrics(web: Web) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = web.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[key] = sample.value
    return found


def test_metrics_parse_and_count_the_store(web: Web) -> None:
    with web.harness.sessions.begin() as session:
        dag_store.record_file_result(session, "/dags/x.py", [], "boom", web.harness.clock.now())
    found = metrics(web)
    assert found["orchestrator_task_instances"][(("state", "success"),)] == 2
    assert found["orchestrator_task_instances"][(("state", "failed"),)] == 0
    assert found["orchestrator_dag_runs"][(("state", "success"),)] == 1
    assert found["orchestrator_task_duration_seconds_count"][()] == 2
    assert found["orchestrator_task_queue_seconds_count"][()] == 2
    assert found["orchestrator_task_pull_seconds_count"][()] == 2  # both images made ready
    assert found["orchestrator_dag_runs_created_total"] == {(("run_type", "manual"),): 1}
    results = found["orchestrator_task_attempt_results"]
    assert results[(("result", "success"),)] == 2
    assert {dict(k)["result"] for k in results} == set(RESULTS)
    assert (("quantile", "0.5"),) in found["orchestrator_task_duration_seconds"]
    assert found["orchestrator_import_errors"][()] == 1
    # no scheduler has run here: nothing is claimed about it
    assert "orchestrator_scheduler_heartbeat_age_seconds" not in found
    assert "orchestrator_docker_engine_up" not in found
    assert "orchestrator_scheduler_loop_seconds_count" not in found


def test_runs_created_count_every_run_by_type(web: Web) -> None:
    for _ in range(2):
        web.harness.clock.advance(minutes=1)
        response = web.client.post("/api/v1/dags/d/runs", json={}, headers=web.auth(Role.OPERATOR))
        assert response.status_code == 201
    assert metrics(web)["orchestrator_dag_runs_created_total"] == {(("run_type", "manual"),): 3}


def test_metrics_report_how_long_the_scheduler_loop_takes(web: Web) -> None:
    times = LoopTimes(window=3)
    for seconds in (0.5, 0.01, 0.02, 0.03):
        times.add(seconds)
    write_heartbeat(web.harness.settings.home, web.harness.clock.now(), times.fields())
    loop = metrics(web)
    assert loop["orchestrator_scheduler_loop_seconds_count"][()] == 4  # since it started
    assert loop["orchestrator_scheduler_loop_seconds_sum"][()] == 0.56
    assert loop["orchestrator_scheduler_loop_seconds"][(("quantile", "0.5"),)] == 0.02
    assert loop["orchestrator_scheduler_loop_seconds"][(("quantile", "0.99"),)] == 0.03
    health = web.client.get("/health").json()["scheduler"]
    assert health["last_pass_seconds"] == 0.03


@pytest.mark.parametrize(
    ("state", "exit_code", "oom", "timed_out", "result"),
    [
        ("success", 0, False, False, "success"),
        ("failed", 3, False, False, "failed"),
        ("up_for_retry", 1, False, False, "failed"),
        ("failed", 137, True, False, "oom"),
        ("up_for_retry", None, False, True, "timeout"),
        ("failed", None, False, False, "error"),
        ("skipped", 99, False, False, "skipped"),
    ],
)
def test_each_finished_attempt_has_one_result(
    state: str, exit_code: int | None, oom: bool, timed_out: bool, result: str
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    attempt = stats.AttemptTimes(now, None, None, now, now, state, exit_code, oom, timed_out)
    assert attempt_result(attempt) == result


def test_metrics_report_the_scheduler_heartbeat_and_engine(web: Web) -> None:
    home = web.harness.settings.home
    write_heartbeat(home, web.harness.clock.now() - timedelta(seconds=42))
    update_status_file(home, {"engine": "down", "engine_error": "no socket"})
    found = metrics(web)
    assert found["orchestrator_scheduler_heartbeat_age_seconds"][()] == 42
    assert found["orchestrator_docker_engine_up"][()] == 0


def test_health_without_a_scheduler(web: Web) -> None:
    response = web.client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy" and body["database"]["status"] == "healthy"
    assert body["scheduler"]["status"] == "unknown"
    assert body["scheduler"]["engine"] == "unknown"


def test_health_reports_a_fresh_and_a_stale_heartbeat(web: Web) -> None:
    home, clock = web.harness.settings.home, web.harness.clock
    write_heartbeat(home, clock.now() - timedelta(seconds=5))
    update_status_file(home, {"engine": "up", "engine_error": None})
    fresh = web.client.get("/health").json()["scheduler"]
    assert (fresh["status"], fresh["heartbeat_age_seconds"], fresh["engine"]) == (
        "healthy",
        5,
        "up",
    )
    clock.advance(seconds=600)
    stale = web.client.get("/health").json()
    assert stale["scheduler"]["status"] == "unhealthy"
    assert stale["status"] == "healthy"  # the web server itself still serves


def test_health_is_503_when_the_database_is_gone(web: Web) -> None:
    web.harness.sessions.kw["bind"].dispose()
    (web.harness.settings.home / "orchestrator.db").unlink()
    (web.harness.settings.home / "orchestrator.db").mkdir()  # cannot be opened as a database
    response = web.client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"]["status"] == "unhealthy"


def test_liveness_and_readiness(web: Web) -> None:
    assert web.client.get("/health/live").json() == {"status": "alive"}
    ready = web.client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["database"]["status"] == "healthy"
    api = web.client.get("/api/v1/health")  # where API clients look; no credentials either
    assert api.status_code == 200 and api.json()["status"] == "healthy"


def test_when_the_database_is_gone_the_server_is_alive_but_not_ready(web: Web) -> None:
    web.harness.sessions.kw["bind"].dispose()
    (web.harness.settings.home / "orchestrator.db").unlink()
    (web.harness.settings.home / "orchestrator.db").mkdir()
    assert web.client.get("/health/live").status_code == 200
    assert web.client.get("/health/ready").status_code == 503
    assert web.client.get("/api/v1/health").status_code == 503
