"""The AMI link: one supervised Asterisk Manager connection and the live channel registry."""

from acd.ami.channels import Channel, ChannelRegistry, channel_from_event
from acd.ami.link import (
    ActionFields,
    AmiActionError,
    AmiError,
    AmiLink,
    AmiNotConnected,
    AmiTimeout,
    DownCallback,
    DownReason,
    EventCallback,
    Message,
    UpCallback,
    backoff_delay,
)

__all__ = [
    "ActionFields",
    "AmiActionError",
    "AmiError",
    "AmiLink",
    "AmiNotConnected",
    "AmiTimeout",
    "Channel",
    "ChannelRegistry",
    "DownCallback",
    "DownReason",
    "EventCallback",
    "Message",
    "UpCallback",
    "backoff_delay",
    "channel_from_event",
]
