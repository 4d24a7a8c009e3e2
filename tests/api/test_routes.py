"""Every route the daemon's HTTP server registers (API, pages, metrics) that can change
something is in the OpenAPI document, so the authorization tests, which enumerate the
document, cover it: a POST added outside the endpoint table fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.api.app import build_app
from acd.api.context import AppContext
from acd.api.endpoints import ENDPOINTS, PREFIX
from acd.config import Settings
from acd.db.engine import make_async_engine
from acd.ivr.registry import FlowRegistry

pytestmark = pytest.mark.postgres


async def test_every_changing_route_is_a_documented_endpoint(pg_url: str, tmp_path: Path) -> None:
    engine = make_async_engine(pg_url)
    try:
        app = build_app(
            AppContext(settings=Settings(), engine=engine, flows=FlowRegistry(tmp_path))
        )
        changing = {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None and route.method not in ("GET", "HEAD", "OPTIONS")
        }
    finally:
        await engine.dispose()
    documented = {(e.method, PREFIX + e.path) for e in ENDPOINTS if e.mutating}
    assert changing - documented == set()
    assert changing == documented  # and every documented one is served
