"""The FastAGI wire format, as Asterisk's ``res/res_agi.c`` speaks it. Pure: no I/O.

Asterisk opens the connection and sends ``agi_*: value`` lines ending in a blank
line; then we send one command line at a time and read its reply:

* ``200 result=N [(data)] [key=value ...]``: the command ran (``N`` may be -1);
* ``100 result=0 Trying...``: an intermediate line (GOSUB) before the real reply;
* ``510 Invalid or unknown command``;
* ``511 Command Not Permitted on a dead channel or intercept routine``;
* ``520-Invalid command syntax.  Proper usage follows:`` + usage lines +
  ``520 End of proper usage.`` (or a single ``520 ...`` line when there is no usage);
* ``HANGUP`` (not a reply): the channel hung up; sent between commands when AGISIGHUP
  is not ``no``. Asterisk still answers any command it receives afterwards.

Arguments are split by res_agi's ``parse_args``: blanks separate words, double quotes
group them, a backslash makes the next character literal (inside quotes too).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple
from urllib.parse import parse_qsl


class AGIError(Exception):
    """Anything that ends or fails an AGI exchange."""


class AGIHangup(AGIError):
    """The channel hung up (HANGUP line, 511, result=-1 from a media command, socket closed)."""


class AGICommandError(AGIError):
    """Asterisk refused the command: 510 unknown command, 520 bad syntax (with usage)."""

    def __init__(self, code: int, message: str, usage: str = "") -> None:
        super().__init__(f"{code} {message}" + (f"\n{usage}" if usage else ""))
        self.code = code
        self.message = message
        self.usage = usage


class AGIProtocolError(AGIError):
    """The peer sent something that is not AGI (or too much of it, or too late)."""


class AGITimeout(AGIProtocolError):
    """Asterisk did not answer a command within the session's ``command_timeout``."""


HANGUP_LINE = "HANGUP"
_NO_EXTRAS: Mapping[str, str] = MappingProxyType({})


# --- environment --------------------------------------------------------------------


def parse_env_line(line: str) -> tuple[str, str]:
    """Split one ``agi_key: value`` header line (newline already removed)."""
    key, sep, value = line.partition(":")
    if not sep or not key.startswith("agi_") or " " in key:
        raise AGIProtocolError(f"not an AGI header line: {line[:80]!r}")
    if value.startswith(" "):
        value = value[1:]
    return key, value


# A whole header block as Asterisk sends it: ``agi_key: value`` lines, the same rule as
# ``parse_env_line`` (the key runs up to the first colon and holds no blank).
_ENV_BLOCK = re.compile(r"agi_[^ :\n]*:[^\n]*(?:\nagi_[^ :\n]*:[^\n]*)*")


class AgiEnv:
    """The ``agi_*`` variables Asterisk sent when the call arrived.

    ``parse`` checks the whole block at once but splits it into variables only when one
    is asked for: a call reads a handful of the two dozen, so most are never split."""

    __slots__ = ("_raw", "_text")

    def __init__(self, raw: Mapping[str, str] | None = None, *, _text: str = "") -> None:
        self._raw = raw
        self._text = _text  # the block between two newlines, when built by parse()

    @classmethod
    def from_lines(cls, lines: list[str]) -> AgiEnv:
        """Build from the header lines (without the blank terminator)."""
        return cls(dict(parse_env_line(line) for line in lines))

    @classmethod
    def parse(cls, block: str) -> AgiEnv:
        """Build from the header block (lines joined by ``\\n``, blank line removed)."""
        if _ENV_BLOCK.fullmatch(block):
            return cls(_text=f"\n{block}\n")
        return cls.from_lines(block.split("\n"))  # names the offending line

    @property
    def raw(self) -> Mapping[str, str]:
        """Every variable, by name."""
        if self._raw is None:
            self._raw = dict(parse_env_line(line) for line in self._text[1:-1].split("\n"))
        return self._raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AgiEnv) and dict(self.raw) == dict(other.raw)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"AgiEnv({dict(self.raw)!r})"

    def _get(self, key: str) -> str:
        if self._raw is not None:
            return self._raw.get(key, "")
        text = self._text
        at = text.rfind(f"\n{key}:")  # the last one wins, as in a dict
        if at < 0:
            return ""
        at += len(key) + 2
        if text.startswith(" ", at):
            at += 1
        return text[at : text.index("\n", at)]

    @property
    def request(self) -> str:
        """The AGI() URL as the dialplan wrote it, e.g. ``agi://10.0.0.5/hotline?x=1``."""
        return self._get("agi_request")

    @property
    def network_script(self) -> str:
        """The route: the URL path without leading slash or query (``hotline``)."""
        script = self._get("agi_network_script")
        return script.partition("?")[0].lstrip("/")

    @property
    def params(self) -> dict[str, str]:
        """The URL query (``agi://host/route?lang=fr``) as a dict."""
        return dict(parse_qsl(self._get("agi_network_script").partition("?")[2]))

    @property
    def args(self) -> tuple[str, ...]:
        """``AGI(url,a,b)`` arguments: ``agi_arg_1``, ``agi_arg_2``, ... in order."""
        out: list[str] = []
        while (value := self.raw.get(f"agi_arg_{len(out) + 1}")) is not None:
            out.append(value)
        return tuple(out)

    @property
    def channel(self) -> str:
        return self._get("agi_channel")

    @property
    def uniqueid(self) -> str:
        return self._get("agi_uniqueid")

    @property
    def callerid(self) -> str:
        """Caller number; Asterisk sends ``unknown`` when it has none."""
        return self._get("agi_callerid")

    @property
    def calleridname(self) -> str:
        return self._get("agi_calleridname")

    @property
    def dnid(self) -> str:
        return self._get("agi_dnid")

    @property
    def extension(self) -> str:
        return self._get("agi_extension")

    @property
    def context(self) -> str:
        return self._get("agi_context")

    @property
    def language(self) -> str:
        return self._get("agi_language")


# --- replies ------------------------------------------------------------------------


class AgiReply(NamedTuple):
    """One status line from Asterisk (a tuple: cheap to build on every command).

    ``result`` is the integer after ``result=`` (0 when absent or not a number: GET DATA
    sends the typed digits there, which may be empty or contain ``*``; ``result_text``
    keeps that token as sent). ``data`` is the text in parentheses, ``extras`` the
    trailing ``key=value`` pairs (``endpos``, ``digit``...).
    """

    code: int
    result: int
    data: str | None = None
    extras: Mapping[str, str] = _NO_EXTRAS
    raw: str = ""
    result_text: str = ""

    @property
    def message(self) -> str:
        """The text after the status code (``Invalid or unknown command``)."""
        return self.raw[4:]

    @property
    def continues(self) -> bool:
        """A ``520-`` line: usage lines follow until ``520 End of proper usage.``."""
        return self.raw[3:4] == "-"

    @property
    def timed_out(self) -> bool:
        """GET DATA and RECORD FILE mark a timeout as ``(timeout)``."""
        return self.data == "timeout"


_new_tuple = tuple.__new__  # builds an AgiReply without NamedTuple's Python-level __new__


def parse_reply(line: str) -> AgiReply:
    """Parse one reply line (newline removed); raise AGIProtocolError if it is not one."""
    if line.startswith("200 result="):
        # Nearly every reply: "200 result=N", "200 result=N (data)", "200 result=N k=v".
        end = line.find(" ", 11)
        if end < 0:
            try:
                result = int(line[11:])
            except ValueError:
                result = 0
            return _new_tuple(AgiReply, (200, result, None, _NO_EXTRAS, line, line[11:]))
        code = 200
    else:
        status = line[:3]
        if not (status.isascii() and status.isdigit() and line[3:4] in (" ", "-")):
            raise AGIProtocolError(f"not an AGI reply: {line[:80]!r}")
        code = int(status)
        if not 100 <= code < 600:
            raise AGIProtocolError(f"not an AGI reply: {line[:80]!r}")
        if not line.startswith("result=", 4):
            return _new_tuple(AgiReply, (code, 0, None, _NO_EXTRAS, line, ""))
        end = line.find(" ", 11)
        if end < 0:
            end = len(line)
    token, tail = line[11:end], line[end + 1 :]
    try:
        result = int(token)
    except ValueError:
        result = 0
    data: str | None = None
    if tail.startswith("("):
        if tail.endswith(")"):
            data, tail = tail[1:-1], ""
        else:
            data, tail = _split_data(tail)
    extras = _NO_EXTRAS
    if tail:
        extras = {}
        for w in tail.split():
            k, sep, v = w.partition("=")
            if sep and k:
                extras[k] = v
    return _new_tuple(AgiReply, (code, result, data, extras, line, token))


def _split_data(tail: str) -> tuple[str, str]:
    """Separate ``(data)`` from the ``key=value`` words after it; data may hold spaces
    and parentheses (a variable's value), so the data ends at the first ``) `` followed
    by a ``key=value`` word, or at the final ``)``."""
    if tail.endswith(")"):
        return tail[1:-1], ""
    i = tail.find(") ")
    while i >= 0:
        rest = tail[i + 2 :]
        first = rest.split(None, 1)[0] if rest.strip() else ""
        if "=" in first:
            return tail[1:i], rest
        i = tail.find(") ", i + 1)
    close = tail.rfind(")")
    return (tail[1:close], tail[close + 1 :]) if close > 0 else (tail[1:], "")


def reply_error(reply: AgiReply, usage: list[str] | None = None) -> AGIError:
    """The exception for a reply that is not a ``200``: 511 means the channel is gone."""
    if reply.code == 511:
        return AGIHangup(reply.raw)
    return AGICommandError(reply.code, reply.message, "\n".join(usage or ()))


# --- arguments ----------------------------------------------------------------------

_BARE = re.compile(r"[^\s\"\\\x00]+")


def quote(arg: str) -> str:
    """One argument, double-quoted so res_agi's parse_args gives back exactly ``arg``.

    CR and LF would end the command line and start another one (command injection),
    and NUL would cut the C string: those raise ValueError.
    """
    if "\n" in arg or "\r" in arg or "\0" in arg:
        raise ValueError(f"AGI argument contains CR, LF or NUL: {arg[:80]!r}")
    if "\\" in arg or '"' in arg:
        arg = arg.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{arg}"'


# Names repeat from call to call (prompts, variables, applications): remember how each
# is sent. Bounded in entries and in the length of what it keeps.
_WORDS: dict[str, str] = {}
_WORDS_MAX = 4096
_WORD_MAX_LEN = 256


def word(arg: str) -> str:
    """An identifier-like argument (file, variable or application name, number): sent
    bare when that is unambiguous, quoted otherwise."""
    sent = _WORDS.get(arg)
    if sent is None:
        sent = arg if _BARE.fullmatch(arg) else quote(arg)
        if len(arg) <= _WORD_MAX_LEN:
            if len(_WORDS) >= _WORDS_MAX:
                _WORDS.clear()
            _WORDS[arg] = sent
    return sent


# res_agi reads commands into an 8192-byte buffer (AGI_BUF_LEN): a longer line is cut
# and its remainder executed as a second command.
MAX_COMMAND_BYTES = 8190


def encode_command(line: str) -> bytes:
    """The bytes to send for one command line; refuses anything Asterisk would read as
    more than one command (CR, LF, NUL, or longer than its line buffer)."""
    if "\n" in line or "\r" in line or "\0" in line:
        raise ValueError(f"AGI command contains CR, LF or NUL: {line[:80]!r}")
    data = (line + "\n").encode()
    if len(data) > MAX_COMMAND_BYTES + 1:
        raise ValueError(f"AGI command longer than {MAX_COMMAND_BYTES} bytes: {line[:80]!r}")
    return data
