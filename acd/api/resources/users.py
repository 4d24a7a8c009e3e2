"""Accounts and the audit trail (supervisors only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field

from acd.api import accounts, audit
from acd.api.auth import SUPERVISOR
from acd.api.endpoints import ApiError, Call, endpoint
from acd.db.models import AuditEntry

RoleName = Literal["supervisor", "agent", "viewer"]


class AccountOut(BaseModel):
    name: str
    role: str
    agent_id: str | None
    disabled: bool
    created_at: datetime


class AccountIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")
    role: RoleName
    password: str = Field(min_length=accounts.MIN_PASSWORD, max_length=1000)
    agent_id: str | None = Field(default=None, min_length=1, max_length=64)


class AccountPatch(BaseModel):
    role: RoleName | None = None
    agent_id: str | None = Field(default=None, max_length=64)
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=accounts.MIN_PASSWORD, max_length=1000)


class AuditQuery(BaseModel):
    target: str | None = Field(default=None, max_length=200, description="e.g. agent:1001")
    actor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=100, ge=1, le=1000)


class AuditOut(BaseModel):
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def _out(a: accounts.Account) -> AccountOut:
    return AccountOut(
        name=a.name, role=a.role, agent_id=a.agent_id, disabled=a.disabled, created_at=a.created_at
    )


@endpoint(
    "GET", "/users", summary="Accounts", tag="accounts", roles=SUPERVISOR, response=list[AccountOut]
)
async def list_users(call: Call) -> list[AccountOut]:
    return [_out(a) for a in await accounts.list_users(call.ctx.engine)]


@endpoint(
    "POST",
    "/users",
    summary="Create an account",
    tag="accounts",
    roles=SUPERVISOR,
    body=AccountIn,
    response=AccountOut,
    status=201,
    errors=(409,),
)
async def create_user(call: Call) -> AccountOut:
    """An agent's account needs ``agent_id``; 409 when the name is taken."""
    body: AccountIn = call.body
    try:
        account = await accounts.add_user(
            call.ctx.engine, body.name, body.role, body.password, body.agent_id
        )
    except accounts.AccountError as exc:
        status = 409 if "already exists" in str(exc) else 422
        raise ApiError(status, str(exc)) from None
    assert call.user is not None
    await audit.record(
        call.ctx, call.user, "user.create", f"user:{body.name}", after=account.public()
    )
    return _out(account)


@endpoint(
    "PATCH",
    "/users/{name}",
    summary="Change an account",
    tag="accounts",
    roles=SUPERVISOR,
    body=AccountPatch,
    response=AccountOut,
    errors=(404,),
)
async def update_user(call: Call) -> AccountOut:
    """Role, agent id, disabled, password; disabling or a new password ends its logins."""
    body: AccountPatch = call.body
    name = call.path["name"]
    assert call.user is not None
    if name == call.user.name and (body.disabled or (body.role and body.role != "supervisor")):
        raise ApiError(409, "a supervisor cannot disable or demote their own account")
    try:
        before = await accounts.get_user(call.ctx.engine, name)
        after = await accounts.update_user(
            call.ctx.engine,
            name,
            role=body.role,
            agent_id=body.agent_id,
            disabled=body.disabled,
            password=body.password,
        )
    except KeyError:
        raise ApiError(404, f"no account named {name!r}") from None
    except accounts.AccountError as exc:
        raise ApiError(422, str(exc)) from None
    changed = after.public() | ({"password": "changed"} if body.password is not None else {})
    await audit.record(
        call.ctx, call.user, "user.update", f"user:{name}", before=before.public(), after=changed
    )
    return _out(after)


@endpoint(
    "GET",
    "/audit",
    summary="Audit trail, newest first",
    tag="accounts",
    roles=SUPERVISOR,
    query=AuditQuery,
    response=list[AuditOut],
)
async def list_audit(call: Call) -> list[AuditOut]:
    q: AuditQuery = call.query
    statement = (
        sa.select(
            AuditEntry.at,
            AuditEntry.actor,
            AuditEntry.role,
            AuditEntry.action,
            AuditEntry.target,
            AuditEntry.before,
            AuditEntry.after,
        )
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(q.limit)
    )
    if q.target:
        statement = statement.where(AuditEntry.target == q.target)
    if q.actor:
        statement = statement.where(AuditEntry.actor == q.actor)
    async with call.ctx.engine.connect() as conn:
        rows = (await conn.execute(statement)).all()
    return [AuditOut.model_validate(dict(r._mapping)) for r in rows]
