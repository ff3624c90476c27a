"""Alembic migrations, run by `python -m bot migrate` and on every start."""
