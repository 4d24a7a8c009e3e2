"""Rows for ``queue_events`` and ``agent_events``: what the ACD did, for reports and audits.

Each row gets its ``event_id`` when the event happens, so the batched writer can send a
batch twice (a lost commit reply) and still leave one row per event.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from acd.db.models import agent_events, queue_events
from acd.db.writer import Row


def queue_event(
    kind: str,
    *,
    at: datetime,
    interaction_id: str,
    queue: str,
    uniqueid: str | None = None,
    media: str = "voice",
    agent_id: str | None = None,
    position: int | None = None,
    wait_s: float | None = None,
    talk_s: float | None = None,
    hung_up_by: str | None = None,
    priority: int | None = None,
    wrap_up_s: float | None = None,
    **detail: Any,
) -> Row:
    event_id = uuid.uuid4().hex
    return Row(
        queue_events,
        (event_id,),
        {
            "event_id": event_id,
            "interaction_id": interaction_id,
            "uniqueid": uniqueid,
            "kind": kind,
            "at": at,
            "queue": queue,
            "media": media,
            "agent_id": agent_id,
            "position": position,
            "wait_s": None if wait_s is None else round(wait_s, 3),
            "talk_s": None if talk_s is None else round(talk_s, 3),
            "hung_up_by": hung_up_by,
            "priority": priority,
            "wrap_up_s": None if wrap_up_s is None else round(wrap_up_s, 3),
            "detail": {k: v for k, v in detail.items() if v is not None},
        },
    )


def agent_event(
    agent_id: str, state: str, *, at: datetime, reason: str | None = None, device: str | None = None
) -> Row:
    event_id = uuid.uuid4().hex
    return Row(
        agent_events,
        (event_id,),
        {
            "event_id": event_id,
            "agent_id": agent_id,
            "at": at,
            "state": state,
            "reason": reason,
            "device": device,
        },
    )
