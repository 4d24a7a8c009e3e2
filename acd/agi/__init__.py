"""FastAGI: the asyncio server Asterisk's ``AGI(agi://...)`` calls, and its protocol."""

from acd.agi.protocol import (
    AGICommandError,
    AgiEnv,
    AGIError,
    AGIHangup,
    AGIProtocolError,
    AgiReply,
    AGITimeout,
    parse_env_line,
    parse_reply,
    quote,
)
from acd.agi.server import FastAGIServer, Handler
from acd.agi.session import AGISession

__all__ = [
    "AGICommandError",
    "AGIError",
    "AGIHangup",
    "AGIProtocolError",
    "AGISession",
    "AGITimeout",
    "AgiEnv",
    "AgiReply",
    "FastAGIServer",
    "Handler",
    "parse_env_line",
    "parse_reply",
    "quote",
]
