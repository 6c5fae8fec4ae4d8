"""Stored connections and variables: encrypted, environment first, loud about keys."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import SecretError, SecretNotFound
from orchestrator.models.secrets import Connection
from orchestrator.services.secrets import SecretsService, generate_key, secret_source
from orchestrator.settings import Settings
from tests.support import FixedClock

PASSWORD = "p@ss:w/rd-4711"
URI = "postgresql://user:p%40ss%3Aw%2Frd-4711@db.example:5432/sales?sslmode=require"


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return settings.model_copy(update={"fernet_key": SecretStr(generate_key())})


def _add(sessions: sessionmaker[Session], settings: Settings, clock: FixedClock) -> None:
    with sessions.begin() as session:
        service = SecretsService(settings, session, environ={})
        service.add_connection(Connection.from_uri("my_db", URI), clock.now(), "sales db")
        service.set_variable("api_key", "k-123456", clock.now())


def test_round_trip_through_the_store_is_encrypted(
    keyed: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, keyed, clock)
    with sessions() as session:
        raw = " ".join(
            str(row)
            for table in ("connections", "variables")
            for row in session.execute(text(f"select * from {table}"))
        )
        assert PASSWORD not in raw and "k-123456" not in raw and "sslmode" not in raw
        source = secret_source(keyed, session, environ={})
        conn = source.connection("my_db")
        assert (conn.password, conn.login, conn.host, conn.port) == (
            PASSWORD,
            "user",
            "db.example",
            5432,
        )
        assert conn.extra == {"sslmode": "require"}
        assert source.variable("api_key") == "k-123456"
        listed = SecretsService(keyed, session).list_connections()
        assert [(c.conn_id, c.has_password, c.description) for c in listed] == [
            ("my_db", True, "sales db")
        ]


def test_missing_key_says_how_to_make_one(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with sessions.begin() as session, pytest.raises(SecretError) as caught:
        SecretsService(settings, session).set_variable("x", "1", clock.now())
    message = str(caught.value)
    assert "ORCH_FERNET_KEY is not set" in message and "variable 'x'" in message
    assert "orchestrator secrets generate-key" in message


def test_missing_key_when_reading_a_stored_value(
    keyed: Settings, settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, keyed, clock)
    with sessions() as session, pytest.raises(SecretError, match="ORCH_FERNET_KEY is not set"):
        secret_source(settings, session, environ={}).connection("my_db")


def test_wrong_key_fails_naming_the_secret_and_never_returns_garbage(
    keyed: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, keyed, clock)
    other = keyed.model_copy(update={"fernet_key": SecretStr(generate_key())})
    with sessions() as session:
        source = secret_source(other, session, environ={})
        with pytest.raises(SecretError, match="connection 'my_db' cannot be decrypted"):
            source.connection("my_db")
        with pytest.raises(SecretError, match="variable 'api_key' cannot be decrypted"):
            source.variable("api_key")


def test_rotated_keys_read_old_values(
    keyed: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, keyed, clock)
    assert keyed.fernet_key is not None
    both = f"{generate_key()},{keyed.fernet_key.get_secret_value()}"
    rotated = keyed.model_copy(update={"fernet_key": SecretStr(both)})
    with sessions() as session:
        assert secret_source(rotated, session, environ={}).variable("api_key") == "k-123456"


def test_a_malformed_key_is_named(settings: Settings, sessions: sessionmaker[Session]) -> None:
    bad = settings.model_copy(update={"fernet_key": SecretStr("not-a-key")})
    with sessions.begin() as session, pytest.raises(SecretError, match="not a valid Fernet key"):
        SecretsService(bad, session).set_variable("x", "1", FixedClock().now())


def test_environment_comes_before_the_store(
    keyed: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, keyed, clock)
    environ = {
        "ORCH_CONN_MY_DB": "mysql://env:e%2Fnv@envhost:3306/envdb",
        "ORCH_VAR_API_KEY": "from-env",
        "ORCH_CONN_JSONED": '{"conn_type": "http", "host": "api", "password": "pw"}',
    }
    with sessions() as session:
        source = secret_source(keyed, session, environ=environ)
        conn = source.connection("my_db")
        assert (conn.conn_type, conn.login, conn.password, conn.host) == (
            "mysql",
            "env",
            "e/nv",
            "envhost",
        )
        assert source.variable("api_key") == "from-env"
        assert source.connection("jsoned").password == "pw"
        # the environment needs no key at all
        plain = secret_source(keyed.model_copy(update={"fernet_key": None}), session, environ)
        assert plain.variable("api_key") == "from-env"


def test_unknown_ids_say_how_to_define_them(
    keyed: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        source = secret_source(keyed, session, environ={})
        with pytest.raises(SecretNotFound, match="ORCH_CONN_NOPE") as caught:
            source.connection("nope")
        assert "orchestrator connections add nope" in str(caught.value)
        with pytest.raises(SecretNotFound, match="ORCH_VAR_NOPE"):
            source.variable("nope")
        with pytest.raises(SecretNotFound, match="'HOST_TOKEN' is not set"):
            source.environ("HOST_TOKEN")


def test_a_bad_connection_in_the_environment_is_named(
    keyed: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        source = secret_source(keyed, session, environ={"ORCH_CONN_X": "pg://h:port"})
        with pytest.raises(SecretError, match=r"ORCH_CONN_X: connection 'x'.*port"):
            source.connection("x")
        typo = secret_source(
            keyed, session, environ={"ORCH_CONN_Y": '{"conn_type": "a", "hots": "h"}'}
        )
        with pytest.raises(SecretError, match="ORCH_CONN_Y: connection 'y' is invalid: hots"):
            typo.connection("y")


def test_duplicates_and_missing_deletes_are_errors(
    keyed: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, keyed, clock)
    with sessions.begin() as session:
        service = SecretsService(keyed, session)
        with pytest.raises(SecretError, match="already exists"):
            service.add_connection(Connection.from_uri("my_db", URI), clock.now())
        service.delete_connection("my_db")
        service.delete_variable("api_key")
        with pytest.raises(SecretNotFound, match="no stored connection 'my_db'"):
            service.delete_connection("my_db")
        service.set_variable("v", "1", clock.now())
        service.set_variable("v", "2", clock.now())  # replaced, not duplicated
        assert [v.name for v in service.list_variables()] == ["v"]
        assert service.get_variable("v") == "2"
