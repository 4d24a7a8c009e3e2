"""Database schema as SQLAlchemy models; the migrations in ``migrations/versions`` create it.

The naming convention gives every constraint and index a predictable name, so a later
migration can alter or drop it by name on any installation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from acd.core.calls import Disposition

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _disposition_check() -> str:
    values = ", ".join(f"'{d.value}'" for d in Disposition)
    return f"disposition IN ({values})"


class Call(Base):
    """One row per call (Asterisk ``uniqueid``), upserted as the call progresses."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uniqueid: Mapped[str] = mapped_column(Text, unique=True)
    linkedid: Mapped[str] = mapped_column(Text, index=True)
    channel: Mapped[str] = mapped_column(Text)
    caller_number: Mapped[str | None] = mapped_column(Text)
    caller_name: Mapped[str | None] = mapped_column(Text)
    dialed_number: Mapped[str | None] = mapped_column(Text)
    route: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disposition: Mapped[str | None] = mapped_column(Text)
    hangup_cause: Mapped[str | None] = mapped_column(Text)
    ivr_outcome: Mapped[str | None] = mapped_column(Text)
    #: The ACD queue the caller waited in last, the agent who took the call, and how the
    #: wait ended (connected, abandoned, timeout, callback).
    queue: Mapped[str | None] = mapped_column(Text)
    agent_id: Mapped[str | None] = mapped_column(Text)
    queue_outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint(_disposition_check(), name="disposition"),
        CheckConstraint(
            "(ended_at IS NULL) = (disposition IS NULL)", name="ended_with_disposition"
        ),
        CheckConstraint(
            "answered_at >= started_at AND ended_at >= started_at AND ended_at >= answered_at",
            name="time_order",
        ),
    )


class FlowVersion(Base):
    """Every flow version the daemon put live: which content served calls from when on."""

    __tablename__ = "flow_versions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    flow: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(Text)
    file: Mapped[str] = mapped_column(Text)
    activated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("flow", "sha256", "activated_at"),)


class IvrStep(Base):
    """One node a caller went through in a YAML flow (the path behind ``ivr_outcome``)."""

    __tablename__ = "ivr_steps"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uniqueid: Mapped[str] = mapped_column(Text)
    seq: Mapped[int] = mapped_column(Integer)
    flow: Mapped[str] = mapped_column(Text)
    flow_version: Mapped[int] = mapped_column(Integer)
    flow_hash: Mapped[str] = mapped_column(Text)
    node_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    digits: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, object]] = mapped_column(JSONB)

    # (uniqueid, seq) also serves every "steps of this call" query: uniqueid leads it.
    __table_args__ = (UniqueConstraint("uniqueid", "seq"),)


QUEUE_EVENT_KINDS = (
    "enqueue",
    "announce",
    "offer",
    "ring_no_answer",
    "answer",
    "abandon",
    "timeout",
    "overflow",
    "callback_requested",
    "callback_placed",
    "callback_failed",
    "complete",
    "wrap_up",
)
AGENT_STATES = ("logged_out", "not_ready", "ready", "wrap_up")
HUNG_UP_BY = ("caller", "agent", "system")
#: Events that end a caller's wait, and the talk after an answer: all a queue report reads.
OUTCOME_KINDS = ("answer", "abandon", "timeout", "callback_requested", "complete", "wrap_up")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class QueueEvent(Base):
    """One thing that happened to an interaction in the ACD, for reports and audits.

    ``event_id`` is made when the event happens, so a batch written twice (a lost commit
    reply) still leaves one row. ``wait_s`` is seconds since the interaction arrived in
    its first queue; ``talk_s`` and ``hung_up_by`` are set on ``complete``, ``wrap_up_s`` on
    ``wrap_up`` (written when the agent's wrap-up after that call ends).
    """

    __tablename__ = "queue_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    interaction_id: Mapped[str] = mapped_column(Text, index=True)
    uniqueid: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    queue: Mapped[str] = mapped_column(Text)
    media: Mapped[str] = mapped_column(Text)
    agent_id: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int | None] = mapped_column(Integer)
    wait_s: Mapped[float | None] = mapped_column(Double)
    talk_s: Mapped[float | None] = mapped_column(Double)
    hung_up_by: Mapped[str | None] = mapped_column(Text)
    wrap_up_s: Mapped[float | None] = mapped_column(Double)
    priority: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, object]] = mapped_column(JSONB)

    __table_args__ = (
        CheckConstraint(_one_of("kind", QUEUE_EVENT_KINDS), name="kind"),
        CheckConstraint(_one_of("hung_up_by", HUNG_UP_BY), name="hung_up_by"),
        Index("ix_queue_events_queue_at", "queue", "at"),
        Index("ix_queue_events_agent_id_at", "agent_id", "at"),
        # Reports (migration 0005): index-only scans over the rows a report reads.
        Index(
            "ix_queue_events_outcomes",
            "queue",
            "at",
            postgresql_include=[
                "kind",
                "wait_s",
                "talk_s",
                "wrap_up_s",
                "interaction_id",
                "detail",
            ],
            postgresql_where=text(_one_of("kind", OUTCOME_KINDS)),
        ),
        Index(
            "ix_queue_events_complete_at",
            "at",
            postgresql_include=["agent_id", "talk_s", "queue", "detail"],
            postgresql_where=text("kind = 'complete'"),
        ),
    )


class AgentEvent(Base):
    """An agent's state change (login, ready, not ready with a reason, wrap-up, logout)."""

    __tablename__ = "agent_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    agent_id: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    device: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(_one_of("state", AGENT_STATES), name="state"),
        Index("ix_agent_events_agent_id_at", "agent_id", "at"),
        Index("ix_agent_events_at", "at"),
    )


calls: Table = Base.metadata.tables["calls"]
queue_events: Table = Base.metadata.tables["queue_events"]
agent_events: Table = Base.metadata.tables["agent_events"]
flow_versions: Table = Base.metadata.tables["flow_versions"]
ivr_steps: Table = Base.metadata.tables["ivr_steps"]


ROLES = ("supervisor", "agent", "viewer")
TOKEN_KINDS = ("session", "token")


class User(Base):
    """An account of the HTTP API and the pages; ``agent_id`` ties an agent's account to
    the agent of the queues file, whose state only that account (or a supervisor) sets."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    role: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    agent_id: Mapped[str | None] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(_one_of("role", ROLES), name="role"),
        CheckConstraint("role <> 'agent' OR agent_id IS NOT NULL", name="agent_has_agent_id"),
    )


class ApiToken(Base):
    """A login: the browser's session cookie or a script's bearer token. Only the SHA-256
    of the token is stored, so a database dump does not hand out logins."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(Text, unique=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint(_one_of("kind", TOKEN_KINDS), name="kind"),)


class AuditEntry(Base):
    """Who changed what through the API, and how it was before and after. ``actor`` is
    the account name as text, so the history outlives the account. Written through the
    batched writer, so a change made while PostgreSQL is away is still recorded."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    #: Made when the change happens: a batch the writer sends twice stays one row.
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    before: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, object] | None] = mapped_column(JSONB)

    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_target_at", "target", "at"),
    )


class FlowUpload(Base):
    """A flow version uploaded through the API (``seq`` counts per flow). Activating one
    writes it to the flows folder, where the registry picks it up; ``activated_at`` is
    its last activation, which is what a rollback goes back by."""

    __tablename__ = "flow_uploads"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    flow: Mapped[str] = mapped_column(Text)
    seq: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(Text)
    uploaded_by: Mapped[str] = mapped_column(Text)
    uploaded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    comment: Mapped[str] = mapped_column(Text, server_default=text("''"))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("flow", "seq"),)
