"""Database schema as SQLAlchemy models; the migrations in ``migrations/versions`` create it.

The naming convention gives every constraint and index a predictable name, so a later
migration can alter or drop it by name on any installation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
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


calls: Table = Base.metadata.tables["calls"]
flow_versions: Table = Base.metadata.tables["flow_versions"]
ivr_steps: Table = Base.metadata.tables["ivr_steps"]
