"""Random callers through the real routing engine achieve what Erlang C predicts.

Erlang C assumes agents take the next caller the moment they are free and callers are
served in order of arrival. The simulation drives ``RoutingEngine`` with Poisson
arrivals and exponential handle times, so an engine that left a free agent idle,
served out of order or kept an agent busy too long would miss the prediction.

Hundreds of simulated hours per scenario keep the sampling error (batch means over the
run) well inside the ±3 points allowed; the test asserts that too, so the tolerance
cannot silently become meaningless.
"""

from __future__ import annotations

import pytest

from acd.core.simulation import SimulationResult, simulate
from acd.core.staffing import asa, service_level

CALLS = 100  # per half hour
INTERVAL_S = 1800
AHT_S = 180
TARGET_S = 20
HOUR = 3600.0
WARMUP_HOURS = 1  # the queue fills from empty; not counted
#: Simulated hours of the 14-agent runs (with and without wrap-up: the same callers).
FOURTEEN_HOURS = 250


def run(agents: int, hours: float, **options: float) -> SimulationResult:
    return simulate(
        CALLS,
        INTERVAL_S,
        AHT_S,
        agents,
        duration_s=hours * HOUR,
        target_s=TARGET_S,
        seed=7,
        warmup_s=WARMUP_HOURS * HOUR,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def fourteen_agents() -> SimulationResult:
    return run(14, hours=FOURTEEN_HOURS)


@pytest.fixture(scope="module")
def twelve_agents() -> SimulationResult:
    return run(12, hours=500)


def test_fourteen_agents_answer_as_erlang_c_predicts(fourteen_agents: SimulationResult) -> None:
    predicted = service_level(14, CALLS, INTERVAL_S, AHT_S, TARGET_S)
    assert round(predicted * 100, 1) == 88.8
    assert fourteen_agents.calls > 45_000
    assert fourteen_agents.service_level_se < 0.01
    assert fourteen_agents.service_level == pytest.approx(predicted, abs=0.03)
    assert fourteen_agents.asa == pytest.approx(asa(14, CALLS, INTERVAL_S, AHT_S), rel=0.3)
    assert fourteen_agents.occupancy == pytest.approx(10 / 14, abs=0.02)
    assert fourteen_agents.abandoned == 0
    assert fourteen_agents.answered == fourteen_agents.calls


def test_twelve_agents_make_callers_wait_as_erlang_c_predicts(
    twelve_agents: SimulationResult, fourteen_agents: SimulationResult
) -> None:
    predicted = service_level(12, CALLS, INTERVAL_S, AHT_S, TARGET_S)
    assert predicted < 0.65  # far from the 14-agent case: agreement is no coincidence
    assert twelve_agents.service_level_se < 0.015
    assert twelve_agents.service_level == pytest.approx(predicted, abs=0.03)
    assert twelve_agents.asa == pytest.approx(asa(12, CALLS, INTERVAL_S, AHT_S), rel=0.3)
    assert twelve_agents.asa > 3 * fourteen_agents.asa
    assert twelve_agents.occupancy == pytest.approx(10 / 12, abs=0.02)


def test_wrap_up_keeps_agents_off_the_phone_and_the_service_level_drops(
    fourteen_agents: SimulationResult,
) -> None:
    wrap_up = 30.0
    with_wrap_up = run(14, hours=FOURTEEN_HOURS, wrap_up=wrap_up)
    # Same callers and handle times (same seed): only the wrap-up differs, so the extra
    # occupancy (agents' state as the engine reports it) is wrap_up per answered call.
    assert with_wrap_up.calls == fourteen_agents.calls
    extra = with_wrap_up.answered * wrap_up / (14 * (FOURTEEN_HOURS - WARMUP_HOURS) * HOUR)
    assert with_wrap_up.occupancy - fourteen_agents.occupancy == pytest.approx(extra, abs=0.002)
    assert with_wrap_up.service_level < fourteen_agents.service_level - 0.15
    # The planning rule of thumb: Erlang C with wrap-up counted into the handle time
    # (roughly: a fixed wrap-up makes handle times less variable than Erlang C assumes).
    planned = service_level(14, CALLS, INTERVAL_S, AHT_S + wrap_up, TARGET_S)
    assert with_wrap_up.service_level == pytest.approx(planned, abs=0.06)


def test_impatient_callers_hang_up_and_are_never_offered_afterwards(
    twelve_agents: SimulationResult,
) -> None:
    # An offer for a caller who hung up, or a second call for a busy agent, would make
    # the simulation raise: the engine removed every abandoned caller.
    impatient = run(12, hours=60, patience=60.0)
    assert impatient.abandoned == impatient.calls - impatient.answered > 0
    assert 0.02 < impatient.abandon_rate < 0.3
    # Those who stay wait far less than when everybody stays.
    assert impatient.asa < twelve_agents.asa / 2


def test_the_same_seed_gives_the_same_result() -> None:
    assert run(13, hours=5) == run(13, hours=5)
    assert run(13, hours=5) != simulate(CALLS, INTERVAL_S, AHT_S, 13, 5 * HOUR, seed=8)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"agents": 0}, "agents"),
        ({"aht_s": 0}, "aht_s"),
        ({"calls_per_interval": -5}, "calls_per_interval"),
        ({"warmup_s": 20 * HOUR}, "warmup_s"),
        ({"wrap_up": -1}, "wrap_up"),
        ({"patience": 0}, "patience"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict[str, float], field: str) -> None:
    args: dict[str, float] = {
        "calls_per_interval": CALLS,
        "interval_s": INTERVAL_S,
        "aht_s": AHT_S,
        "agents": 14,
        "duration_s": 20 * HOUR,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        simulate(**args)  # type: ignore[arg-type]
