"""SQL customer lookups against the real PostgreSQL server and the seeded demo customers,
and through a proxy that takes the database away."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import acd.ivr.lookup
from acd.db.engine import make_async_engine
from acd.ivr.lookup import LookupFailed, LookupResult, SqlLookup
from acd.ivr.pin import verify_pin
from tests.fixtures.logs import LogRecorder, record_logs
from tests.fixtures.postgres import TcpProxy

pytestmark = pytest.mark.postgres

BY_ACCOUNT = (
    "SELECT name, language, segment, balance, currency, pin_hash"
    " FROM demo_customers WHERE account_number = :account"
)


def by_account(engine: AsyncEngine, timeout: float = 2.0) -> SqlLookup:
    return SqlLookup(engine, BY_ACCOUNT, {"account": "{account}"}, timeout)


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    return record_logs(monkeypatch, acd.ivr.lookup)


@pytest.fixture
async def proxied(pg_url: str, pg_proxy: TcpProxy) -> AsyncIterator[AsyncEngine]:
    """An engine that reaches PostgreSQL through ``pg_proxy`` only."""
    engine = make_async_engine(pg_proxy.url(pg_url), connect_timeout=2)
    try:
        yield engine
    finally:
        # Let lookups abandoned at their deadline finish cancelling before the loop ends.
        await asyncio.gather(*acd.ivr.lookup._abandoned, return_exceptions=True)
        await engine.dispose()


async def count_customers(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM demo_customers"))).scalar_one())


async def running(engine: AsyncEngine, marker: str) -> int:
    """How many server backends are executing a query containing ``marker``."""
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                " AND pid <> pg_backend_pid() AND strpos(query, :marker) > 0"
            ),
            {"marker": marker},
        )
        return int(result.scalar_one())


async def until(condition: Callable[[], Any], within: float) -> float:
    """Seconds until the async ``condition()`` is true; fails after ``within``."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


# --- answers ------------------------------------------------------------------------


async def test_found_account_with_its_values_as_text(db_engine: AsyncEngine) -> None:
    result = await by_account(db_engine).lookup({"account": "1001", "other": "ignored"})
    assert result.found
    pin_hash = result.values.pop("pin_hash")
    assert result.values == {
        "name": "Anna Schmidt",
        "language": "de",
        "segment": "vip",
        "balance": "15230.75",
        "currency": "EUR",
    }
    assert verify_pin("1234", pin_hash)
    assert not verify_pin("4321", pin_hash)


@pytest.mark.parametrize(
    ("account", "pin", "segment", "language", "balance"),
    [
        ("1001", "1234", "vip", "de", "15230.75"),
        ("1002", "4321", "standard", "de", "243.10"),
        ("1003", "2580", "standard", "es", "1875.00"),
        ("1004", "0815", "vip", "en", "98250.00"),
        ("1005", "9999", "standard", "de", "-56.20"),
        ("1006", "1111", "vip", "es", "0.00"),
    ],
)
async def test_seeded_demo_customers_are_as_documented(
    db_engine: AsyncEngine, account: str, pin: str, segment: str, language: str, balance: str
) -> None:
    result = await by_account(db_engine).lookup({"account": account})
    assert result.found
    assert (result.values["segment"], result.values["language"]) == (segment, language)
    assert result.values["balance"] == balance
    assert await asyncio.to_thread(verify_pin, pin, result.values["pin_hash"])
    assert not await asyncio.to_thread(verify_pin, "0000", result.values["pin_hash"])


async def test_unknown_account_is_not_found(db_engine: AsyncEngine) -> None:
    assert await by_account(db_engine).lookup({"account": "4711"}) == LookupResult(found=False)


async def test_the_first_row_counts_and_nulls_are_empty(db_engine: AsyncEngine) -> None:
    lookup = SqlLookup(
        db_engine,
        "WITH t(n, note, vip) AS (VALUES (2, NULL, true), (1, 'x', false))"
        " SELECT n, note, vip, DATE '2025-12-24' AS day FROM t ORDER BY n DESC;",
        {},
        2.0,
    )
    result = await lookup.lookup({})
    assert result.values == {"n": "2", "note": "", "vip": "true", "day": "2025-12-24"}


@pytest.mark.parametrize(
    "typed",
    [
        "1001' OR '1'='1",
        "1001'; DROP TABLE demo_customers; --",
        "1001 OR 1=1",
        "' UNION SELECT name, language, segment, balance, currency, pin_hash"
        " FROM demo_customers --",
    ],
)
async def test_sql_injection_in_caller_input_stays_data(db_engine: AsyncEngine, typed: str) -> None:
    assert await by_account(db_engine).lookup({"account": typed}) == LookupResult(found=False)
    assert await count_customers(db_engine) == 6


async def test_template_combines_variables_and_text(db_engine: AsyncEngine) -> None:
    lookup = SqlLookup(
        db_engine,
        "SELECT name FROM demo_customers WHERE account_number = :account",
        {"account": "10{suffix}"},
        2.0,
    )
    assert lookup.required_variables == {"suffix"}
    assert (await lookup.lookup({"suffix": "03"})).values == {"name": "Lucía Fernández García"}


async def test_missing_variable_fails_the_lookup(db_engine: AsyncEngine, logs: LogRecorder) -> None:
    with pytest.raises(LookupFailed) as failed:
        await by_account(db_engine).lookup({"acount": "1001"})
    assert (failed.value.reason, failed.value.detail) == ("missing_variable", "account")
    assert [e for _, e, _ in logs.events] == ["lookup_failed"]


# --- refused queries ------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM demo_customers",
        "UPDATE demo_customers SET balance = 0",
        "INSERT INTO demo_customers SELECT * FROM demo_customers",
        "SELECT 1; DELETE FROM demo_customers",
        "SELECT 1;; ",
        "-- SELECT\nDROP TABLE demo_customers",
        "/* SELECT */ TRUNCATE demo_customers",
        "",
    ],
)
def test_only_a_single_select_is_accepted(db_engine: AsyncEngine, query: str) -> None:
    with pytest.raises(ValueError, match="lookup query"):
        SqlLookup(db_engine, query, {}, 1.0)


def test_bind_parameters_and_params_must_match(db_engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="same values"):
        SqlLookup(db_engine, BY_ACCOUNT, {}, 1.0)
    with pytest.raises(ValueError, match="same values"):
        SqlLookup(db_engine, BY_ACCOUNT, {"account": "{a}", "pin": "{p}"}, 1.0)


async def test_a_data_modifying_with_is_refused_by_the_server(
    db_engine: AsyncEngine, logs: LogRecorder
) -> None:
    lookup = SqlLookup(
        db_engine,
        "WITH gone AS (DELETE FROM demo_customers RETURNING account_number)"
        " SELECT account_number FROM gone",
        {},
        2.0,
    )
    with pytest.raises(LookupFailed) as failed:
        await lookup.lookup({})
    assert failed.value.reason == "query_error"
    assert "read-only" in failed.value.detail
    assert await count_customers(db_engine) == 6
    [(level, event, fields)] = logs.events
    assert (level, event, fields["reason"]) == ("warning", "lookup_failed", "query_error")


async def test_a_broken_query_is_a_query_error(db_engine: AsyncEngine) -> None:
    lookup = SqlLookup(db_engine, "SELECT nope FROM demo_customers", {}, 2.0)
    with pytest.raises(LookupFailed) as failed:
        await lookup.lookup({})
    assert failed.value.reason == "query_error"
    assert "42703" in failed.value.detail  # undefined_column


# --- time limits ----------------------------------------------------------------------


async def test_the_server_limits_the_statement_to_about_the_timeout(
    db_engine: AsyncEngine,
) -> None:
    lookup = SqlLookup(
        db_engine, "SELECT current_setting('statement_timeout') AS limit_ms", {}, 1.5
    )
    value = (await lookup.lookup({})).values["limit_ms"]
    assert value.endswith("ms") and 1500 <= int(value.removesuffix("ms")) <= 2000


async def test_slow_query_times_out_and_stops_on_the_server(
    db_engine: AsyncEngine, logs: LogRecorder
) -> None:
    marker = f"slow-{uuid.uuid4().hex}"
    slow = SqlLookup(db_engine, f"SELECT pg_sleep(10) AS slept /* {marker} */", {}, 0.5)
    started = time.monotonic()
    with pytest.raises(LookupFailed) as failed:
        await slow.lookup({})
    assert failed.value.reason == "timeout"
    assert 0.45 < time.monotonic() - started < 0.9
    assert await until(lambda: _none_running(db_engine, marker), within=1.5) < 1.5
    # The pool is fine afterwards: the next caller gets an answer.
    assert (await by_account(db_engine).lookup({"account": "1002"})).found
    assert [f["reason"] for _, _, f in logs.events] == ["timeout"]


async def _none_running(engine: AsyncEngine, marker: str) -> bool:
    return await running(engine, marker) == 0


async def test_query_orphaned_by_a_lost_connection_stops_by_statement_timeout(
    db_engine: AsyncEngine, proxied: AsyncEngine, pg_proxy: TcpProxy
) -> None:
    """The link dies mid-query, so no cancel request can reach the server: the server's
    own statement_timeout must end the query instead of letting it sleep on."""
    marker = f"orphan-{uuid.uuid4().hex}"
    slow = SqlLookup(proxied, f"SELECT pg_sleep(10) AS slept /* {marker} */", {}, 1.0)
    task = asyncio.create_task(slow.lookup({}))

    async def started() -> bool:
        return await running(db_engine, marker) == 1

    await until(started, within=2.0)
    pg_proxy.down()
    cut = time.monotonic()
    with pytest.raises(LookupFailed) as failed:
        await task
    assert failed.value.reason in ("unavailable", "timeout")
    assert time.monotonic() - cut < 1.2
    assert await until(lambda: _none_running(db_engine, marker), within=2.5) < 2.5


async def test_caller_does_not_wait_for_a_cancel_request_that_hangs(
    db_engine: AsyncEngine, proxied: AsyncEngine, pg_proxy: TcpProxy
) -> None:
    """psycopg cancels a query through a new connection and waits for it up to 5 s; when
    that connection hangs (a half-broken network) the caller still hears back on time."""
    marker = f"hang-{uuid.uuid4().hex}"
    slow = SqlLookup(proxied, f"SELECT pg_sleep(3) AS slept /* {marker} */", {}, 0.5)
    started = time.monotonic()
    task = asyncio.create_task(slow.lookup({}))

    async def query_running() -> bool:
        return await running(db_engine, marker) == 1

    await until(query_running, within=0.4)
    pg_proxy.state = "stall"  # this connection keeps working; new ones (the cancel) hang
    with pytest.raises(LookupFailed) as failed:
        await task
    assert failed.value.reason == "timeout"
    assert time.monotonic() - started < 0.8
    # ... and the server still stops the query itself.
    assert await until(lambda: _none_running(db_engine, marker), within=1.0) < 1.0
    pg_proxy.down()  # ends the hanging cancel request: no 5 s wait at teardown


async def test_database_down_fails_fast_and_recovers(
    proxied: AsyncEngine, pg_proxy: TcpProxy, logs: LogRecorder
) -> None:
    lookup = by_account(proxied, timeout=3.0)
    assert (await lookup.lookup({"account": "1001"})).found  # a pooled connection exists
    pg_proxy.down()
    for _ in range(2):  # the pooled connection is dead, then new ones are refused
        started = time.monotonic()
        with pytest.raises(LookupFailed) as failed:
            await lookup.lookup({"account": "1001"})
        assert failed.value.reason == "unavailable"
        assert time.monotonic() - started < 1.0
    assert pg_proxy.refused >= 1
    pg_proxy.up()
    assert (await lookup.lookup({"account": "1001"})).found
    for _, event, fields in logs.events:
        assert event == "lookup_failed" and "1001" not in repr(fields)  # no caller data


async def test_black_holed_database_times_out_on_time(
    proxied: AsyncEngine, pg_proxy: TcpProxy
) -> None:
    pg_proxy.stall()
    started = time.monotonic()
    with pytest.raises(LookupFailed) as failed:
        await by_account(proxied, timeout=0.5).lookup({"account": "1001"})
    assert failed.value.reason == "timeout"
    assert time.monotonic() - started < 0.8
