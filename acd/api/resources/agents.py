"""Agents' state from the API: log in, ready, not ready with a reason, log out.

The same ``AcdService`` methods the phones' feature codes call. A supervisor may change
any agent; an agent's account only its own agent; every change is audited.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from acd.api import audit
from acd.api.auth import Principal, Role
from acd.api.endpoints import ApiError, Call, endpoint
from acd.api.resources.live import AgentOut, agent_out
from acd.queues.service import AcdService

AGENT_OR_SUPERVISOR = frozenset({Role.SUPERVISOR, Role.AGENT})
ERRORS = (404, 409, 503)


class LoginIn(BaseModel):
    #: Dial string of the phone (``PJSIP/1001``); default: the agent's configured device.
    device: str | None = Field(default=None, min_length=1, max_length=200)
    #: Ready at once (default), or logged in but not ready.
    ready: bool = True


class NotReadyIn(BaseModel):
    #: One of the reasons of ``[acd] reasons`` (break, lunch, ...) or its phone code (2).
    reason: str = Field(min_length=1, max_length=100)


def _acd(call: Call) -> AcdService:
    if call.ctx.acd is None:
        raise ApiError(503, "the daemon runs without queues ([acd] queues_file)")
    return call.ctx.acd


def _agent_state(acd: AcdService, agent_id: str) -> dict[str, str | None]:
    try:
        view = acd.engine.agent(agent_id)
    except KeyError:
        raise ApiError(404, f"no agent {agent_id!r}") from None
    return {"state": view.state.value, "reason": view.reason, "device": acd.device_of(agent_id)}


def _allowed(user: Principal | None, agent_id: str) -> Principal:
    assert user is not None
    if not user.may_act_for(agent_id):
        raise ApiError(403, f"account {user.name!r} may only change its own agent's state")
    return user


def _current(acd: AcdService, agent_id: str) -> AgentOut:
    for agent in acd.snapshot().agents:
        if agent.id == agent_id:
            return agent_out(agent)
    raise ApiError(404, f"no agent {agent_id!r}")


async def _change(call: Call, action: str) -> AgentOut:
    acd = _acd(call)
    agent_id = call.path["agent_id"]
    user = _allowed(call.user, agent_id)
    before = _agent_state(acd, agent_id)
    try:
        if action == "login":
            body: LoginIn = call.body
            acd.login(agent_id, body.device, ready=body.ready)
        elif action == "ready":
            acd.ready(agent_id)
        elif action == "not_ready":
            codes = call.ctx.settings.acd.reasons
            reason = codes.get(call.body.reason, call.body.reason)  # "2" is the phone's lunch
            allowed = sorted(set(codes.values()))
            if reason not in allowed:
                raise ApiError(
                    422,
                    f"unknown reason {reason!r}: one of {', '.join(allowed)}",
                    problems=[{"field": "reason", "message": "not in [acd] reasons", "in": "body"}],
                )
            acd.not_ready(agent_id, reason)
        else:
            acd.logout(agent_id)
    except KeyError:
        raise ApiError(404, f"no agent {agent_id!r}") from None
    except ValueError as exc:
        raise ApiError(409, str(exc)) from None
    after = _agent_state(acd, agent_id)
    await audit.record(
        call.ctx, user, f"agent.{action}", f"agent:{agent_id}", before=before, after=after
    )
    return _current(acd, agent_id)


@endpoint(
    "POST",
    "/agents/{agent_id}/login",
    summary="Log an agent in",
    tag="agents",
    roles=AGENT_OR_SUPERVISOR,
    body=LoginIn,
    response=AgentOut,
    errors=ERRORS,
)
async def agent_login(call: Call) -> AgentOut:
    """On ``device`` or the configured one (409 when there is none)."""
    return await _change(call, "login")


@endpoint(
    "POST",
    "/agents/{agent_id}/ready",
    summary="Make an agent ready",
    tag="agents",
    roles=AGENT_OR_SUPERVISOR,
    response=AgentOut,
    errors=ERRORS,
)
async def agent_ready(call: Call) -> AgentOut:
    """Also ends wrap-up early; 409 when logged out."""
    return await _change(call, "ready")


@endpoint(
    "POST",
    "/agents/{agent_id}/not-ready",
    summary="Make an agent not ready, with a reason",
    tag="agents",
    roles=AGENT_OR_SUPERVISOR,
    body=NotReadyIn,
    response=AgentOut,
    errors=ERRORS,
)
async def agent_not_ready(call: Call) -> AgentOut:
    """409 when logged out; 422 for a reason not in ``[acd] reasons``."""
    return await _change(call, "not_ready")


@endpoint(
    "POST",
    "/agents/{agent_id}/logout",
    summary="Log an agent out",
    tag="agents",
    roles=AGENT_OR_SUPERVISOR,
    response=AgentOut,
    errors=ERRORS,
)
async def agent_logout(call: Call) -> AgentOut:
    """A call the agent is on finishes normally."""
    return await _change(call, "logout")
