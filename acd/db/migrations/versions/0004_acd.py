"""ACD: queue events, agent state changes, and the queue and agent of each call.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

``queue_events`` and ``agent_events`` are append-only and written in batches after the
fact; ``event_id`` is unique so a batch written twice stays one row per event. The
indexes serve the reports: a queue's events over a period, an agent's over a period,
and everything that happened to one interaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)

# Frozen copies: a migration must not change when the models do.
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
)
AGENT_STATES = ("logged_out", "not_ready", "ready", "wrap_up")
HUNG_UP_BY = ("caller", "agent", "system")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    for column in ("queue", "agent_id", "queue_outcome"):
        op.add_column("calls", sa.Column(column, sa.Text(), nullable=True))
    op.create_table(
        "queue_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("interaction_id", sa.Text(), nullable=False),
        sa.Column("uniqueid", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("at", TIMESTAMPTZ, nullable=False),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("media", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.Text(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("wait_s", sa.Double(), nullable=True),
        sa.Column("talk_s", sa.Double(), nullable=True),
        sa.Column("hung_up_by", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("detail", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_queue_events_event_id")),
        sa.CheckConstraint(_one_of("kind", QUEUE_EVENT_KINDS), name=op.f("ck_queue_events_kind")),
        sa.CheckConstraint(
            _one_of("hung_up_by", HUNG_UP_BY), name=op.f("ck_queue_events_hung_up_by")
        ),
    )
    op.create_index(op.f("ix_queue_events_interaction_id"), "queue_events", ["interaction_id"])
    op.create_index("ix_queue_events_queue_at", "queue_events", ["queue", "at"])
    op.create_index("ix_queue_events_agent_id_at", "queue_events", ["agent_id", "at"])
    op.create_table(
        "agent_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.Text(), nullable=False),
        sa.Column("at", TIMESTAMPTZ, nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("device", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_agent_events_event_id")),
        sa.CheckConstraint(_one_of("state", AGENT_STATES), name=op.f("ck_agent_events_state")),
    )
    op.create_index("ix_agent_events_agent_id_at", "agent_events", ["agent_id", "at"])


def downgrade() -> None:
    op.drop_table("agent_events")
    op.drop_table("queue_events")
    for column in ("queue_outcome", "agent_id", "queue"):
        op.drop_column("calls", column)
