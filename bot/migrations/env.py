"""Alembic environment: the connection comes from Storage (see bot.storage.Storage.migrate)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from bot import models  # noqa: F401  (the tables)

config = context.config
target_metadata = SQLModel.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through bot.storage.Storage.migrate()")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        include_object=lambda obj, name, type_, reflected, compare_to: not (type_ == "table" and name == "apscheduler_jobs"),
    )
    with context.begin_transaction():
        context.run_migrations()


run()
