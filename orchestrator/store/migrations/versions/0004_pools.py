"""pools, and the pool each task instance took

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pools = op.create_table(
        "pools",
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pools")),
    )
    op.bulk_insert(
        pools,
        [{"name": "default_pool", "slots": 128, "description": "Default pool"}],
    )
    with op.batch_alter_table("task_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pool", sa.String(length=250), nullable=True))
        batch_op.add_column(
            sa.Column("pool_slots", sa.Integer(), server_default="1", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("task_instances", schema=None) as batch_op:
        batch_op.drop_column("pool_slots")
        batch_op.drop_column("pool")

    op.drop_table("pools")
