"""The sample hotline in ivr_flows/: valid, and every prompt exists in the real test bed.

The prompts are checked against the Asterisk test bed's own sounds (``asterisk`` fixture:
it builds and starts the bed, and fails rather than skips without it), so a sample that
would play silence in ``./dev demo`` fails here.
"""

from __future__ import annotations

from pathlib import Path

from acd.ivr.loader import load_flows
from acd.ivr.model import LookupNode
from tests.fixtures.testbed import Testbed

FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows"


def test_sample_flows_load() -> None:
    flows = load_flows(FLOWS)
    assert set(flows) == {"hotline", "account"}
    hotline = flows["hotline"]
    assert hotline.languages.all == ("en", "de") and hotline.languages.fallback_language == "en"
    assert hotline.schedules["office"].timezone == "Europe/Berlin"
    assert {"1", "2", "3", "0"} <= set(hotline.nodes["main_menu"].model_dump()["choices"])
    lookups = [n for f in flows.values() for n in f.nodes.values() if isinstance(n, LookupNode)]
    for node in lookups:  # caller input only ever as bind parameters
        assert node.sql is not None and "demo_customers" in node.sql.query
        assert node.sql.params and "{" not in node.sql.query


def test_every_prompt_exists_in_the_test_bed(asterisk: Testbed) -> None:
    sounds = asterisk.root / "usr" / "share" / "asterisk" / "sounds"
    flows = load_flows(FLOWS, sounds_dir=sounds)  # raises FlowError listing missing files
    prompts = {p for f in flows.values() for n in f.nodes.values() for _, p in n.prompt_refs()}
    assert "basic-pbx-ivr-main" in {flows["hotline"].prompt_file(p, "en") for p in prompts}


def test_a_missing_prompt_is_caught_in_the_test_bed(asterisk: Testbed, tmp_path: Path) -> None:
    """The check above is not vacuous: the bed's ``en`` link is followed into the chroot."""
    import pytest

    from acd.ivr.validate import FlowError

    broken = (FLOWS / "hotline.yaml").read_text().replace("prompt: greeting", "prompt: no-such")
    (tmp_path / "hotline.yaml").write_text(broken)
    (tmp_path / "account.yaml").write_text((FLOWS / "account.yaml").read_text())
    sounds = asterisk.root / "usr" / "share" / "asterisk" / "sounds"
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path, sounds_dir=sounds)
    assert [p.message.split(":")[0] for p in caught.value.problems] == [
        "prompt 'no-such' has no sound file"
    ]
