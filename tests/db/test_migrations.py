"""Schema migrations against the real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from acd.core.calls import Disposition
from acd.db.engine import normalise_url
from acd.db.migrate import (
    MIGRATION_LOCK_KEY,
    alembic_config,
    current,
    downgrade,
    head_revision,
    upgrade,
)
from acd.db.models import Base

pytestmark = pytest.mark.postgres

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@contextmanager
def connect(url: str) -> Iterator[Connection]:
    engine = sa.create_engine(normalise_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    with connect(url) as conn:
        return set(sa.inspect(conn).get_table_names())


def insert_call(conn: Connection, uniqueid: str, disposition: str | None = None) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO calls (uniqueid, linkedid, channel, started_at, ended_at, disposition)"
            " VALUES (:u, :u, 'PJSIP/x-1', :t, :e, :d)"
        ),
        {"u": uniqueid, "t": T0, "e": T0 if disposition else None, "d": disposition},
    )


def test_plain_postgresql_url_upgrades_an_empty_database(empty_pg_url: str) -> None:
    plain = empty_pg_url.replace("postgresql+psycopg://", "postgresql://")
    assert current(plain) is None
    upgrade(plain)
    assert current(plain) == head_revision() == "0006"
    assert tables(plain) == {
        "agent_events",
        "alembic_version",
        "api_tokens",
        "audit_log",
        "calls",
        "demo_customers",
        "flow_uploads",
        "flow_versions",
        "ivr_steps",
        "queue_events",
        "users",
    }


def test_downgrade_to_base_and_upgrade_again(empty_pg_url: str) -> None:
    upgrade(empty_pg_url)
    downgrade(empty_pg_url, "base")
    assert current(empty_pg_url) is None
    assert tables(empty_pg_url) == {"alembic_version"}
    upgrade(empty_pg_url)
    assert current(empty_pg_url) == head_revision()
    with connect(empty_pg_url) as conn, conn.begin():
        insert_call(conn, "1.1", "completed")


def test_upgrade_at_head_keeps_the_data(empty_pg_url: str) -> None:
    upgrade(empty_pg_url)
    with connect(empty_pg_url) as conn, conn.begin():
        insert_call(conn, "1.1", "completed")
    upgrade(empty_pg_url)
    with connect(empty_pg_url) as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM calls")) == 1


# A daemon's start-up migration in a process of its own: imports first, then "ready",
# then the upgrade as soon as the test writes "go", so all of them race at once.
DAEMON_START = """
import sys
from acd.db.migrate import upgrade
print("ready", flush=True)
sys.stdin.readline()
upgrade(sys.argv[1])
"""


def test_daemons_starting_together_migrate_once(empty_pg_url: str) -> None:
    daemons = [
        subprocess.Popen(
            [sys.executable, "-c", DAEMON_START, empty_pg_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for d in daemons:
            assert d.stdout is not None and d.stdout.readline().strip() == "ready"
        for d in daemons:
            assert d.stdin is not None
            d.stdin.write("go\n")
            d.stdin.flush()
        failures = [err for d in daemons if (err := d.communicate(timeout=60)[1]) and d.returncode]
    finally:
        for d in daemons:
            d.kill()
    assert failures == []
    assert current(empty_pg_url) == head_revision()


def test_upgrade_waits_while_another_process_migrates(empty_pg_url: str) -> None:
    with connect(empty_pg_url) as other, other.begin():
        other.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        waiting = threading.Thread(target=upgrade, args=(empty_pg_url,))
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive(), "upgrade did not wait for the migration lock"
        assert current(empty_pg_url) is None
    waiting.join(30)
    assert not waiting.is_alive()
    assert current(empty_pg_url) == head_revision()


# Tables the migrations create that are no model of acd's: sample data for the IVR demo.
NOT_MODELS = {"demo_customers"}


def models_only(_obj: object, name: str | None, type_: str, *_: object) -> bool:
    return not (type_ == "table" and name in NOT_MODELS)


def test_migrated_schema_matches_the_models(pg_url: str) -> None:
    with connect(pg_url) as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": models_only}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_disposition_check_accepts_exactly_the_enum_values(pg_url: str) -> None:
    with connect(pg_url) as conn:
        with conn.begin():
            conn.execute(sa.text("TRUNCATE calls"))
            for n, disposition in enumerate(Disposition):
                insert_call(conn, f"d.{n}", disposition.value)
        with pytest.raises(IntegrityError, match="ck_calls_disposition"), conn.begin():
            insert_call(conn, "d.bad", "transferred")


@pytest.mark.parametrize(
    ("columns", "constraint"),
    [
        ("ended_at = started_at", "ck_calls_ended_with_disposition"),
        ("ended_at = started_at - interval '1 s', disposition = 'failed'", "ck_calls_time_order"),
        ("answered_at = started_at - interval '1 s'", "ck_calls_time_order"),
    ],
)
def test_schema_refuses_inconsistent_rows(pg_url: str, columns: str, constraint: str) -> None:
    with connect(pg_url) as conn:
        with conn.begin():
            conn.execute(sa.text("TRUNCATE calls"))
            insert_call(conn, "c.1")
        with pytest.raises(IntegrityError, match=constraint), conn.begin():
            conn.execute(sa.text(f"UPDATE calls SET {columns}"))


def test_offline_mode_prints_the_ddl(capsys: pytest.CaptureFixture[str]) -> None:
    command.upgrade(alembic_config(), "head", sql=True)
    ddl = capsys.readouterr().out
    assert "CREATE TABLE calls" in ddl
    assert "CONSTRAINT uq_calls_uniqueid UNIQUE (uniqueid)" in ddl


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "sqlite:///x.db"])
def test_non_postgresql_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        normalise_url(url)
