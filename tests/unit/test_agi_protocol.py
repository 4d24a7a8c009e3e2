"""The AGI wire format: replies as res_agi.c prints them, arguments as it parses them."""

from __future__ import annotations

import random

import pytest

from acd.agi.protocol import (
    AGICommandError,
    AgiEnv,
    AGIHangup,
    AGIProtocolError,
    encode_command,
    parse_env_line,
    parse_reply,
    quote,
    reply_error,
    word,
)

# --- replies --------------------------------------------------------------------------


def test_plain_result() -> None:
    reply = parse_reply("200 result=0")
    assert (reply.code, reply.result, reply.data, dict(reply.extras)) == (200, 0, None, {})


def test_hangup_result_is_minus_one() -> None:
    reply = parse_reply("200 result=-1")
    assert reply.result == -1
    assert reply.result_text == "-1"


def test_timeout_marker_and_endpos() -> None:
    reply = parse_reply("200 result=1 (timeout) endpos=1234")
    assert reply.result == 1
    assert reply.data == "timeout"
    assert reply.timed_out
    assert reply.extras == {"endpos": "1234"}


def test_get_data_digits_keep_their_text() -> None:
    """GET DATA puts the typed digits in result=, possibly empty or with a star."""
    empty = parse_reply("200 result= (timeout)")
    assert (empty.result_text, empty.data, empty.result) == ("", "timeout", 0)
    star = parse_reply("200 result=*12")
    assert star.result_text == "*12"
    assert star.data is None


def test_variable_value_with_spaces_and_parentheses() -> None:
    reply = parse_reply("200 result=1 (Alice (sales) <1001> x=1)")
    assert reply.data == "Alice (sales) <1001> x=1"
    assert reply.extras == {}


def test_data_with_a_closing_parenthesis_before_extras() -> None:
    reply = parse_reply("200 result=1 (a) b) endpos=9")
    assert reply.data == "a) b"
    assert reply.extras == {"endpos": "9"}


def test_digit_reply_of_speech_recognize() -> None:
    reply = parse_reply("200 result=1 (digit) digit=5 endpos=3200")
    assert reply.data == "digit"
    assert reply.extras == {"digit": "5", "endpos": "3200"}


def test_gosub_lines() -> None:
    trying = parse_reply("100 result=0 Trying...")
    assert trying.code == 100
    done = parse_reply("200 result=0 Gosub complete")
    assert (done.code, done.result, done.data, dict(done.extras)) == (200, 0, None, {})


def test_510_is_a_command_error() -> None:
    reply = parse_reply("510 Invalid or unknown command")
    assert reply.code == 510
    assert reply.message == "Invalid or unknown command"
    err = reply_error(reply)
    assert isinstance(err, AGICommandError)
    assert err.code == 510


def test_511_means_the_channel_is_gone() -> None:
    reply = parse_reply("511 Command Not Permitted on a dead channel or intercept routine")
    assert isinstance(reply_error(reply), AGIHangup)


def test_520_multi_line_usage() -> None:
    first = parse_reply("520-Invalid command syntax.  Proper usage follows:")
    assert first.code == 520
    assert first.continues
    usage = ["Usage: STREAM FILE <filename> <escape_digits> [sample offset]", "  Send..."]
    err = reply_error(first, usage)
    assert isinstance(err, AGICommandError)
    assert err.usage == "\n".join(usage)
    assert "STREAM FILE <filename>" in str(err)
    last = parse_reply("520 End of proper usage.")
    assert not last.continues


def test_520_without_usage_is_one_line() -> None:
    reply = parse_reply("520 Invalid command syntax.  Proper usage not available.")
    assert not reply.continues


@pytest.mark.parametrize(
    "line", ["", "HELLO", "20 result=0", "2000 result=0", "abc result=1", "999 x", "²00 result=0"]
)
def test_garbage_is_a_protocol_error(line: str) -> None:
    with pytest.raises(AGIProtocolError):
        parse_reply(line)


# --- environment ------------------------------------------------------------------------

HEADER = [
    "agi_network: yes",
    "agi_network_script: hotline/fr?lang=fr&x=1",
    "agi_request: agi://127.0.0.1:4573/hotline/fr?lang=fr&x=1",
    "agi_channel: PJSIP/trunk-00000001",
    "agi_language: fr",
    "agi_uniqueid: 1700000000.42",
    "agi_callerid: 5551234",
    "agi_calleridname: Alice: Sales",
    "agi_dnid: 8005550100",
    "agi_context: from-trunk",
    "agi_extension: 8005550100",
    "agi_accountcode: ",
    "agi_arg_1: first arg",
    "agi_arg_2: ",
    "agi_arg_3: third",
]


@pytest.mark.parametrize("build", [AgiEnv.from_lines, lambda lines: AgiEnv.parse("\n".join(lines))])
def test_env_fields(build: object) -> None:
    env = build(HEADER)  # type: ignore[operator]
    assert env.network_script == "hotline/fr"
    assert env.params == {"lang": "fr", "x": "1"}
    assert env.request == "agi://127.0.0.1:4573/hotline/fr?lang=fr&x=1"
    assert env.channel == "PJSIP/trunk-00000001"
    assert env.uniqueid == "1700000000.42"
    assert env.callerid == "5551234"
    assert env.calleridname == "Alice: Sales"
    assert env.dnid == "8005550100"
    assert env.context == "from-trunk"
    assert env.extension == "8005550100"
    assert env.language == "fr"
    assert env.args == ("first arg", "", "third")
    assert env.raw["agi_accountcode"] == ""


def test_env_read_on_demand_agrees_with_a_full_parse() -> None:
    """Variables are split out only when asked for; what comes back is what a full
    parse gives, including names that are prefixes of others and repeated names."""
    lines = [
        "agi_arg_10: ten",
        "agi_arg_1: one",
        "agi_callerid:5551234",
        "agi_uniqueid: 1.1",
        "agi_uniqueid: 1.2",
        "agi_dnid: ",
    ]
    lazy, full = AgiEnv.parse("\n".join(lines)), AgiEnv.from_lines(lines)
    for name in ("callerid", "uniqueid", "dnid", "channel", "args", "network_script"):
        assert getattr(lazy, name) == getattr(full, name), name
    assert lazy.callerid == "5551234"
    assert lazy.uniqueid == "1.2"
    assert lazy.args == ("one",)
    assert lazy == full


def test_env_without_script_has_empty_route() -> None:
    env = AgiEnv.parse("agi_network: yes\nagi_channel: SIP/x")
    assert env.network_script == ""
    assert env.args == ()


def test_env_line_must_be_agi() -> None:
    assert parse_env_line("agi_type: PJSIP") == ("agi_type", "PJSIP")
    for bad in ("GET / HTTP/1.1", "Host: example.com", "agi_bad key: x", "agi_nocolon"):
        with pytest.raises(AGIProtocolError):
            parse_env_line(bad)
    for block in (
        "agi_network: yes\nGET / HTTP/1.1",
        "GET / HTTP/1.1\nagi_network: yes",
        "agi_network: yes\nagi_bad key: x",
        "agi_network: yes\n\nagi_channel: x",
    ):
        with pytest.raises(AGIProtocolError):
            AgiEnv.parse(block)


# --- arguments --------------------------------------------------------------------------


def res_agi_parse_args(s: str) -> list[str]:
    """Python transcription of parse_args() in Asterisk's res/res_agi.c."""
    argv: list[list[str]] = []
    quoted = escaped = False
    whitespace = True
    for ch in s:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                argv.append([])
                whitespace = False
            continue
        if ch in " \t" and not quoted and not escaped:
            whitespace = True
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            argv.append([])
            whitespace = False
        argv[-1].append(ch)
        escaped = False
    return ["".join(a) for a in argv]


def test_parse_args_transcription_matches_known_cases() -> None:
    """Cases worked out by hand from the C code, so the oracle itself is checked."""
    assert res_agi_parse_args('STREAM FILE hello "0123"') == ["STREAM", "FILE", "hello", "0123"]
    assert res_agi_parse_args('SET VARIABLE X ""') == ["SET", "VARIABLE", "X", ""]
    assert res_agi_parse_args(r'VERBOSE "a \"b\" c\\d" 1') == ["VERBOSE", 'a "b" c\\d', "1"]
    assert res_agi_parse_args("a\\ b  c") == ["a b", "c"]


@pytest.mark.parametrize(
    "value",
    ["", " ", "plain", "two words", 'say "hi"', "back\\slash", "\\", '"', 'a\\"b', "\ttab", "é ü"],
)
def test_quote_round_trips_through_parse_args(value: str) -> None:
    assert res_agi_parse_args(f"SET VARIABLE X {quote(value)}") == ["SET", "VARIABLE", "X", value]


def test_quote_round_trips_random_strings() -> None:
    rng = random.Random(4573)
    alphabet = 'ab \t"\\()=$'
    for _ in range(2000):
        values = ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(3)]
        line = "EXEC App " + " ".join(quote(v) for v in values)
        assert res_agi_parse_args(line) == ["EXEC", "App", *values]


@pytest.mark.parametrize("value", ["hello-world", "CALLERID(num)", "two words", "", 'q"', "a\\b"])
def test_word_round_trips(value: str) -> None:
    assert res_agi_parse_args(f"GET VARIABLE {word(value)}") == ["GET", "VARIABLE", value]


def test_word_stays_bare_when_unambiguous() -> None:
    assert word("hello-world") == "hello-world"
    assert word("two words") == '"two words"'


@pytest.mark.parametrize("value", ["a\nHANGUP", "a\r\nEXEC System rm", "nul\0"])
def test_line_breaks_cannot_inject_a_second_command(value: str) -> None:
    with pytest.raises(ValueError):
        quote(value)
    with pytest.raises(ValueError):
        encode_command(f"SET VARIABLE X {value}")


def test_command_longer_than_asterisk_buffer_is_refused() -> None:
    """res_agi reads 8192-byte chunks: a longer line would run its tail as a command."""
    assert encode_command("VERBOSE " + "x" * 8000).endswith(b"\n")
    with pytest.raises(ValueError):
        encode_command("VERBOSE " + "x" * 8190)
