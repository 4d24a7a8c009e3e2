"""One inbound call under the daemon's control, and the calls row it leaves behind.

Every AGI route is wrapped by ``call_logged``: the route's handler gets an
``InboundCall`` and, whatever happens (normal end, caller hangup, a bug), exactly one
``CallRecord`` is submitted to the writer when the session ends. The writer never
blocks, so the database can never hold a caller up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from acd.agi import AGIError, AGIHangup, AGISession
from acd.core.calls import CallRecord, Disposition
from acd.log import get_logger

log = get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class RecordSink(Protocol):
    """Where finished call records go (the batched database writer)."""

    def submit(self, record: CallRecord) -> None: ...


@dataclass
class InboundCall:
    """A caller's AGI session plus the facts the call record needs."""

    agi: AGISession
    route: str
    started_at: datetime = field(default_factory=utcnow)
    answered_at: datetime | None = None
    linkedid: str | None = None
    #: How a YAML flow let go of the call, for ``calls.ivr_outcome`` (None: no flow ran).
    ivr_outcome: str | None = None
    #: The ACD queue, the agent who answered and how the wait ended, when it queued.
    queue: str | None = None
    agent_id: str | None = None
    queue_outcome: str | None = None

    async def answer(self) -> None:
        """Answer the channel (once) and remember when, for the answer time in the record."""
        if self.answered_at is None:
            await self.agi.answer()
            self.answered_at = utcnow()

    def record(
        self, disposition: Disposition, ended_at: datetime, cause: str | None = None
    ) -> CallRecord:
        env = self.agi.env
        return CallRecord(
            uniqueid=env.uniqueid,
            linkedid=self.linkedid or env.uniqueid,
            channel=env.channel,
            caller_number=_known(env.callerid),
            caller_name=_known(env.calleridname),
            dialed_number=_known(env.dnid) or _dialed(env.extension),
            route=self.route,
            started_at=self.started_at,
            answered_at=self.answered_at,
            ended_at=ended_at,
            disposition=disposition,
            hangup_cause=cause,
            ivr_outcome=self.ivr_outcome,
            queue=self.queue,
            agent_id=self.agent_id,
            queue_outcome=self.queue_outcome,
        )


CallHandler = Callable[[InboundCall], Awaitable[None]]


def _known(value: str | None) -> str | None:
    """Asterisk writes ``unknown`` for absent caller ID fields; store NULL instead."""
    if value is None or value == "" or value.lower() == "unknown":
        return None
    return value


def _dialed(extension: str | None) -> str | None:
    """The hotline's ``s`` extension means the call came in without a number."""
    return None if extension == "s" else _known(extension)


def call_logged(
    route: str, handler: CallHandler, sink: RecordSink
) -> Callable[[AGISession], Awaitable[None]]:
    """Adapt a call handler to an AGI route that always leaves one call record."""

    async def run(session: AGISession) -> None:
        call = InboundCall(agi=session, route=route)
        disposition = Disposition.FAILED
        cause: str | None = None
        try:
            try:
                call.linkedid = await session.get_full_variable("${CHANNEL(linkedid)}")
            except AGIHangup:
                raise
            except AGIError:
                call.linkedid = None
            await handler(call)
            disposition = Disposition.CALLER_HANGUP if session.hung_up else Disposition.COMPLETED
        except AGIHangup:
            disposition = Disposition.CALLER_HANGUP
            cause = "caller hung up during the IVR"
            raise
        except Exception as exc:
            cause = f"{type(exc).__name__}: {exc}"[:500]
            raise
        finally:
            sink.submit(call.record(disposition, utcnow(), cause))

    return run
