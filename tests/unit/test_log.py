"""Logs are JSON lines and never carry secrets."""

from __future__ import annotations

import json
import logging

import pytest

from acd.log import configure_logging, get_logger


def test_secrets_are_scrubbed_from_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = get_logger("acd.test")
    log.info(
        "connecting",
        secret="ami-secret-1",
        db_password="pw-2",
        url="postgresql+psycopg://acd:pw-3@127.0.0.1/acd",
        uniqueid="1700000000.1",
    )
    logging.getLogger("panoramisk").warning("lib says %s", "hello")
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    text = json.dumps(lines)
    for secret in ("ami-secret-1", "pw-2", "pw-3"):
        assert secret not in text
    assert lines[0]["event"] == "connecting"
    assert lines[0]["uniqueid"] == "1700000000.1"
    assert lines[0]["url"] == "postgresql+psycopg://acd:***@127.0.0.1/acd"
    assert lines[1]["logger"] == "panoramisk"
