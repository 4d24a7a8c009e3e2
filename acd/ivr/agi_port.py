"""The interpreter's ``CallPort`` over a live AGI session: what a flow does, as AGI commands.

Every AGI hangup signal (``AGIHangup``: HANGUP notice, ``result=-1``, the socket gone)
becomes the interpreter's ``CallerHangup``, so a caller hanging up mid-flow ends the run
as ``caller_hangup`` instead of an error.

Input without a prompt, or with a terminator other than ``#``, is read with a
``WAIT FOR DIGIT`` loop (``GET DATA`` always ends on ``#`` and needs a sound file); a
prompt with ``#`` as terminator uses ``GET DATA``, one command for the whole input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

from acd.agi import AGIHangup, quote
from acd.inbound import InboundCall
from acd.ivr.interpreter import CallerHangup, SayAs
from acd.ivr.model import DIGITS

__all__ = ["AgiCallPort", "epoch_seconds"]


def epoch_seconds(value: str) -> int:
    """What ``SAY DATE`` takes: epoch seconds, from epoch text or an ISO date/time.

    A date without a time is taken as noon UTC so that it is the same day in every
    time zone a PBX may be in.
    """
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        day = date.fromisoformat(text)  # raises ValueError with a clear message
        moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


class AgiCallPort:
    """One caller's channel as the interpreter sees it (``acd.ivr.interpreter.CallPort``)."""

    def __init__(self, call: InboundCall, *, clock: Callable[[], datetime] | None = None) -> None:
        self.call = call
        self.agi = call.agi
        self._clock = clock or (lambda: datetime.now(UTC))

    async def play(self, prompts: Sequence[str], interrupt: str) -> str | None:
        try:
            for prompt in prompts:
                key = await self.agi.stream_file(prompt, escape_digits=interrupt)
                if key:
                    return key
        except AGIHangup as exc:
            raise CallerHangup(str(exc)) from exc
        return None

    async def read_digits(
        self, prompt: str | None, max_digits: int, timeout_ms: int, terminator: str | None
    ) -> tuple[str, bool]:
        try:
            if prompt is not None and terminator == "#" and timeout_ms > 0:
                digits = await self.agi.get_data(prompt, timeout_ms, max_digits)
                reply = self.agi.last_reply
                return digits, bool(reply is not None and reply.timed_out)
            return await self._wait_loop(prompt, max_digits, timeout_ms, terminator)
        except AGIHangup as exc:
            raise CallerHangup(str(exc)) from exc

    async def _wait_loop(
        self, prompt: str | None, max_digits: int, timeout_ms: int, terminator: str | None
    ) -> tuple[str, bool]:
        """Prompt (any key barges in), then one ``WAIT FOR DIGIT`` per key.

        ``timeout_ms`` is the wait for each key, as with ``GET DATA``.
        """
        digits = ""
        key = await self.agi.stream_file(prompt, escape_digits=DIGITS) if prompt else None
        while len(digits) < max_digits:
            if key is None:
                key = await self.agi.wait_for_digit(timeout_ms)
                if key is None:
                    return digits, True
            if key == terminator:
                return digits, False
            digits += key
            key = None
        return digits, False

    async def say(self, kind: SayAs, value: str) -> None:
        try:
            if kind == "number":
                try:
                    await self.agi.say_number(int(value))
                except ValueError:  # "12a" cannot be a number: say what there is
                    await self.agi.say_digits("".join(c for c in value if c.isdigit()) or "0")
            elif kind == "date":
                reply = await self.agi.command("SAY DATE", str(epoch_seconds(value)), quote(""))
                if reply.result < 0:
                    self.agi.hung_up = True
                    raise AGIHangup("SAY DATE returned -1: channel hung up")
            else:
                await self.agi.say_digits(value)
        except AGIHangup as exc:
            raise CallerHangup(str(exc)) from exc

    async def set_channel_variable(self, name: str, value: str) -> None:
        try:
            await self.agi.set_variable(name, value)
        except AGIHangup as exc:
            raise CallerHangup(str(exc)) from exc

    async def set_language(self, language: str) -> None:
        await self.set_channel_variable("CHANNEL(language)", language)

    def now(self) -> datetime:
        return self._clock()
