"""A caller waiting for an agent, inside their FastAGI session.

The caller hears the queue's music on hold (``SET MUSIC ON``) while the session waits
for a key in short slices (``WAIT FOR DIGIT``), so it notices at once when the service
connects an agent (the service also "presses" ``D`` on the channel to cut a slice
short), when the caller presses the callback key, and when an announcement is due.
Announcements use Asterisk's stock queue prompts: position ("you are next" / "there are
N calls waiting"), the expected wait in minutes when it can be estimated, and the
callback offer.

The session then ends with ``ACD_OUTCOME`` for ``[acd-ivr-outcome]``: ``connect`` (with
``ACD_AGENT_CHANNEL`` to bridge), ``queue_timeout``, or ``callback``.
"""

from __future__ import annotations

import time
from datetime import datetime

from acd.agi import AGIHangup
from acd.core.calls import CallRecord, Disposition
from acd.core.estimate import announced_minutes
from acd.inbound import InboundCall
from acd.log import get_logger
from acd.queues.service import WAKE_DIGIT, AcdService, QueueRequest, QueueResult, Waiter

log = get_logger(__name__)

#: Longest slice of silence-with-music between two looks at the caller's state.
SLICE_MS = 1000


async def wait_for_agent(
    service: AcdService, call: InboundCall, request: QueueRequest
) -> QueueResult:
    """Hold the caller until an agent answers, the wait runs out, or they take a
    callback; a hangup raises ``AGIHangup`` after the abandon is recorded."""
    env = call.agi.env
    call.queue = request.queue

    def record(ended_at: datetime, outcome: str | None, agent_id: str | None) -> CallRecord:
        call.queue_outcome = outcome or call.queue_outcome
        call.agent_id = agent_id or call.agent_id
        return call.record(Disposition.COMPLETED, max(ended_at, call.started_at))

    try:
        waiter = service.join(
            request,
            uniqueid=env.uniqueid,
            channel=env.channel,
            caller_number=_known(env.callerid),
            caller_name=_known(env.calleridname),
            record=record,
        )
    except KeyError:
        log.warning("acd_unknown_queue", queue=request.queue)
        return QueueResult("unavailable", request.queue)
    try:
        await call.answer()
        result = await _hold(service, call, waiter, request)
    except AGIHangup:
        service.abandon(waiter)
        call.queue_outcome = "abandoned"
        raise
    except BaseException:
        service.abandon(waiter)
        raise
    call.queue = result.queue
    call.queue_outcome = result.outcome
    call.agent_id = result.agent_id
    await _hand_over(call, result)
    return result


async def _hold(
    service: AcdService, call: InboundCall, waiter: Waiter, request: QueueRequest
) -> QueueResult:
    agi = call.agi
    config = service.queue_config(waiter.queue)
    keys = (config.callback_key or "") + WAKE_DIGIT
    deadline = None if request.max_wait is None else waiter.joined + request.max_wait
    next_announcement = time.monotonic()  # the first one straight away
    await _music(call, config.music_class)
    while waiter.result is None:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            service.give_up(waiter)
            break
        if now >= next_announcement and waiter.ringing is None:
            config = service.queue_config(waiter.queue)  # it may have overflowed
            key = await _announce(service, call, waiter, keys)
            next_announcement = time.monotonic() + config.announce_every
            if waiter.result is None and key and key == config.callback_key:
                await _take_callback(service, call, waiter)
                break
            if waiter.result is None:
                await _music(call, config.music_class)
            continue
        until = min(next_announcement, deadline if deadline is not None else next_announcement)
        ms = int(min(SLICE_MS, max(50.0, (until - now) * 1000)))
        digit = await agi.wait_for_digit(ms)
        if digit and digit == config.callback_key and waiter.result is None:
            await agi.command("SET MUSIC OFF")
            await _take_callback(service, call, waiter)
    assert waiter.result is not None
    return waiter.result


async def _music(call: InboundCall, music_class: str) -> None:
    await call.agi.command("SET MUSIC ON", music_class)


async def _announce(
    service: AcdService, call: InboundCall, waiter: Waiter, keys: str
) -> str | None:
    """Position, expected wait, callback offer; returns a key pressed during them."""
    agi = call.agi
    config = service.queue_config(waiter.queue)
    position = service.position(waiter)
    wait = service.expected_wait(waiter)
    prompts: list[str | int] = []
    if config.announce_position and position is not None:
        prompts += (
            ["queue-youarenext"]
            if position == 1
            else ["queue-thereare", position, "queue-callswaiting"]
        )
    if config.announce_wait and wait is not None:
        minutes = announced_minutes(wait)
        prompts += ["queue-holdtime"]
        prompts += (
            ["queue-less-than", 1, "queue-minute"] if wait < 60 else [minutes, "queue-minutes"]
        )
    if config.callback_key:
        prompts += ["vm-press", f"digits/{config.callback_key}", "vm-tocallback"]
    if not prompts:
        return None
    service.announced(waiter, position, wait)
    await agi.command("SET MUSIC OFF")
    for prompt in prompts:
        if waiter.result is not None:
            return None
        if isinstance(prompt, int):
            key = await agi.say_number(prompt, keys)
        else:
            key = await agi.stream_file(prompt, keys)
        if key and key != WAKE_DIGIT:
            return key
    return None


async def _take_callback(service: AcdService, call: InboundCall, waiter: Waiter) -> None:
    if service.request_callback(waiter):
        await call.agi.stream_file("auth-thankyou")


async def _hand_over(call: InboundCall, result: QueueResult) -> None:
    """Leave the outcome for ``[acd-ivr-outcome]``."""
    agi = call.agi
    outcome = {"connected": "connect", "timeout": "queue_timeout", "callback": "callback"}.get(
        result.outcome, "error"
    )
    if result.outcome == "connected":
        await agi.command("SET MUSIC OFF")
    await agi.set_variable("ACD_OUTCOME", outcome)
    await agi.set_variable("ACD_QUEUE", result.queue)
    await agi.set_variable("ACD_AGENT", result.agent_id or "")
    await agi.set_variable("ACD_AGENT_CHANNEL", result.agent_channel or "")


def _known(value: str | None) -> str:
    return "" if value is None or value.lower() == "unknown" else value
