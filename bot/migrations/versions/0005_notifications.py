"""contacts, notifications, acknowledgement links; one meaning of acknowledged

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import bot.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("page", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_via", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("chain", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("chain_round", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "contactsetting",
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("notify_minutes", sa.Integer(), nullable=True),
        sa.Column("updated_at", bot.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user", "name"),
    )
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("contact", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("due_at", bot.models.UTCDateTime(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", bot.models.UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["page_id"], ["page.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notification_page_id"), ["page_id"], unique=False)
    op.create_table(
        "acklink",
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("used_at", bot.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["page_id"], ["page.id"]),
        sa.PrimaryKeyConstraint("page_id"),
    )
    op.create_table(
        "botsecret",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # One meaning of acknowledged: from the declaration to the first acknowledged page. The
    # summary's old button set it for whoever pressed; recompute it from the pages.
    op.execute(
        "UPDATE incident SET acknowledged_at = (SELECT MIN(page.acknowledged_at) FROM page "
        "WHERE page.incident_id = incident.id)"
    )


def downgrade() -> None:
    op.drop_table("botsecret")
    op.drop_table("acklink")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_page_id"))
    op.drop_table("notification")
    op.drop_table("contactsetting")
    with op.batch_alter_table("page", schema=None) as batch_op:
        batch_op.drop_column("chain_round")
        batch_op.drop_column("chain")
        batch_op.drop_column("acknowledged_via")
