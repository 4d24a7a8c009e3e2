"""The ``acd`` command line: run the daemon, manage the database, show the config."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from acd import __version__
from acd.cli_options import CONFIG_OPTION, settings_from
from acd.log import configure_logging, redact_url


@click.group()
@click.version_option(__version__, prog_name="acd")
def main() -> None:
    """acd: ACD and IVR controller for the Asterisk PBX."""


@main.command()
@CONFIG_OPTION
def run(config_path: Path | None) -> None:
    """Run the daemon (FastAGI server, AMI link, call records) until SIGTERM."""
    from acd.daemon import serve

    settings = settings_from(config_path)
    configure_logging(settings.daemon.log_level, settings.daemon.log_format)
    sys.exit(asyncio.run(serve(settings)))


@main.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@CONFIG_OPTION
@click.option("--revision", default="head", show_default=True)
def db_upgrade(config_path: Path | None, revision: str) -> None:
    """Apply the schema migrations."""
    from acd.db.migrate import current, upgrade

    settings = settings_from(config_path)
    configure_logging(settings.daemon.log_level, "console")
    url = settings.database.url.get_secret_value()
    upgrade(url, revision)
    click.echo(f"{redact_url(url)}: schema at {current(url)}")


@db.command("current")
@CONFIG_OPTION
def db_current(config_path: Path | None) -> None:
    """Print the schema revision the database is at."""
    from acd.db.migrate import current

    url = settings_from(config_path).database.url.get_secret_value()
    click.echo(current(url) or "empty")


@main.group()
def config() -> None:
    """Configuration helpers."""


@config.command("show")
@CONFIG_OPTION
def config_show(config_path: Path | None) -> None:
    """Print the effective configuration (secrets masked) as JSON."""
    settings = settings_from(config_path)
    click.echo(settings.model_dump_json(indent=2))


@main.group()
def flows() -> None:
    """IVR flows (YAML files in ivr_flows/)."""


@flows.command("check")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--sounds-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Check that every prompt exists here (per language, with the fallback).",
)
def flows_check(paths: tuple[Path, ...], sounds_dir: Path | None) -> None:
    """Validate flows; list every problem with file, line, column and field."""
    from acd.ivr.loader import load_flows
    from acd.ivr.validate import FlowError

    configure_logging("ERROR", "console")  # the problems below say it all
    targets = list(paths) or [Path("ivr_flows")]
    try:
        flow_set = load_flows(targets, sounds_dir=sounds_dir)
    except FlowError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(f"{len(exc.problems)} problem(s) found") from exc
    if not flow_set:
        raise click.ClickException(f"no flow files (*.yaml) in {', '.join(map(str, targets))}")
    click.echo(f"{len(flow_set)} flow(s) OK: {', '.join(sorted(flow_set))}")


@flows.command("schema")
def flows_schema() -> None:
    """Print the JSON Schema of the flow format (for editors)."""
    import json

    from acd.ivr.schema import flow_json_schema

    click.echo(json.dumps(flow_json_schema(), indent=2))


GRAPH_FORMATS = ("svg", "png", "dot")


@flows.command("graph")
@click.argument("name")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="File to write (default: NAME.FORMAT; '-' for standard output).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(GRAPH_FORMATS),
    help="svg, png (both need Graphviz's dot) or dot text (default: from -o, else svg).",
)
def flows_graph(name: str, paths: tuple[Path, ...], output: Path | None, fmt: str | None) -> None:
    """Draw flow NAME as a picture: every node, and every way a call goes on."""
    from acd.ivr.graph import flow_to_dot
    from acd.ivr.loader import load_flows
    from acd.ivr.validate import FlowError

    configure_logging("ERROR", "console")
    targets = list(paths) or [Path("ivr_flows")]
    try:
        flow_set = load_flows(targets, sounds_dir=None)
    except FlowError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(
            f"{len(exc.problems)} problem(s) found: run 'acd flows check' and fix them first"
        ) from exc
    flow = flow_set.get(name)
    if flow is None:
        known = ", ".join(sorted(flow_set)) or "none"
        raise click.ClickException(f"no flow named '{name}' (flows found: {known})")
    if fmt is None:
        suffix = output.suffix.lstrip(".").lower() if output and str(output) != "-" else ""
        fmt = suffix if suffix in GRAPH_FORMATS else "svg"
    text = flow_to_dot(flow)
    data = text.encode() if fmt == "dot" else _render_dot(text, fmt)
    if output is not None and str(output) == "-":
        click.echo(data, nl=False)  # bytes go to the binary stdout
        return
    target = output or Path(f"{name}.{fmt}")
    target.write_bytes(data)
    click.echo(f"{target}: flow {name}, {len(flow.nodes)} node(s), {fmt}", err=True)


def _render_dot(text: str, fmt: str) -> bytes:
    """Run Graphviz's ``dot``; a missing binary is an error that says how to get it."""
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        raise click.ClickException(
            "Graphviz's 'dot' program is not installed: apt-get install graphviz "
            "(or write DOT text with --format dot)"
        )
    try:
        done = subprocess.run(
            [dot, f"-T{fmt}"], input=text.encode(), capture_output=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise click.ClickException("dot took more than 120 s to draw the flow") from exc
    if done.returncode != 0:
        raise click.ClickException(
            f"dot failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout


def _add_staffing() -> None:
    from acd.reports.staffing_cli import staffing

    main.add_command(staffing)


_add_staffing()


def _add_report() -> None:
    from acd.reports.cli import report

    main.add_command(report)


_add_report()


def _add_users() -> None:
    from acd.api.cli import users

    main.add_command(users)


_add_users()


if __name__ == "__main__":
    main()
