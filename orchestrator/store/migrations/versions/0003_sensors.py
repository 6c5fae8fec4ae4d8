"""sensor pokes: one row per poke of a sensor's try

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensor_pokes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ti_id", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("poke_number", sa.Integer(), nullable=False),
        sa.Column("container_name", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("end_date", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ti_id"],
            ["task_instances.id"],
            name=op.f("fk_sensor_pokes_ti_id_task_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensor_pokes")),
        sa.UniqueConstraint(
            "ti_id",
            "try_number",
            "poke_number",
            name=op.f("uq_sensor_pokes_ti_id_try_number_poke_number"),
        ),
    )


def downgrade() -> None:
    op.drop_table("sensor_pokes")
