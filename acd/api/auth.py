"""Accounts, logins and roles of the HTTP API and the pages.

Three roles: ``supervisor`` (everything), ``agent`` (reads the live view, changes only
their own agent's state), ``viewer`` (reads). A login is a random token: the browser
keeps it in an HttpOnly, SameSite=Strict cookie, a script sends it as
``Authorization: Bearer``. Only its SHA-256 is stored (``api_tokens``), passwords only as
Argon2id hashes (argon2-cffi), and neither ever reaches a log.

``auth_middleware`` resolves who is calling for every request (API, pages, WebSocket);
handlers then ask ``require(request, ...)`` for the roles they allow.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

import sqlalchemy as sa
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from acd.api.context import CTX
from acd.db.models import ApiToken, User
from acd.log import get_logger

log = get_logger(__name__)

COOKIE = "acd_session"
_hasher = PasswordHasher()
# Verifying against this when the name is unknown costs the same time as a real check,
# so response times do not tell which account names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    SUPERVISOR = "supervisor"
    AGENT = "agent"
    VIEWER = "viewer"


EVERYONE = frozenset(Role)
SUPERVISOR = frozenset({Role.SUPERVISOR})


@dataclass(frozen=True, slots=True)
class Principal:
    """The account behind a request."""

    id: int
    name: str
    role: Role
    agent_id: str | None

    def may_act_for(self, agent_id: str) -> bool:
        """A supervisor may change any agent's state, an agent only their own."""
        return self.role is Role.SUPERVISOR or (
            self.role is Role.AGENT and self.agent_id == agent_id
        )


USER: web.RequestKey[Principal | None] = web.RequestKey("acd_user", Principal)
#: How the caller's token came: "bearer", "cookie", or "unavailable" (the database could
#: not be asked), or None (no token).
VIA: web.RequestKey[str | None] = web.RequestKey("acd_auth_via", str)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def authenticate(engine: AsyncEngine, name: str, password: str) -> Principal | None:
    """The enabled account ``name`` if ``password`` is its password; None otherwise."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(User.id, User.name, User.role, User.agent_id, User.password_hash).where(
                    User.name == name, User.disabled.is_(False)
                )
            )
        ).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    return Principal(row.id, row.name, Role(row.role), row.agent_id)


async def issue_token(engine: AsyncEngine, user: Principal, kind: str, hours: float) -> str:
    """A new login token for ``user``; only its hash is kept."""
    token = secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(ApiToken).values(
                token_sha256=_token_hash(token),
                user_id=user.id,
                kind=kind,
                expires_at=_utcnow() + timedelta(hours=hours),
            )
        )
        # Expired logins are of no use to anyone: tidy them up while we are here.
        await conn.execute(sa.delete(ApiToken).where(ApiToken.expires_at < _utcnow()))
    return token


async def revoke_token(engine: AsyncEngine, token: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.delete(ApiToken).where(ApiToken.token_sha256 == _token_hash(token)))


async def principal_of_token(conn: AsyncConnection, token: str) -> Principal | None:
    row = (
        await conn.execute(
            sa.select(User.id, User.name, User.role, User.agent_id)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(
                ApiToken.token_sha256 == _token_hash(token),
                ApiToken.expires_at > _utcnow(),
                User.disabled.is_(False),
            )
        )
    ).first()
    return None if row is None else Principal(row.id, row.name, Role(row.role), row.agent_id)


def request_token(request: web.Request) -> str | None:
    """The bearer token, else the session cookie, of ``request``."""
    return _token_and_via(request)[0]


def _token_and_via(request: web.Request) -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), "bearer"
    cookie = request.cookies.get(COOKIE)
    return (cookie, "cookie") if cookie else (None, None)


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Resolve the caller once per request; enforcement is the handler's (``require``)."""
    request[USER] = None
    token, via = _token_and_via(request)
    request[VIA] = via
    if token is not None:
        engine = request.app[CTX].engine
        try:
            async with engine.connect() as conn:
                request[USER] = await principal_of_token(conn, token)
        except (OSError, SQLAlchemyError) as exc:
            # PostgreSQL away: pages and /metrics still answer; require() says 503.
            log.warning("http_auth_db_unavailable", error=type(exc).__name__)
            request[VIA] = "unavailable"
    return await handler(request)


def current_user(request: web.Request) -> Principal | None:
    """Who is calling (None: not logged in). Usable by ``acd.web`` pages and WebSocket."""
    return request.get(USER)


def require(request: web.Request, roles: frozenset[Role] = EVERYONE) -> Principal:
    """The caller, if logged in with one of ``roles``: else 401 (not logged in) or 403."""
    user = current_user(request)
    if user is None and request.get(VIA) == "unavailable":
        raise web.HTTPServiceUnavailable(
            text='{"error": "the accounts database is unavailable; try again shortly"}',
            content_type="application/json",
        )
    if user is None:
        raise web.HTTPUnauthorized(
            text='{"error": "log in first (POST /api/v1/login)"}',
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="acd"'},
        )
    if request.get(VIA) == "cookie" and request.method not in _SAFE_METHODS:
        origin = request.headers.get("Origin")
        hosts = {request.host, request.headers.get("X-Forwarded-Host", "")}
        if origin is not None and urlsplit(origin).netloc not in hosts:
            # SameSite=Strict keeps the cookie off other sites' requests already; this
            # refuses a cross-site change should a browser send it anyway.
            raise web.HTTPForbidden(
                text='{"error": "cross-site request refused"}', content_type="application/json"
            )
    if user.role not in roles:
        raise web.HTTPForbidden(
            text=f'{{"error": "role {user.role.value} may not do this"}}',
            content_type="application/json",
        )
    return user
