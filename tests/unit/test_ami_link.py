"""The AMI link against a fake Asterisk manager, and the channel registry it keeps."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import random
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import structlog
from panoramisk.message import Message
from pydantic import SecretStr

from acd.ami import (
    AmiActionError,
    AmiLink,
    AmiNotConnected,
    AmiTimeout,
    Channel,
    ChannelRegistry,
    DownReason,
    backoff_delay,
)
from acd.config import AmiSettings
from acd.log import configure_logging
from tests.fixtures.fake_ami import FakeAmi, channel, encode, wait_until

pytestmark = pytest.mark.timeout(30)

MakeLink = Callable[..., AmiLink]


def ami_settings(server: FakeAmi, **overrides: Any) -> AmiSettings:
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "username": "acd",
        "secret": SecretStr(server.secret),
        "events": "call,user",
        "action_timeout": 1.0,
        "ping_interval": 5.0,
        "pong_timeout": 1.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
    }
    values.update(overrides)
    return AmiSettings(**values)


@pytest.fixture
async def server() -> AsyncIterator[FakeAmi]:
    ami = FakeAmi()
    await ami.start()
    yield ami
    await ami.stop()


@pytest.fixture
async def make_link() -> AsyncIterator[MakeLink]:
    links: list[AmiLink] = []

    def make(settings: AmiSettings, **kwargs: Any) -> AmiLink:
        link = AmiLink(settings, **kwargs)
        links.append(link)
        return link

    yield make
    for link in links:
        await link.stop()


async def assert_pong(link: AmiLink) -> None:
    reply = await link.action({"Action": "Ping"})
    assert isinstance(reply, Message)
    assert reply["Ping"] == "Pong"


async def up_link(make_link: MakeLink, server: FakeAmi, **overrides: Any) -> AmiLink:
    link = make_link(ami_settings(server, **overrides))
    await link.start()
    assert await link.wait_up(3.0)
    return link


@pytest.fixture
def rendered_logs() -> Iterator[io.StringIO]:
    """Everything the process logs (ours and panoramisk's, DEBUG up) as rendered JSON lines."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_config = structlog.get_config()
    real_stderr, sys.stderr = sys.stderr, buffer
    try:
        configure_logging("DEBUG", "json")
    finally:
        sys.stderr = real_stderr
    structlog.configure(cache_logger_on_first_use=False)
    yield buffer
    structlog.configure(**saved_config)
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


# --- actions -------------------------------------------------------------------------


async def test_login_uses_settings_and_actions_round_trip(
    server: FakeAmi, make_link: MakeLink
) -> None:
    server.channels = [channel("1.1", "PJSIP/alice-00000001")]
    link = await up_link(make_link, server)

    (login,) = server.actions("Login")
    assert (login["Username"], login["Events"]) == ("acd", "call,user")

    pong = await link.action({"Action": "Ping"})
    assert isinstance(pong, Message)
    assert pong["Ping"] == "Pong"

    listing = await link.action({"Action": "CoreShowChannels"})
    assert isinstance(listing, list)
    assert [m.get("Event", m.get("Response")) for m in listing] == [
        "Success",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
    ]
    assert listing[1]["Channel"] == "PJSIP/alice-00000001"


async def test_error_response_raises_with_asterisks_message(
    server: FakeAmi, make_link: MakeLink
) -> None:
    link = await up_link(make_link, server)
    with pytest.raises(AmiActionError, match="Invalid/unknown command: Bogus") as caught:
        await link.action({"Action": "Bogus"})
    assert caught.value.message == "Invalid/unknown command: Bogus"
    assert link.up


async def test_queueadd_acknowledgement_completes(server: FakeAmi, make_link: MakeLink) -> None:
    # panoramisk on its own takes "Added interface to queue" for the start of a list.
    link = await up_link(make_link, server)
    reply = await link.action(
        {"Action": "QueueAdd", "Queue": "support", "Interface": "PJSIP/alice"}, timeout=0.5
    )
    assert isinstance(reply, Message)
    assert reply["Message"] == "Added interface to queue"


async def test_line_breaks_in_fields_are_refused(server: FakeAmi, make_link: MakeLink) -> None:
    link = await up_link(make_link, server)
    with pytest.raises(ValueError, match="line breaks"):
        await link.action({"Action": "Setvar", "Value": "x\r\n\r\nAction: Logoff"})
    with pytest.raises(ValueError, match="'Action'"):
        await link.action({"Channel": "PJSIP/alice"})
    await asyncio.sleep(0.05)
    assert not server.actions("Logoff")
    assert not server.actions("Setvar")
    assert link.up


async def test_action_timeout_leaves_the_link_up(server: FakeAmi, make_link: MakeLink) -> None:
    server.silent_actions = {"status"}
    link = await up_link(make_link, server, action_timeout=0.2)

    started = time.monotonic()
    with pytest.raises(AmiTimeout):
        await link.action({"Action": "Status"}, timeout=0.1)
    assert 0.09 <= time.monotonic() - started < 0.5

    started = time.monotonic()
    with pytest.raises(TimeoutError):  # AmiTimeout is a TimeoutError; default from settings
        await link.action({"Action": "Status"})
    assert 0.19 <= time.monotonic() - started < 0.6

    assert link.up
    await assert_pong(link)


async def test_actions_fail_fast_while_down(server: FakeAmi, make_link: MakeLink) -> None:
    link = await up_link(make_link, server)
    await server.stop()
    await wait_until(lambda: not link.up)

    started = time.monotonic()
    with pytest.raises(AmiNotConnected):
        await link.action({"Action": "Ping"})
    assert time.monotonic() - started < 0.05


async def test_action_in_flight_fails_on_drop_and_is_never_resent(
    server: FakeAmi, make_link: MakeLink
) -> None:
    server.silent_actions = {"originate"}
    link = await up_link(make_link, server, action_timeout=5.0)

    pending = asyncio.create_task(link.action({"Action": "Originate", "Channel": "PJSIP/bob"}))
    await wait_until(lambda: len(server.actions("Originate")) == 1)
    started = time.monotonic()
    await server.drop()
    with pytest.raises(AmiNotConnected):
        await pending
    assert time.monotonic() - started < 1.0  # not the 5 s action timeout

    await wait_until(lambda: link.up)
    await asyncio.sleep(0.2)
    # panoramisk would re-send it after the next login: a second call to bob's phone.
    assert len(server.actions("Originate")) == 1


# --- events --------------------------------------------------------------------------


async def test_only_registered_event_names_are_dispatched(
    server: FakeAmi, make_link: MakeLink
) -> None:
    link = await up_link(make_link, server)
    newchannels: list[str] = []
    user_events: list[str] = []
    everything: list[str] = []

    async def on_user_event(event: Message) -> None:
        user_events.append(event.get("UserEvent", event["Event"]))

    link.on_event("Newchannel", lambda e: newchannels.append(e.get("Channel", e["Event"])))
    link.on_event("userevent", on_user_event)  # names match in any case
    link.on_event("*", lambda e: everything.append(e["Event"]))

    await server.emit({"Event": "VarSet", "Variable": "X", "Value": "1"})
    await server.emit({"Event": "Newchannel", **channel("2.1", "PJSIP/bob-00000002")})
    await server.emit({"Event": "UserEvent", "UserEvent": "AcdChoice"})
    await wait_until(lambda: len(everything) == 3 and user_events == ["AcdChoice"])

    assert newchannels == ["PJSIP/bob-00000002"]
    assert everything == ["VarSet", "Newchannel", "UserEvent"]


async def test_failing_callbacks_are_logged_and_do_not_hurt_the_link(
    server: FakeAmi, make_link: MakeLink, rendered_logs: io.StringIO
) -> None:
    link = await up_link(make_link, server)
    delivered: list[str] = []

    def broken(event: Message) -> None:
        raise RuntimeError("sync callback bug")

    async def broken_async(event: Message) -> None:
        raise RuntimeError("async callback bug")

    link.on_event("UserEvent", broken)
    link.on_event("UserEvent", broken_async)
    link.on_event("UserEvent", lambda e: delivered.append(e["UserEvent"]))

    await server.emit({"Event": "UserEvent", "UserEvent": "First"})
    await server.emit({"Event": "UserEvent", "UserEvent": "Second"})
    await wait_until(lambda: delivered == ["First", "Second"])
    await wait_until(lambda: rendered_logs.getvalue().count("async callback bug") >= 2)

    logs = rendered_logs.getvalue()
    assert logs.count('"ami_callback_failed"') == 4
    assert "sync callback bug" in logs
    assert link.up
    await assert_pong(link)


async def test_utf8_character_split_across_reads_survives(
    server: FakeAmi, make_link: MakeLink
) -> None:
    link = await up_link(make_link, server)
    names: list[str] = []
    link.on_event("NewCallerid", lambda e: names.append(e["CallerIDName"]))

    raw = encode({"Event": "NewCallerid", **channel("3.1", "PJSIP/c"), "CallerIDName": "Müller"})
    cut = raw.index("ü".encode()) + 1  # between the two bytes of ü
    await server.emit_raw([raw[:cut], raw[cut:]], pause=0.05)
    await wait_until(lambda: len(names) == 1)
    assert names == ["Müller"]
    assert link.channels.get("3.1") == Channel("3.1", "PJSIP/c", "3.1", "100", "Müller", "Up")


# --- liveness and reconnect ----------------------------------------------------------


async def test_silent_server_is_declared_dead_by_the_pong_watchdog(
    server: FakeAmi, make_link: MakeLink
) -> None:
    link = await up_link(make_link, server, ping_interval=0.1, pong_timeout=0.1)
    await wait_until(lambda: link.last_pong_rtt is not None)
    assert link.last_pong_rtt is not None and link.last_pong_rtt < 0.1
    downs: list[tuple[DownReason, float]] = []
    link.on_down(lambda reason: downs.append((reason, time.monotonic())))

    server.answer_pings = False  # TCP stays open: only the missing Pong tells
    silenced = time.monotonic()
    await wait_until(lambda: bool(downs))
    reason, at = downs[0]
    assert reason is DownReason.PONG_TIMEOUT
    assert at - silenced < 0.1 + 0.1 + 0.15
    await wait_until(lambda: server.disconnects == 1)  # the dead connection was closed

    server.answer_pings = True
    assert await link.wait_up(2.0)
    assert link.reconnects == 1


async def test_tcp_close_is_noticed_at_once_and_the_link_comes_back(
    server: FakeAmi, make_link: MakeLink
) -> None:
    link = await up_link(make_link, server, ping_interval=10.0)
    downs: list[tuple[DownReason, float]] = []
    link.on_down(lambda reason: downs.append((reason, time.monotonic())))

    closed = time.monotonic()
    await server.drop()
    await wait_until(lambda: bool(downs))
    assert downs[0][0] is DownReason.CONNECTION_CLOSED
    assert downs[0][1] - closed < 0.1  # long before any ping would have been due
    assert await link.wait_up(2.0)
    assert link.reconnects == 1


async def test_asterisk_shutdown_event_takes_the_link_down(
    server: FakeAmi, make_link: MakeLink
) -> None:
    link = await up_link(make_link, server, ping_interval=10.0)
    downs: list[DownReason] = []
    link.on_down(downs.append)
    await server.emit({"Event": "Shutdown", "Shutdown": "Cleanly", "Restart": "True"})
    await wait_until(lambda: bool(downs))
    assert downs == [DownReason.ASTERISK_SHUTDOWN]
    assert await link.wait_up(2.0)


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.mark.parametrize(
    ("rand", "expected"),
    [(1.0, [0.05, 0.1, 0.2, 0.2]), (0.0, [0.05, 0.05, 0.05, 0.05])],
    ids=["upper-bound", "lower-bound"],
)
async def test_retries_back_off_exponentially_up_to_the_cap(
    server: FakeAmi, make_link: MakeLink, rand: float, expected: list[float]
) -> None:
    server.refuse_logins = True
    link = make_link(ami_settings(server), rand=lambda: rand)
    await link.start()
    await wait_until(lambda: len(server.times("Login")) == 5)
    for gap, delay in zip(gaps(server.times("Login")), expected, strict=True):
        assert delay * 0.95 <= gap < delay + 0.08


async def test_backoff_restarts_from_the_bottom_after_a_good_login(
    server: FakeAmi, make_link: MakeLink
) -> None:
    server.refuse_logins = True
    link = make_link(ami_settings(server), rand=lambda: 1.0)
    await link.start()
    await wait_until(lambda: len(server.times("Login")) == 4)  # waits grew to 0.2 s
    server.refuse_logins = False
    assert await link.wait_up(2.0)

    server.refuse_logins = True
    before = len(server.times("Login"))
    dropped = time.monotonic()
    await server.drop()
    await wait_until(lambda: len(server.times("Login")) >= before + 2)
    first, second = gaps([dropped, *server.times("Login")[before:]])[:2]
    assert 0.05 * 0.95 <= first < 0.05 + 0.08  # not the 0.2 s reached before
    assert 0.1 * 0.95 <= second < 0.1 + 0.08


def test_backoff_delay_stays_within_its_bounds() -> None:
    rng = random.Random(7)
    for attempt in range(40):
        cap = min(30.0, 0.5 * 2**attempt)
        for _ in range(50):
            delay = backoff_delay(attempt, 0.5, 30.0, rng.random())
            assert 0.5 <= delay <= cap
        assert backoff_delay(attempt, 0.5, 30.0, 1.0) == cap
        assert backoff_delay(attempt, 0.5, 30.0, 0.0) == 0.5
    assert backoff_delay(10_000, 0.5, 30.0, 1.0) == 30.0


async def test_bad_secret_is_retried_and_never_logged(
    server: FakeAmi, make_link: MakeLink, rendered_logs: io.StringIO
) -> None:
    wrong = "wr0ng-Secret-4711"
    link = make_link(ami_settings(server, secret=SecretStr(wrong)))
    await link.start()
    await wait_until(lambda: len(server.actions("Login")) >= 3)
    assert not link.up
    assert server.actions("Login")[0]["Secret"] == wrong  # it was really sent

    server.secret = wrong  # the administrator fixes manager.conf
    assert await link.wait_up(2.0)

    logs = rendered_logs.getvalue()
    assert '"ami_login_failed"' in logs
    assert "Authentication failed" in logs
    assert '"panoramisk' in logs  # panoramisk's own debug lines were captured too
    assert wrong not in logs


async def test_start_returns_at_once_when_asterisk_is_down(make_link: MakeLink) -> None:
    server = FakeAmi()
    await server.start()
    await server.stop()  # keep the port, refuse connections
    link = make_link(ami_settings(server))
    started = time.monotonic()
    await link.start()
    assert time.monotonic() - started < 0.05
    assert not await link.wait_up(0.2)
    assert not link.up

    await server.start()
    try:
        assert await link.wait_up(2.0)
        assert link.reconnects == 0  # first time up
    finally:
        await server.stop()


# --- resync --------------------------------------------------------------------------


async def test_resync_reports_channels_that_hung_up_while_down(
    server: FakeAmi, make_link: MakeLink
) -> None:
    alice, bob = channel("1.1", "PJSIP/alice-1"), channel("1.2", "PJSIP/bob-2")
    carol, dave = channel("1.3", "PJSIP/carol-3"), channel("1.4", "PJSIP/dave-4")
    server.channels = [alice, bob]
    link = make_link(ami_settings(server))
    ups: list[list[str]] = []
    link.on_up(lambda vanished: ups.append(sorted(c.uniqueid for c in vanished)))
    await link.start()
    await wait_until(lambda: len(ups) == 1)
    assert ups == [[]]
    assert sorted(c.uniqueid for c in link.channels) == ["1.1", "1.2"]

    await server.emit({"Event": "Newchannel", **carol})
    await wait_until(lambda: "1.3" in link.channels)

    await server.stop()  # Asterisk goes away; bob and carol hang up meanwhile
    await wait_until(lambda: not link.up)
    server.channels = [alice, dave]
    await server.start()

    await wait_until(lambda: len(ups) == 2)
    assert ups[1] == ["1.2", "1.3"]
    assert sorted(c.uniqueid for c in link.channels) == ["1.1", "1.4"]
    assert link.reconnects == 1


async def test_hangup_right_after_the_snapshot_is_not_undone(
    server: FakeAmi, make_link: MakeLink
) -> None:
    # The Hangup arrives in the same read as the list that still had the channel:
    # applying the snapshot after it would leave a ghost channel forever.
    alice = channel("1.1", "PJSIP/alice-1")
    server.channels = [alice]
    server.after_channel_list = [{"Event": "Hangup", **alice, "Cause": "16"}]
    link = await up_link(make_link, server)
    assert "1.1" not in link.channels
    assert len(link.channels) == 0


# --- stop ----------------------------------------------------------------------------


async def test_stop_logs_off_and_never_reconnects(server: FakeAmi, make_link: MakeLink) -> None:
    link = await up_link(make_link, server)
    downs: list[DownReason] = []
    link.on_down(downs.append)

    await link.stop()
    assert not link.up
    assert downs == [DownReason.STOPPED]
    assert len(server.actions("Logoff")) == 1
    await wait_until(lambda: server.disconnects == 1)
    await asyncio.sleep(0.3)  # several backoff periods
    assert server.connections == 1
    with pytest.raises(AmiNotConnected):
        await link.action({"Action": "Ping"})


async def test_stop_while_retrying_ends_the_retries(server: FakeAmi, make_link: MakeLink) -> None:
    link = await up_link(make_link, server)
    await server.stop()
    await wait_until(lambda: not link.up)

    started = time.monotonic()
    await link.stop()
    assert time.monotonic() - started < 0.2
    connections = server.connections
    await server.start()
    await asyncio.sleep(0.3)
    assert server.connections == connections
    assert not link.up


# --- channel registry ----------------------------------------------------------------


def event(name: str, uniqueid: str = "9.1", **fields: str) -> dict[str, str]:
    return {"Event": name, **channel(uniqueid, "PJSIP/x-9"), **fields}


def test_registry_follows_a_channels_life() -> None:
    registry = ChannelRegistry()
    registry.apply(event("Newchannel", ChannelStateDesc="Ring", CallerIDNum="<unknown>"))
    assert registry.get("9.1") == Channel("9.1", "PJSIP/x-9", "9.1", "", "", "Ring")

    registry.apply(event("Newstate", ChannelStateDesc="Up", CallerIDNum="<unknown>"))
    registry.apply(event("NewCallerid", CallerIDNum="+4930123", CallerIDName="Alice"))
    assert registry.get("9.1") == Channel("9.1", "PJSIP/x-9", "9.1", "+4930123", "Alice", "Up")

    registry.apply(event("VarSet", CallerIDNum="ignored"))
    assert registry.get("9.1") is not None
    assert registry.get("9.1").caller_number == "+4930123"  # type: ignore[union-attr]

    registry.apply(event("Hangup", Cause="16"))
    assert "9.1" not in registry
    assert len(registry) == 0


def test_registry_adopts_channels_it_missed_and_ignores_unknown_hangups() -> None:
    registry = ChannelRegistry()
    registry.apply(event("Newstate", "7.7"))  # its Newchannel was lost
    registry.apply(event("Hangup", "8.8"))  # never known
    registry.apply({"Event": "Newchannel", "Channel": "PJSIP/no-id"})
    assert [c.uniqueid for c in registry] == ["7.7"]


def test_registry_reads_panoramisk_messages_in_any_case() -> None:
    registry = ChannelRegistry()
    registry.apply(Message({"event": "Newchannel", "uniqueid": "5.5", "channel": "PJSIP/y"}))
    assert registry.get("5.5") == Channel("5.5", "PJSIP/y", "5.5", "", "", "")


def test_replace_all_returns_the_channels_that_vanished() -> None:
    registry = ChannelRegistry()
    for uid in ("1", "2", "3"):
        registry.apply(event("Newchannel", uid))
    kept = Channel("2", "PJSIP/x-9", "2", "100", "", "Up")
    new = Channel("4", "PJSIP/new", "4", "200", "", "Ring")

    vanished = registry.replace_all([kept, new])

    assert [c.uniqueid for c in vanished] == ["1", "3"]
    assert sorted(c.uniqueid for c in registry) == ["2", "4"]
    assert registry.replace_all([kept, new]) == []
