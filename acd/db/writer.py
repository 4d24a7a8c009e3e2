"""Batched, idempotent writing of call records (and IVR rows) that never holds a call up.

``submit`` only appends to an in-memory queue; a background task upserts the queue in
batches. While PostgreSQL is unreachable the queue keeps growing (up to ``max_pending``,
oldest dropped first), one warning is logged for the whole outage, and writing resumes by
itself with backoff. The upsert is idempotent, so a batch whose commit reply was lost is
simply written again. ``stop`` hands back whatever could not be written.

With a ``Spool`` (``acd.db.spool``) every accepted item is also journaled on local disk
before it is written, and confirmed there once the database has it; items a killed or
stopped daemon left behind are replayed, oldest first, when the next writer starts
(in the background: ``submit`` works at once, the queue writes once the replay is in).

``BatchWriter`` is that machinery for any kind of row; ``CallRecordWriter`` upserts
``calls`` and ``RowWriter`` inserts append-only rows (IVR steps, flow versions).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.core.calls import CallRecord, Disposition
from acd.db.bulk import binary_sql, column_arrays, insert_sql
from acd.db.models import Base, calls
from acd.db.spool import Spool, SpoolError, from_json, to_json
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
    with one parameter per column, compiled once (a multi-row VALUES list would be recompiled
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
#: ``UPSERT`` with its arrays sent in binary (``acd.db.bulk``: text costs more than the insert).
_UPSERT_BINARY = binary_sql(UPSERT)


def _column_value(value: Any) -> Any:
    return str(value) if isinstance(value, Disposition) else value


def upsert_params(records: Sequence[CallRecord]) -> dict[str, list[Any]]:
    """Column arrays for ``UPSERT``; the uniqueids must be distinct (PostgreSQL cannot
    update one row twice in a statement): the writer's queue merges resubmitted calls.
    """
    return {name: [_column_value(getattr(r, name)) for r in records] for name in _COLUMNS}


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


# The largest batch, in batch sizes, that a backlog is written in.
_BACKLOG_BATCHES = 10

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class BatchWriter(Generic[K, T]):
    """Queues items and writes them in the background, in batches, retrying forever.

    Use from the event loop thread: ``await start()``, ``submit()`` from call handlers,
    ``await stop()`` at shutdown. ``pending``, ``written`` and ``dropped`` are counters for
    metrics. Subclasses say how items are keyed (a resubmitted key is merged in place),
    checked and written, and name their log events (``<plural>_db_unavailable``...).
    """

    plural = "records"
    singular = "record"

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
        spool: Spool | None = None,
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
        # One entry per key, oldest first; a resubmitted key is merged in place.
        self._queue: OrderedDict[K, T] = OrderedDict()
        # The batch being written: kept until the database confirms it.
        self._batch: list[T] = []
        # Spool segments each queued key's journal entries sit in (one per submission).
        self._refs: dict[K, list[int]] = {}
        self._batch_refs: list[int] = []
        self.spool = spool
        self.replayed = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._has_work = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._outage_since: float | None = None
        self._overflowing = False
        self.written = 0
        self.dropped = 0

    # -- what a subclass says -------------------------------------------------------

    def _key(self, item: T) -> K:
        raise NotImplementedError

    def _label(self, item: T) -> Mapping[str, Any]:
        """How log lines name an item (no caller data beyond an id)."""
        return {}

    def _problems(self, item: T) -> list[str]:
        """Why ``item`` can never be stored (empty: it can)."""
        return []

    def _merge(self, earlier: T, newer: T) -> T:
        return newer

    async def _write(self, items: Sequence[T]) -> None:
        raise NotImplementedError

    def _encode(self, item: T) -> Any:
        """``item`` as a JSON-able value for the spool (datetimes are fine)."""
        raise NotImplementedError

    def _decode(self, payload: Any) -> T:
        """The inverse of ``_encode`` (payload datetimes already restored)."""
        raise NotImplementedError

    # -- the machinery ----------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Items accepted but not yet confirmed written."""
        return len(self._queue) + len(self._batch)

    @property
    def spooled(self) -> int:
        """Journaled items the database has not confirmed yet (0 without a spool)."""
        return self.spool.records if self.spool is not None else 0

    @property
    def spooled_bytes(self) -> int:
        return self.spool.bytes if self.spool is not None else 0

    def submit(self, item: T) -> None:
        """Queue ``item``; returns at once and never raises (a call must not wait)."""
        try:
            self._enqueue(item)
        except Exception:
            self.dropped += 1
            try:
                label = dict(self._label(item))
            except Exception:
                label = {}
            log.exception(f"{self.singular}_submit_failed", **label)

    def _enqueue(self, item: T) -> None:
        problems = self._problems(item)
        if problems:
            self.dropped += 1
            log.warning(f"{self.singular}_invalid", **self._label(item), problems=problems)
            return
        key = self._key(item)
        segment = self._journal(item)
        earlier = self._queue.get(key)
        if earlier is not None:
            self._queue[key] = self._merge(earlier, item)
        else:
            self._queue[key] = item
            if self.pending > self._max_pending:
                oldest, _ = self._queue.popitem(last=False)
                # Left unconfirmed in the spool, so the next start replays it.
                self._refs.pop(oldest, None)
                self.dropped += 1
                if not self._overflowing:
                    self._overflowing = True
                    log.error(
                        f"{self.plural}_overflow",
                        max_pending=self._max_pending,
                        kept_on_disk=self.spool is not None,
                    )
        if segment is not None:
            self._refs.setdefault(key, []).append(segment)
        self._has_work.set()
        if len(self._queue) >= self._batch_size:
            self._batch_full.set()

    def _journal(self, item: T) -> int | None:
        """Append ``item`` to the spool; its segment, or None (no spool, or not encodable:
        then it is kept in memory only, and said so)."""
        if self.spool is None:
            return None
        try:
            payload = to_json(self._encode(item))
        except (TypeError, ValueError) as exc:
            log.error(f"{self.singular}_not_spooled", **self._label(item), error=str(exc))
            return None
        return self.spool.append(payload)

    async def start(self) -> None:
        """Start the background writer (does not need the database to be up).

        Opens the spool (a directory that cannot be used is logged and the writer runs
        memory-only: calls must go on); its leftovers are read by the background task.
        """
        if self._task is None:
            self._stopping = False
            if self.spool is not None:
                try:
                    self.spool.open()
                except SpoolError as exc:
                    log.error(f"{self.plural}_spool_unavailable", error=str(exc))
                    self.spool = None
            self._task = asyncio.create_task(self._run(), name=f"{self.singular}-writer")

    async def _replay(self, spool: Spool) -> None:
        """Put what a previous run left on disk in front of the queue, oldest first.

        Items submitted meanwhile for the same key are merged on top (they are newer), so
        a replayed record never overrides a later one.
        """
        began = time.monotonic()
        leftovers = await asyncio.to_thread(spool.read_leftovers)
        spool.adopt(leftovers)
        queue: OrderedDict[K, T] = OrderedDict()
        refs: dict[K, list[int]] = {}
        unusable: list[int] = []
        for leftover in leftovers:
            try:
                item = self._decode(from_json(leftover.payload))
                problems = self._problems(item)
            except Exception as exc:
                log.error(f"{self.singular}_spooled_unreadable", error=_describe(exc))
                unusable.append(leftover.segment)
                continue
            if problems:
                log.error(f"{self.singular}_invalid", **self._label(item), problems=problems)
                unusable.append(leftover.segment)
                continue
            key = self._key(item)
            earlier = queue.get(key)
            queue[key] = item if earlier is None else self._merge(earlier, item)
            refs.setdefault(key, []).append(leftover.segment)
        self.dropped += len(unusable)
        spool.confirm(unusable)
        for key, item in self._queue.items():
            earlier = queue.get(key)
            queue[key] = item if earlier is None else self._merge(earlier, item)
            refs.setdefault(key, []).extend(self._refs.get(key, ()))
        self._queue, self._refs = queue, refs
        self.replayed = len(leftovers) - len(unusable)
        if leftovers:
            log.info(
                f"{self.plural}_replaying",
                records=self.replayed,
                items=len(queue),
                dir=str(spool.directory),
                read_s=round(time.monotonic() - began, 3),
            )
        if self._queue:
            self._has_work.set()

    async def stop(self, timeout: float = 10.0) -> list[T]:  # noqa: ASYNC109
        """Write what is pending, for at most ``timeout`` seconds; return what was not.

        Not a cancellation scope: when time is up the unwritten items are returned
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
        if self.spool is not None:
            await self.spool.close()
        if left:
            # With a spool they are safe on disk: the next start writes them.
            on_disk = (
                {"spooled": self.spooled, "spool": str(self.spool.directory)}
                if self.spool is not None
                else {}
            )
            log.error(f"{self.plural}_unwritten", count=len(left), written=self.written, **on_disk)
        else:
            log.info(f"{self.plural}_flushed", written=self.written, dropped=self.dropped)
        return left

    async def _run(self) -> None:
        if self.spool is not None:
            await self._replay(self.spool)
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
                # A backlog (after an outage, or a burst) goes out in bigger batches:
                # fewer commits, each waiting for PostgreSQL's WAL flush.
                self._batch = self._take(max(self._batch_size, len(self._queue) // 4))
            if await self._write_batch():
                delay = self._retry_initial
                continue
            await _wait(self._retry_now, delay)  # stop() cuts one wait short
            self._retry_now.clear()
            delay = min(delay * 2, self._retry_max)

    def _take(self, n: int) -> list[T]:
        n = min(n, self._batch_size * _BACKLOG_BATCHES)
        taken = []
        for _ in range(min(n, len(self._queue))):
            key, item = self._queue.popitem(last=False)
            self._batch_refs.extend(self._refs.pop(key, ()))
            taken.append(item)
        return taken

    def _batch_done(self) -> None:
        """Every item of the batch is written (or refused for good): confirm it on disk."""
        self._batch = []
        if self.spool is not None:
            self.spool.confirm(self._batch_refs)
        self._batch_refs = []

    async def _write_batch(self) -> bool:
        """Write ``self._batch``; False when the database is unavailable (batch kept)."""
        try:
            await self._write_timed(self._batch)
        except Exception as exc:
            if not _is_bad_data(exc):
                self._unavailable(exc)
                return False
            return await self._write_one_by_one()
        self._written(len(self._batch))
        self._batch_done()
        return True

    async def _write_one_by_one(self) -> bool:
        """Isolate the rows the server refuses, so they cannot block the rest forever."""
        while self._batch:
            item = self._batch[0]
            try:
                await self._write_timed([item])
            except Exception as exc:
                if not _is_bad_data(exc):
                    self._unavailable(exc)
                    return False
                self.dropped += 1
                log.error(f"{self.singular}_rejected", **self._label(item), error=_describe(exc))
            else:
                self._written(1)
            self._batch.pop(0)
        self._batch_done()
        return True

    async def _write_timed(self, items: Sequence[T]) -> None:
        async with asyncio.timeout(self._write_timeout):
            await self._write(items)

    def _written(self, n: int) -> None:
        self.written += n
        self._overflowing = False
        if self._outage_since is not None:
            log.info(
                f"{self.plural}_db_restored",
                outage_s=round(time.monotonic() - self._outage_since, 1),
                pending=self.pending,
                dropped=self.dropped,
            )
            self._outage_since = None

    def _unavailable(self, exc: Exception) -> None:
        """Log the first failure of an outage only; the items stay queued."""
        if self._outage_since is not None:
            return
        self._outage_since = time.monotonic()
        expected = isinstance(exc, SQLAlchemyError | OSError | TimeoutError)
        log.warning(
            f"{self.plural}_db_unavailable",
            error=_describe(exc),
            pending=self.pending,
            exc_info=not expected,
        )


class CallRecordWriter(BatchWriter[str, CallRecord]):
    """Queues call records and upserts them into ``calls`` in the background.

    Records of one call (``uniqueid``) are merged in the queue by
    ``CallRecord.updated_by``, the same rule the upsert applies in the database.
    """

    plural = "call_records"
    singular = "call_record"

    def _key(self, item: CallRecord) -> str:
        return item.uniqueid

    def _label(self, item: CallRecord) -> Mapping[str, Any]:
        return {"uniqueid": getattr(item, "uniqueid", None)}

    def _problems(self, item: CallRecord) -> list[str]:
        return item.problems()

    def _merge(self, earlier: CallRecord, newer: CallRecord) -> CallRecord:
        merged = earlier.updated_by(newer)
        if merged.problems():
            log.warning("call_record_replaced", uniqueid=newer.uniqueid)
            return newer
        return merged

    def _encode(self, item: CallRecord) -> Any:
        return {name: getattr(item, name) for name in _COLUMNS}

    def _decode(self, payload: Any) -> CallRecord:
        values = {name: payload.get(name) for name in _COLUMNS if name in payload}
        if values.get("disposition") is not None:
            values["disposition"] = Disposition(values["disposition"])
        return CallRecord(**values)

    async def _write(self, items: Sequence[CallRecord]) -> None:
        params = upsert_params(items)
        async with self._engine.begin() as conn:
            await conn.exec_driver_sql(_UPSERT_BINARY, params)


@dataclass(frozen=True, slots=True)
class Row:
    """One append-only row for ``RowWriter``: ``key`` names it among its table's rows
    (the table's unique key), so writing it twice leaves one row."""

    table: Table
    key: tuple[Any, ...]
    values: Mapping[str, Any]


class RowWriter(BatchWriter[tuple[Any, ...], Row]):
    """Inserts rows of any table in batches; a row already there is left as it is."""

    plural = "ivr_records"
    singular = "ivr_record"

    def _key(self, item: Row) -> tuple[Any, ...]:
        return (item.table.name, *item.key)

    def _label(self, item: Row) -> Mapping[str, Any]:
        return {"table": item.table.name, "key": [str(k) for k in item.key]}

    def _encode(self, item: Row) -> Any:
        return {"table": item.table.name, "key": list(item.key), "values": dict(item.values)}

    def _decode(self, payload: Any) -> Row:
        table = Base.metadata.tables[payload["table"]]
        return Row(table, tuple(payload["key"]), dict(payload["values"]))

    async def _write(self, items: Sequence[Row]) -> None:
        # One statement per table (and set of columns): the rows as column arrays.
        groups: dict[tuple[str, tuple[str, ...]], list[Row]] = {}
        for row in items:
            groups.setdefault((row.table.name, tuple(row.values)), []).append(row)
        async with self._engine.begin() as conn:
            for (_, columns), rows in groups.items():
                table = rows[0].table
                params = column_arrays(table, columns, [r.values for r in rows])
                await conn.exec_driver_sql(insert_sql(table, columns), params)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait for ``event`` or ``seconds``, whichever comes first."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass
