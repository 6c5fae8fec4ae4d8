"""Task secrets on the real Docker engine: the container gets the value, nothing stores it."""

from __future__ import annotations

import hashlib
import json

import docker
import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.secrets import Connection, SecretRef
from orchestrator.services.clock import SystemClock
from orchestrator.services.secrets import SecretsService, generate_key
from orchestrator.settings import Settings
from orchestrator.store import task_instances as ti_store
from tests.integration.harness import Env, sh, wait_removed

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]

DB_PASSWORD = "p@ss w/rd!-8c1f"
API_KEY = "k3y-5e2d-77aa"


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_a_container_receives_its_secrets_and_only_masks_are_kept(
    settings: Settings,
    sessions: sessionmaker[Session],
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keyed = settings.model_copy(update={"fernet_key": SecretStr(generate_key())})
    uri = Connection(
        conn_id="my_db", conn_type="postgresql", host="db", login="app", password=DB_PASSWORD
    ).get_uri()
    with sessions.begin() as session:
        SecretsService(keyed, session).add_connection(
            Connection.from_uri("my_db", uri), SystemClock().now()
        )
    monkeypatch.setenv("ORCH_VAR_API_KEY", API_KEY)
    script = (
        # the container checks what it got without the check holding the value
        f'[ "$(printf %s "$DB_PASSWORD" | sha256sum | cut -d" " -f1)" = "{_sha256(DB_PASSWORD)}" ]'
        " || { echo 'wrong DB_PASSWORD'; exit 1; }\n"
        f'[ "$(printf %s "$API_KEY" | sha256sum | cut -d" " -f1)" = "{_sha256(API_KEY)}" ]'
        " || { echo 'wrong API_KEY'; exit 1; }\n"
        'echo "password=$DB_PASSWORD key=$API_KEY host=$DB_HOST"\n'
        # one value printed in two writes, a moment apart: split over log chunks
        'printf "split=%s" "${API_KEY%???????}"; sleep 0.5; printf "%s\\n" "${API_KEY#??????}"\n'
    )
    env = Env(keyed, sessions, docker_client)
    try:
        tis = env.run(
            sh(
                "echo_secrets",
                script,
                secrets={
                    "DB_PASSWORD": SecretRef(source="conn", key="my_db"),
                    "API_KEY": SecretRef(source="var", key="api_key"),
                },
                environment={"DB_HOST": "{{ conn.my_db.host }}"},
            )
        )
    finally:
        env.scheduler.close()
    ti = tis["echo_secrets"]
    log = env.log(ti)
    assert (ti.state, ti.exit_code) == ("success", 0), log
    assert "password=*** key=*** host=db" in log
    assert "split=***" in log
    assert DB_PASSWORD not in log and API_KEY not in log
    with sessions() as session:
        attempt = ti_store.get_attempt(session, ti.id, 1)
        assert attempt is not None
        stored = json.dumps(attempt.rendered)
    assert DB_PASSWORD not in stored and API_KEY not in stored
    assert attempt.rendered["secrets"] == {
        "DB_PASSWORD": "conn:my_db.password",
        "API_KEY": "var:api_key",
    }
    assert wait_removed(env) == []
