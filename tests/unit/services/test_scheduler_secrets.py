"""Task secrets in the scheduler: resolved at launch, never stored, masked in logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LaunchRequest
from orchestrator.models.mapping import LiteralItems
from orchestrator.models.secrets import SecretRef
from orchestrator.models.states import RunState
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.services.logs import LogFile
from orchestrator.services.secrets import SecretsService, generate_key
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness, spec, t

DB_PASSWORD = "db-pw-31337"
API_KEY = "api-key-424242"
HOST_TOKEN = "host-token-9000"

SECRETS = {
    "DB_PASSWORD": SecretRef(source="conn", key="my_db"),
    "API_KEY": SecretRef(source="var", key="api_key"),
    "TOKEN": SecretRef(source="env", key="HOST_TOKEN"),
}


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return settings.model_copy(update={"fernet_key": SecretStr(generate_key())})


def _echo_everything(request: LaunchRequest) -> FakeBehavior:
    printed = " ".join(f"{k}={v}" for k, v in sorted(request.environment.items()))
    return FakeBehavior(logs=printed.encode() + b"\n")


def _attempt(h: Harness, run_id: str, task_id: str = "a") -> tuple[dict[str, object], str]:
    ti = h.tis(run_id)[task_id]
    with h.sessions() as session:
        attempt = ti_store.get_attempt(session, ti.id, ti.try_number)
        assert attempt is not None
        return dict(attempt.rendered), Path(attempt.log_path).read_text()


def test_secrets_reach_the_container_but_not_the_record_or_the_log(
    keyed: Settings,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH_CONN_MY_DB", f"postgresql://app:{DB_PASSWORD}@db:5432/sales")
    monkeypatch.setenv("HOST_TOKEN", HOST_TOKEN)
    with sessions.begin() as session:
        SecretsService(keyed, session).set_variable("api_key", API_KEY, clock.now())
    h = Harness(keyed, sessions, clock, _echo_everything)
    run_id = h.trigger(
        spec(
            t(
                "a",
                secrets=SECRETS,
                environment={"DSN": "{{ conn.my_db.get_uri() }}", "HOST": "{{ conn.my_db.host }}"},
                command=["run", "--password={{ conn.my_db.password }}"],
            )
        )
    )
    h.tick(3)
    assert h.run_state(run_id) == RunState.SUCCESS
    env = h.runtime.created[0].environment
    assert (env["DB_PASSWORD"], env["API_KEY"], env["TOKEN"]) == (DB_PASSWORD, API_KEY, HOST_TOKEN)
    assert h.runtime.created[0].command == ("run", f"--password={DB_PASSWORD}")
    rendered, log = _attempt(h, run_id)
    stored = json.dumps(rendered)
    for value in (DB_PASSWORD, API_KEY, HOST_TOKEN):
        assert value not in stored
        assert value not in log
    assert rendered["secrets"] == {
        "DB_PASSWORD": "conn:my_db.password",
        "API_KEY": "var:api_key",
        "TOKEN": "env:HOST_TOKEN",
    }
    assert rendered["command"] == ["run", "--password=***"]
    assert "DB_PASSWORD=***" in log and "API_KEY=***" in log and "HOST=db" in log
    assert DB_PASSWORD not in repr(h.runtime.created[0])


def test_an_unresolvable_secret_fails_the_task_at_once_naming_it(
    keyed: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    h = Harness(keyed, sessions, clock)
    task = t("a", retries=3, secrets={"DB_PASSWORD": SecretRef(source="conn", key="missing_db")})
    run_id = h.trigger(spec(task))
    h.tick(2)
    ti = h.tis(run_id)["a"]
    assert ti.state == "failed" and ti.try_number == 1  # no retry: it would fail the same way
    assert "task 'a'" in ti.state_detail and "missing_db" in ti.state_detail
    assert "ORCH_CONN_MISSING_DB" in ti.state_detail
    assert h.runtime.created == []
    _, log = _attempt(h, run_id)
    assert "missing_db" in log


def test_a_wrong_key_fails_the_task_without_revealing_anything(
    keyed: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with sessions.begin() as session:
        SecretsService(keyed, session).set_variable("api_key", API_KEY, clock.now())
    other = keyed.model_copy(update={"fernet_key": SecretStr(generate_key())})
    h = Harness(other, sessions, clock)
    run_id = h.trigger(spec(t("a", secrets={"API_KEY": SecretRef(source="var", key="api_key")})))
    h.tick(2)
    ti = h.tis(run_id)["a"]
    assert ti.state == "failed"
    assert "variable 'api_key' cannot be decrypted" in ti.state_detail
    assert h.runtime.created == []


def test_the_log_writer_masks_values_split_over_chunks(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "a.log", {"s3cr3t-value", "other"})
    heard: list[bytes] = []
    with log.appending(heard.append) as write:
        for chunk in (b"token=s3c", b"r3t-v", b"alue; ot", b"her\npartial s3cr3t"):
            write(chunk)
    log.write_line("[orchestrator] note about s3cr3t-value")
    text = log.path.read_text()
    assert text == "token=***; ***\npartial s3cr3t[orchestrator] note about ***\n"
    assert b"".join(heard).decode() == "token=***; ***\npartial s3cr3t"


def test_mapped_instances_get_their_secrets_and_store_only_references(
    keyed: Settings,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH_CONN_MY_DB", f"postgresql://app:{DB_PASSWORD}@db/sales")
    h = Harness(keyed, sessions, clock, _echo_everything)
    task = t(
        "m",
        expand={"item": LiteralItems(items=("a", "b"))},
        environment={"ITEM": "{{ mapped.item }}", "PW": "{{ conn.my_db.password }}"},
        secrets={"DB_PASSWORD": SecretRef(source="conn", key="my_db")},
    )
    run_id = h.trigger(spec(task))
    h.tick(4)
    assert h.run_state(run_id) == RunState.SUCCESS
    assert [r.environment["DB_PASSWORD"] for r in h.runtime.created] == [DB_PASSWORD] * 2
    with h.sessions() as session:
        run = run_store.get_run(session, "d", run_id)
        instances = [ti for ti in run_store.task_instances(session, run.id) if ti.map_index >= 0]
        assert len(instances) == 2
        for ti in instances:
            attempt = ti_store.get_attempt(session, ti.id, 1)
            assert attempt is not None
            assert DB_PASSWORD not in json.dumps(attempt.rendered)
            assert attempt.rendered["environment"]["PW"] == "***"
            assert DB_PASSWORD not in Path(attempt.log_path).read_text()
