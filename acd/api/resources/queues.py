"""The queues file from the API: check it and make an edit live now."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from acd.api import audit, flowstore
from acd.api.auth import SUPERVISOR
from acd.api.endpoints import ApiError, Call, endpoint
from acd.queues.config import CenterConfig, QueuesConfigError, load_queues


class QueuesReloadOut(BaseModel):
    file: str
    #: True when the file differed from the configuration in force and went live.
    changed: bool
    queues: list[str]
    agents: list[str]


def _summary(config: CenterConfig | None) -> dict[str, list[str]]:
    if config is None:
        return {"queues": [], "agents": []}
    return {"queues": sorted(config.queues), "agents": sorted(config.agents)}


@endpoint(
    "POST",
    "/queues/reload",
    summary="Re-read the queues file now",
    tag="queues",
    roles=SUPERVISOR,
    response=QueuesReloadOut,
    errors=(409, 503),
)
async def reload_queues(call: Call) -> QueuesReloadOut:
    """After an edit of ``[acd] queues_file``: a file with problems is refused with 409
    and every problem (file, line, column, field); the configuration in force stays.
    Agents stay logged in."""
    watcher = call.ctx.queues
    if watcher is None:
        raise ApiError(503, "the daemon runs without a queues file ([acd] queues_file)")
    try:
        await asyncio.to_thread(load_queues, watcher.path)
    except QueuesConfigError as exc:
        problems = [flowstore.problem_json(p) for p in exc.problems]
        raise ApiError(
            409, f"{len(problems)} problem(s) in {watcher.path}", problems=problems
        ) from None
    before = _summary(watcher.current)
    changed = await watcher.reload()
    after = _summary(watcher.current)
    assert call.user is not None
    await audit.record(
        call.ctx,
        call.user,
        "queues.reload",
        f"queues:{watcher.path.name}",
        before=before | {"changed": changed},
        after=after,
    )
    return QueuesReloadOut(file=str(watcher.path), changed=changed, **after)
