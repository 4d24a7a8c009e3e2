"""Customer lookups for IVR flows: one SQL query or one JSON API call, bounded in time.

A flow hands its variables in and gets variables back; either it learns something
(``found``), learns that there is nothing (an unknown account), or gets ``LookupFailed``
(database down, slow API, bad answer) and plays its "try again later" branch. A caller
never waits longer than ``timeout``.

Caller input only ever reaches a query or an API as data:

* ``SqlLookup`` takes one ``SELECT``/``WITH`` statement with ``:name`` bind parameters;
  ``params`` maps each to a template of flow variables (``{"account": "{account}"}``).
  It runs in a READ ONLY transaction with ``SET LOCAL statement_timeout``, so a slow
  query stops on the server too, and a data-modifying ``WITH`` is refused there.
* ``HttpLookup`` fills ``{variable}`` placeholders in the URL percent-encoded (host and
  scheme are fixed by the flow, never by a caller); ``fields`` picks values from the JSON
  answer by dotted path (``customer.segment``, ``accounts.0.iban``); without ``fields``
  every value comes back named by its dotted path. Header values are templates too.

Values come back as text: None is ``""``, booleans ``true``/``false``, numbers as written.

For "account + PIN" (SQL cannot check a scrypt hash) the lookup returns the hash
(``SELECT ..., pin_hash``) and the flow's lookup node says ``verify: {secret: "{pin}",
against: pin_hash}``: the interpreter checks the typed PIN with
``acd.ivr.pin.verify_pin`` in a worker thread and keeps ``pin_hash`` out of the flow's
variables, so it is never played, logged or sent on.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import aiohttp
import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from acd.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LookupResult:
    """What a lookup learned: ``found`` with ``values``, or nothing for this caller."""

    found: bool
    values: dict[str, str] = field(default_factory=dict)


class LookupFailed(Exception):
    """The lookup could not answer; ``reason`` is one of ``REASONS`` for flows to branch on.

    ``detail`` is for operators (logs) and carries neither caller data nor secrets.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


TIMEOUT = "timeout"  # no answer within the lookup's timeout
UNAVAILABLE = "unavailable"  # database or API unreachable, connection lost
QUERY_ERROR = "query_error"  # the database refused the query (syntax, read-only, ...)
HTTP_STATUS = "http_status"  # the API answered with a status other than 2xx or 404
BAD_RESPONSE = "bad_response"  # the API's body is not usable JSON
MISSING_VARIABLE = "missing_variable"  # the flow has no value for a template variable
REASONS = (TIMEOUT, UNAVAILABLE, QUERY_ERROR, HTTP_STATUS, BAD_RESPONSE, MISSING_VARIABLE)


class Lookup(Protocol):
    """What the flow interpreter calls."""

    @property
    def required_variables(self) -> frozenset[str]:
        """Flow variables the lookup reads (for the flow loader to check)."""
        ...

    async def lookup(self, variables: Mapping[str, str]) -> LookupResult: ...


# --- templates ----------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}|[{}]")


class Template:
    """Text with ``{variable}`` placeholders (``{{``/``}}`` for literal braces).

    A name may be dotted (``{customer.segment}``): it is one key of the flat variables
    mapping, never attribute or index access as in ``str.format``.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._parts: list[tuple[str, bool]] = []  # (literal text | variable name, is_variable)
        pos = 0
        for match in _PLACEHOLDER.finditer(source):
            if len(match[0]) == 1:  # a lone brace
                raise ValueError(
                    f"{source!r}: stray {match[0]!r} at {match.start()}"
                    " (write {name} for a variable, {{ or }} for a brace)"
                )
            self._parts.append((source[pos : match.start()], False))
            self._parts.append((match[1], True) if match[1] else (match[0][0], False))
            pos = match.end()
        self._parts.append((source[pos:], False))
        self.variables = frozenset(part for part, is_var in self._parts if is_var)

    def render(self, variables: Mapping[str, str], escape: Callable[[str], str] = str) -> str:
        """The text with each placeholder replaced by ``escape(value)``."""
        out = []
        for part, is_var in self._parts:
            if not is_var:
                out.append(part)
            elif part in variables:
                out.append(escape(variables[part]))
            else:
                raise LookupFailed(MISSING_VARIABLE, part)
        return "".join(out)


def _template_tree(value: object) -> Any:
    """A JSON body with every string turned into a ``Template``."""
    if isinstance(value, str):
        return Template(value)
    if isinstance(value, Mapping):
        return {str(k): _template_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_template_tree(v) for v in value]
    return value


def _render_tree(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, Template):
        return value.render(variables)
    if isinstance(value, dict):
        return {k: _render_tree(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_tree(v, variables) for v in value]
    return value


def _tree_variables(value: Any) -> frozenset[str]:
    if isinstance(value, Template):
        return value.variables
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return frozenset().union(*(_tree_variables(v) for v in items))


def as_text(value: object) -> str:
    """A looked-up value as a flow variable."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, dict | list):
        return jsonlib.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


# --- time bound ---------------------------------------------------------------------

# Abandoned work finishing in the background (psycopg cancelling a query on the server);
# kept here so the tasks are not garbage-collected half-way.
_abandoned: set[asyncio.Task[Any]] = set()


def _reap(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" noise


async def _within(seconds: float, work: Awaitable[T]) -> T:
    """``work``'s result, or ``LookupFailed(timeout)`` right at the deadline.

    The work runs as its own task: on timeout it is cancelled but may finish its
    clean-up (a server-side query cancel) without holding up the caller.
    """
    task = asyncio.ensure_future(work)
    try:
        async with asyncio.timeout(seconds):
            return await asyncio.shield(task)
    except (TimeoutError, asyncio.CancelledError) as exc:
        if not task.done():
            task.cancel()
            _abandoned.add(task)
            task.add_done_callback(_reap)
        if isinstance(exc, TimeoutError):
            raise LookupFailed(TIMEOUT, f"no answer within {seconds:g} s") from None
        raise


def _log_failure(kind: str, target: str, started: float, failure: LookupFailed) -> None:
    log.warning(
        "lookup_failed",
        kind=kind,
        target=target,
        reason=failure.reason,
        detail=failure.detail,
        ms=round((time.monotonic() - started) * 1000),
    )


# --- SQL ----------------------------------------------------------------------------

_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)


def _single_select(query: str) -> str:
    """``query`` without a trailing ``;``, if it is one SELECT or WITH statement."""
    body = query.strip().removesuffix(";").rstrip()
    if ";" in body:
        raise ValueError("lookup query: one statement only (no ';' inside)")
    first = _LEADING_COMMENTS.sub("", body, count=1).split(None, 1)
    if not first or first[0].lower() not in ("select", "with"):
        raise ValueError("lookup query: must be a SELECT (or WITH ... SELECT) statement")
    return body


class SqlLookup:
    """The first row of one read-only query, with bind parameters from flow variables."""

    def __init__(
        self,
        engine: AsyncEngine,
        query: str,
        params: Mapping[str, str],
        timeout: float,
    ) -> None:
        if timeout <= 0:
            raise ValueError("lookup timeout must be positive")
        self._engine = engine
        self._statement = text(_single_select(query))
        binds = set(self._statement.compile().params)
        if binds != set(params):
            raise ValueError(
                "lookup query: bind parameters "
                f"{sorted(binds)} and params {sorted(params)} must name the same values"
            )
        self._params = {name: Template(source) for name, source in params.items()}
        self._timeout = timeout
        self._target = " ".join(query.split())[:120]  # for the logs: no caller data in it

    @property
    def required_variables(self) -> frozenset[str]:
        return frozenset().union(*(t.variables for t in self._params.values()))

    async def lookup(self, variables: Mapping[str, str]) -> LookupResult:
        started = time.monotonic()
        try:
            bound = {name: t.render(variables) for name, t in self._params.items()}
            row = await _within(self._timeout, self._query(bound))
        except LookupFailed as failure:
            _log_failure("sql", self._target, started, failure)
            raise
        if row is None:
            return LookupResult(found=False)
        return LookupResult(found=True, values={k: as_text(v) for k, v in row.items()})

    async def _query(self, bound: dict[str, str]) -> dict[str, Any] | None:
        # The server gives up a little after us: our own deadline answers the caller, the
        # server's makes sure the query stops even if our cancel request is lost.
        server_ms = int(self._timeout * 1000) + 100
        try:
            async with self._engine.connect() as conn, conn.begin():
                await conn.execute(text("SET TRANSACTION READ ONLY"))
                await conn.execute(text(f"SET LOCAL statement_timeout = {server_ms:d}"))
                result = await conn.execute(self._statement, bound)
                row = result.mappings().first()
                return dict(row) if row is not None else None
        except sa_exc.DBAPIError as exc:
            raise _db_failure(exc) from exc
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise LookupFailed(UNAVAILABLE, type(exc).__name__) from exc


def _db_failure(exc: sa_exc.DBAPIError) -> LookupFailed:
    orig = exc.orig
    lines = str(orig).strip().splitlines() if orig is not None else []
    message = lines[0] if lines else type(orig).__name__
    sqlstate = getattr(orig, "sqlstate", None)
    detail = f"{sqlstate} {message}" if sqlstate else message
    if isinstance(orig, psycopg.errors.QueryCanceled):
        return LookupFailed(TIMEOUT, detail)
    if exc.connection_invalidated or isinstance(
        orig, psycopg.OperationalError | psycopg.InterfaceError
    ):
        return LookupFailed(UNAVAILABLE, detail)
    return LookupFailed(QUERY_ERROR, detail)


# --- HTTP ---------------------------------------------------------------------------

_FIXED_ORIGIN = re.compile(r"https?://[^/?#{}]+(?:[/?#]|\Z)", re.I)
MAX_BODY = 1 << 20


class HttpLookup:
    """One call to a JSON API; 404 means "no such customer".

    ``headers`` (API keys, ``Authorization``) are sent but never logged or shown in
    ``repr``; the logs name the API by its URL template without the query string.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url_template: str,
        *,
        method: str = "GET",
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
        timeout: float = 3.0,
        max_body: int = MAX_BODY,
    ) -> None:
        if timeout <= 0:
            raise ValueError("lookup timeout must be positive")
        if not _FIXED_ORIGIN.match(url_template):
            raise ValueError(
                f"lookup url {url_template!r}: must start with http:// or https:// and a"
                " fixed host (variables only in the path or query)"
            )
        self._method = method.upper()
        if self._method not in ("GET", "POST"):
            raise ValueError(f"lookup method {method!r}: GET or POST")
        if json is not None and self._method != "POST":
            raise ValueError("lookup: a JSON body needs method POST")
        self._session = session
        self._url = Template(url_template)
        self._params = {k: Template(v) for k, v in (params or {}).items()}
        self._json = _template_tree(json) if json is not None else None
        self._headers = {k: Template(v) for k, v in (headers or {}).items()}
        self._fields = dict(fields) if fields is not None else None
        self._timeout = timeout
        self._max_body = max_body
        self._target = url_template.split("?", 1)[0]

    def __repr__(self) -> str:
        return f"HttpLookup({self._method} {self._target!r})"

    @property
    def required_variables(self) -> frozenset[str]:
        return frozenset().union(
            self._url.variables,
            *(t.variables for t in self._params.values()),
            *(t.variables for t in self._headers.values()),
            _tree_variables(self._json),
        )

    async def lookup(self, variables: Mapping[str, str]) -> LookupResult:
        started = time.monotonic()
        try:
            url = URL(self._url.render(variables, _path_escape), encoded=True)
            params = {k: t.render(variables) for k, t in self._params.items()}
            headers = {k: t.render(variables) for k, t in self._headers.items()}
            body = _render_tree(self._json, variables) if self._json is not None else None
            data = await _within(self._timeout, self._call(url, params, headers, body))
        except LookupFailed as failure:
            _log_failure("http", self._target, started, failure)
            raise
        if data is None:
            return LookupResult(found=False)
        return LookupResult(found=True, values=self._pick(data))

    async def _call(
        self, url: URL, params: dict[str, str], headers: dict[str, str], body: Any
    ) -> dict[str, Any] | None:
        try:
            async with self._session.request(
                self._method,
                url,
                params=params or None,
                json=body,
                headers=headers,
                allow_redirects=False,
            ) as response:
                if response.status == 404:
                    return None
                if not 200 <= response.status < 300:
                    raise LookupFailed(HTTP_STATUS, f"HTTP {response.status}")
                raw = await self._read(response)
        except aiohttp.ClientError as exc:
            raise LookupFailed(UNAVAILABLE, type(exc).__name__) from exc
        try:
            data = jsonlib.loads(raw)
        except ValueError:
            raise LookupFailed(BAD_RESPONSE, "body is not JSON") from None
        if isinstance(data, list):  # a search: the first hit counts, none is not found
            data = data[0] if data else None
        if data is not None and not isinstance(data, dict):
            raise LookupFailed(BAD_RESPONSE, f"JSON {type(data).__name__}, expected an object")
        return data

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self._max_body:
                raise LookupFailed(BAD_RESPONSE, f"body larger than {self._max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _pick(self, data: dict[str, Any]) -> dict[str, str]:
        if self._fields is None:  # no mapping: every value, named by its dotted path
            return dict(_flattened(data))
        return {name: as_text(_dotted(data, path)) for name, path in self._fields.items()}


def _path_escape(value: str) -> str:
    """Caller data in a URL stays one path segment or query value: every ``/?#&`` encoded."""
    return quote(value, safe="")


def _flattened(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``{"customer": {"name": "Anna"}, "ids": [7]}`` as ``customer.name``, ``ids.0``."""
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, dict | list) and value:
            yield from _flattened(value, f"{name}.")
        else:
            yield name, as_text(value)


def _dotted(data: Any, path: str) -> Any:
    """``customer.segment`` or ``accounts.0.iban`` in JSON data; None when absent."""
    for key in path.split("."):
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data
