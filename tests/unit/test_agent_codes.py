"""Which phone dialled an agent feature code, and what the dialplan hands the queue route."""

from __future__ import annotations

import pytest

from acd.core.routing import parse_skills
from acd.queues.routes import device_of_channel


@pytest.mark.parametrize(
    ("channel", "device"),
    [
        ("PJSIP/1001-0000002a", "PJSIP/1001"),
        ("SIP/agent-7-00000001", "SIP/agent-7"),  # a dash in the peer name
        ("IAX2/remote-3f2a", "IAX2/remote"),
        ("Local/r1t3@acd-sim-agent-00000019;1", None),  # no phone behind it
        ("garbage", None),
    ],
)
def test_device_of_channel(channel: str, device: str | None) -> None:
    assert device_of_channel(channel) == device


def test_skills_from_the_dialplan_variable() -> None:
    # ACD_SKILLS "de,loans:3, vip ," split at the commas
    assert parse_skills(["de", "loans:3", " vip ", ""]) == {"de": 1, "loans": 3, "vip": 1}


@pytest.mark.parametrize("bad", ["loans:0", "loans:11", "loans:x", ":3"])
def test_bad_skill_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match=bad.split(":")[0] or "empty"):
        parse_skills([bad])
