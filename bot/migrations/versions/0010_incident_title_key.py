"""Incidents keep their title as the duplicate guard compares it, so the database compares it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from bot.incidents.service import comparable

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title_key", sa.Text(), nullable=True))
    incident = sa.table("incident", sa.column("id", sa.Integer), sa.column("title", sa.Text),
                        sa.column("title_key", sa.Text), sa.column("status", sa.String))
    connection = op.get_bind()
    open_ones = connection.execute(sa.select(incident.c.id, incident.c.title).where(incident.c.status != "resolved")).all()
    for number, title in open_ones:  # only open incidents can be a declaration's duplicate
        connection.execute(sa.update(incident).where(incident.c.id == number).values(title_key=comparable(title)))


def downgrade() -> None:
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_column("title_key")
