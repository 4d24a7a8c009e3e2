"""The daemon's link to the Asterisk Manager Interface (AMI), built on panoramisk.

panoramisk parses the protocol and matches replies to actions; everything about keeping
the link alive is done here, because panoramisk's own handling does not hold up in a
daemon: its Ping never checks for a Pong, it retries at a fixed pace, and it re-sends
the actions that were in flight when the connection dropped (an Originate would ring a
phone twice). So ``AmiLink`` never calls ``Manager.connect``: it opens the connection
itself, logs in, resyncs the channel registry, pings with a Pong watchdog, fails
in-flight actions with ``AmiNotConnected`` when the connection goes, and reconnects
with exponential backoff and jitter until ``stop()``.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import inspect
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message as Message  # re-exported: replies and events

from acd.ami.channels import Channel, ChannelRegistry, channel_from_event
from acd.config import AmiSettings
from acd.log import get_logger

log = get_logger(__name__)

_ERROR_RESPONSES = frozenset({"error", "fail", "failure"})
# Logoff on stop() should not hold up a shutdown for a full action timeout.
_LOGOFF_TIMEOUT = 2.0


class DownReason(StrEnum):
    """Why the link went down; passed to ``on_down`` callbacks and logged."""

    CONNECTION_CLOSED = "connection_closed"
    PONG_TIMEOUT = "pong_timeout"
    ASTERISK_SHUTDOWN = "asterisk_shutdown"
    STOPPED = "stopped"


EventCallback = Callable[[Message], Awaitable[None] | None]
UpCallback = Callable[[list[Channel]], Awaitable[None] | None]
DownCallback = Callable[[DownReason], Awaitable[None] | None]
#: Header name to value; a list value repeats the header (``Variable``).
ActionFields = Mapping[str, str | list[str]]


class AmiError(Exception):
    """Base of the errors ``AmiLink.action`` raises."""


class AmiNotConnected(AmiError):
    """The link is down, or went down before the reply came; the action is not re-sent."""


class AmiTimeout(AmiError, TimeoutError):
    """No reply within the timeout; the link itself may still be fine."""


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error``; ``message`` is its explanation."""

    def __init__(self, action: str, response: Message) -> None:
        self.action = action
        self.response = response
        self.message = _text(response, "Message")
        super().__init__(f"{action}: {self.message or 'error'}")


class _LoginRefused(AmiError):
    """Login answered with an error (bad user or secret, host not permitted)."""


def _text(message: Any, key: str) -> str:
    """A header as text; panoramisk turns a repeated header into a list."""
    value = message.get(key, "")
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value)


def backoff_delay(attempt: int, initial: float, maximum: float, rand: float) -> float:
    """Seconds to wait before retry ``attempt`` (0 = first retry).

    Full jitter over ``[initial, cap]`` with ``cap = min(maximum, initial * 2**attempt)``:
    spread like the usual full jitter, but never below ``initial`` so a PBX that refuses
    connections is not hammered. ``rand`` is a uniform draw from [0, 1].
    """
    low = min(initial, maximum)
    cap = max(low, min(maximum, initial * 2.0 ** min(attempt, 60)))
    return low + (cap - low) * rand


def _checked(name: str, reply: Any) -> Any:
    first = reply[0] if isinstance(reply, list) else reply
    if _text(first, "Response").lower() in _ERROR_RESPONSES:
        raise AmiActionError(name, first)
    return reply


def _validated(action: ActionFields) -> tuple[str, dict[str, str | list[str]]]:
    """The action's name and a copy safe to put on the wire."""
    fields = dict(action)
    name = next((str(v) for k, v in fields.items() if k.lower() == "action"), "")
    if not name:
        raise ValueError("an AMI action needs an 'Action' field")
    for key, value in fields.items():
        values = value if isinstance(value, list) else [value]
        # A line break would let a value smuggle extra headers or a whole action in.
        if any("\r" in part or "\n" in part for part in (key, *values)):
            raise ValueError(f"AMI field {key!r}: line breaks are not allowed")
    return name, fields


class _Action(Action):  # type: ignore[misc]
    """An action whose reply shape is decided by the reply itself.

    panoramisk guesses lists from the reply text, and some guesses never complete:
    QueueAdd's "Added interface to queue" leaves the future waiting forever. Asterisk
    12+ marks every list with ``EventList: start`` ... ``EventList: Complete``; only
    that makes a list here. The async Originate's ``OriginateResponse`` therefore
    reaches ``on_event`` callbacks instead of being folded into the reply.
    """

    def add_message(self, message: Message) -> bool:
        if self.future.done():
            return True
        self.responses.append(message)
        first = self.responses[0]
        if _text(first, "EventList").lower() != "start":
            self.future.set_result(first)
            return True
        ends = _text(message, "EventList").lower() == "complete" or _text(
            message, "Event"
        ).endswith("Complete")
        if len(self.responses) > 1 and ends:
            self.future.set_result(list(self.responses))
            return True
        return False


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol, fixed where a long-running daemon needs it.

    - A lost connection fails the pending actions with ``AmiNotConnected``; panoramisk
      would keep their futures pending and re-send them after the next login.
    - ``send`` does not log the action on error (a Login carries the secret).
    - Bytes are decoded incrementally: panoramisk decodes every TCP read on its own and
      drops a UTF-8 character split between two reads ("Müller" became "Mller").
    - The link hears about every loss, including a ``Shutdown`` event.
    """

    def __init__(self, manager: Manager, on_lost: Callable[[DownReason], None]) -> None:
        super().__init__()
        self.closed = False
        self._manager = manager
        self._on_lost = on_lost
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.factory = self._manager
        self.encoding = "utf-8"

    def data_received(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if text and not self.closed:
            super().data_received(text.encode("utf-8"))

    def handle_message(self, message: Message) -> None:
        if not self.closed:
            super().handle_message(message)

    def send(self, data: _Action, as_list: bool | None = None) -> asyncio.Future[Any]:
        if self.closed:
            raise AmiNotConnected("AMI connection is closed")
        self.responses[data.id] = data
        self.transport.write(str(data).encode("utf-8"))
        future: asyncio.Future[Any] = data.future
        return future

    def close(self) -> None:
        pending = {id(action): action for action in self.responses.values()}
        self.responses.clear()
        for action in pending.values():
            if not action.future.done():
                action.future.set_exception(AmiNotConnected("AMI connection lost"))
        if not self.closed:
            self.closed = True
            self.transport.close()

    def connection_lost(self, exc: Any) -> None:
        # panoramisk calls this itself, with the event, when Asterisk announces Shutdown.
        shutdown = isinstance(exc, Message)
        self.close()
        self._on_lost(DownReason.ASTERISK_SHUTDOWN if shutdown else DownReason.CONNECTION_CLOSED)


class _Manager(Manager):  # type: ignore[misc]
    """Only the event dispatch of panoramisk's Manager is used.

    Its connect/ping/reconnect machinery is never started (``connect`` and
    ``connection_made`` are not called), and the FullyBooted hook it registers to
    re-send queued actions is removed.
    """

    def __init__(self, on_event: Callable[[Any, Message], None]) -> None:
        super().__init__()
        self.callbacks.clear()
        self.patterns.clear()
        self.register_event("*", on_event)


@dataclass(eq=False)
class _Connection:
    protocol: _Protocol
    lost: asyncio.Future[DownReason]

    def drop(self, reason: DownReason) -> None:
        if not self.lost.done():
            self.lost.set_result(reason)
        self.protocol.close()


class AmiLink:
    """One AMI connection kept up for the daemon's lifetime.

    ``rand`` (uniform in [0, 1]) picks the backoff jitter; tests pin it.
    """

    def __init__(self, settings: AmiSettings, *, rand: Callable[[], float] = random.random) -> None:
        self._settings = settings
        self._rand = rand
        self.channels = ChannelRegistry()
        self.reconnects = 0
        self.last_pong_rtt: float | None = None
        self._manager = _Manager(self._on_ami_event)
        self._event_callbacks: dict[str, list[EventCallback]] = {}
        self._up_callbacks: list[UpCallback] = []
        self._down_callbacks: list[DownCallback] = []
        self._conn: _Connection | None = None
        self._up = False
        self._up_event = asyncio.Event()
        self._ever_up = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._callback_tasks: set[asyncio.Future[Any]] = set()
        # Channel events received while a resync is under way, applied after the snapshot.
        self._replay: list[Message] | None = None

    @property
    def up(self) -> bool:
        """Logged in and resynced: ``action()`` can be used."""
        return self._up

    def on_event(self, name: str, callback: EventCallback) -> None:
        """Call ``callback(event)`` for events named ``name`` (any case), or all with ``'*'``.

        Events nobody registered for are dropped. A callback that raises (or whose
        coroutine raises) is logged and the link carries on.
        """
        self._event_callbacks.setdefault(name.lower(), []).append(callback)

    def on_up(self, callback: UpCallback) -> None:
        """Call ``callback(vanished)`` on every (re)connect, after the resync.

        ``vanished`` lists the channels that hung up while the link was down: their
        Hangup events were lost with the connection. One that hung up during the resync
        itself may also have had its Hangup delivered, so closing a call must be idempotent.
        """
        self._up_callbacks.append(callback)

    def on_down(self, callback: DownCallback) -> None:
        """Call ``callback(reason)`` whenever an up link goes down, ``stop()`` included."""
        self._down_callbacks.append(callback)

    async def start(self) -> None:
        """Begin connecting in the background; a PBX that is down does not hold us up."""
        if self._task is not None or self._stopping:
            raise RuntimeError("AmiLink can be started once")
        classes = {c.strip().lower() for c in self._settings.events.split(",")}
        if not classes & {"call", "on", "all"}:
            log.warning("ami_events_without_call_class", events=self._settings.events)
        self._task = asyncio.create_task(self._run(), name="ami-link")

    async def wait_up(self, timeout: float) -> bool:  # noqa: ASYNC109 (the agreed API)
        """Wait up to ``timeout`` seconds for the link to be up; return whether it is."""
        try:
            async with asyncio.timeout(timeout):
                await self._up_event.wait()
        except TimeoutError:
            pass
        return self._up

    async def stop(self) -> None:
        """Log off, close the connection and stop reconnecting."""
        if self._stopping:
            return
        self._stopping = True
        conn = self._conn
        if conn is not None and self._up:
            try:
                timeout = min(self._settings.action_timeout, _LOGOFF_TIMEOUT)
                await self._send(conn, {"Action": "Logoff"}, timeout)
            except AmiError:
                pass
            conn.drop(DownReason.STOPPED)
        for task in (self._task, self._watchdog):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._callback_tasks:
            _, late = await asyncio.wait(
                set(self._callback_tasks), timeout=self._settings.action_timeout
            )
            for pending in late:
                pending.cancel()
        log.info("ami_stopped")

    async def action(
        self,
        action: ActionFields,
        timeout: float | None = None,  # noqa: ASYNC109 (per-action limit, the agreed API)
    ) -> Message | list[Message]:
        """Send ``action`` and return the reply.

        List actions (``EventList: start``, e.g. CoreShowChannels) return every message:
        the response, the items, and the closing ``...Complete`` event.

        Raises ``AmiNotConnected`` (link down, or lost before the reply; never re-sent),
        ``AmiTimeout`` (no reply within ``timeout``, default ``action_timeout``),
        ``AmiActionError`` (``Response: Error``), ``ValueError`` (no ``Action`` field, or
        a line break in a field).
        """
        name, fields = _validated(action)
        conn = self._conn
        if conn is None or not self._up:
            raise AmiNotConnected(f"{name}: AMI link is down")
        wait = self._settings.action_timeout if timeout is None else timeout
        return _checked(name, await self._send(conn, fields, wait))

    async def _send(self, conn: _Connection, fields: ActionFields, seconds: float) -> Any:
        """Send on ``conn`` and wait up to ``seconds`` for the raw reply."""
        action = _Action(dict(fields))
        future = conn.protocol.send(action)
        try:
            async with asyncio.timeout(seconds):
                return await future
        except TimeoutError:
            # Forget it, so a late reply is not mistaken for anything else.
            conn.protocol.responses.pop(action.id, None)
            name = _text(action, "Action")
            raise AmiTimeout(f"{name}: no reply within {seconds:g} s") from None

    async def _run(self) -> None:
        """Connect, serve until the connection is lost, back off, repeat until stop()."""
        s = self._settings
        attempt = 0
        while not self._stopping:
            try:
                opened = await self._connect()
                if opened is not None:
                    attempt = 0
                    await self._serve(*opened)
            except Exception:
                log.exception("ami_link_error")
            if self._stopping:
                return
            delay = backoff_delay(attempt, s.backoff_initial, s.backoff_max, self._rand())
            attempt += 1
            log.info("ami_reconnect_wait", delay=round(delay, 3), attempt=attempt)
            await asyncio.sleep(delay)

    async def _connect(self) -> tuple[_Connection, list[Channel]] | None:
        """Open, log in and resync; None (logged) when any step fails."""
        s = self._settings
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[DownReason] = loop.create_future()

        def on_lost(reason: DownReason) -> None:
            if not lost.done():
                lost.set_result(reason)

        try:
            async with asyncio.timeout(s.action_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Protocol(self._manager, on_lost), s.host, s.port
                )
        except (OSError, TimeoutError) as exc:
            log.warning("ami_connect_failed", host=s.host, port=s.port, error=str(exc) or repr(exc))
            return None
        conn = _Connection(protocol, lost)
        ok = False
        self._replay = []
        try:
            await self._login(conn)
            vanished = await self._resync(conn)
            ok = not self._stopping
            return (conn, vanished) if ok else None
        except _LoginRefused as exc:
            log.error(
                "ami_login_failed",
                host=s.host,
                port=s.port,
                username=s.username,
                reply=str(exc),
            )
        except AmiError as exc:
            log.warning("ami_setup_failed", host=s.host, port=s.port, error=str(exc))
        finally:
            self._replay = None
            if not ok:
                conn.drop(DownReason.CONNECTION_CLOSED)
        return None

    async def _login(self, conn: _Connection) -> None:
        s = self._settings
        login = {
            "Action": "Login",
            "Username": s.username,
            "Secret": s.secret.get_secret_value(),
            "Events": s.events,
        }
        reply = await self._send(conn, login, s.action_timeout)
        if _text(reply, "Response").lower() != "success":
            raise _LoginRefused(_text(reply, "Message") or "login refused")

    async def _resync(self, conn: _Connection) -> list[Channel]:
        """Replace the registry with Asterisk's channel list; return the vanished channels."""
        reply = await self._send(
            conn, {"Action": "CoreShowChannels"}, self._settings.action_timeout
        )
        messages = _checked("CoreShowChannels", reply)
        items = messages if isinstance(messages, list) else []
        snapshot = [
            channel
            for item in items
            if _text(item, "Event").lower() == "coreshowchannel"
            and (channel := channel_from_event(item)) is not None
        ]
        vanished = self.channels.replace_all(snapshot)
        # Events that crossed the snapshot on the wire: applying them on top of it is
        # right both for those older than it (no-ops) and those newer (updates).
        replay, self._replay = self._replay or [], None
        for event in replay:
            self.channels.apply(event)
        return vanished

    async def _serve(self, conn: _Connection, vanished: list[Channel]) -> None:
        """Mark the link up, watch it, and mark it down when the connection is gone."""
        self._watchdog = asyncio.create_task(self._pong_watchdog(conn), name="ami-pong-watchdog")
        self._mark_up(conn, vanished)
        reason = DownReason.STOPPED
        try:
            reason = await conn.lost
        finally:
            self._watchdog.cancel()
            conn.drop(DownReason.STOPPED)
            self._mark_down(DownReason.STOPPED if self._stopping else reason)

    async def _pong_watchdog(self, conn: _Connection) -> None:
        """Ping every ``ping_interval``; no reply within ``pong_timeout`` kills the connection.

        A half-open TCP connection (PBX host gone, NAT state lost) never reports a close:
        only a missing Pong shows that it is dead.
        """
        s = self._settings
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(s.ping_interval)
            sent = loop.time()
            try:
                await self._send(conn, {"Action": "Ping"}, s.pong_timeout)
            except AmiTimeout:
                log.warning("ami_pong_timeout", timeout=s.pong_timeout)
                conn.drop(DownReason.PONG_TIMEOUT)
                return
            except AmiNotConnected:
                return
            self.last_pong_rtt = loop.time() - sent

    def _mark_up(self, conn: _Connection, vanished: list[Channel]) -> None:
        self._conn = conn
        self._up = True
        if self._ever_up:
            self.reconnects += 1
        self._ever_up = True
        self._up_event.set()
        log.info(
            "ami_up",
            host=self._settings.host,
            port=self._settings.port,
            channels=len(self.channels),
            vanished=len(vanished),
            reconnects=self.reconnects,
        )
        for callback in self._up_callbacks:
            self._invoke("on_up", callback, list(vanished))

    def _mark_down(self, reason: DownReason) -> None:
        was_up, self._up, self._conn = self._up, False, None
        self._up_event.clear()
        if not was_up:
            return
        if reason is DownReason.STOPPED:
            log.info("ami_down", reason=str(reason))
        else:
            log.warning("ami_down", reason=str(reason))
        for callback in self._down_callbacks:
            self._invoke("on_down", callback, reason)

    def _on_ami_event(self, _manager: Any, event: Message) -> None:
        """panoramisk's dispatch target for every event that is not part of a reply."""
        name = _text(event, "Event")
        key = name.lower()
        if key in ChannelRegistry.EVENTS:
            if self._replay is not None:
                self._replay.append(event)
            else:
                self.channels.apply(event)
        callbacks = [*self._event_callbacks.get(key, ()), *self._event_callbacks.get("*", ())]
        for callback in callbacks:
            self._invoke("on_event", callback, event, ami_event=name)

    def _invoke(self, hook: str, callback: Callable[[Any], object], arg: Any, **ctx: str) -> None:
        """Run a user callback; its failure is logged, never raised into the link."""
        try:
            result = callback(arg)
        except Exception:
            log.exception("ami_callback_failed", hook=hook, **ctx)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._callback_tasks.add(task)
            task.add_done_callback(functools.partial(self._callback_done, hook, ctx))

    def _callback_done(self, hook: str, ctx: dict[str, str], task: asyncio.Future[Any]) -> None:
        self._callback_tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("ami_callback_failed", hook=hook, exc_info=exc, **ctx)
