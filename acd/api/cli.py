"""``acd users``: accounts of the HTTP API, from the machine the daemon runs on.

The first supervisor is made here (nobody can log in to the API before that). The
password comes from ``--password-stdin``, ``$ACD_USER_PASSWORD`` or a prompt, never
from the command line, where ``ps`` and the shell history would show it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from acd.cli_options import CONFIG_OPTION, settings_from

T = TypeVar("T")
PASSWORD_ENV = "ACD_USER_PASSWORD"


def _run(config_path: Path | None, work: Callable[..., Awaitable[T]]) -> T:
    from acd.db.engine import make_async_engine
    from acd.db.migrate import upgrade
    from acd.log import configure_logging

    settings = settings_from(config_path)
    configure_logging("WARNING", "console")
    url = settings.database.url.get_secret_value()
    upgrade(url)  # the accounts tables come with migration 0006

    async def go() -> T:
        engine = make_async_engine(url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@click.group()
def users() -> None:
    """Accounts of the HTTP API (supervisor, agent, viewer)."""


@users.command("add")
@CONFIG_OPTION
@click.argument("name")
@click.option(
    "--role", required=True, type=click.Choice(["supervisor", "agent", "viewer"]), help="Role."
)
@click.option("--agent-id", help="For an agent's account: the agent id of the queues file.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_add(
    config_path: Path | None, name: str, role: str, agent_id: str | None, password_stdin: bool
) -> None:
    """Create account NAME (password from stdin, $ACD_USER_PASSWORD or a prompt)."""
    from acd.api.accounts import AccountError, add_user

    password = _password(password_stdin)
    try:
        account = _run(config_path, lambda e: add_user(e, name, role, password, agent_id))
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    suffix = f" (agent {account.agent_id})" if account.agent_id else ""
    click.echo(f"account {account.name}: {account.role}{suffix}")


@users.command("list")
@CONFIG_OPTION
def users_list(config_path: Path | None) -> None:
    """List the accounts."""
    from acd.api.accounts import list_users

    accounts = _run(config_path, list_users)
    if not accounts:
        click.echo("no accounts yet: acd users add NAME --role supervisor")
        return
    click.echo(f"{'name':<20} {'role':<11} {'agent':<8} state")
    for a in accounts:
        state = "disabled" if a.disabled else "active"
        click.echo(f"{a.name:<20} {a.role:<11} {a.agent_id or '-':<8} {state}")


@users.command("passwd")
@CONFIG_OPTION
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_passwd(config_path: Path | None, name: str, password_stdin: bool) -> None:
    """Set NAME's password (its logins end)."""
    from acd.api.accounts import AccountError, update_user

    password = _password(password_stdin)
    try:
        _run(config_path, lambda e: update_user(e, name, password=password))
    except KeyError:
        raise click.ClickException(f"no account named {name!r}") from None
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"account {name}: password changed")


@users.command("disable")
@CONFIG_OPTION
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable the account again.")
def users_disable(config_path: Path | None, name: str, enable: bool) -> None:
    """Disable NAME (its logins end at once), or enable it again."""
    from acd.api.accounts import update_user

    try:
        _run(config_path, lambda e: update_user(e, name, disabled=not enable))
    except KeyError:
        raise click.ClickException(f"no account named {name!r}") from None
    click.echo(f"account {name}: {'enabled' if enable else 'disabled'}")
