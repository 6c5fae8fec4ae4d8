"""attempts: when the launch began and when the image was ready (the Gantt chart's pulling span)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("launch_started_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("image_ready_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.drop_column("image_ready_at")
        batch_op.drop_column("launch_started_at")
