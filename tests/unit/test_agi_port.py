"""AgiCallPort: what a YAML flow does to a caller, as the AGI commands Asterisk receives.

A scripted fake session stands in for Asterisk: it records every command and answers
from a script (keys the caller presses, silence, a hangup).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from acd.agi import AgiEnv, AGIHangup, AgiReply, AGISession
from acd.inbound import InboundCall
from acd.ivr.agi_port import AgiCallPort, epoch_seconds
from acd.ivr.interpreter import CallerHangup, Interpreter
from acd.ivr.loader import load_flows


class FakeSession:
    """Answers like Asterisk would; ``keys`` is what the caller presses, in order:
    a key for the next prompt/wait, None for silence there, "HANGUP" to hang up."""

    def __init__(self, keys: list[str | None] | None = None, uniqueid: str = "1.1") -> None:
        self.keys: Iterator[str | None] = iter(keys or [])
        self.sent: list[str] = []
        self.variables: dict[str, str] = {}
        self.hung_up = False
        self.last_reply: AgiReply | None = None
        self.env = AgiEnv(
            {
                "agi_uniqueid": uniqueid,
                "agi_channel": "Local/x-1;1",
                "agi_callerid": "4930555100",
                "agi_calleridname": "Ada",
                "agi_extension": "s",
                "agi_network_script": "flow?name=t",
            }
        )

    def _next(self) -> str | None:
        key = next(self.keys, None)
        if key == "HANGUP":
            self.hung_up = True
            raise AGIHangup("caller hung up")
        return key

    async def answer(self) -> None:
        self.sent.append("ANSWER")

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        self.sent.append(f"STREAM FILE {name} {escape_digits}")
        return self._next() if escape_digits else None

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        self.sent.append(f"WAIT FOR DIGIT {timeout_ms}")
        return self._next()

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> str:
        self.sent.append(f"GET DATA {prompt} {timeout_ms} {max_digits}")
        typed = self._next()
        self.last_reply = AgiReply(200, 0, "timeout" if typed is None else None)
        return typed or ""

    async def say_digits(self, digits: str, escape_digits: str = "") -> None:
        self.sent.append(f"SAY DIGITS {digits}")

    async def say_number(self, n: int, escape_digits: str = "") -> None:
        self.sent.append(f"SAY NUMBER {n}")

    async def command(self, *parts: str) -> AgiReply:
        self.sent.append(" ".join(parts))
        return AgiReply(200, -1 if self._next() == "-1" else 0)

    async def set_variable(self, name: str, value: str) -> None:
        self.sent.append(f"SET VARIABLE {name} {value}")
        self.variables[name] = value


def port_for(session: FakeSession) -> AgiCallPort:
    call = InboundCall(agi=cast(AGISession, session), route="flow")
    return AgiCallPort(call, clock=lambda: datetime(2025, 3, 3, 10, 0, tzinfo=UTC))


async def test_a_key_stops_the_prompts_and_the_rest_are_not_played() -> None:
    session = FakeSession([None, "3"])
    key = await port_for(session).play(["welcome", "menu", "goodbye"], "0123456789*#")
    assert key == "3"
    assert session.sent == [
        "STREAM FILE welcome 0123456789*#",
        "STREAM FILE menu 0123456789*#",
    ]


async def test_prompts_that_cannot_be_interrupted_play_out() -> None:
    session = FakeSession()
    assert await port_for(session).play(["a", "b"], "") is None
    assert session.sent == ["STREAM FILE a ", "STREAM FILE b "]


async def test_hash_terminated_input_with_a_prompt_is_one_get_data() -> None:
    session = FakeSession(["12345"])
    assert await port_for(session).read_digits("enter-account", 8, 5000, "#") == ("12345", False)
    assert session.sent == ["GET DATA enter-account 5000 8"]


async def test_silence_on_get_data_is_a_timeout() -> None:
    session = FakeSession([None])
    assert await port_for(session).read_digits("enter-account", 8, 3000, "#") == ("", True)


async def test_other_terminators_read_key_by_key_and_drop_the_terminator() -> None:
    session = FakeSession(["4", "2", "*"])
    digits = await port_for(session).read_digits("enter-pin", 6, 4000, "*")
    assert digits == ("42", False)
    assert session.sent == [
        "STREAM FILE enter-pin 0123456789*#",
        "WAIT FOR DIGIT 4000",
        "WAIT FOR DIGIT 4000",
    ]


async def test_key_by_key_input_stops_at_max_digits_or_silence() -> None:
    assert await port_for(FakeSession(["1", "2"])).read_digits(None, 2, 1000, None) == (
        "12",
        False,
    )
    assert await port_for(FakeSession(["1", None])).read_digits(None, 4, 1000, "#") == (
        "1",
        True,
    )


async def test_say_digits_number_and_date() -> None:
    session = FakeSession()
    port = port_for(session)
    await port.say("digits", "0815")
    await port.say("number", "42")
    await port.say("date", "2025-03-03")
    assert session.sent == [
        "SAY DIGITS 0815",
        "SAY NUMBER 42",
        f'SAY DATE {epoch_seconds("2025-03-03")} ""',
    ]
    assert epoch_seconds("1740830400") == 1740830400
    assert datetime.fromtimestamp(epoch_seconds("2025-03-03"), UTC).date().isoformat() == (
        "2025-03-03"
    )


async def test_language_and_variables_go_to_the_channel() -> None:
    session = FakeSession()
    port = port_for(session)
    await port.set_language("de")
    await port.set_channel_variable("ACD_X", "1")
    assert session.variables == {"CHANNEL(language)": "de", "ACD_X": "1"}
    assert port.now() == datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "action",
    [
        lambda p: p.play(["a"], "1"),
        lambda p: p.read_digits("a", 4, 1000, "#"),
        lambda p: p.read_digits(None, 4, 1000, None),
    ],
)
async def test_an_agi_hangup_is_the_interpreters_caller_hangup(action: Any) -> None:
    with pytest.raises(CallerHangup):
        await action(port_for(FakeSession(["HANGUP"])))


async def test_a_flow_runs_over_the_port_and_a_hangup_ends_it_as_caller_hangup(
    tmp_path: Any,
) -> None:
    (tmp_path / "t.yaml").write_text(
        "flow: t\nversion: 1\nstart: menu\nlanguages: {default: en, available: [en]}\n"
        "nodes:\n"
        "  menu:\n    kind: menu\n    prompt: vm-press\n"
        "    choices: {1: sales}\n    on_failure: bye\n"
        "  sales:\n    kind: queue\n    queue: sales\n"
        "  bye:\n    kind: hangup\n"
    )
    flows = load_flows(tmp_path)
    pressed = FakeSession(["1"])
    outcome = await Interpreter(flows, port_for(pressed)).run("t")
    assert (outcome.kind, outcome.queue) == ("queue", "sales")
    assert pressed.variables["CHANNEL(language)"] == "en"

    gone = FakeSession(["HANGUP"])
    interpreter = Interpreter(flows, port_for(gone))
    outcome = await interpreter.run("t")
    assert outcome.kind == "caller_hangup"
    assert [(s.node_id, s.result) for s in interpreter.steps] == [("menu", "caller_hangup")]
