"""`/metrics` and `/health`."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from orchestrator.services.reconcile import update_status_file, write_heartbeat
from orchestrator.store import dags as dag_store
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
    assert (("quantile", "0.5"),) in found["orchestrator_task_duration_seconds"]
    assert found["orchestrator_import_errors"][()] == 1
    # no scheduler has run here: nothing is claimed about it
    assert "orchestrator_scheduler_heartbeat_age_seconds" not in found
    assert "orchestrator_docker_engine_up" not in found


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
