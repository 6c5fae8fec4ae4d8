"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dag_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("run_type", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("logical_date", sa.DateTime(), nullable=False),
        sa.Column("data_interval_start", sa.DateTime(), nullable=False),
        sa.Column("data_interval_end", sa.DateTime(), nullable=False),
        sa.Column("conf", sa.JSON(), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("start_date", sa.DateTime(), nullable=True),
        sa.Column("end_date", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dag_runs")),
        sa.UniqueConstraint("dag_id", "run_id", name=op.f("uq_dag_runs_dag_id_run_id")),
    )
    with op.batch_alter_table("dag_runs", schema=None) as batch_op:
        batch_op.create_index("ix_dag_runs_state", ["state"], unique=False)

    op.create_table(
        "dags",
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("fileloc", sa.Text(), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("is_paused", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("last_parsed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dag_id", name=op.f("pk_dags")),
    )
    op.create_table(
        "import_errors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fileloc", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_errors")),
        sa.UniqueConstraint("fileloc", name=op.f("uq_import_errors_fileloc")),
    )
    op.create_table(
        "task_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dag_run_id", sa.Integer(), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("max_tries", sa.Integer(), nullable=False),
        sa.Column("state_detail", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("output_json", sa.Text(), nullable=True),
        sa.Column("container_name", sa.String(length=255), nullable=True),
        sa.Column("container_id", sa.String(length=80), nullable=True),
        sa.Column("stop_reason", sa.String(length=40), nullable=True),
        sa.Column("queued_at", sa.DateTime(), nullable=True),
        sa.Column("start_date", sa.DateTime(), nullable=True),
        sa.Column("end_date", sa.DateTime(), nullable=True),
        sa.Column("next_try_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dag_run_id"],
            ["dag_runs.id"],
            name=op.f("fk_task_instances_dag_run_id_dag_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_instances")),
        sa.UniqueConstraint(
            "dag_run_id",
            "task_id",
            "map_index",
            name=op.f("uq_task_instances_dag_run_id_task_id_map_index"),
        ),
    )
    with op.batch_alter_table("task_instances", schema=None) as batch_op:
        batch_op.create_index("ix_task_instances_container_id", ["container_id"], unique=False)
        batch_op.create_index("ix_task_instances_state", ["state"], unique=False)

    op.create_table(
        "task_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ti_id", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("rendered", sa.JSON(), nullable=False),
        sa.Column("container_name", sa.String(length=255), nullable=False),
        sa.Column("container_id", sa.String(length=80), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("oom_killed", sa.Boolean(), nullable=False),
        sa.Column("timed_out", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("output_json", sa.Text(), nullable=True),
        sa.Column("log_path", sa.Text(), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("start_date", sa.DateTime(), nullable=True),
        sa.Column("end_date", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ti_id"],
            ["task_instances.id"],
            name=op.f("fk_task_attempts_ti_id_task_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_attempts")),
        sa.UniqueConstraint("ti_id", "try_number", name=op.f("uq_task_attempts_ti_id_try_number")),
    )
    op.create_table(
        "task_state_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ti_id", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=20), nullable=False),
        sa.Column("to_state", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ti_id"],
            ["task_instances.id"],
            name=op.f("fk_task_state_changes_ti_id_task_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_state_changes")),
    )
    with op.batch_alter_table("task_state_changes", schema=None) as batch_op:
        batch_op.create_index("ix_task_state_changes_ti_id", ["ti_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task_state_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_task_state_changes_ti_id")

    op.drop_table("task_state_changes")
    op.drop_table("task_attempts")
    with op.batch_alter_table("task_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_task_instances_state")
        batch_op.drop_index("ix_task_instances_container_id")

    op.drop_table("task_instances")
    op.drop_table("import_errors")
    op.drop_table("dags")
    with op.batch_alter_table("dag_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_dag_runs_state")

    op.drop_table("dag_runs")
