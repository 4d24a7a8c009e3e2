"""The ``flow`` AGI route: run a YAML flow on a live call and hand the result to the dialplan.

Contract with ``[acd-ivr]`` in ``dialplan/extensions_acd.conf``::

    AGI(agi://host:port/flow?name=<flow>)      (no name: [ivr] entry_flow)

When the session ends the channel has ``ACD_OUTCOME`` = queue | transfer | voicemail |
callback | hangup | return | error, and, where they apply, ``ACD_QUEUE``, ``ACD_SKILLS``
(comma separated), ``ACD_PRIORITY``, ``ACD_MAX_WAIT``, ``ACD_DESTINATION``,
``ACD_EXTERNAL`` (1 for an outside number), ``ACD_MAILBOX``, ``ACD_CALLBACK`` (the
number confirmed), ``ACD_CALLBACK_QUEUE``. Every step is recorded in ``ivr_steps`` and
the outcome kind in ``calls.ivr_outcome``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.core.routing import parse_skills
from acd.db.models import flow_versions, ivr_steps
from acd.db.writer import Row
from acd.inbound import InboundCall
from acd.ivr.agi_port import AgiCallPort
from acd.ivr.interpreter import Interpreter, Outcome, Step
from acd.ivr.loader import FlowSet
from acd.ivr.lookup import HttpLookup, Lookup, SqlLookup
from acd.ivr.model import LookupNode
from acd.ivr.registry import FlowRegistry, FlowVersion
from acd.log import get_logger
from acd.queues.service import AcdService, QueueRequest
from acd.queues.waiting import wait_for_agent

__all__ = [
    "FlowRoute",
    "attached_data",
    "build_lookups",
    "outcome_variables",
    "step_row",
    "version_row",
]

log = get_logger(__name__)

RowSink = Callable[[Row], None]


def outcome_variables(outcome: Outcome) -> dict[str, str]:
    """The channel variables ``[acd-ivr-outcome]`` reads; every one is set (maybe empty)
    so a value from an earlier pass through the IVR cannot leak into this one."""
    kind = "hangup" if outcome.kind == "caller_hangup" else outcome.kind
    return {
        "ACD_OUTCOME": kind,
        "ACD_QUEUE": outcome.queue,
        "ACD_SKILLS": ",".join(outcome.skills),
        "ACD_PRIORITY": str(outcome.priority) if outcome.kind == "queue" else "",
        "ACD_MAX_WAIT": "" if outcome.max_wait is None else f"{outcome.max_wait:g}",
        "ACD_DESTINATION": outcome.destination,
        "ACD_EXTERNAL": "1" if outcome.external else "",
        "ACD_MAILBOX": outcome.mailbox,
        "ACD_CALLBACK": outcome.callback_number,
        "ACD_CALLBACK_QUEUE": outcome.callback_queue,
    }


def step_row(uniqueid: str, step: Step, flow_hash: str) -> Row:
    """An ``ivr_steps`` row; (uniqueid, seq) is its key, so a re-sent batch adds nothing."""
    return Row(
        ivr_steps,
        (uniqueid, step.seq),
        {
            "uniqueid": uniqueid,
            "seq": step.seq,
            "flow": step.flow,
            "flow_version": step.flow_version,
            "flow_hash": flow_hash,
            "node_id": step.node_id,
            "kind": step.kind,
            "at": step.at,
            "digits": step.digits,
            "result": step.result,
            "detail": _jsonable(step.detail),
        },
    )


def version_row(version: FlowVersion) -> Row:
    """A ``flow_versions`` row for a flow that just went live."""
    return Row(
        flow_versions,
        (version.flow, version.sha256, version.activated_at),
        {
            "flow": version.flow,
            "version": version.version,
            "sha256": version.sha256,
            "file": version.file,
            "activated_at": version.activated_at,
        },
    )


def _jsonable(value: Any) -> Any:
    """Step details as JSON: mappings and lists kept, anything else as text."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def build_lookups(
    flows: FlowSet, engine: AsyncEngine | None, http: aiohttp.ClientSession | None
) -> dict[str, Lookup]:
    """A ``Lookup`` per lookup node (``"flow.node"``), built once per loaded version.

    A node whose database or HTTP client is not available gets no lookup and takes its
    ``on_failure`` branch on calls; a query the lookup refuses (not a SELECT...) raises
    ``ValueError`` and rejects the whole reload.
    """
    out: dict[str, Lookup] = {}
    for name, flow in flows.items():
        for node_id, node in flow.nodes.items():
            if not isinstance(node, LookupNode):
                continue
            key = f"{name}.{node_id}"
            try:
                if node.sql is not None and engine is not None:
                    out[key] = SqlLookup(
                        engine, node.sql.query, dict(node.sql.params), timeout=node.timeout
                    )
                elif node.http is not None and http is not None:
                    out[key] = HttpLookup(
                        http,
                        node.http.url,
                        method=node.http.method,
                        json=dict(node.http.body) if node.http.body is not None else None,
                        headers=dict(node.http.headers),
                        timeout=node.timeout,
                    )
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from exc
    return out


class FlowRoute:
    """The ``flow`` route's handler (wrapped by ``call_logged`` like every route)."""

    def __init__(
        self,
        registry: FlowRegistry,
        sink: RowSink,
        *,
        entry_flow: str,
        acd: AcdService | None = None,
    ) -> None:
        self.registry = registry
        self.sink = sink
        self.entry_flow = entry_flow
        self.acd = acd
        #: Calls in a flow right now (not while they wait in a queue): ``acd_ivr_calls``.
        self.in_ivr = 0

    async def __call__(self, call: InboundCall) -> None:
        active = self.registry.current  # this call keeps this version to its end
        env = call.agi.env
        name = env.params.get("name") or self.entry_flow
        uniqueid = env.uniqueid

        def record(step: Step) -> None:
            self.sink(step_row(uniqueid, step, active.hash_of(step.flow)))

        interpreter = Interpreter(
            active.flows,
            AgiCallPort(call),
            lookups=active.lookups,
            variables=_call_variables(call),
            on_step=record,
        )
        await call.answer()
        outcome = await self._in_ivr(interpreter.run(name))
        while True:
            call.ivr_outcome = outcome.kind
            log.info(
                "ivr_outcome",
                flow=name,
                outcome=outcome.kind,
                node=outcome.node_id,
                generation=active.generation,
                steps=len(interpreter.steps),
                reason=outcome.reason or None,
            )
            if outcome.kind == "caller_hangup" or call.agi.hung_up:
                return
            attached = attached_data(name, interpreter.steps)
            self._leave_callback(call, outcome, attached)
            request = self._queue_request(outcome, attached)
            if request is None:
                break
            # The caller waits for an agent in this same session, so the call keeps one
            # record from the first prompt to the agent.
            result = await wait_for_agent(self.acd, call, request)  # type: ignore[arg-type]
            if result.outcome != "timeout" or not outcome.on_timeout:
                return
            outcome = await self._in_ivr(interpreter.run(outcome.flow, node=outcome.on_timeout))
        for variable, value in outcome_variables(outcome).items():
            await call.agi.set_variable(variable, value)

    async def _in_ivr(self, run: Awaitable[Outcome]) -> Outcome:
        self.in_ivr += 1
        try:
            return await run
        finally:
            self.in_ivr -= 1

    def _leave_callback(
        self, call: InboundCall, outcome: Outcome, attached: Mapping[str, Any]
    ) -> None:
        """A callback the caller confirmed in the flow goes into its queue in the ACD."""
        if outcome.kind != "callback" or self.acd is None or not outcome.callback_number:
            return
        try:
            self.acd.leave_callback(
                outcome.callback_queue,
                outcome.callback_number,
                uniqueid=call.agi.env.uniqueid,
                attached=attached,
                name=_known(call.agi.env.calleridname),
            )
        except KeyError:
            log.warning("acd_queue_not_configured", queue=outcome.callback_queue)
            return
        call.queue, call.queue_outcome = outcome.callback_queue, "callback"

    def _queue_request(self, outcome: Outcome, attached: Mapping[str, Any]) -> QueueRequest | None:
        """The ACD wait for a queue outcome, when the daemon has that queue; ``attached``
        goes with the call to the agent's screen."""
        if outcome.kind != "queue" or self.acd is None:
            return None
        if not self.acd.has_queue(outcome.queue):
            log.warning("acd_queue_not_configured", queue=outcome.queue)
            return None
        try:
            skills = parse_skills(outcome.skills)
        except ValueError as exc:
            log.warning("acd_flow_skills_invalid", queue=outcome.queue, error=str(exc))
            return None
        return QueueRequest(
            outcome.queue, skills, outcome.priority, outcome.max_wait, attached=attached
        )


def attached_data(flow: str, steps: Sequence[Step]) -> dict[str, Any]:
    """What the agent's screen pop shows of the IVR: the nodes the caller went through
    and what the lookups found (secrets were withheld by the interpreter already)."""
    customer: dict[str, Any] = {}
    for step in steps:
        if step.kind == "lookup" and step.result == "found":
            values = step.detail.get("values")
            if isinstance(values, Mapping):
                customer.update(_jsonable(values))
    return {
        "flow": flow,
        "ivr_path": [step.node_id for step in steps],
        "customer": customer,
    }


def _call_variables(call: InboundCall) -> dict[str, str]:
    """What a flow knows about the call from the start (``{caller.number}``...)."""
    env = call.agi.env
    return {
        "caller.number": _known(env.callerid),
        "caller.name": _known(env.calleridname),
        "dialed.number": _known(env.dnid) or ("" if env.extension == "s" else env.extension),
        "call.uniqueid": env.uniqueid,
        "call.channel": env.channel,
        "call.linkedid": call.linkedid or env.uniqueid,
    }


def _known(value: str | None) -> str:
    return "" if value is None or value.lower() == "unknown" else value
