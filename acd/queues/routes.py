"""The ACD's AGI routes: ``queue`` (a caller sent to ``[acd-queue]`` by the dialplan) and
``agent`` (an agent's feature code from ``[acd-agent-code]``).

Both are thin: they read what the dialplan passed, call the ``AcdService`` and tell
the caller or agent what happened with stock prompts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from acd.core.routing import parse_skills
from acd.inbound import InboundCall
from acd.log import get_logger
from acd.queues.service import AcdService, QueueRequest
from acd.queues.waiting import wait_for_agent

log = get_logger(__name__)

_CHANNEL_DEVICE = re.compile(r"^(?P<device>[A-Za-z0-9]+/[^;]+)-[0-9a-f]+$")


class QueueRoute:
    """``AGI(agi://host:port/queue?name=<queue>)`` with ``ACD_SKILLS`` / ``ACD_PRIORITY`` /
    ``ACD_MAX_WAIT`` read from the channel."""

    def __init__(self, service: AcdService) -> None:
        self.service = service

    async def __call__(self, call: InboundCall) -> None:
        agi = call.agi
        name = agi.env.params.get("name") or (await agi.get_variable("ACD_QUEUE")) or ""
        try:
            request = QueueRequest(
                queue=name,
                skills=parse_skills((await agi.get_variable("ACD_SKILLS") or "").split(",")),
                priority=_int(await agi.get_variable("ACD_PRIORITY"), 0, 0, 99),
                max_wait=_seconds(await agi.get_variable("ACD_MAX_WAIT")),
            )
        except ValueError as exc:
            log.warning("acd_queue_request_invalid", queue=name, error=str(exc))
            await agi.set_variable("ACD_OUTCOME", "error")
            return
        result = await wait_for_agent(self.service, call, request)
        if result.outcome == "unavailable":
            await agi.set_variable("ACD_OUTCOME", "error")


class AgentCodes:
    """``*41<agent>`` log in, ``*42`` log out, ``*43`` ready, ``*44<reason>`` not ready.

    The phone is the channel's device (``PJSIP/1001`` from ``PJSIP/1001-0000002a``), or
    the channel variable ``ACD_DEVICE`` when the dialplan sets it (phones behind Local
    channels). Not-ready reasons are digits mapped to names by ``[acd] reasons``.
    """

    def __init__(self, service: AcdService, reasons: Mapping[str, str]) -> None:
        self.service = service
        self.reasons = dict(reasons)

    async def __call__(self, call: InboundCall) -> None:
        agi = call.agi
        code = agi.env.params.get("code", "")
        device = (await agi.get_variable("ACD_DEVICE")) or device_of_channel(agi.env.channel)
        await call.answer()
        action, argument = code[:3], code[3:]
        try:
            prompt = self._run(action, argument, device)
        except (KeyError, ValueError) as exc:
            log.warning("acd_agent_code_refused", code=action, device=device, error=str(exc))
            prompt = "agent-incorrect"
        await agi.stream_file(prompt)

    def _run(self, action: str, argument: str, device: str | None) -> str:
        service = self.service
        if action == "*41":
            service.login(argument, device)
            return "agent-loginok"
        agent = service.agent_on_device(device) if device else None
        if agent is None:
            raise ValueError("no agent is logged in on this phone")
        if action == "*42":
            service.logout(agent)
            return "agent-loggedoff"
        if action == "*43":
            service.ready(agent)
            return "auth-thankyou"
        if action == "*44":
            service.not_ready(agent, self.reasons.get(argument, argument or "break"))
            return "auth-thankyou"
        raise ValueError(f"unknown agent code {action}")


def device_of_channel(channel: str) -> str | None:
    """``PJSIP/1001-0000002a`` -> ``PJSIP/1001``; None for channels that are no phone."""
    match = _CHANNEL_DEVICE.match(channel)
    if match is None or channel.startswith("Local/"):
        return None
    return match.group("device")


def _int(text: str | None, default: int, low: int, high: int) -> int:
    if not text:
        return default
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{value} is not within {low}-{high}")
    return value


def _seconds(text: str | None) -> float | None:
    if not text:
        return None
    value = float(text)
    if value <= 0:
        raise ValueError(f"max wait {text} is not positive")
    return value
