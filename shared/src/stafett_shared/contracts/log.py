"""The log context's events, owned by the log service: the stafettlogg, one append-only,
hash-chained log per case, published on ``stafett.ev.log.<case id>``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from stafett_shared.contracts.base import ContractEvent, Encrypted
from stafett_shared.envelope import registry

__all__ = [
    "Author",
    "Category",
    "EntryAppended",
    "EntryCorrected",
    "EntryRestricted",
    "EntryRetracted",
    "Ground",
    "Kind",
    "LogEvent",
    "Regime",
]


class Kind(StrEnum):
    CONCERN = "concern"
    OBSERVATION = "observation"
    CONVERSATION_CHILD = "conversation_child"
    CONVERSATION_GUARDIAN = "conversation_guardian"
    CHILD_VOICE = "child_voice"  # «Hva er viktig for deg?»
    MEETING = "meeting"
    MEASURE_UPDATE = "measure_update"
    DECISION = "decision"
    HANDOVER_NOTE = "handover_note"
    NOTE = "note"


class Category(StrEnum):
    """A special category of an entry's content; a consent may exclude one."""

    HEALTH = "health"
    CHILD_WELFARE = "child_welfare"


class Ground(StrEnum):
    """Legal grounds for withholding an entry from guardians (DOMAIN.md)."""

    # pasient- og brukerrettighetsloven § 3-4: health information about a child aged 12-16
    # who asks, for reasons that should be respected, that guardians not be told.
    HEALTH_CHILD_12_16 = "pbrl_3_4_health_child_12_16"
    # for a child aged 16-18: what guardians do not need to exercise parental responsibility.
    NOT_NEEDED_16_18 = "pbrl_3_4_not_needed_16_18"
    # forvaltningsloven § 19: disclosure would harm the child.
    HARMFUL_TO_CHILD = "fvl_19_harmful_to_child"


class Regime(StrEnum):
    """The confidentiality regime of the author's profession."""

    ADMINISTRATION = "forvaltningsloven"
    HEALTH = "helsepersonelloven"
    CHILD_WELFARE = "barnevernsloven"


class Author(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    person_id: str
    role: str | None = None
    unit_id: str | None = None
    kind: Literal["child"] | None = Field(default=None, exclude_if=lambda kind: kind is None)
    """``child``: the child of the case wrote it themselves, the youth's own words
    (decision 0033). Absent (None) for staff, who wrote every entry before it; left out of
    the event when absent, so a staff entry's event is what it always was."""


class LogEvent(ContractEvent):
    context: ClassVar[str] = "log"
    owner: ClassVar[str | None] = "log"
    subject_pattern: ClassVar[str] = "stafett.ev.log.{case_id}"


@registry.register
class EntryAppended(LogEvent):
    event_type: ClassVar[str] = "no.stafett.log.entry_appended.v1"
    entry_id: str
    case_id: str
    kind: Kind
    text: Encrypted
    occurred_at: datetime
    category: Category | None = None
    participants: Encrypted | None = None
    author: Author
    regime: Regime


@registry.register
class EntryCorrected(LogEvent):
    event_type: ClassVar[str] = "no.stafett.log.entry_corrected.v1"
    entry_id: str
    case_id: str
    corrects_entry_id: str
    text: Encrypted
    reason: Encrypted
    category: Category | None = None
    author: Author
    regime: Regime


@registry.register
class EntryRetracted(LogEvent):
    event_type: ClassVar[str] = "no.stafett.log.entry_retracted.v1"
    entry_id: str
    case_id: str
    retracts_entry_id: str
    reason: Encrypted
    author: Author


@registry.register
class EntryRestricted(LogEvent):
    event_type: ClassVar[str] = "no.stafett.log.entry_restricted.v1"
    restriction_id: str
    entry_id: str
    case_id: str
    ground: Ground
    reason: Encrypted
    until: datetime
    decided_by: str
