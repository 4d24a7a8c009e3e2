"""Logging in and out, and who am I."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from acd import __version__
from acd.api import auth
from acd.api.auth import EVERYONE, Principal
from acd.api.endpoints import ApiError, Call, endpoint


class LoginIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)
    #: ``session``: a cookie for the pages (also returned as a token); ``token``: for a
    #: script, sent as ``Authorization: Bearer``.
    kind: Literal["session", "token"] = "session"


class UserOut(BaseModel):
    name: str
    role: str
    agent_id: str | None


class LoginOut(BaseModel):
    token: str
    expires_at: datetime
    user: UserOut


class HealthOut(BaseModel):
    status: str
    version: str
    acd: bool
    flows_generation: int


class _Failures:
    """Failed logins per account name: after ``limit`` within ``window`` seconds the name
    is refused (429) until the oldest failure ages out, which makes guessing passwords
    slow without locking the real user out for long."""

    def __init__(self, limit: int = 5, window: float = 300.0, names: int = 10_000) -> None:
        self.limit, self.window, self.names = limit, window, names
        self._seen: dict[str, list[float]] = {}

    def _recent(self, name: str, now: float) -> list[float]:
        times = [t for t in self._seen.get(name, ()) if now - t < self.window]
        if times:
            self._seen[name] = times
        else:
            self._seen.pop(name, None)
        return times

    def blocked(self, name: str) -> float | None:
        """Seconds until ``name`` may try again, or None."""
        now = time.monotonic()
        times = self._recent(name, now)
        return self.window - (now - times[0]) if len(times) >= self.limit else None

    def failed(self, name: str) -> None:
        if len(self._seen) >= self.names:  # bounded memory under a flood of names
            self._seen.pop(next(iter(self._seen)))
        self._seen.setdefault(name, []).append(time.monotonic())

    def succeeded(self, name: str) -> None:
        self._seen.pop(name, None)


_failures = _Failures()


def user_out(user: Principal) -> UserOut:
    return UserOut(name=user.name, role=user.role.value, agent_id=user.agent_id)


@endpoint("GET", "/health", summary="Is the daemon up", tag="meta", roles=None, response=HealthOut)
async def health(call: Call) -> HealthOut:
    """No login needed: for load balancers and monitoring."""
    return HealthOut(
        status="ok",
        version=__version__,
        acd=call.ctx.acd is not None,
        flows_generation=call.ctx.flows.current.generation,
    )


@endpoint(
    "POST",
    "/login",
    summary="Log in",
    tag="session",
    roles=None,
    body=LoginIn,
    response=LoginOut,
    errors=(401, 429),
)
async def login(call: Call) -> web.Response:
    """Check the name and password. ``kind=session`` also sets the ``acd_session`` cookie
    (HttpOnly, SameSite=Strict); either way the token comes back for ``Bearer`` use."""
    body: LoginIn = call.body
    settings = call.ctx.settings.http
    wait = _failures.blocked(body.name)
    if wait is not None:
        auth.log.warning("http_login_throttled", name=body.name)
        raise ApiError(429, f"too many failed logins for this name: try again in {wait:.0f} s")
    user = await auth.authenticate(call.ctx.engine, body.name, body.password)
    if user is None:
        _failures.failed(body.name)
        auth.log.info("http_login_refused", name=body.name)
        raise ApiError(401, "wrong name or password")
    _failures.succeeded(body.name)
    token = await auth.issue_token(call.ctx.engine, user, body.kind, settings.session_hours)
    expires = datetime.now(UTC) + timedelta(hours=settings.session_hours)
    auth.log.info("http_login", name=user.name, role=user.role.value, kind=body.kind)
    out = LoginOut(token=token, expires_at=expires, user=user_out(user))
    response = web.json_response(out.model_dump(mode="json"))
    if body.kind == "session":
        response.set_cookie(
            auth.COOKIE,
            token,
            max_age=int(settings.session_hours * 3600),
            httponly=True,
            samesite="Strict",
            secure=settings.secure_cookie,
            path="/",
        )
    return response


@endpoint("POST", "/logout", summary="Log out", tag="session", roles=EVERYONE)
async def logout(call: Call) -> web.Response:
    """End this login (cookie or token)."""
    token = auth.request_token(call.request)
    if token is not None:
        await auth.revoke_token(call.ctx.engine, token)
    response = web.Response(status=204)
    response.del_cookie(auth.COOKIE, path="/")
    return response


@endpoint("GET", "/me", summary="Who am I", tag="session", roles=EVERYONE, response=UserOut)
async def me(call: Call) -> UserOut:
    assert call.user is not None
    return user_out(call.user)
