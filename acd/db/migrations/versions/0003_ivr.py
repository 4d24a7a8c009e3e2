"""IVR: flow versions put live, the steps callers took, and how the IVR ended a call.

Revision ID: 0003
Revises: 0002
Create Date: 2025-02-01

``ivr_steps`` rows are written in batches after the fact (never in a caller's path);
``(uniqueid, seq)`` is unique so a batch written twice after a lost commit reply stays
one row per step, and its index serves "the path of this call". ``flow_hash`` ties each
step to the exact file content in ``flow_versions``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("calls", sa.Column("ivr_outcome", sa.Text(), nullable=True))
    op.create_table(
        "flow_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("flow", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("activated_at", TIMESTAMPTZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_versions")),
        sa.UniqueConstraint(
            "flow", "sha256", "activated_at", name=op.f("uq_flow_versions_flow_sha256_activated_at")
        ),
    )
    op.create_table(
        "ivr_steps",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("uniqueid", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("flow", sa.Text(), nullable=False),
        sa.Column("flow_version", sa.Integer(), nullable=False),
        sa.Column("flow_hash", sa.Text(), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("at", TIMESTAMPTZ, nullable=False),
        sa.Column("digits", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("detail", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ivr_steps")),
        sa.UniqueConstraint("uniqueid", "seq", name=op.f("uq_ivr_steps_uniqueid_seq")),
    )
    op.create_index(op.f("ix_ivr_steps_at"), "ivr_steps", ["at"])


def downgrade() -> None:
    op.drop_table("ivr_steps")
    op.drop_table("flow_versions")
    op.drop_column("calls", "ivr_outcome")
