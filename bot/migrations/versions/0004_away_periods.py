"""time away set in Slack

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import bot.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "awayrecord",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("start", bot.models.UTCDateTime(), nullable=False),
        sa.Column("end", bot.models.UTCDateTime(), nullable=False),
        sa.Column("created_at", bot.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("awayrecord", schema=None) as batch_op:
        batch_op.create_index("ix_awayrecord_user_end", ["user", "end"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("awayrecord", schema=None) as batch_op:
        batch_op.drop_index("ix_awayrecord_user_end")
    op.drop_table("awayrecord")
