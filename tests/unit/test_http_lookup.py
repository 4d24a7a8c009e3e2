"""HTTP customer lookups against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import acd.ivr.lookup
from acd.ivr.lookup import HttpLookup, LookupFailed, LookupResult, Template
from tests.fixtures.logs import LogRecorder, record_logs

TOKEN = "Bearer s3cret-t0ken-4711"

CUSTOMER = {
    "customer": {"name": "Anna Schmidt", "segment": "vip", "since": 2019},
    "balance": {"amount": 15230.75, "currency": "EUR"},
    "accounts": [{"iban": "DE02120300000000202051"}, {"iban": "DE02500105170137075030"}],
    "active": True,
    "note": None,
    "language": "de",
}


@dataclass
class Api:
    """The fake customer API and what it saw."""

    base: str
    requests: list[web.Request] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    seen = Api(base="")

    @web.middleware
    async def record(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        seen.requests.append(request)
        return await handler(request)  # type: ignore[no-any-return]

    async def customer(request: web.Request) -> web.StreamResponse:
        account = request.match_info["account"]
        if account == "1001":
            return web.json_response(CUSTOMER)
        if account == "boom":
            return web.json_response({"error": "internal"}, status=500)
        if account == "html":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        if account == "string":
            return web.json_response("hello")
        if account == "slow":
            await asyncio.sleep(5)
            return web.json_response(CUSTOMER)
        if account == "huge":
            return web.json_response({"blob": "x" * (2 << 20)})
        if account == "moved":
            raise web.HTTPFound("/customers/1001")
        return web.json_response({"error": "no such customer"}, status=404)

    async def search(request: web.Request) -> web.StreamResponse:
        if request.query.get("phone") == "+49 30 1234567":
            return web.json_response([CUSTOMER["customer"], {"name": "second hit"}])
        return web.json_response([])

    async def post(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.bodies.append(body)
        return web.json_response({"echo": body})

    app = web.Application(middlewares=[record])
    app.router.add_get("/customers/{account}", customer)
    app.router.add_get("/search", search)
    app.router.add_post("/lookup", post)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    seen.base = f"http://127.0.0.1:{server.port}"
    try:
        yield seen
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    return record_logs(monkeypatch, acd.ivr.lookup)


def by_account(api: Api, session: aiohttp.ClientSession, **kw: Any) -> HttpLookup:
    kw.setdefault("timeout", 2.0)
    return HttpLookup(session, api.base + "/customers/{account}", **kw)


async def fails(lookup: HttpLookup, variables: dict[str, str]) -> LookupFailed:
    with pytest.raises(LookupFailed) as failed:
        await lookup.lookup(variables)
    return failed.value


# --- answers ------------------------------------------------------------------------


async def test_dotted_fields_become_flow_variables(
    api: Api, session: aiohttp.ClientSession
) -> None:
    lookup = by_account(
        api,
        session,
        fields={
            "name": "customer.name",
            "segment": "customer.segment",
            "since": "customer.since",
            "balance": "balance.amount",
            "currency": "balance.currency",
            "iban": "accounts.1.iban",
            "active": "active",
            "note": "note",
            "missing": "customer.birthday",
            "beyond": "accounts.7.iban",
        },
    )
    result = await lookup.lookup({"account": "1001"})
    assert result == LookupResult(
        found=True,
        values={
            "name": "Anna Schmidt",
            "segment": "vip",
            "since": "2019",
            "balance": "15230.75",
            "currency": "EUR",
            "iban": "DE02500105170137075030",
            "active": "true",
            "note": "",
            "missing": "",
            "beyond": "",
        },
    )


async def test_without_fields_every_value_is_named_by_its_path(
    api: Api, session: aiohttp.ClientSession
) -> None:
    result = await by_account(api, session).lookup({"account": "1001"})
    assert result.values == {
        "customer.name": "Anna Schmidt",
        "customer.segment": "vip",
        "customer.since": "2019",
        "balance.amount": "15230.75",
        "balance.currency": "EUR",
        "accounts.0.iban": "DE02120300000000202051",
        "accounts.1.iban": "DE02500105170137075030",
        "active": "true",
        "note": "",
        "language": "de",
    }


async def test_404_is_not_found(api: Api, session: aiohttp.ClientSession) -> None:
    assert await by_account(api, session).lookup({"account": "4711"}) == LookupResult(False)


async def test_search_results_first_hit_counts_and_none_is_not_found(
    api: Api, session: aiohttp.ClientSession
) -> None:
    lookup = HttpLookup(
        session, api.base + "/search", params={"phone": "{caller}"}, fields={"who": "name"}
    )
    assert lookup.required_variables == {"caller"}
    found = await lookup.lookup({"caller": "+49 30 1234567"})
    assert found == LookupResult(True, {"who": "Anna Schmidt"})
    assert api.requests[-1].query["phone"] == "+49 30 1234567"  # encoded on the way
    assert await lookup.lookup({"caller": "+49 30 7654321"}) == LookupResult(False)


async def test_post_sends_the_json_body_template(api: Api, session: aiohttp.ClientSession) -> None:
    lookup = HttpLookup(
        session,
        api.base + "/lookup",
        method="post",
        json={"account": "{account}", "channel": "ivr", "limit": 1, "who": ["{caller}"]},
        fields={"account": "echo.account"},
    )
    assert lookup.required_variables == {"account", "caller"}
    result = await lookup.lookup({"account": '1001", "admin": true', "caller": "4930555"})
    assert api.bodies == [
        {"account": '1001", "admin": true', "channel": "ivr", "limit": 1, "who": ["4930555"]}
    ]
    assert result.values == {"account": '1001", "admin": true'}


async def test_caller_input_stays_one_path_segment(
    api: Api, session: aiohttp.ClientSession
) -> None:
    typed = "../search?phone=+49 30 1234567#"
    assert await by_account(api, session).lookup({"account": typed}) == LookupResult(False)
    request = api.requests[-1]
    assert request.raw_path == "/customers/..%2Fsearch%3Fphone%3D%2B49%2030%201234567%23"
    assert request.match_info["account"] == typed


# --- failures -----------------------------------------------------------------------


async def test_server_error_fails(api: Api, session: aiohttp.ClientSession) -> None:
    failed = await fails(by_account(api, session), {"account": "boom"})
    assert (failed.reason, failed.detail) == ("http_status", "HTTP 500")


async def test_redirect_is_not_followed(api: Api, session: aiohttp.ClientSession) -> None:
    failed = await fails(
        by_account(api, session, headers={"Authorization": TOKEN}), {"account": "moved"}
    )
    assert (failed.reason, failed.detail) == ("http_status", "HTTP 302")
    assert [r.path for r in api.requests] == ["/customers/moved"]


@pytest.mark.parametrize("account", ["html", "string", "huge"])
async def test_unusable_body_fails(api: Api, session: aiohttp.ClientSession, account: str) -> None:
    failed = await fails(by_account(api, session), {"account": account})
    assert failed.reason == "bad_response"


async def test_slow_api_times_out_on_time(api: Api, session: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    failed = await fails(by_account(api, session, timeout=0.3), {"account": "slow"})
    assert failed.reason == "timeout"
    assert 0.25 < time.monotonic() - started < 0.6
    # The shared session is fine for the next call.
    assert (await by_account(api, session).lookup({"account": "1001"})).found


async def test_unreachable_api_fails_fast(session: aiohttp.ClientSession) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lookup = HttpLookup(session, f"http://127.0.0.1:{port}/customers/{{account}}", timeout=3.0)
    started = time.monotonic()
    failed = await fails(lookup, {"account": "1001"})
    assert failed.reason == "unavailable"
    assert time.monotonic() - started < 1.0


async def test_missing_variable_fails(api: Api, session: aiohttp.ClientSession) -> None:
    failed = await fails(by_account(api, session), {"acount": "1001"})
    assert (failed.reason, failed.detail) == ("missing_variable", "account")
    assert api.requests == []


async def test_secrets_are_sent_but_never_shown(
    api: Api, session: aiohttp.ClientSession, logs: LogRecorder
) -> None:
    lookup = HttpLookup(
        session,
        api.base + "/customers/{account}?api_key=k3y-0815",
        headers={"Authorization": TOKEN, "X-Api-Key": "k3y-0815"},
    )
    assert (await lookup.lookup({"account": "1001"})).found
    assert api.requests[-1].headers["Authorization"] == TOKEN
    failed = await fails(lookup, {"account": "boom"})
    shown = repr(lookup) + str(failed) + repr(logs.events)
    assert [event for _, event, _ in logs.events] == ["lookup_failed"]
    assert "s3cret" not in shown and "k3y-0815" not in shown
    assert logs.events[0][2]["target"] == api.base + "/customers/{account}"


# --- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kw", "message"),
    [
        ("https://{host}/customers", {}, "fixed host"),
        ("{base}/customers", {}, "fixed host"),
        ("ftp://crm.example/customers", {}, "fixed host"),
        ("https://crm.example/customers/{account", {}, "stray '{'"),
        ("https://crm.example/c/{a b}", {}, "stray '{'"),
        ("https://crm.example/c/{a..b}", {}, "stray '{'"),
        ("https://crm.example/c/{}", {}, "stray '{'"),
        ("https://crm.example/c", {"method": "DELETE"}, "GET or POST"),
        ("https://crm.example/c", {"json": {"a": "1"}}, "needs method POST"),
        ("https://crm.example/c", {"timeout": 0}, "positive"),
    ],
)
def test_bad_configuration_is_refused(
    session: aiohttp.ClientSession, url: str, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        HttpLookup(session, url, **kw)


def test_template_braces_and_names() -> None:
    template = Template("{{literal}} {account}-{ account }/{pin_2}/{crm.segment}")
    assert template.variables == {"account", "pin_2", "crm.segment"}
    assert (
        template.render({"account": "1", "pin_2": "x", "crm.segment": "vip"})
        == "{literal} 1-1/x/vip"
    )
    with pytest.raises(LookupFailed, match="missing_variable: pin_2"):
        template.render({"account": "1", "crm.segment": "vip"})


async def test_header_values_are_templates(api: Api, session: aiohttp.ClientSession) -> None:
    lookup = by_account(api, session, headers={"X-Caller": "ivr {caller}"})
    assert lookup.required_variables == {"account", "caller"}
    await lookup.lookup({"account": "1001", "caller": "4930555101"})
    assert api.requests[-1].headers["X-Caller"] == "ivr 4930555101"
