"""Supervisors' edits of the queues file go live without a restart; broken ones never do.

``QueuesWatcher`` notices an edit by polling the file's modification time, size and inode
(an editor that saves by renaming changes the inode), or reloads at once on
``request_reload()`` (SIGHUP, the API). A valid file that differs from the live one
(by content hash) is handed to ``on_change`` on the event loop, where the routing engine
lives; a broken one has every problem logged and kept in ``problems``, ``on_change`` is
not called and the previous configuration stays live.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from acd.log import get_logger
from acd.queues.config import CenterConfig, Problem, QueuesConfigError, load_queues

__all__ = ["QueuesWatcher"]

log = get_logger(__name__)

Fingerprint = tuple[int, int, int]
OnChange = Callable[[CenterConfig], None]


def _fingerprint(path: Path) -> Fingerprint | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class QueuesWatcher:
    """Keeps the live ``CenterConfig`` of one queues file and reloads it on edits."""

    def __init__(
        self,
        path: str | Path,
        on_change: OnChange | None = None,
        *,
        current: CenterConfig | None = None,
    ) -> None:
        self.path = Path(path)
        self._on_change = on_change
        self._current = current
        self._seen: Fingerprint | None = _fingerprint(self.path) if current else None
        self._forced = current is None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        #: Problems of the last edit that was refused; empty once a good file is loaded.
        self.problems: tuple[Problem, ...] = ()
        self.rejected = 0  # edits refused since start (a metric)

    @property
    def current(self) -> CenterConfig | None:
        """The configuration in force (None until a file has loaded)."""
        return self._current

    def load(self) -> CenterConfig:
        """The first load, at start: raises ``QueuesConfigError`` (there is nothing to keep).

        ``on_change`` is not called: the caller starts from the returned configuration.
        """
        seen = _fingerprint(self.path)
        config = load_queues(self.path)
        self._current, self._seen, self._forced, self.problems = config, seen, False, ()
        log.info("acd_queues_loaded", file=str(self.path), **_counts(config))
        return config

    def changed(self) -> bool:
        """Whether the file differs from what was last read (or a reload was requested)."""
        return self._forced or _fingerprint(self.path) != self._seen

    def reload_now(self) -> bool:
        """Read the file and, if valid and different, make it live; True when it went live."""
        seen = _fingerprint(self.path)
        self._seen, self._forced = seen, False
        try:
            config = load_queues(self.path)
        except QueuesConfigError as exc:
            self._refuse(exc)
            return False
        return self._apply(config)

    async def reload(self) -> bool:
        """``reload_now`` with the file read off the event loop; ``on_change`` runs on it."""
        async with self._lock:
            seen = _fingerprint(self.path)
            self._seen, self._forced = seen, False
            try:
                config = await asyncio.to_thread(load_queues, self.path)
            except QueuesConfigError as exc:
                self._refuse(exc)
                return False
            return self._apply(config)

    def request_reload(self) -> None:
        """Reload soon even if the file looks unchanged (safe from a signal handler)."""
        self._forced = True
        self._wake.set()

    async def watch(self, poll: float = 2.0) -> None:
        """Reload whenever the file changes (checked every ``poll`` s) or on request."""
        while True:
            try:
                async with asyncio.timeout(poll):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                if self.changed():
                    await self.reload()
            except Exception:  # the watcher must outlive any surprise
                log.exception("acd_queues_watch_failed", file=str(self.path))

    def _refuse(self, exc: QueuesConfigError) -> None:
        self.rejected += 1
        self.problems = tuple(exc.problems)
        for problem in exc.problems:
            log.error("acd_queues_problem", problem=str(problem))
        log.error(
            "acd_queues_reload_rejected",
            file=str(self.path),
            problems=len(exc.problems),
            keeping=self._current.sha256[:12] if self._current else None,
        )

    def _apply(self, config: CenterConfig) -> bool:
        self.problems = ()
        previous = self._current
        if previous is not None and previous.sha256 == config.sha256:
            return False
        if self._on_change is not None:
            try:
                self._on_change(config)
            except Exception:
                self.rejected += 1
                log.exception("acd_queues_apply_failed", file=str(self.path))
                return False
        self._current = config
        log.info("acd_queues_activated", file=str(self.path), **_counts(config))
        return True


def _counts(config: CenterConfig) -> dict[str, object]:
    return {
        "queues": len(config.queues),
        "agents": len(config.agents),
        "teams": len(config.teams),
        "sha256": config.sha256[:12],
    }
