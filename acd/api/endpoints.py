"""The API's path table: every endpoint once, with its roles and models; and the
OpenAPI 3 document generated from that same table.

We keep our own small table instead of a framework (aiohttp-pydantic and friends): the
roles of each endpoint live next to its path, so the tests can enumerate the OpenAPI
document and check every mutating endpoint refuses a viewer and an anonymous caller,
and the document cannot drift from what is served. Bodies and query strings are
pydantic models; a bad one is a 422 naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import InterfaceError, OperationalError

from acd.api.auth import Principal, Role, require
from acd.api.context import CTX, AppContext
from acd.log import get_logger

log = get_logger(__name__)

PREFIX = "/api/v1"


@dataclass(frozen=True, slots=True)
class Call:
    """One request as a handler sees it: who, the parsed body and query, path values."""

    request: web.Request
    ctx: AppContext
    user: Principal | None
    body: Any
    query: Any
    path: dict[str, str]


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # below PREFIX, aiohttp syntax: /agents/{agent_id}
    handler: Handler
    summary: str
    tag: str
    #: Roles allowed; None: no login needed (login, health, the document itself).
    roles: frozenset[Role] | None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None  # a pydantic model or type for TypeAdapter; None: no body
    status: int = 200
    errors: tuple[int, ...] = ()
    description: str = ""
    #: Other media types the success response may have (``text/csv`` for ``format=csv``).
    media: tuple[str, ...] = ()

    @property
    def mutating(self) -> bool:
        return self.method != "GET"


class ApiError(Exception):
    """An error the client can act on: status and a message naming the problem."""

    def __init__(self, status: int, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


class ErrorOut(BaseModel):
    error: str
    problems: list[dict[str, Any]] | None = None


def _json(status: int, payload: Any) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda v: json.dumps(v, default=str))


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every API error is JSON ``{"error": ...}``; an unexpected one is logged, a 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _json(exc.status, {"error": exc.message, **exc.detail})
    except web.HTTPException as exc:
        if not request.path.startswith(PREFIX) or exc.content_type == "application/json":
            raise
        if exc.status < 400:
            raise
        response = _json(exc.status, {"error": exc.reason})
        for header in ("Allow", "WWW-Authenticate", "Retry-After"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except (OperationalError, InterfaceError, sa_exc.TimeoutError, ConnectionError) as exc:
        # PostgreSQL away: the live view and the calls go on; this request cannot.
        log.warning("http_db_unavailable", path=request.path, error=type(exc).__name__)
        return _json(503, {"error": "the database is unavailable; try again shortly"})
    except Exception:
        log.exception("http_handler_failed", method=request.method, path=request.path)
        return _json(500, {"error": "internal error (logged)"})


def _problems(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(part) for part in err["loc"]) or where,
            "message": err["msg"],
            "in": where,
        }
        for err in exc.errors()
    ]


def _nul_at(value: Any, where: str) -> str | None:
    """The field holding a NUL character, if any: PostgreSQL text cannot store one, so
    such input is refused up front (a 422, not a database error)."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _nul_at(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def _refuse_nul(value: Any, where: str) -> None:
    field = _nul_at(value, "")
    if field is not None:
        raise ApiError(
            422,
            f"{field}: NUL characters are not allowed",
            problems=[{"field": field, "message": "contains a NUL character", "in": where}],
        )


def _wrap(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    response_adapter = TypeAdapter(endpoint.response) if endpoint.response is not None else None

    async def handle(request: web.Request) -> web.StreamResponse:
        user = None if endpoint.roles is None else require(request, endpoint.roles)
        _refuse_nul(dict(request.match_info), "path")
        _refuse_nul(dict(request.query), "query")
        query = None
        if endpoint.query is not None:
            try:
                query = endpoint.query.model_validate(dict(request.query))
            except ValidationError as exc:
                raise ApiError(422, "invalid query", problems=_problems(exc, "query")) from None
        body = None
        if endpoint.body is not None:
            raw = await request.read()
            try:
                body = endpoint.body.model_validate_json(raw or b"{}")
            except ValidationError as exc:
                raise ApiError(422, "invalid body", problems=_problems(exc, "body")) from None
            _refuse_nul(body.model_dump(), "body")
        call = Call(request, request.app[CTX], user, body, query, dict(request.match_info))
        result = await endpoint.handler(call)
        if isinstance(result, web.StreamResponse):
            return result
        if response_adapter is None:
            return web.Response(status=204 if endpoint.status == 200 else endpoint.status)
        payload = response_adapter.dump_python(result, mode="json")
        return _json(endpoint.status, payload)

    handle.__name__ = endpoint.handler.__name__
    return handle


ENDPOINTS: list[Endpoint] = []


def endpoint(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    roles: frozenset[Role] | None,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    media: tuple[str, ...] = (),
) -> Callable[[Handler], Handler]:
    """Declare an endpoint (decorator); the handler's docstring is its description."""

    def register(handler: Handler) -> Handler:
        ENDPOINTS.append(
            Endpoint(
                method,
                path,
                handler,
                summary,
                tag,
                roles,
                body,
                query,
                response,
                status,
                errors,
                (handler.__doc__ or "").strip(),
                media,
            )
        )
        return handler

    return register


def setup(app: web.Application, ctx: AppContext) -> None:
    """Register every endpoint of the table, and the OpenAPI document."""
    # Importing the resource modules fills ENDPOINTS (once per process).
    from acd.api import resources  # noqa: F401
    from acd.api.openapi import openapi_document

    for item in ENDPOINTS:
        app.router.add_route(item.method, PREFIX + item.path, _wrap(item))
    document = openapi_document(ENDPOINTS, PREFIX)

    async def serve_document(_request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(PREFIX + "/openapi.json", serve_document)
