"""Batched, idempotent writing of call records that never holds a call up.

``submit`` only appends to an in-memory queue; a background task upserts the queue in
batches. While PostgreSQL is unreachable the queue keeps growing (up to ``max_pending``,
oldest dropped first), one warning is logged for the whole outage, and writing resumes by
itself with backoff. The upsert is idempotent, so a batch whose commit reply was lost is
simply written again. ``stop`` hands back whatever could not be written: that list (and
the queue itself) is where a durable disk spool plugs in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.core.calls import CallRecord
from acd.db.models import calls
from acd.log import get_logger

log = get_logger(__name__)

# One column per CallRecord field, uniqueid first (the conflict key).
_COLUMNS = tuple(f.name for f in dataclasses.fields(CallRecord))


def _upsert_set() -> dict[str, Any]:
    """ON CONFLICT assignments: the same rule as ``CallRecord.updated_by``.

    Required columns take the newer value; optional ones keep the stored value when the
    newer record leaves them NULL, so a late record never reopens an ended call.
    """
    excluded = pg_insert(calls).excluded
    assignments: dict[str, Any] = {}
    for name in _COLUMNS[1:]:
        column = calls.c[name]
        assignments[name] = (
            excluded[name] if not column.nullable else func.coalesce(excluded[name], column)
        )
    assignments["updated_at"] = func.now()
    return assignments


def _upsert_statement() -> Insert:
    """One ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT (uniqueid) DO UPDATE``.

    Each column travels as one array parameter, so a batch of any size is one statement
    with twelve parameters, compiled once (a multi-row VALUES list would be recompiled
    for every batch and is capped at 65535 parameters).
    """
    arrays = [bindparam(name, type_=ARRAY(calls.c[name].type)) for name in _COLUMNS]
    rows = func.unnest(*arrays).table_valued(*_COLUMNS).render_derived()
    return (
        pg_insert(calls)
        .from_select(list(_COLUMNS), select(*(rows.c[name] for name in _COLUMNS)))
        .on_conflict_do_update(index_elements=[calls.c.uniqueid], set_=_upsert_set())
    )


UPSERT = _upsert_statement()


def upsert_params(records: Sequence[CallRecord]) -> dict[str, list[Any]]:
    """Column arrays for ``UPSERT``; the uniqueids must be distinct (PostgreSQL cannot
    update one row twice in a statement): the writer's queue merges resubmitted calls.
    """
    return {
        "uniqueid": [r.uniqueid for r in records],
        "linkedid": [r.linkedid for r in records],
        "channel": [r.channel for r in records],
        "caller_number": [r.caller_number for r in records],
        "caller_name": [r.caller_name for r in records],
        "dialed_number": [r.dialed_number for r in records],
        "route": [r.route for r in records],
        "started_at": [r.started_at for r in records],
        "answered_at": [r.answered_at for r in records],
        "ended_at": [r.ended_at for r in records],
        "disposition": [None if r.disposition is None else str(r.disposition) for r in records],
        "hangup_cause": [r.hangup_cause for r in records],
    }


def _is_bad_data(exc: BaseException) -> bool:
    """The server refused the rows themselves (SQLSTATE class 22 data, 23 constraint).

    Retrying those would fail forever; every other error (connection, server shutting
    down, missing table before a migration) can heal, so the records are kept.
    """
    if isinstance(exc, DBAPIError):
        state = getattr(exc.orig, "sqlstate", None) or ""
        return state[:2] in ("22", "23")
    return False


def _describe(exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")


class CallRecordWriter:
    """Queues call records and upserts them into ``calls`` in the background.

    Use from the event loop thread: ``await start()``, ``submit()`` from call handlers,
    ``await stop()`` at shutdown. ``pending``, ``written`` and ``dropped`` are counters for
    metrics.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        batch_size: int = 200,
        flush_interval: float = 0.2,
        max_pending: int = 100_000,
        write_timeout: float = 30.0,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        if batch_size < 1 or max_pending < 1:
            raise ValueError("batch_size and max_pending must be at least 1")
        self._engine = engine
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._write_timeout = write_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        # One entry per call, oldest first; a resubmitted call is merged in place.
        self._queue: OrderedDict[str, CallRecord] = OrderedDict()
        # The batch being written: kept until the database confirms it.
        self._batch: list[CallRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._has_work = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._outage_since: float | None = None
        self._overflowing = False
        self.written = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Records accepted but not yet confirmed written."""
        return len(self._queue) + len(self._batch)

    def submit(self, record: CallRecord) -> None:
        """Queue ``record``; returns at once and never raises (a call must not wait)."""
        try:
            self._enqueue(record)
        except Exception:
            self.dropped += 1
            log.exception("call_record_submit_failed", uniqueid=getattr(record, "uniqueid", None))

    def _enqueue(self, record: CallRecord) -> None:
        problems = record.problems()
        if problems:
            self.dropped += 1
            log.warning("call_record_invalid", uniqueid=record.uniqueid, problems=problems)
            return
        earlier = self._queue.get(record.uniqueid)
        if earlier is not None:
            merged = earlier.updated_by(record)
            if merged.problems():
                log.warning("call_record_replaced", uniqueid=record.uniqueid)
                merged = record
            self._queue[record.uniqueid] = merged
        else:
            self._queue[record.uniqueid] = record
            if self.pending > self._max_pending:
                self._queue.popitem(last=False)
                self.dropped += 1
                if not self._overflowing:
                    self._overflowing = True
                    log.error("call_records_overflow", max_pending=self._max_pending)
        self._has_work.set()
        if len(self._queue) >= self._batch_size:
            self._batch_full.set()

    async def start(self) -> None:
        """Start the background writer (does not need the database to be up)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="call-record-writer")

    async def stop(self, timeout: float = 10.0) -> list[CallRecord]:  # noqa: ASYNC109
        """Write what is pending, for at most ``timeout`` seconds; return what was not.

        Not a cancellation scope: when time is up the unwritten records are returned
        (and logged) rather than an exception raised, so shutdown always completes.
        """
        self._stopping = True
        for event in (self._has_work, self._batch_full, self._retry_now):
            event.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
        left = [*self._batch, *self._queue.values()]
        if left:
            log.error("call_records_unwritten", count=len(left), written=self.written)
        else:
            log.info("call_records_flushed", written=self.written, dropped=self.dropped)
        return left

    async def _run(self) -> None:
        delay = self._retry_initial
        while True:
            if not self._batch:
                if not self._queue:
                    if self._stopping:
                        return
                    self._has_work.clear()
                    await self._has_work.wait()
                    continue
                if len(self._queue) < self._batch_size and not self._stopping:
                    self._batch_full.clear()
                    await _wait(self._batch_full, self._flush_interval)
                self._batch = self._take(self._batch_size)
            if await self._write_batch():
                delay = self._retry_initial
                continue
            await _wait(self._retry_now, delay)  # stop() cuts one wait short
            self._retry_now.clear()
            delay = min(delay * 2, self._retry_max)

    def _take(self, n: int) -> list[CallRecord]:
        return [self._queue.popitem(last=False)[1] for _ in range(min(n, len(self._queue)))]

    async def _write_batch(self) -> bool:
        """Write ``self._batch``; False when the database is unavailable (batch kept)."""
        try:
            await self._write(self._batch)
        except Exception as exc:
            if not _is_bad_data(exc):
                self._unavailable(exc)
                return False
            return await self._write_one_by_one()
        self._written(len(self._batch))
        self._batch = []
        return True

    async def _write_one_by_one(self) -> bool:
        """Isolate the rows the server refuses, so they cannot block the rest forever."""
        while self._batch:
            record = self._batch[0]
            try:
                await self._write([record])
            except Exception as exc:
                if not _is_bad_data(exc):
                    self._unavailable(exc)
                    return False
                self.dropped += 1
                log.error("call_record_rejected", uniqueid=record.uniqueid, error=_describe(exc))
            else:
                self._written(1)
            self._batch.pop(0)
        return True

    async def _write(self, records: Sequence[CallRecord]) -> None:
        params = upsert_params(records)
        async with asyncio.timeout(self._write_timeout), self._engine.begin() as conn:
            await conn.execute(UPSERT, params)

    def _written(self, n: int) -> None:
        self.written += n
        self._overflowing = False
        if self._outage_since is not None:
            log.info(
                "call_records_db_restored",
                outage_s=round(time.monotonic() - self._outage_since, 1),
                pending=self.pending,
                dropped=self.dropped,
            )
            self._outage_since = None

    def _unavailable(self, exc: Exception) -> None:
        """Log the first failure of an outage only; the records stay queued."""
        if self._outage_since is not None:
            return
        self._outage_since = time.monotonic()
        expected = isinstance(exc, SQLAlchemyError | OSError | TimeoutError)
        log.warning(
            "call_records_db_unavailable",
            error=_describe(exc),
            pending=self.pending,
            exc_info=not expected,
        )


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait for ``event`` or ``seconds``, whichever comes first."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass
