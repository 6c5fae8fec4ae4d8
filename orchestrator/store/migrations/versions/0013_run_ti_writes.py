"""dag runs: a count of the flushes that wrote their task instances (`ti_writes`)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ti_writes", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("dag_runs", schema=None) as batch_op:
        batch_op.drop_column("ti_writes")
