"""Flow versions uploaded through the API, and how one goes live.

An upload is validated with the other live flows (a subflow it calls must exist, its
name must not clash), exactly as ``acd flows check`` would, and stored as the next
``seq`` of that flow in ``flow_uploads``. Activating it writes the flows folder's file
atomically (temporary file + rename, so the registry never reads half a file) and asks
the registry to reload at once; the registry then serves it to calls that start from
then on and records it in ``flow_versions``. If the reload refuses the folder anyway
(another file broke meanwhile), the previous file is put back.

A rollback activates the upload that was last active before the current content. The
content found on disk before an activation is stored as an upload first (``uploaded_by
= "(flows folder)"``), so a rollback can always go back to it, even to a hand edit.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from acd.db.models import FlowUpload
from acd.ivr.loader import FLOW_SUFFIXES, flow_files, load_flows, parse_flow
from acd.ivr.registry import FlowRegistry
from acd.ivr.validate import FlowError, Problem

FLOW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
FROM_DISK = "(flows folder)"
_lock = asyncio.Lock()  # one activation at a time per process


@dataclass(frozen=True, slots=True)
class Checked:
    """The result of validating one flow's content among the live flows."""

    flow: str | None  # the name its ``flow:`` field declares
    version: int | None
    problems: list[Problem]
    file: str  # where it would live: the flows folder's file of that flow

    @property
    def ok(self) -> bool:
        return not self.problems


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def file_of(registry: FlowRegistry, name: str) -> Path:
    """The flows folder's file of flow ``name`` (a new flow: ``NAME.yaml``)."""
    flow = registry.current.flows.get(name)
    if flow is not None and flow.source is not None and flow.source.file:
        return Path(flow.source.file)
    for file in _files(registry.flows_dir):
        parsed = parse_flow(file.read_text(encoding="utf-8", errors="replace"), str(file))
        if parsed.flow_name == name:
            return file
    return registry.flows_dir / f"{name}.yaml"


def _files(directory: Path) -> list[Path]:
    return flow_files(directory) if directory.is_dir() else []


def _validate_sync(registry: FlowRegistry, content: str, expected: str | None) -> Checked:
    declared = parse_flow(content, "upload.yaml").flow_name
    name = expected or declared
    target = file_of(registry, name) if name and FLOW_NAME.match(name) else None
    shown = str(target) if target is not None else str(registry.flows_dir / "upload.yaml")
    with tempfile.TemporaryDirectory(prefix="acd-flow-check-") as tmp:
        folder = Path(tmp)
        for file in _files(registry.flows_dir):
            if target is None or file.resolve() != target.resolve():
                shutil.copyfile(file, folder / file.name)
        candidate = folder / Path(shown).name
        if candidate.suffix not in FLOW_SUFFIXES:
            candidate = candidate.with_suffix(".yaml")
        candidate.write_text(content, encoding="utf-8")
        version: int | None = None
        problems: list[Problem] = []
        try:
            flows = load_flows(folder, sounds_dir=registry.sounds_dir)
            if declared is not None and declared in flows:
                version = flows[declared].version
        except FlowError as exc:
            problems = [_shown_at(p, folder, registry.flows_dir) for p in exc.problems]
    if expected is not None and declared is not None and declared != expected:
        problems.insert(
            0,
            Problem(shown, 1, 1, "flow", f"declares flow '{declared}', uploaded as '{expected}'"),
        )
    return Checked(declared, version, problems, shown)


def _shown_at(problem: Problem, tmp: Path, real: Path) -> Problem:
    """A problem found in the temporary copy, named by the real folder's path."""
    file = problem.file
    if file.startswith(str(tmp)):
        file = str(real / Path(file).relative_to(tmp))
    return Problem(file, problem.line, problem.column, problem.field_path, problem.message)


async def validate(registry: FlowRegistry, content: str, expected: str | None = None) -> Checked:
    """Validate ``content`` as flow ``expected`` (or the name it declares) among the live
    flows; off the event loop (the loader is synchronous)."""
    return await asyncio.to_thread(_validate_sync, registry, content, expected)


def problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "column": problem.column,
        "field": problem.field_path,
        "message": problem.message,
        "text": str(problem),
    }


# --- uploads in the database ------------------------------------------------------------


async def store(
    conn: AsyncConnection, flow: str, content: str, by: str, comment: str = ""
) -> dict[str, Any]:
    """Store ``content`` as the next version of ``flow``; returns the upload."""
    # Serialise the seq of one flow between concurrent uploads (and daemons).
    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:f))"), {"f": flow})
    last = await conn.scalar(sa.select(sa.func.max(FlowUpload.seq)).where(FlowUpload.flow == flow))
    row = (
        await conn.execute(
            sa.insert(FlowUpload)
            .values(
                flow=flow,
                seq=(last or 0) + 1,
                content=content,
                sha256=sha256(content),
                uploaded_by=by,
                comment=comment,
            )
            .returning(*_COLUMNS)
        )
    ).one()
    return dict(row._mapping)


_COLUMNS = (
    FlowUpload.flow,
    FlowUpload.seq,
    FlowUpload.sha256,
    FlowUpload.uploaded_by,
    FlowUpload.uploaded_at,
    FlowUpload.comment,
    FlowUpload.activated_at,
)


async def uploads(engine: AsyncEngine, flow: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(*_COLUMNS).where(FlowUpload.flow == flow).order_by(FlowUpload.seq)
        )
        return [dict(r._mapping) for r in rows]


async def upload(engine: AsyncEngine, flow: str, seq: int) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(*_COLUMNS, FlowUpload.content).where(
                    FlowUpload.flow == flow, FlowUpload.seq == seq
                )
            )
        ).first()
    return None if row is None else dict(row._mapping)


async def rollback_target(engine: AsyncEngine, flow: str, current_sha: str) -> int | None:
    """The upload last active before the current content, if any."""
    async with engine.connect() as conn:
        seq: int | None = await conn.scalar(
            sa.select(FlowUpload.seq)
            .where(
                FlowUpload.flow == flow,
                FlowUpload.activated_at.is_not(None),
                FlowUpload.sha256 != current_sha,
            )
            .order_by(FlowUpload.activated_at.desc(), FlowUpload.seq.desc())
            .limit(1)
        )
    return seq


# --- activation ------------------------------------------------------------------------


class ActivationError(Exception):
    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


def _write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _restore(path: Path, previous: str | None) -> None:
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        _write_atomically(path, previous)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


async def activate(
    engine: AsyncEngine, registry: FlowRegistry, flow: str, seq: int
) -> dict[str, Any]:
    """Put upload ``seq`` of ``flow`` live; returns what was live before and after.

    Raises KeyError (no such upload) or ActivationError (refused, with problems)."""
    async with _lock:
        chosen = await upload(engine, flow, seq)
        if chosen is None:
            raise KeyError(f"{flow} version {seq}")
        content: str = chosen["content"]
        checked = await validate(registry, content, flow)
        if not checked.ok:
            raise ActivationError("the flows would not load with this version", checked.problems)
        path = Path(checked.file)
        previous = await asyncio.to_thread(_read, path)
        before = {"sha256": registry.current.hash_of(flow) or None}
        if previous is not None:
            await _keep_disk_version(engine, flow, previous)
        try:
            await asyncio.to_thread(_write_atomically, path, content)
        except OSError as exc:
            # A read-only flows folder (systemd's ProtectSystem without ReadWritePaths).
            raise ActivationError(f"cannot write {path}: {exc.strerror or exc}", []) from exc
        loaded = await registry.reload()
        live = registry.current.hash_of(flow)
        if not loaded or live != sha256(content):
            await asyncio.to_thread(_restore, path, previous)
            await registry.reload()
            raise ActivationError(
                "the registry refused the flows folder; the previous file is back", []
            )
        async with engine.begin() as conn:
            await conn.execute(
                sa.update(FlowUpload)
                .where(FlowUpload.flow == flow, FlowUpload.seq == seq)
                .values(activated_at=datetime.now(UTC))
            )
        return {
            "before": before,
            "after": {"seq": seq, "sha256": live, "file": str(path)},
            "generation": registry.current.generation,
            "version": checked.version,
        }


async def _keep_disk_version(engine: AsyncEngine, flow: str, text: str) -> None:
    """Store the file's content as an upload unless one already has it, and mark it the
    one active now (it is): a rollback from the next activation comes back to it."""
    digest = sha256(text)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        known = await conn.scalar(
            sa.select(FlowUpload.seq)
            .where(FlowUpload.flow == flow, FlowUpload.sha256 == digest)
            .order_by(FlowUpload.seq.desc())
            .limit(1)
        )
        if known is None:
            stored = await store(conn, flow, text, FROM_DISK, "as found in the flows folder")
            known = stored["seq"]
        await conn.execute(
            sa.update(FlowUpload)
            .where(FlowUpload.flow == flow, FlowUpload.seq == known)
            .values(activated_at=now)
        )
