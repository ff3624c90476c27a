"""personal calendar feeds

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import bot.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendarfeed",
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", bot.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    with op.batch_alter_table("calendarfeed", schema=None) as batch_op:
        batch_op.create_index("ix_calendarfeed_secret_hash", ["secret_hash"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("calendarfeed", schema=None) as batch_op:
        batch_op.drop_index("ix_calendarfeed_secret_hash")
    op.drop_table("calendarfeed")
