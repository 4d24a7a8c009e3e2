"""Live Asterisk channels as the AMI reports them, keyed by uniqueid.

Pure bookkeeping (no I/O): the AMI link feeds it channel events while it is up and a
``CoreShowChannels`` snapshot after every (re)connect. Events are lost while the link is
down, so ``replace_all`` reports the channels that disappeared meanwhile; the daemon
closes their calls, which would otherwise stay open forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Events that carry a channel snapshot (Asterisk 12+ field names).
_UPSERT_EVENTS = frozenset({"newchannel", "newstate", "newcallerid"})
_REMOVE_EVENTS = frozenset({"hangup"})
# Asterisk writes this where a caller id is not set.
_UNKNOWN = "<unknown>"


@dataclass(frozen=True, slots=True)
class Channel:
    """One live channel; ``caller_*`` are empty when Asterisk knows no caller id."""

    uniqueid: str
    name: str
    linkedid: str
    caller_number: str
    caller_name: str
    state: str


def _field(fields: Mapping[str, Any], key: str) -> str:
    value = fields.get(key, "")
    if isinstance(value, list):  # a repeated header; the last one wins
        value = value[-1] if value else ""
    return str(value)


def _caller_id(value: str) -> str:
    return "" if value == _UNKNOWN else value


def channel_from_event(fields: Mapping[str, Any]) -> Channel | None:
    """The channel an event or ``CoreShowChannel`` list item describes; None without uniqueid."""
    uniqueid = _field(fields, "Uniqueid")
    if not uniqueid:
        return None
    return Channel(
        uniqueid=uniqueid,
        name=_field(fields, "Channel"),
        linkedid=_field(fields, "Linkedid") or uniqueid,
        caller_number=_caller_id(_field(fields, "CallerIDNum")),
        caller_name=_caller_id(_field(fields, "CallerIDName")),
        state=_field(fields, "ChannelStateDesc"),
    )


class ChannelRegistry:
    """The channels Asterisk has up right now, as far as the AMI has told us."""

    #: Event names (lower case) that ``apply`` acts on; the link buffers these during resync.
    EVENTS = _UPSERT_EVENTS | _REMOVE_EVENTS

    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}

    def __len__(self) -> int:
        return len(self._channels)

    def __contains__(self, uniqueid: object) -> bool:
        return uniqueid in self._channels

    def __iter__(self) -> Iterator[Channel]:
        return iter(list(self._channels.values()))

    def get(self, uniqueid: str) -> Channel | None:
        return self._channels.get(uniqueid)

    def apply(self, event: Mapping[str, Any]) -> None:
        """Update from one AMI event; events it does not track are ignored.

        A state or caller id change for a channel we never saw is taken as its creation:
        its ``Newchannel`` may have been missed around a reconnect.
        """
        name = _field(event, "Event").lower()
        if name not in self.EVENTS:
            return
        channel = channel_from_event(event)
        if channel is None:
            return
        if name in _REMOVE_EVENTS:
            self._channels.pop(channel.uniqueid, None)
        else:
            self._channels[channel.uniqueid] = channel

    def replace_all(self, snapshot: Iterable[Channel]) -> list[Channel]:
        """Adopt a full snapshot; return the known channels it no longer has (hung up)."""
        fresh = {channel.uniqueid: channel for channel in snapshot}
        vanished = [c for uid, c in self._channels.items() if uid not in fresh]
        self._channels = fresh
        return vanished
