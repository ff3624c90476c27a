"""private incidents, roles, stakeholder updates, nudges, follow-ups

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import bot.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch: SQLite would copy and drop the incident table, which the
    # pages and entries of a stored incident refer to.
    op.add_column("incident", sa.Column("private", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("incident", sa.Column("broadcast_ts", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("incident", sa.Column("nudges", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("actionitem", sa.Column("due", sa.Date(), nullable=True))
    op.add_column("actionitem", sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                          server_default="open"))
    op.add_column("actionitem", sa.Column("done_at", bot.models.UTCDateTime(), nullable=True))
    op.add_column("actionitem", sa.Column("issue_url", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("actionitem", sa.Column("issue_number", sa.Integer(), nullable=True))
    op.create_index("ix_actionitem_owner", "actionitem", ["owner"], unique=False)
    op.create_table(
        "incidentrole",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.PrimaryKeyConstraint("incident_id", "role"),
    )


def downgrade() -> None:
    op.drop_table("incidentrole")
    with op.batch_alter_table("actionitem", schema=None) as batch_op:
        batch_op.drop_index("ix_actionitem_owner")
        for name in ("issue_number", "issue_url", "done_at", "status", "due"):
            batch_op.drop_column(name)
    with op.batch_alter_table("incident", schema=None) as batch_op:
        for name in ("nudges", "broadcast_ts", "private"):
            batch_op.drop_column(name)
