"""Schema migrations, run by ``acd db upgrade`` and (``migrate_on_start``) at daemon start.

Each run holds a PostgreSQL advisory lock inside one transaction: two daemons starting
together migrate one after the other (the second finds nothing to do), and a failed
migration leaves the schema exactly as it was (PostgreSQL DDL is transactional).
These functions block; call them from a thread (``asyncio.to_thread``) inside the daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import NullPool

from acd.db.engine import connect_args, normalise_url
from acd.log import get_logger, redact_url

log = get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key shared by every acd process: b"acd:migr" as a signed bigint.
MIGRATION_LOCK_KEY = int.from_bytes(b"acd:migr", "big", signed=True)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration for the packaged migrations (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this version of acd ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


@contextmanager
def _connect(url: str | URL, *, lock: bool) -> Iterator[Connection]:
    engine = create_engine(normalise_url(url), poolclass=NullPool, connect_args=connect_args(5))
    try:
        with engine.begin() as conn:
            if lock:
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            yield conn
    finally:
        engine.dispose()


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (default: the newest); a no-op when it is there."""
    with _connect(url, lock=True) as conn:
        before = _revision(conn)
        command.upgrade(alembic_config(conn), revision)
        after = _revision(conn)
    if before != after:
        log.info("db_schema_upgraded", url=redact_url(str(url)), before=before, after=after)


def downgrade(url: str | URL, revision: str) -> None:
    """Step the schema back to ``revision`` (``base`` removes every table acd created)."""
    with _connect(url, lock=True) as conn:
        before = _revision(conn)
        command.downgrade(alembic_config(conn), revision)
        after = _revision(conn)
    log.info("db_schema_downgraded", url=redact_url(str(url)), before=before, after=after)


def current(url: str | URL) -> str | None:
    """The revision the database is at, or None for a database acd has never migrated."""
    with _connect(url, lock=False) as conn:
        return _revision(conn)
