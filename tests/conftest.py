"""Fixtures shared by every tier: settings in a temporary home, a migrated SQLite store, a clock."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.settings import Settings
from orchestrator.store.engine import make_engine, make_session_factory, upgrade
from tests.support import TEST_SESSION_LABEL, FixedClock


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    return Settings(
        home=home,
        dags_folder=home / "dags",
        instance_name=f"t{uuid.uuid4().hex[:8]}",
        extra_labels={"orch.test": TEST_SESSION_LABEL},
        stop_grace_period=1.0,
        dag_file_timeout=20.0,
        # tests bind-mount folders of tmp_path next to the home, outside the default roots
        allowed_mount_roots=[tmp_path],
    )


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def sessions(settings: Settings, _migrated_template: Path) -> Iterator[sessionmaker[Session]]:
    db = settings.home / "orchestrator.db"
    shutil.copy(_migrated_template, db)
    engine = make_engine(f"sqlite:///{db}")
    yield make_session_factory(engine)
    engine.dispose()
