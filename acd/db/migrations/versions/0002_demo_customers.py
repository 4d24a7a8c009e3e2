"""demo_customers: sample accounts for the IVR lookup flows (demo and tests).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-15

Not a model of acd's own: the table stands for a customer database a PBX owner already
has, which flows read through ``acd.ivr.lookup.SqlLookup``. PINs are stored as salted
scrypt hashes (``acd.ivr.pin.hash_pin``), checked with ``verify_pin`` after a lookup by
account number; the hashes below are fixed so the migration is reproducible.

Seeded accounts (account / PIN / segment / language, name, balance):

    1001  1234  vip       de  Anna Schmidt             15230.75 EUR
    1002  4321  standard  de  Jonas Becker               243.10 EUR
    1003  2580  standard  es  Lucía Fernández García    1875.00 EUR
    1004  0815  vip       en  Oliver Bennett           98250.00 GBP   (PIN with leading 0)
    1005  9999  standard  de  Katharina Müller           -56.20 EUR   (overdrawn)
    1006  1111  vip       es  Carmen Ruiz                  0.00 EUR   (zero balance)
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CUSTOMERS = [
    (
        "1001",
        "scrypt$14$8$1$rR/mZQwj1x7SqYAZZ2VSMw==$TQILrcB/Y24bdVwQ+z+v73DCqqaKoiHbpRDnhHX9VHw=",
        "Anna Schmidt",
        "de",
        "vip",
        Decimal("15230.75"),
        "EUR",
    ),
    (
        "1002",
        "scrypt$14$8$1$KHcYWUmEgc1FTmn3nSTUDw==$ukzbK4yc+950asefvKxhTxNZkGrtmZRGqewYTrme2RM=",
        "Jonas Becker",
        "de",
        "standard",
        Decimal("243.10"),
        "EUR",
    ),
    (
        "1003",
        "scrypt$14$8$1$5RKhNNowy0FO8g9p6NUttQ==$1BCfPITlTyYwWoagwk9obzEwexpHlubJyUytziJBkuc=",
        "Lucía Fernández García",
        "es",
        "standard",
        Decimal("1875.00"),
        "EUR",
    ),
    (
        "1004",
        "scrypt$14$8$1$0GdG4qpFY72HI0ty4m7hRw==$4yilokRQSbYpm5PoHhcVpyV3fwcHFaG/3YGY2snOGtQ=",
        "Oliver Bennett",
        "en",
        "vip",
        Decimal("98250.00"),
        "GBP",
    ),
    (
        "1005",
        "scrypt$14$8$1$kuZ37QwqpGZZJg3CkLSP1Q==$jDbKh2VXB2c/nCe8kOlhRFIRwjZKuS/nht3R8EFAICM=",
        "Katharina Müller",
        "de",
        "standard",
        Decimal("-56.20"),
        "EUR",
    ),
    (
        "1006",
        "scrypt$14$8$1$0Hrso6jCr7jJrHNwh01dYw==$Rhq5GYOAVI/FnO5VsXluWmLo0VmjIC6aIVSc+nyI0wg=",
        "Carmen Ruiz",
        "es",
        "vip",
        Decimal("0.00"),
        "EUR",
    ),
]
COLUMNS = ("account_number", "pin_hash", "name", "language", "segment", "balance", "currency")


def upgrade() -> None:
    table = op.create_table(
        "demo_customers",
        sa.Column("account_number", sa.Text(), nullable=False),
        sa.Column("pin_hash", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("balance", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("account_number", name=op.f("pk_demo_customers")),
        sa.CheckConstraint(
            "segment IN ('vip', 'standard')", name=op.f("ck_demo_customers_segment")
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_demo_customers_currency")),
        sa.CheckConstraint(
            "pin_hash LIKE 'scrypt$%'", name=op.f("ck_demo_customers_pin_hash_hashed")
        ),
    )
    op.bulk_insert(table, [dict(zip(COLUMNS, row, strict=True)) for row in CUSTOMERS])


def downgrade() -> None:
    op.drop_table("demo_customers")
