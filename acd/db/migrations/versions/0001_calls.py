"""calls: one row per call, upserted by the call-record writer.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Constraint names are written out (``op.f``) rather than derived, so this migration keeps
producing the same schema whatever later happens to the models' naming convention.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("uniqueid", sa.Text(), nullable=False),
        sa.Column("linkedid", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("caller_number", sa.Text(), nullable=True),
        sa.Column("caller_name", sa.Text(), nullable=True),
        sa.Column("dialed_number", sa.Text(), nullable=True),
        sa.Column("route", sa.Text(), nullable=True),
        sa.Column("started_at", TIMESTAMPTZ, nullable=False),
        sa.Column("answered_at", TIMESTAMPTZ, nullable=True),
        sa.Column("ended_at", TIMESTAMPTZ, nullable=True),
        sa.Column("disposition", sa.Text(), nullable=True),
        sa.Column("hangup_cause", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMPTZ, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TIMESTAMPTZ, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("uniqueid", name=op.f("uq_calls_uniqueid")),
        sa.CheckConstraint(
            "disposition IN ('completed', 'caller_hangup', 'failed')",
            name=op.f("ck_calls_disposition"),
        ),
        sa.CheckConstraint(
            "(ended_at IS NULL) = (disposition IS NULL)",
            name=op.f("ck_calls_ended_with_disposition"),
        ),
        sa.CheckConstraint(
            "answered_at >= started_at AND ended_at >= started_at AND ended_at >= answered_at",
            name=op.f("ck_calls_time_order"),
        ),
    )
    op.create_index(op.f("ix_calls_started_at"), "calls", ["started_at"])
    op.create_index(op.f("ix_calls_linkedid"), "calls", ["linkedid"])


def downgrade() -> None:
    op.drop_table("calls")
