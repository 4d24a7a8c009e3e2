"""Alembic environment for acd: runs on the connection ``acd.db.migrate`` hands over.

That connection already holds the migration advisory lock inside an open transaction, so
the whole upgrade commits (or rolls back) at once and concurrent daemons wait for it.
The URL comes from the daemon's configuration, never from an ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from acd.db.models import Base

config = context.config


# Tables created by migrations but not mapped as models (seeded demo data):
# autogenerate must not propose dropping them.
UNMAPPED_TABLES = frozenset({"demo_customers"})


def _managed(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return not (type_ == "table" and name in UNMAPPED_TABLES)


def run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        include_object=_managed,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """``--sql`` mode: print the DDL for a DBA to review instead of running it."""
    context.configure(
        dialect_name="postgresql",
        target_metadata=Base.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    conn = config.attributes.get("connection")
    if not isinstance(conn, Connection):
        raise RuntimeError("run migrations through acd.db.migrate (`acd db upgrade`)")
    run_online(conn)
