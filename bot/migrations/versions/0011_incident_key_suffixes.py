"""The duplicate guard looks titles up by index: the word suffixes of open incidents' title keys

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from bot.incidents.service import key_suffixes

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidentkeysuffix",
        sa.Column("suffix", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("suffix", "incident_id"),
    )
    op.create_index("ix_incidentkeysuffix_incident_id", "incidentkeysuffix", ["incident_id"])
    incident = sa.table("incident", sa.column("id", sa.Integer), sa.column("title_key", sa.Text))
    suffix = sa.table("incidentkeysuffix", sa.column("suffix", sa.Text), sa.column("incident_id", sa.Integer))
    connection = op.get_bind()
    keyed = connection.execute(sa.select(incident.c.id, incident.c.title_key).where(incident.c.title_key != "")).all()
    rows = [{"suffix": each, "incident_id": number} for number, key in keyed for each in key_suffixes(key)]
    if rows:
        connection.execute(sa.insert(suffix), rows)


def downgrade() -> None:
    op.drop_table("incidentkeysuffix")
