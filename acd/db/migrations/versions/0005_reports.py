"""Reports: indexes for the queue, agent and IVR reports (``acd.reports``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

A queue report reads only the events that end a caller's wait (answer, abandon,
timeout, callback request) and the talk that follows (complete) for one queue over a
period, so a partial index on ``(queue, at)`` holds just those rows, with every column
the report reads included: PostgreSQL answers from the index alone (an index-only scan)
and skips the announce/offer/enqueue rows, which are most of the table. The agent report
reads every agent's talk and state changes over a period, hence the indexes on ``at``.
Wrap-up is a queue event of its own (``wrap_up``, with ``wrap_up_s``), written when the
agent's wrap-up after a call ends, so a call's handle time is in the queue's rows and
the report needs no lookup per call in ``agent_events``.
The IVR report uses the existing ``calls.started_at`` and ``ivr_steps.at`` indexes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy: a migration must not change when the models do.
OUTCOME_KINDS = (
    "kind IN ('answer', 'abandon', 'timeout', 'callback_requested', 'complete', 'wrap_up')"
)
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


def _kinds(*extra: str) -> str:
    return f"kind IN ({', '.join(repr(v) for v in QUEUE_EVENT_KINDS + extra)})"


def upgrade() -> None:
    op.add_column("queue_events", sa.Column("wrap_up_s", sa.Double(), nullable=True))
    op.drop_constraint(op.f("ck_queue_events_kind"), "queue_events", type_="check")
    op.create_check_constraint(op.f("ck_queue_events_kind"), "queue_events", _kinds("wrap_up"))
    op.create_index(
        "ix_queue_events_outcomes",
        "queue_events",
        ["queue", "at"],
        postgresql_include=["kind", "wait_s", "talk_s", "wrap_up_s", "interaction_id", "detail"],
        postgresql_where=sa.text(OUTCOME_KINDS),
    )
    op.create_index(
        "ix_queue_events_complete_at",
        "queue_events",
        ["at"],
        postgresql_include=["agent_id", "talk_s", "queue", "detail"],
        postgresql_where=sa.text("kind = 'complete'"),
    )
    op.create_index("ix_agent_events_at", "agent_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_agent_events_at", table_name="agent_events")
    op.drop_index("ix_queue_events_complete_at", table_name="queue_events")
    op.drop_index("ix_queue_events_outcomes", table_name="queue_events")
    op.execute("DELETE FROM queue_events WHERE kind = 'wrap_up'")
    op.drop_constraint(op.f("ck_queue_events_kind"), "queue_events", type_="check")
    op.create_check_constraint(op.f("ck_queue_events_kind"), "queue_events", _kinds())
    op.drop_column("queue_events", "wrap_up_s")
