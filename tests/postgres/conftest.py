"""The PostgreSQL tier: a throwaway server in a container (the image is built locally by
`orchestrator images bootstrap`), migrated once, emptied between tests. Overrides `sessions`,
so store and scheduler tests imported into this folder run against PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_docker_tools import container
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.settings import Settings
from orchestrator.store.engine import make_engine, make_session_factory, upgrade
from orchestrator.store.tables import Base
from tests.integration.conftest import docker_client, env, test_images  # noqa: F401 - fixtures
from tests.support import TEST_SESSION_LABEL

POSTGRES_IMAGE = "orchestrator/postgres:15"

postgres_server = container(
    image=POSTGRES_IMAGE,
    scope="session",
    environment={
        "POSTGRES_USER": "orch",
        "POSTGRES_PASSWORD": "orch-secret",
        "POSTGRES_DB": "orchestrator",
    },
    ports={"5432/tcp": None},
    labels={"orch.test": TEST_SESSION_LABEL},
    timeout=120,
)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: Any) -> str:
    port = postgres_server.ports["5432/tcp"][0]
    return f"postgresql://orch:orch-secret@127.0.0.1:{port}/orchestrator"


@pytest.fixture(scope="session")
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    deadline = time.monotonic() + 60
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(
    settings: Settings, postgres_engine: Engine, postgres_url: str
) -> Iterator[sessionmaker[Session]]:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with postgres_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield make_session_factory(postgres_engine)
