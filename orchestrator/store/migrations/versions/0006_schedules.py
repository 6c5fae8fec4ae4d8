"""schedules: when a DAG is next planned, and why a run ended

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dags", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_dagrun_create_after", sa.DateTime(), nullable=True))
    with op.batch_alter_table("dag_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state_detail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dag_runs", schema=None) as batch_op:
        batch_op.drop_column("state_detail")
    with op.batch_alter_table("dags", schema=None) as batch_op:
        batch_op.drop_column("next_dagrun_create_after")
