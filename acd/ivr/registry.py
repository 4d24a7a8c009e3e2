"""The flows the daemon serves, and how supervisors' edits go live without a restart.

``FlowRegistry`` holds one immutable ``ActiveFlows`` (the FlowSet plus what is derived
from it: content hashes, lookups). A reload, on SIGHUP or when the files' modification
times change, loads the whole directory again: if every file is valid the new set
replaces the old one in a single assignment; if not, every problem is logged with its
file:line:column:field and the old set stays live. A call takes the current set once,
when it starts, so an edit never changes a flow under a caller's feet.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from acd.ivr.loader import FlowError, FlowSet, flow_files, load_flows
from acd.ivr.lookup import Lookup
from acd.log import get_logger

__all__ = ["ActiveFlows", "FlowRegistry", "FlowVersion", "LookupBuilder"]

log = get_logger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]
LookupBuilder = Callable[[FlowSet], Mapping[str, Lookup]]


@dataclass(frozen=True, slots=True)
class FlowVersion:
    """One flow's content as it went live (a row of ``flow_versions``)."""

    flow: str
    version: int
    sha256: str
    file: str
    activated_at: datetime


@dataclass(frozen=True)
class ActiveFlows:
    """Everything a call needs from one loaded version of the flows directory."""

    flows: FlowSet
    hashes: Mapping[str, str] = field(default_factory=dict)  # flow name -> sha256
    lookups: Mapping[str, Lookup] = field(default_factory=dict)
    generation: int = 0

    def hash_of(self, flow: str) -> str:
        return self.hashes.get(flow, "")


EMPTY = ActiveFlows(FlowSet({}))


def _fingerprint(directory: Path) -> Fingerprint:
    """What changes when a flow file is edited, added, removed or renamed."""
    try:
        files = flow_files(directory) if directory.is_dir() else []
    except OSError:
        return ()
    out = []
    for file in files:
        try:
            st = file.stat()
        except OSError:
            continue
        out.append((file.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FlowRegistry:
    """Loads ``flows_dir``, keeps the active flows, reloads on request or on edits."""

    def __init__(
        self,
        flows_dir: str | Path,
        *,
        sounds_dir: str | Path | None = None,
        build_lookups: LookupBuilder | None = None,
        on_activate: Callable[[Sequence[FlowVersion]], None] | None = None,
    ) -> None:
        self.flows_dir = Path(flows_dir)
        self.sounds_dir = Path(sounds_dir) if sounds_dir is not None else None
        self._build_lookups = build_lookups
        self._on_activate = on_activate
        self._active = EMPTY
        self._seen: Fingerprint | None = None  # the files as last loaded (or rejected)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self.rejected = 0  # reloads refused since start (a metric)

    @property
    def current(self) -> ActiveFlows:
        """The flows a call starting now runs; keep the object for the whole call."""
        return self._active

    def reload_now(self) -> bool:
        """Load the directory and activate it if valid; True when a new set went live.

        Synchronous (the loader is): the daemon calls it through ``reload``.
        """
        seen = _fingerprint(self.flows_dir)
        self._seen = seen
        if not self.flows_dir.is_dir():
            log.error("ivr_flows_dir_missing", flows_dir=str(self.flows_dir))
            return False
        try:
            files = flow_files(self.flows_dir)
            hashes_by_file = {str(f): _sha256(f) for f in files}
            flows = load_flows(files, sounds_dir=self.sounds_dir)
            lookups = self._build_lookups(flows) if self._build_lookups else {}
        except FlowError as exc:
            self.rejected += 1
            for problem in exc.problems:
                log.error("ivr_flow_problem", problem=str(problem))
            log.error(
                "ivr_flows_reload_rejected",
                problems=len(exc.problems),
                keeping_generation=self._active.generation,
            )
            return False
        except (OSError, ValueError) as exc:
            self.rejected += 1
            log.error(
                "ivr_flows_reload_rejected",
                error=f"{type(exc).__name__}: {exc}",
                keeping_generation=self._active.generation,
            )
            return False
        files_of = {name: flow.source.file if flow.source else "" for name, flow in flows.items()}
        hashes = {name: hashes_by_file.get(files_of[name], "") for name in flows}
        previous = self._active
        self._active = ActiveFlows(flows, hashes, lookups, previous.generation + 1)
        now = datetime.now(UTC)
        changed = [
            FlowVersion(name, flow.version, hashes[name], files_of[name], now)
            for name, flow in sorted(flows.items())
            if previous.hashes.get(name) != hashes[name]
        ]
        log.info(
            "ivr_flows_activated",
            generation=self._active.generation,
            flows=sorted(flows),
            changed=[v.flow for v in changed],
        )
        if changed and self._on_activate is not None:
            self._on_activate(changed)
        return True

    async def reload(self) -> bool:
        """``reload_now`` off the event loop, one at a time."""
        async with self._lock:
            return await asyncio.to_thread(self.reload_now)

    def request_reload(self) -> None:
        """Reload soon (the SIGHUP handler: signal handlers must not block)."""
        self._seen = None
        self._wake.set()

    async def watch(self, poll: float) -> None:
        """Reload whenever the files change (checked every ``poll`` s) or on request."""
        while True:
            try:
                async with asyncio.timeout(poll):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                if self._seen is None or _fingerprint(self.flows_dir) != self._seen:
                    await self.reload()
            except Exception:  # the watcher must outlive any surprise
                log.exception("ivr_flows_watch_failed")
