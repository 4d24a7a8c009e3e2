"""Contact-center KPIs from counts and sums: the definitions every report shares.

The database adds up (``acd.reports``); this module divides, so the HTTP API, the CLI
and the tests all use one definition of each figure. A ratio with nothing to divide by
is ``None`` ("no calls"), never 0 or 100 %, so an empty interval cannot look perfect.

Conventions (those of the usual ACD reports):

* A **waiting call** ends in exactly one outcome: answered by an agent, abandoned (the
  caller hung up), timed out (the queue's or flow's maximum wait), or turned into a
  callback request. **Offered** is the sum of the four.
* The **service-level threshold** ``T`` (e.g. 20 s): a call is answered *within* ``T``
  when its wait is ``<= T``.
* The **short-abandon threshold** ``S`` (e.g. 5 s): an abandon with a wait ``<= S`` is a
  *short abandon* (a misdial, a caller who changed their mind) and is left out of the
  abandonment rate and of the second service-level variant.
"""

from __future__ import annotations

from collections.abc import Iterable


def ratio(part: float, whole: float) -> float | None:
    """``part / whole``, or None when ``whole`` is 0 (nothing happened)."""
    return None if whole <= 0 else part / whole


def service_level(answered_within: int, answered: int) -> float | None:
    """Service level, answered calls only: answered within ``T`` / answered.

    Abandons do not count either way; the figure says how fast the calls that reached an
    agent were picked up.
    """
    return ratio(answered_within, answered)


def service_level_with_abandons(
    answered_within: int, answered: int, abandoned: int, short_abandoned: int
) -> float | None:
    """Service level counting abandons: answered within ``T`` / (answered + abandoned
    after the short-abandon threshold ``S``).

    Every caller who gave up after ``S`` counts as a call not answered in time, so a queue
    cannot reach its target by letting callers hang up. Short abandons (wait ``<= S``)
    are left out of the denominator.
    """
    return ratio(answered_within, answered + abandoned - short_abandoned)


def asa(total_answer_wait_s: float, answered: int) -> float | None:
    """Average speed of answer: seconds answered callers waited, on average (from
    arrival in their first queue to the agent answering)."""
    return ratio(total_answer_wait_s, answered)


def aht(total_talk_s: float, total_wrap_up_s: float, handled: int) -> float | None:
    """Average handle time: (talk + wrap-up) / calls handled, in seconds.

    Talk runs from the agent's answer to the first hang-up; wrap-up from there until the
    agent becomes available again (the wrap-up state's length, ended early when the
    agent presses ready).
    """
    return ratio(total_talk_s + total_wrap_up_s, handled)


def abandonment_rate(abandoned: int, short_abandoned: int, offered: int) -> float | None:
    """Abandoned after ``S`` / (offered - short abandons).

    Short abandons leave both sides: they are treated as calls that were never really
    offered.
    """
    return ratio(abandoned - short_abandoned, offered - short_abandoned)


def longest_wait(waits: Iterable[float | None]) -> float | None:
    """The longest wait of any waiting call, whatever its outcome (None: no calls)."""
    present = [w for w in waits if w is not None]
    return max(present) if present else None


def occupancy(
    talk_s: float, wrap_up_s: float, logged_in_s: float, not_ready_s: float
) -> float | None:
    """Occupancy: (talk + wrap-up) / (logged in - not ready).

    The share of an agent's *available* time (logged in and not in a not-ready state, so
    ready, ringing, talking or wrapping up) spent handling calls. Not-ready time (breaks,
    lunch, ring-no-answer) is left out of the base: occupancy measures workload, not
    adherence.
    """
    return ratio(talk_s + wrap_up_s, logged_in_s - not_ready_s)


def containment(contained: int, ivr_calls: int) -> float | None:
    """IVR containment: calls that ended in self-service / calls that entered the IVR.

    Self-service means the flow finished the call itself (its ``hangup`` outcome: the
    caller got what they needed). Calls passed on (queue, transfer, voicemail, callback,
    back to the dialplan), callers who hung up in a menu (drop-offs) and errors are not
    contained.
    """
    return ratio(contained, ivr_calls)


def drop_off_rate(dropped: int, reached: int) -> float | None:
    """Drop-off at an IVR node: callers who hung up at the node / callers who reached it."""
    return ratio(dropped, reached)
