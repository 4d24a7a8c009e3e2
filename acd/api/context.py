"""What the HTTP layer gets from the daemon: one ``AppContext`` per running app.

Kept apart from ``app.py`` so ``acd.web`` and ``acd.metrics`` can import it without
importing the API's routes (and the routes can import them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.config import Settings

if TYPE_CHECKING:
    from acd.agi import FastAGIServer
    from acd.ami import AmiLink
    from acd.db.writer import CallRecordWriter, RowWriter
    from acd.ivr.registry import FlowRegistry
    from acd.ivr.route import FlowRoute
    from acd.queues.reload import QueuesWatcher
    from acd.queues.service import AcdService

Setup = Callable[[web.Application, "AppContext"], None]


@dataclass
class AppContext:
    """The daemon's parts the API reads and drives. ``acd`` is None when the daemon runs
    without queues; ``agi`` is set once FastAGI listens (the HTTP server starts first)."""

    settings: Settings
    engine: AsyncEngine
    flows: FlowRegistry
    acd: AcdService | None = None
    writer: CallRecordWriter | None = None
    rows: RowWriter | None = None
    ami: AmiLink | None = None
    agi: FastAGIServer | None = None
    #: The ``flow`` AGI route (its ``in_ivr`` counter is a metric).
    ivr: FlowRoute | None = None
    #: The queues file and its reloads (None: no ``[acd] queues_file``).
    queues: QueuesWatcher | None = None
    #: More ``setup(app, ctx)`` hooks, run after the API's, ``acd.web``'s and ``acd.metrics``'.
    extra_setup: list[Setup] = field(default_factory=list)


CTX: web.AppKey[AppContext] = web.AppKey("acd_context", AppContext)
