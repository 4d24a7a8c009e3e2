"""One call's AGI dialogue: send a command, read its reply, turn it into Python values.

Hangup handling follows res_agi's ``run_agi`` loop. Asterisk notices a hangup only
between commands; it then sends ``HANGUP`` once and keeps answering commands (those
allowed on a dead channel run, the others get ``511``), unless AGIEXITONHANGUP is set,
in which case it closes the socket. A hangup during a media command makes that
command answer ``result=-1`` first, and the ``HANGUP`` line follows. So: the first
sign of a hangup raises ``AGIHangup`` once; a later ``HANGUP`` line is skipped, so
cleanup commands (SET VARIABLE in a ``finally``) still get their real replies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from time import monotonic as _monotonic
from typing import Protocol

from acd.agi.protocol import (
    HANGUP_LINE,
    MAX_COMMAND_BYTES,
    AgiEnv,
    AGIError,
    AGIHangup,
    AGIProtocolError,
    AgiReply,
    AGITimeout,
    encode_command,
    parse_reply,
    quote,
    reply_error,
    word,
)
from acd.log import get_logger

log = get_logger(__name__)

# Most replies are one of these lines; parsing them once saves work on every command.
_COMMON: dict[bytes, AgiReply] = {
    f"200 result={n}\n".encode(): parse_reply(f"200 result={n}") for n in (-1, 0, 1)
}
_MAX_USAGE_LINES = 500
_OBSERVE_BATCH = 256


def _shown(data: bytes, n: int = 80) -> str:
    """A command line as error messages quote it."""
    return repr(data[:n].decode(errors="replace").rstrip("\n"))


class LineReader(Protocol):
    """What the session reads with: an ``asyncio.StreamReader``, or the server's own
    connection object."""

    def readuntil(self, separator: bytes = ...) -> Awaitable[bytes]: ...

    def set_exception(self, exc: Exception) -> None: ...


class LineWriter(Protocol):
    """The part of ``asyncio.WriteTransport`` the session uses."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class TransportHolder(Protocol):
    """What the session writes with: anything with a ``transport`` (``StreamWriter``,
    the server's own connection object)."""

    @property
    def transport(self) -> LineWriter: ...


class AGISession:
    """The AGI side of one call, handed to a route's handler."""

    __slots__ = (
        "_broken",
        "_deadline",
        "_durations",
        "_hangup_sent",
        "_in_flight",
        "_loop",
        "_max_line",
        "_observe",
        "_reader",
        "_timeout",
        "_timer",
        "_transport",
        "commands",
        "env",
        "hung_up",
        "last_reply",
    )

    def __init__(
        self,
        reader: LineReader,
        writer: TransportHolder,
        env: AgiEnv,
        *,
        max_line_bytes: int = 8192,
        command_timeout: float = 600.0,
        self_timed: bool = True,
        observe: Callable[[Sequence[float]], None] | None = None,
    ) -> None:
        """``self_timed=False`` when a supervisor (FastAGIServer) calls ``check_deadline``
        for its sessions; otherwise the session keeps a timer of its own. ``observe``
        receives command round trips (seconds) in batches, for the latency metric:
        collected in a list and handed over every ``_OBSERVE_BATCH`` commands and at
        ``close``, so the call path never touches a metrics library."""
        self.env = env
        #: Asterisk reported the channel gone (HANGUP, 511, result=-1, socket closed).
        #: Our own ``hangup()`` does not set it: the call ended normally then.
        self.hung_up = False
        #: The last reply read, for details a helper does not return (``endpos``, ...).
        self.last_reply: AgiReply | None = None
        #: Commands sent so far.
        self.commands = 0
        self._reader = reader
        self._transport = writer.transport
        self._loop = asyncio.get_running_loop() if self_timed else None
        self._max_line = max_line_bytes
        self._timeout = command_timeout
        self._hangup_sent = False
        self._broken: str | None = None
        self._in_flight: bytes | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._observe = observe
        self._durations: list[float] = []

    # --- the dialogue -------------------------------------------------------------

    async def command(self, *parts: str) -> AgiReply:
        """Send one raw command (``parts`` joined by spaces, quote them yourself with
        ``quote``) and return its ``200`` reply; errors raise an ``AGIError``."""
        return await self._run(encode_command(" ".join(parts)))

    def close(self) -> None:
        """Close the connection (Asterisk then carries on with the dialplan)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.close()
        self._flush_durations()

    def _flush_durations(self) -> None:
        if self._durations and self._observe is not None:
            durations, self._durations = self._durations, []
            try:
                self._observe(durations)
            except Exception:  # a metrics bug must not end the call
                log.exception("agi_latency_observer_failed")

    async def _run(self, data: bytes) -> AgiReply:
        """Send one command line (``data`` ends with its newline) and read the reply.

        The helpers build ``data`` from ``word``, ``quote`` and numbers only, none of
        which can hold CR, LF or NUL, so only its length is checked here; ``command``
        checks the rest with ``encode_command``."""
        if self._in_flight is not None:
            raise RuntimeError(f"AGI command {_shown(data, 40)} sent while another is in flight")
        if self._broken is not None:
            raise AGIProtocolError(f"AGI session unusable: {self._broken}")
        if len(data) > MAX_COMMAND_BYTES + 1:
            raise ValueError(f"AGI command longer than {MAX_COMMAND_BYTES} bytes: {_shown(data)}")
        self._in_flight = data
        self.commands += 1
        sent = _monotonic()
        self._deadline = sent + self._timeout
        if self._timer is None and self._loop is not None:
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
        self._transport.write(data)
        try:
            raw = await self._reader.readuntil(b"\n")
            reply = _COMMON.get(raw)
            if reply is None:  # _decode, inlined: this runs for most commands
                if len(raw) > self._max_line + 1:
                    raise AGIProtocolError(f"reply line longer than {self._max_line} bytes")
                text = raw.decode(errors="replace").rstrip("\r\n")
                reply = None if text == HANGUP_LINE else parse_reply(text)
            if reply is None or reply.code != 200 or self._broken is not None:
                reply = await self._finish_reply(reply)
            self.last_reply = reply
            if self._observe is not None:
                self._durations.append(_monotonic() - sent)
                if len(self._durations) >= _OBSERVE_BATCH:
                    self._flush_durations()
            return reply
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
            raise self._read_error(exc) from None
        except AGIProtocolError as exc:
            self._fail(str(exc))
            raise
        except asyncio.CancelledError:
            # The reply may still come; the dialogue cannot be trusted any more.
            self._fail("a command was cancelled while waiting for its reply")
            raise
        finally:
            self._in_flight = None

    def check_deadline(self, now: float) -> None:
        """End the session if the command in flight has waited past ``command_timeout``:
        the pending read raises AGITimeout."""
        if self._in_flight is None or now < self._deadline or self._broken is not None:
            return
        self._broken = f"no reply to {_shown(self._in_flight, 60)} within {self._timeout:g}s"
        self._reader.set_exception(AGITimeout(self._broken))

    def _on_timer(self) -> None:
        """One timer per session, re-armed lazily: commands only move the deadline."""
        self._timer = None
        if self._in_flight is None or self._loop is None:
            return
        if self._deadline - self._loop.time() > 0.001:
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
        else:
            self.check_deadline(self._deadline)

    def _decode(self, raw: bytes) -> AgiReply | None:
        """Parse one line; None for a HANGUP notice."""
        if len(raw) > self._max_line + 1:
            raise AGIProtocolError(f"reply line longer than {self._max_line} bytes")
        text = raw.decode(errors="replace").rstrip("\r\n")
        return None if text == HANGUP_LINE else parse_reply(text)

    async def _finish_reply(self, reply: AgiReply | None) -> AgiReply:
        """Everything but a plain one-line ``200``: HANGUP notices, ``100`` lines, errors."""
        saw_hangup = False
        while True:
            if self._broken is not None:  # the deadline passed as the reply came in
                raise AGITimeout(self._broken)
            if reply is None:
                if not (self.hung_up or self._hangup_sent):
                    self.hung_up = saw_hangup = True
            elif reply.code == 200:
                if saw_hangup:
                    self.last_reply = reply
                    raise AGIHangup("channel hung up (HANGUP)")
                return reply
            elif reply.code != 100:
                self.last_reply = reply
                usage = await self._read_usage() if reply.continues else None
                if reply.code == 511:
                    self._mark_gone()
                raise reply_error(reply, usage)
            raw = await self._readline()
            reply = _COMMON.get(raw) or self._decode(raw)

    async def _read_usage(self) -> list[str]:
        """The usage text of a ``520-`` reply, up to its ``520 End of proper usage.``."""
        lines: list[str] = []
        while len(lines) < _MAX_USAGE_LINES:
            raw = await self._readline()
            if len(raw) > self._max_line + 1:
                raise AGIProtocolError(f"reply line longer than {self._max_line} bytes")
            text = raw.decode(errors="replace").rstrip("\r\n")
            if text.startswith("520 "):
                return lines
            lines.append(text)
        raise AGIProtocolError(f"520 usage text longer than {_MAX_USAGE_LINES} lines")

    async def _readline(self) -> bytes:
        try:
            return await self._reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
            raise self._read_error(exc) from None

    def _read_error(self, exc: Exception) -> AGIError:
        """What a failed read means: Asterisk went away (hangup) or sent too much."""
        if isinstance(exc, asyncio.LimitOverrunError):
            err = AGIProtocolError(f"reply line longer than {self._max_line} bytes")
            self._fail(str(err))
            return err
        self._mark_gone()
        if isinstance(exc, asyncio.IncompleteReadError):
            return AGIHangup("Asterisk closed the AGI connection")
        return AGIHangup(f"AGI connection lost: {exc}")

    def _fail(self, reason: str) -> None:
        """End the session: the stream is out of step or the peer misbehaves."""
        self._broken = reason
        self._transport.abort()

    def _mark_gone(self) -> None:
        if not self._hangup_sent:
            self.hung_up = True

    def _gone(self, what: str) -> AGIHangup:
        self._mark_gone()
        return AGIHangup(f"{what} returned -1: channel hung up")

    # --- typed helpers ------------------------------------------------------------

    async def answer(self) -> None:
        """Answer the channel (no-op if it is already up)."""
        if (await self._run(b"ANSWER\n")).result < 0:
            raise self._gone("ANSWER")

    async def stream_file(
        self, name: str, escape_digits: str = "", offset: int | None = None
    ) -> str | None:
        """Play a sound file; the digit that interrupted it, or None if it played out.

        Asterisk answers -1 both when the caller hangs up and when the file cannot be
        opened, so a missing prompt also raises AGIHangup. ``last_reply.extras['endpos']``
        is where playback stopped.
        """
        line = f"STREAM FILE {word(name)} {quote(escape_digits)}"
        if offset is not None:
            line += f" {int(offset)}"
        result = (await self._run(f"{line}\n".encode())).result
        if result < 0:
            raise self._gone(f"STREAM FILE {name}")
        return chr(result) if result else None

    async def get_data(
        self, prompt: str, timeout_ms: int | None = None, max_digits: int | None = None
    ) -> str:
        """Play ``prompt`` and collect digits until ``#``, ``max_digits`` or the timeout.

        Returns the digits entered ('' if none); ``last_reply.timed_out`` tells whether
        input ended by timeout rather than ``#`` or the digit limit.
        """
        line = f"GET DATA {word(prompt)}"
        if timeout_ms is not None or max_digits is not None:
            # 0 keeps Asterisk's default timeout when only max_digits is given.
            line += f" {int(timeout_ms or 0)}"
        if max_digits is not None:
            line += f" {int(max_digits)}"
        reply = await self._run(f"{line}\n".encode())
        if reply.result_text == "-1":
            raise self._gone("GET DATA")
        return reply.result_text

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """Wait for one DTMF digit (-1: forever); None on timeout."""
        result = (await self._run(f"WAIT FOR DIGIT {int(timeout_ms)}\n".encode())).result
        if result < 0:
            raise self._gone("WAIT FOR DIGIT")
        return chr(result) if result else None

    async def say_digits(self, digits: str, escape_digits: str = "") -> str | None:
        """Say ``digits`` one by one; the escape digit pressed, or None."""
        result = (
            await self._run(f"SAY DIGITS {word(digits)} {quote(escape_digits)}\n".encode())
        ).result
        if result < 0:
            raise self._gone("SAY DIGITS")
        return chr(result) if result else None

    async def say_number(self, n: int, escape_digits: str = "") -> str | None:
        """Say a whole number; the escape digit pressed, or None."""
        result = (await self._run(f"SAY NUMBER {int(n)} {quote(escape_digits)}\n".encode())).result
        if result < 0:
            raise self._gone("SAY NUMBER")
        return chr(result) if result else None

    async def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable (works after hangup too)."""
        await self._run(f"SET VARIABLE {word(name)} {quote(value)}\n".encode())

    async def get_variable(self, name: str) -> str | None:
        """A channel variable or function (``CALLERID(num)``); None when unset."""
        reply = await self._run(f"GET VARIABLE {word(name)}\n".encode())
        return (reply.data or "") if reply.result == 1 else None

    async def get_full_variable(self, expr: str, channel: str | None = None) -> str | None:
        """Evaluate an expression such as ``${CHANNEL(linkedid)}``, optionally on another
        channel; None when that channel does not exist."""
        line = f"GET FULL VARIABLE {quote(expr)}"
        if channel is not None:
            line += f" {word(channel)}"
        reply = await self._run(f"{line}\n".encode())
        return (reply.data or "") if reply.result == 1 else None

    async def exec(self, app: str, *args: str) -> int:
        """Run a dialplan application; returns its result (-2: no such application).

        EXEC passes a single argument string to the application, so ``args`` are joined
        with commas, as the dialplan would write ``App(a,b,c)``.
        """
        line = f"EXEC {word(app)}"
        if args:
            line += f" {quote(','.join(args))}"
        return (await self._run(f"{line}\n".encode())).result

    async def verbose(self, msg: str, level: int = 1) -> None:
        """Write to the Asterisk console at a verbosity level (line breaks become spaces)."""
        text = msg.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
        await self._run(f"VERBOSE {quote(text)} {int(level)}\n".encode())

    async def hangup(self) -> None:
        """Hang the channel up. The HANGUP notice Asterisk sends back is expected and
        does not raise, and ``hung_up`` stays False: the call ended on our terms."""
        self._hangup_sent = True
        await self._run(b"HANGUP\n")
