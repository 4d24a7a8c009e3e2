"""IVR flows: list, validate, upload a version, activate it, roll back."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from acd.api import audit, flowstore
from acd.api.auth import EVERYONE, SUPERVISOR
from acd.api.endpoints import ApiError, Call, endpoint

MAX_FLOW = 2_000_000


class ProblemOut(BaseModel):
    file: str
    line: int
    column: int
    field: str
    message: str
    #: ``file:line:column: field: message``, as ``acd flows check`` prints it.
    text: str


class FlowOut(BaseModel):
    name: str
    version: int
    sha256: str
    file: str
    description: str
    #: The upload whose content is live (null: a file put there by hand).
    active_seq: int | None
    uploads: int


class UploadOut(BaseModel):
    flow: str
    seq: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime
    comment: str
    activated_at: datetime | None
    active: bool


class UploadDetailOut(UploadOut):
    content: str


class FlowDetailOut(FlowOut):
    content: str
    versions: list[UploadOut]


class ContentIn(BaseModel):
    #: The flow file's YAML text.
    content: str = Field(min_length=1, max_length=MAX_FLOW)
    #: What changed (kept with the version).
    comment: str = Field(default="", max_length=1000)


class ValidateIn(BaseModel):
    content: str = Field(min_length=1, max_length=MAX_FLOW)
    #: Validate as this flow (default: the name its ``flow:`` field declares).
    flow: str | None = Field(default=None, max_length=64)


class ValidationOut(BaseModel):
    ok: bool
    flow: str | None
    version: int | None
    problems: list[ProblemOut]


class ActivationOut(BaseModel):
    flow: str
    seq: int
    sha256: str
    version: int | None
    #: The registry's generation now serving calls that start from now on.
    generation: int


class RollbackIn(BaseModel):
    #: The version to go back to (default: the one last active before the current).
    to_seq: int | None = Field(default=None, ge=1)


def _name(call: Call) -> str:
    name = call.path["name"]
    if not flowstore.FLOW_NAME.match(name):
        raise ApiError(404, f"no flow named {name!r}")
    return name


def _seq(call: Call) -> int:
    try:
        seq = int(call.path["seq"])
    except ValueError:
        raise ApiError(404, f"no version {call.path['seq']!r}") from None
    if not 1 <= seq <= 2**31 - 1:
        raise ApiError(404, f"no version {seq}")
    return seq


def _upload_out(row: dict[str, object], live_sha: str) -> UploadOut:
    return UploadOut.model_validate({**row, "active": row["sha256"] == live_sha})


async def _flow_out(call: Call, name: str) -> FlowOut:
    current = call.ctx.flows.current
    flow = current.flows.get(name)
    if flow is None:
        raise ApiError(404, f"no flow named {name!r}")
    live_sha = current.hash_of(name)
    uploads = await flowstore.uploads(call.ctx.engine, name)
    active = [u["seq"] for u in uploads if u["sha256"] == live_sha]
    return FlowOut(
        name=name,
        version=flow.version,
        sha256=live_sha,
        file=flow.source.file if flow.source else "",
        description=flow.description or "",
        active_seq=active[-1] if active else None,
        uploads=len(uploads),
    )


@endpoint(
    "GET", "/flows", summary="Live IVR flows", tag="flows", roles=EVERYONE, response=list[FlowOut]
)
async def list_flows(call: Call) -> list[FlowOut]:
    """The flows calls run now, each with its live content hash and upload count."""
    return [await _flow_out(call, name) for name in sorted(call.ctx.flows.current.flows)]


@endpoint(
    "GET",
    "/flows/{name}",
    summary="One flow: live content and its versions",
    tag="flows",
    roles=EVERYONE,
    response=FlowDetailOut,
    errors=(404,),
)
async def get_flow(call: Call) -> FlowDetailOut:
    name = _name(call)
    out = await _flow_out(call, name)
    content = await asyncio.to_thread(Path(out.file).read_text, "utf-8") if out.file else ""
    live = call.ctx.flows.current.hash_of(name)
    versions = [_upload_out(u, live) for u in await flowstore.uploads(call.ctx.engine, name)]
    return FlowDetailOut(**out.model_dump(), content=content, versions=versions)


@endpoint(
    "POST",
    "/flows/validate",
    summary="Validate a flow file without storing it",
    tag="flows",
    roles=SUPERVISOR,
    body=ValidateIn,
    response=ValidationOut,
)
async def validate_flow(call: Call) -> ValidationOut:
    """Checked with the live flows (subflows, unique names), like ``acd flows check``:
    every problem with file, line, column and field."""
    body: ValidateIn = call.body
    checked = await flowstore.validate(call.ctx.flows, body.content, body.flow)
    return ValidationOut(
        ok=checked.ok,
        flow=checked.flow,
        version=checked.version,
        problems=[ProblemOut(**flowstore.problem_json(p)) for p in checked.problems],
    )


@endpoint(
    "GET",
    "/flows/{name}/versions",
    summary="Uploaded versions of a flow",
    tag="flows",
    roles=EVERYONE,
    response=list[UploadOut],
)
async def list_versions(call: Call) -> list[UploadOut]:
    name = _name(call)
    live = call.ctx.flows.current.hash_of(name)
    return [_upload_out(u, live) for u in await flowstore.uploads(call.ctx.engine, name)]


@endpoint(
    "POST",
    "/flows/{name}/versions",
    summary="Upload a new version (not live yet)",
    tag="flows",
    roles=SUPERVISOR,
    body=ContentIn,
    response=UploadOut,
    status=201,
    errors=(404,),
)
async def upload_version(call: Call) -> UploadOut:
    """Refused with 422 and every problem (file, line, column, field) unless the flows
    would load with it; a new flow name is a new flow. Activate it to put it live."""
    name = _name(call)
    body: ContentIn = call.body
    checked = await flowstore.validate(call.ctx.flows, body.content, name)
    if not checked.ok:
        raise ApiError(
            422,
            f"{len(checked.problems)} problem(s) in the flow",
            problems=[flowstore.problem_json(p) for p in checked.problems],
        )
    assert call.user is not None
    async with call.ctx.engine.begin() as conn:
        row = await flowstore.store(conn, name, body.content, call.user.name, body.comment)
    await audit.record(
        call.ctx,
        call.user,
        "flow.upload",
        f"flow:{name}",
        after={"seq": row["seq"], "sha256": row["sha256"], "comment": body.comment},
    )
    return _upload_out(row, call.ctx.flows.current.hash_of(name))


@endpoint(
    "GET",
    "/flows/{name}/versions/{seq}",
    summary="One uploaded version, with content",
    tag="flows",
    roles=EVERYONE,
    response=UploadDetailOut,
    errors=(404,),
)
async def get_version(call: Call) -> UploadDetailOut:
    name, seq = _name(call), _seq(call)
    row = await flowstore.upload(call.ctx.engine, name, seq)
    if row is None:
        raise ApiError(404, f"flow {name!r} has no version {seq}")
    live = call.ctx.flows.current.hash_of(name)
    return UploadDetailOut.model_validate({**row, "active": row["sha256"] == live})


async def _activate(call: Call, name: str, seq: int, action: str) -> ActivationOut:
    try:
        result = await flowstore.activate(call.ctx.engine, call.ctx.flows, name, seq)
    except KeyError:
        raise ApiError(404, f"flow {name!r} has no version {seq}") from None
    except flowstore.ActivationError as exc:
        raise ApiError(
            409, str(exc), problems=[flowstore.problem_json(p) for p in exc.problems]
        ) from None
    assert call.user is not None
    await audit.record(
        call.ctx, call.user, action, f"flow:{name}", before=result["before"], after=result["after"]
    )
    return ActivationOut(
        flow=name,
        seq=seq,
        sha256=result["after"]["sha256"],
        version=result["version"],
        generation=result["generation"],
    )


@endpoint(
    "POST",
    "/flows/{name}/versions/{seq}/activate",
    summary="Put a version live",
    tag="flows",
    roles=SUPERVISOR,
    response=ActivationOut,
    errors=(404, 409),
)
async def activate_version(call: Call) -> ActivationOut:
    """Writes the flows folder's file atomically and reloads the registry at once: calls
    that start from now on run it (calls in progress keep theirs)."""
    return await _activate(call, _name(call), _seq(call), "flow.activate")


@endpoint(
    "POST",
    "/flows/{name}/rollback",
    summary="Go back to the previous version",
    tag="flows",
    roles=SUPERVISOR,
    body=RollbackIn,
    response=ActivationOut,
    errors=(404, 409),
)
async def rollback_flow(call: Call) -> ActivationOut:
    """Activates ``to_seq``, or the version last active before the current one."""
    name = _name(call)
    body: RollbackIn = call.body
    seq = body.to_seq
    if seq is None:
        live = call.ctx.flows.current.hash_of(name)
        seq = await flowstore.rollback_target(call.ctx.engine, name, live)
        if seq is None:
            raise ApiError(409, f"flow {name!r} has no earlier version to go back to")
    return await _activate(call, name, seq, "flow.rollback")
