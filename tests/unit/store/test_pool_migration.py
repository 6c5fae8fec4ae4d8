"""The pools migration: a store made before pools gets them, and the step can be undone."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from orchestrator.store.engine import MIGRATIONS_DIR, make_engine, upgrade


def test_upgrade_adds_default_pool_and_downgrade_removes_pools(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into dag_runs (id, dag_id, run_id, run_type, state, logical_date,"
                " data_interval_start, data_interval_end, conf, spec_hash, queued_at) values"
                " (1, 'd', 'r', 'manual', 'running', '2026-01-01', '2026-01-01', '2026-01-01',"
                " '{}', 'h', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "insert into task_instances (id, dag_run_id, dag_id, run_id, task_id, map_index,"
                " state, try_number, max_tries, updated_at) values"
                " (1, 1, 'd', 'r', 't', -1, 'running', 1, 0, '2026-01-01')"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("select name, slots from pools")).all() == [("default_pool", 128)]
        # an instance running before the upgrade holds one slot of the default pool
        assert conn.execute(text("select pool, pool_slots from task_instances")).all() == [
            (None, 1)
        ]

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    tables = inspect(engine)
    assert "pools" not in tables.get_table_names()
    assert "pool" not in {c["name"] for c in tables.get_columns("task_instances")}
    engine.dispose()
