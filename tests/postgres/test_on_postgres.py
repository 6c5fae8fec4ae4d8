"""The store, the scheduler (fake runtime) and the scheduler on real Docker, on PostgreSQL.

The tests are the SQLite tiers' own, collected again here where `sessions` is PostgreSQL.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.store.engine import MIGRATIONS_DIR, current_revision
from tests.integration.test_scheduler_docker import (  # noqa: F401 - re-collected here
    test_bad_output_json_fails,
    test_execution_timeout_stops_then_kills,
    test_non_zero_exit_fails_and_blocks_downstream,
    test_outputs_flow_and_logs_outlive_the_containers,
    test_retry_runs_a_second_container,
)
from tests.unit.services.test_mapping_scheduler import *  # noqa: F403 - re-collected here
from tests.unit.services.test_pools import *  # noqa: F403 - re-collected here
from tests.unit.services.test_scheduler import *  # noqa: F403 - re-collected here
from tests.unit.store.test_store import *  # noqa: F403 - re-collected here

pytestmark = [pytest.mark.postgres, pytest.mark.docker]


def test_the_server_is_postgresql_at_the_latest_revision(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        version = session.execute(text("show server_version")).scalar_one()
        assert str(version).startswith("15")
        assert current_revision(session.get_bind()) == _head()  # type: ignore[arg-type]


def _head() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()
