"""Accounts: create, list, change, shared by ``acd users`` and the ``/users`` endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.api.auth import Role, hash_password
from acd.db.models import ApiToken, User

MIN_PASSWORD = 8


class AccountError(ValueError):
    """An account change that cannot be made; the message says why."""


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    role: str
    agent_id: str | None
    disabled: bool
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "agent_id": self.agent_id,
            "disabled": self.disabled,
        }


def check_new(name: str, role: str, password: str, agent_id: str | None) -> Role:
    """The role of a valid new account; AccountError naming what is wrong."""
    if not name.strip() or name != name.strip():
        raise AccountError("name: must not be empty or start/end with spaces")
    try:
        parsed = Role(role)
    except ValueError:
        raise AccountError(f"role: {role!r} is not one of supervisor, agent, viewer") from None
    if parsed is Role.AGENT and not agent_id:
        raise AccountError("agent_id: an agent's account needs the agent id it acts for")
    check_password(password)
    return parsed


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")


async def add_user(
    engine: AsyncEngine, name: str, role: str, password: str, agent_id: str | None = None
) -> Account:
    parsed = check_new(name, role, password, agent_id)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(User).values(
                    name=name,
                    role=parsed.value,
                    password_hash=hash_password(password),
                    agent_id=agent_id or None,
                )
            )
    except IntegrityError:
        raise AccountError(f"name: an account named {name!r} already exists") from None
    return await get_user(engine, name)


async def get_user(engine: AsyncEngine, name: str) -> Account:
    async with engine.connect() as conn:
        row = (await conn.execute(_select().where(User.name == name))).first()
    if row is None:
        raise KeyError(name)
    return _account(row)


async def list_users(engine: AsyncEngine) -> list[Account]:
    async with engine.connect() as conn:
        rows = (await conn.execute(_select().order_by(User.name))).all()
    return [_account(row) for row in rows]


async def update_user(
    engine: AsyncEngine,
    name: str,
    *,
    role: str | None = None,
    agent_id: str | None = None,
    disabled: bool | None = None,
    password: str | None = None,
) -> Account:
    """Change an account; disabling it or changing its password ends its logins."""
    current = await get_user(engine, name)
    values: dict[str, Any] = {}
    new_role = current.role
    if role is not None:
        try:
            new_role = Role(role).value
        except ValueError:
            raise AccountError(f"role: {role!r} is not one of supervisor, agent, viewer") from None
        values["role"] = new_role
    if agent_id is not None:
        values["agent_id"] = agent_id or None
    if new_role == Role.AGENT.value and not values.get("agent_id", current.agent_id):
        raise AccountError("agent_id: an agent's account needs the agent id it acts for")
    if disabled is not None:
        values["disabled"] = disabled
    if password is not None:
        check_password(password)
        values["password_hash"] = hash_password(password)
    if values:
        async with engine.begin() as conn:
            user_id = await conn.scalar(
                sa.update(User).where(User.name == name).values(**values).returning(User.id)
            )
            if disabled or password is not None:
                await conn.execute(sa.delete(ApiToken).where(ApiToken.user_id == user_id))
    return await get_user(engine, name)


def _account(row: Any) -> Account:
    return Account(row.name, row.role, row.agent_id, row.disabled, row.created_at)


def _select() -> sa.Select[str, str, str | None, bool, datetime]:
    return sa.select(User.name, User.role, User.agent_id, User.disabled, User.created_at)
