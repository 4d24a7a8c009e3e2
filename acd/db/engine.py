"""SQLAlchemy engines for PostgreSQL through psycopg 3.

The configuration may say ``postgresql://`` (as libpq and most tools write it); SQLAlchemy
needs the driver spelled out, so every URL goes through ``normalise_url`` first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DRIVER = "postgresql+psycopg"
_ACCEPTED = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg_async"}


def normalise_url(url: str | URL) -> URL:
    """``postgres://``, ``postgresql://`` or ``postgresql+psycopg://`` as a psycopg URL."""
    parsed = make_url(url)
    if parsed.drivername not in _ACCEPTED:
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: use postgresql://"
        )
    return parsed.set(drivername=DRIVER)


def connect_args(connect_timeout: float) -> dict[str, Any]:
    """libpq options shared by the sync (migrations) and async (writer) engines.

    Keepalives make a connection to a vanished server fail in seconds instead of
    hanging until the kernel gives up (minutes).
    """
    return {
        "connect_timeout": max(2, round(connect_timeout)),  # libpq's minimum is 2 s
        "application_name": "acd",
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }


def make_async_engine(
    url: str | URL,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    connect_timeout: float = 5.0,
) -> AsyncEngine:
    """An async engine: small pool (one writer plus a few readers), checked before use.

    ``pool_pre_ping`` replaces a connection the server dropped (restart, failover) before
    a statement fails on it.
    """
    return create_async_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_timeout=connect_timeout,
        connect_args=connect_args(connect_timeout),
    )
