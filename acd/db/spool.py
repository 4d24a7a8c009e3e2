"""A write-ahead journal on local disk for records on their way to PostgreSQL.

Every record the writer accepts is appended here *before* it is written to the database
(always, not only during an outage): a daemon killed at any moment - the database up,
down, or silently stalled with the outage not yet noticed - leaves its unwritten records
on disk, and the next start replays them. Writing them is cheap (one buffered append,
fsync'ed in groups), and the replay path runs on every start instead of only in outages.

Layout: ``<dir>/<12-digit segment number>.spool`` files, each a sequence of frames
``[u32 length][u32 crc32][JSON payload]`` (little endian). Segments are deleted oldest
first once every record in them has been confirmed written (a prefix only, so a replay
always holds every record after the oldest unconfirmed one, and the newest state of a
call is replayed last); the current one is closed (and a new one begun)
when it grows past ``segment_bytes`` or when everything in it is confirmed, so an idle
daemon keeps no files. A frame that is cut short or fails its checksum (the process was
killed mid-write, the disk lied) ends the replay of that file: it is logged with the
file and offset, its bytes are kept beside it as ``<segment>.corrupt-at-<offset>``, and
every frame before it is replayed.

Durability bound: ``append`` returns at once (a call never waits for a disk); the flusher
writes and fsyncs what was appended within ``sync_interval`` plus one write+fsync, so a
SIGKILL (or power loss, on a disk that honours fsync) loses at most the records accepted
in that last moment. ``sync()`` waits until everything appended so far is durable.

Datetimes travel as ``{"$dt": "<ISO 8601 with offset>"}`` so they come back aware and
with their original offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from acd.log import get_logger

log = get_logger(__name__)

_HEADER = struct.Struct("<II")
#: No record is anywhere near this; a bigger length means the header itself is garbage.
MAX_FRAME = 16 * 1024 * 1024
SUFFIX = ".spool"
_LOCK = "lock"


class SpoolError(RuntimeError):
    """The spool directory cannot be used (not writable, or another daemon holds it)."""


_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_json(value: Any) -> Any:
    """``value`` as plain JSON types; datetimes tagged so they round-trip with their zone.

    Exact plain types are checked first: this runs for every field of every record.
    """
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, str | int | float):  # StrEnum, IntEnum, bool
        return value
    if isinstance(value, dict | Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    raise TypeError(f"cannot spool a {type(value).__name__}")


def from_json(value: Any) -> Any:
    """The inverse of ``to_json``."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$dt"), str):
            return datetime.fromisoformat(value["$dt"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def frame(payload: Any) -> bytes:
    """One journal frame for a JSON-able ``payload`` (already passed through ``to_json``)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


@dataclass(frozen=True, slots=True)
class Leftover:
    """A record found on disk at start: its payload and the segment to confirm it in."""

    segment: int
    payload: Any


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Where and why reading a segment stopped."""

    file: Path
    offset: int
    reason: str
    records_before: int


def read_segment(path: Path) -> tuple[list[Any], BadFrame | None]:
    """Every intact payload of ``path`` in order, and the bad frame that ended it, if any."""
    data = path.read_bytes()
    payloads: list[Any] = []
    offset = 0
    while offset < len(data):
        reason = None
        if len(data) - offset < _HEADER.size:
            reason = "truncated header"
        else:
            length, crc = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            body = data[start : start + length]
            if length > MAX_FRAME:
                reason = f"implausible length {length}"
            elif len(body) < length:
                reason = f"truncated record ({len(body)} of {length} bytes)"
            elif zlib.crc32(body) != crc:
                reason = "checksum mismatch"
            else:
                try:
                    payloads.append(json.loads(body))
                except ValueError as exc:
                    reason = f"unreadable JSON: {exc}"
        if reason is not None:
            return payloads, BadFrame(path, offset, reason, len(payloads))
        offset = start + length
    return payloads, None


class Spool:
    """The journal of one writer. Use from the event loop thread.

    ``records`` (accepted, not yet confirmed written) and ``bytes`` (journal size on disk
    plus what waits for the next fsync) are its depth, for metrics.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 4 * 1024 * 1024,
        sync_interval: float = 0.05,
    ) -> None:
        self.directory = Path(directory)
        self._segment_bytes = segment_bytes
        self._sync_interval = sync_interval
        self._lock_fd: int | None = None
        self._leftover_segments: list[int] = []
        self._current = 0
        #: Unconfirmed records per segment, and bytes per segment (written + buffered).
        self._outstanding: dict[int, int] = {}
        self._sizes: dict[int, int] = {}
        #: Appended, not yet written: (segment, bytes) chunks in order.
        self._buffer: list[tuple[int, bytearray]] = []
        self._fds: dict[int, int] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self._synced = asyncio.Condition()
        self._requests = 0
        self._served = 0
        self._failing = False
        self._closing = False

    # -- depth ---------------------------------------------------------------------------

    @property
    def records(self) -> int:
        """Records on (or on their way to) disk that the database has not confirmed."""
        return sum(self._outstanding.values())

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    @property
    def segments(self) -> int:
        return len(self._sizes)

    # -- life cycle ----------------------------------------------------------------------

    def open(self) -> None:
        """Create and lock the directory and note the leftovers (fast: reads no record).

        Once per ``Spool``: a writer started again after ``stop`` needs a new one.
        """
        if self._flusher is not None or self._closing:
            raise RuntimeError(f"spool {self.directory} was already opened")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(f"spool directory {self.directory}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise SpoolError(
                f"spool directory {self.directory} is in use by another process"
            ) from exc
        self._lock_fd = fd
        numbers = sorted(int(p.stem) for p in self.directory.glob(f"*{SUFFIX}") if p.stem.isdigit())
        self._leftover_segments = numbers
        for n in numbers:
            self._sizes[n] = (self.directory / _name(n)).stat().st_size
        self._current = (numbers[-1] + 1) if numbers else 1
        self._flusher = asyncio.create_task(self._flush_loop(), name="spool-flusher")

    def read_leftovers(self) -> list[Leftover]:
        """What a previous run left unconfirmed, oldest first (blocking: use a thread).

        Every leftover record counts as outstanding until confirmed, so its segment stays
        until the database has it.
        """
        found: list[Leftover] = []
        for n in self._leftover_segments:
            path = self.directory / _name(n)
            try:
                payloads, bad = read_segment(path)
            except OSError as exc:
                log.error("spool_segment_unreadable", file=str(path), error=exc.strerror)
                continue
            if bad is not None:
                kept = self._keep_corrupt(path, bad.offset)
                log.error(
                    "spool_corrupt_tail",
                    file=str(bad.file),
                    offset=bad.offset,
                    reason=bad.reason,
                    records_before=bad.records_before,
                    kept_as=kept,
                )
            found.extend(Leftover(n, p) for p in payloads)
        return found

    def adopt(self, leftovers: list[Leftover]) -> None:
        """Count ``leftovers`` as outstanding (loop thread, after ``read_leftovers``);
        segments with nothing to replay go at once."""
        for n in self._leftover_segments:
            with contextlib.suppress(OSError):
                self._sizes[n] = (self.directory / _name(n)).stat().st_size
        for item in leftovers:
            self._outstanding[item.segment] = self._outstanding.get(item.segment, 0) + 1
        for n in self._leftover_segments:
            self._outstanding.setdefault(n, 0)
        self._leftover_segments = []
        self._dirty.set()

    async def close(self) -> None:
        """Write out what is buffered, fsync, close the files and release the lock."""
        self._closing = True
        self._dirty.set()
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the journal ---------------------------------------------------------------------

    def append(self, payload: Any) -> int:
        """Journal one record (a ``to_json`` value); returns the segment to confirm it in.

        Returns at once: the bytes reach the disk within the flusher's next pass.
        """
        data = frame(payload)
        n = self._current
        if self._sizes.get(n, 0) >= self._segment_bytes or (
            self._sizes.get(n, 0) and not self._outstanding.get(n)
        ):
            n = self._current = n + 1
        self._outstanding[n] = self._outstanding.get(n, 0) + 1
        self._sizes[n] = self._sizes.get(n, 0) + len(data)
        if self._buffer and self._buffer[-1][0] == n:
            self._buffer[-1][1].extend(data)
        else:
            self._buffer.append((n, bytearray(data)))
        self._dirty.set()
        return n

    def confirm(self, segments: list[int]) -> None:
        """The records journaled in ``segments`` (one entry each) are in the database."""
        for n in segments:
            left = self._outstanding.get(n, 0) - 1
            self._outstanding[n] = max(left, 0)
        if segments:
            self._dirty.set()

    async def sync(self) -> None:
        """Wait for a flush pass begun after this call: everything appended so far is on
        disk, and the segments confirmed so far are deleted."""
        self._requests += 1
        want = self._requests
        self._dirty.set()
        async with self._synced:
            await self._synced.wait_for(lambda: self._served >= want)

    async def _flush_loop(self) -> None:
        """Group commit: one write+fsync per file for everything appended meanwhile.

        Only this task touches the files (the thread it hands the writes to runs while
        it waits), so the loop thread's appends never race with a write.
        """
        while True:
            await self._dirty.wait()
            if not self._closing:
                await asyncio.sleep(self._sync_interval)
            self._dirty.clear()
            serving = self._requests
            chunks, self._buffer = self._buffer, []
            try:
                written, error = await asyncio.to_thread(self._write_chunks, chunks)
            except Exception as exc:  # a bug, not the disk: keep the bytes, keep trying
                log.exception("spool_flush_crashed", dir=str(self.directory))
                written, error = 0, str(exc)
            if error is not None:
                self._buffer[:0] = chunks[written:]
                if not self._failing:
                    self._failing = True
                    log.error("spool_write_failed", dir=str(self.directory), error=error)
                if self._closing:
                    return
                self._dirty.set()
                await asyncio.sleep(1.0)
                continue
            if self._failing:
                self._failing = False
                log.info("spool_write_restored", dir=str(self.directory))
            self._reclaim()
            async with self._synced:
                self._served = serving
                self._synced.notify_all()
            if self._closing and not self._buffer:
                return

    def _write_chunks(self, chunks: list[tuple[int, bytearray]]) -> tuple[int, str | None]:
        """Append and fsync ``chunks`` (in a thread): how many made it, and why not all.

        A failed write is cut back to where it began, so a retry leaves no torn frame.
        """
        for i, (n, data) in enumerate(chunks):
            size = 0
            fd = self._fds.get(n)
            try:
                if fd is None:
                    path = self.directory / _name(n)
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    self._fds[n] = fd
                    _fsync_dir(self.directory)
                size = os.fstat(fd).st_size
                os.write(fd, data)
                os.fsync(fd)
            except OSError as exc:
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                return i, exc.strerror or str(exc)
        return len(chunks), None

    def _reclaim(self) -> None:
        """Delete confirmed segments from the oldest on, stopping at the first one that
        still holds an unconfirmed record.

        Only ever a prefix: were a later segment deleted while an earlier one survived, a
        replay would write a call's older record from the survivor without the newer one
        that followed it, and the older state would win.
        """
        buffered = {n for n, _ in self._buffer}
        for n in sorted(self._sizes):
            if self._outstanding.get(n, 0) or n in buffered or n in self._leftover_segments:
                return
            if n > self._current:
                return
            if n == self._current:
                self._current = n + 1  # the next append begins a fresh segment
            fd = self._fds.pop(n, None)
            if fd is not None:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / _name(n))
            self._outstanding.pop(n, None)
            self._sizes.pop(n, None)

    def _keep_corrupt(self, path: Path, offset: int) -> str | None:
        """Move the bad tail of ``path`` aside (for a post-mortem) and cut the file there."""
        kept = path.with_name(f"{path.name}.corrupt-at-{offset}")
        try:
            with path.open("r+b") as f:
                f.seek(offset)
                kept.write_bytes(f.read())
                f.truncate(offset)
                os.fsync(f.fileno())
        except OSError as exc:
            log.error("spool_corrupt_tail_not_kept", file=str(path), error=exc.strerror)
            return None
        return str(kept)


def _name(n: int) -> str:
    return f"{n:012d}{SUFFIX}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
