"""The audit trail: one ``audit_log`` row per change made through the API.

Rows go through the daemon's batched writer (durable while PostgreSQL is away); without
one (a test app) they are inserted at once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from acd.api.auth import Principal
from acd.api.context import AppContext
from acd.db.models import AuditEntry
from acd.db.writer import Row
from acd.log import get_logger

log = get_logger(__name__)

audit_log: sa.Table = AuditEntry.__table__  # type: ignore[assignment]


def audit_row(
    actor: Principal,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> Row:
    event_id = uuid.uuid4().hex
    return Row(
        audit_log,
        (event_id,),
        {
            "event_id": event_id,
            "at": datetime.now(UTC),
            "actor": actor.name,
            "role": actor.role.value,
            "action": action,
            "target": target,
            "before": before,
            "after": after,
        },
    )


async def record(
    ctx: AppContext,
    actor: Principal,
    action: str,
    target: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Record that ``actor`` did ``action`` to ``target`` (``agent:1001``, ``flow:x``)."""
    row = audit_row(actor, action, target, before, after)
    log.info("audit", actor=actor.name, action=action, target=target)
    if ctx.rows is not None:
        ctx.rows.submit(row)
        return
    async with ctx.engine.begin() as conn:
        await conn.execute(sa.insert(audit_log).values(**row.values))
