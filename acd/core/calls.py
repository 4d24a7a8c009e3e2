"""Call records: what the controller remembers about one call, independent of storage.

A call may be recorded more than once (for example on answer, then finally on hangup);
``CallRecord.updated_by`` defines how a later record combines with an earlier one, and the
database upsert applies the same rule, so a call always ends up as one consistent row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Disposition(StrEnum):
    """How a call ended. The values are stored as text and guarded by a CHECK constraint."""

    COMPLETED = "completed"
    CALLER_HANGUP = "caller_hangup"
    FAILED = "failed"


class InvalidCallRecord(ValueError):
    """A record that breaks an invariant; storing it would corrupt the reports."""

    def __init__(self, uniqueid: str, problems: list[str]) -> None:
        super().__init__(f"call record {uniqueid!r}: {'; '.join(problems)}")
        self.uniqueid = uniqueid
        self.problems = problems


_TEXT_FIELDS = (
    "uniqueid",
    "linkedid",
    "channel",
    "caller_number",
    "caller_name",
    "dialed_number",
    "route",
    "hangup_cause",
    "ivr_outcome",
    "queue",
    "agent_id",
    "queue_outcome",
)
_TIME_FIELDS = ("started_at", "answered_at", "ended_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """One call as seen by the controller (Asterisk's channel ``uniqueid`` identifies it).

    Times are timezone-aware; they are stored as ``timestamptz`` (UTC). A record without
    ``ended_at`` and ``disposition`` describes a call still in progress.
    """

    uniqueid: str
    linkedid: str
    channel: str
    started_at: datetime
    caller_number: str | None = None
    caller_name: str | None = None
    dialed_number: str | None = None
    route: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    disposition: Disposition | None = None
    hangup_cause: str | None = None
    #: How a YAML IVR flow let go of the call (``queue``, ``transfer``, ``caller_hangup``...).
    ivr_outcome: str | None = None
    #: The ACD queue the caller waited in last, the agent who answered, and how the wait
    #: ended (``connected``, ``abandoned``, ``timeout``, ``callback``).
    queue: str | None = None
    agent_id: str | None = None
    queue_outcome: str | None = None

    @property
    def is_final(self) -> bool:
        """The call has ended: this record will not be superseded in normal operation."""
        return self.ended_at is not None

    def problems(self) -> list[str]:
        """Every broken invariant, in words (empty when the record can be stored)."""
        found: list[str] = []
        if not self.uniqueid:
            found.append("uniqueid is empty")
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None and not _storable_text(value):
                found.append(f"{name} is not storable text (NUL byte or invalid UTF-8)")
        naive = [
            name
            for name in _TIME_FIELDS
            if getattr(self, name) is not None and getattr(self, name).utcoffset() is None
        ]
        if naive:  # comparing naive and aware times would raise
            return found + [f"{name} has no timezone" for name in naive]
        if self.answered_at is not None and self.answered_at < self.started_at:
            found.append("answered_at is before started_at")
        if self.ended_at is not None:
            if self.ended_at < self.started_at:
                found.append("ended_at is before started_at")
            if self.answered_at is not None and self.ended_at < self.answered_at:
                found.append("ended_at is before answered_at")
        if (self.ended_at is None) != (self.disposition is None):
            found.append("ended_at and disposition must be set together")
        if self.disposition is not None and self.disposition not in set(Disposition):
            found.append(f"unknown disposition {self.disposition!r}")
        return found

    def validate(self) -> None:
        """Raise ``InvalidCallRecord`` listing every problem, if there is any."""
        found = self.problems()
        if found:
            raise InvalidCallRecord(self.uniqueid, found)

    def updated_by(self, newer: CallRecord) -> CallRecord:
        """This call's record after ``newer`` arrived: later facts win, none is erased.

        A field the newer record leaves empty keeps its earlier value, so a late
        in-progress record can never turn an ended call back into an open one.
        """
        if newer.uniqueid != self.uniqueid:
            raise ValueError(f"cannot merge {newer.uniqueid!r} into {self.uniqueid!r}")
        changes = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(newer, f.name) is None
        }
        return dataclasses.replace(newer, **changes)


def _storable_text(value: str) -> bool:
    """PostgreSQL text holds no NUL byte and only valid UTF-8 (no lone surrogates)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
