"""notifications that offer command of an incident, not tied to a page

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.alter_column("page_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("incident_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_notification_incident_id", "incident", ["incident_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_constraint("fk_notification_incident_id", type_="foreignkey")
        batch_op.drop_column("incident_id")
        batch_op.alter_column("page_id", existing_type=sa.Integer(), nullable=False)
