"""Notices: who is told what, on which channel — never the content of a case.

A notice carries the kind of event, a case reference (the case's random id, which identifies
no child) and a link; never entry text, a name or a national id (DOMAIN.md). Recipients
follow the rules below; the handler asks the consent service whether each recipient may read
the case at that moment, and drops those who may not.

Pure: no I/O. Texts are Norwegian (bokmål).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from stafett_shared.contracts.case import (
    ChildWelfareReported,
    DeadlineDue,
    HandoverAccepted,
    HandoverDeclined,
    HandoverRequested,
    LevelChanged,
)
from stafett_shared.contracts.consent import (
    ConsentExpiryReminderDue,
    ConsentRequested,
    ConsentWithdrawn,
    EmergencyAccessApproved,
    EmergencyAccessGranted,
    EmergencyAccessRequested,
)
from stafett_shared.contracts.log import EntryAppended, EntryCorrected
from stafett_shared.envelope import EventData

CONTEXT = "notify"
Channel = Literal["inbox", "email", "webhook"]
CHANNELS: tuple[Channel, ...] = ("inbox", "email", "webhook")

TITLES: Mapping[str, str] = {
    "handover_requested": "Du er bedt om å overta som stafettholder",
    "child_welfare_report": "Ny bekymringsmelding til barneverntjenesten",
    "handover_accepted": "Overføringen er godtatt",
    "handover_declined": "Overføringen er avslått",
    "entry_appended": "Ny innføring i stafettloggen",
    "level_raised_to_3": "Saken er løftet til nivå 3",
    "consent_withdrawn": "Et samtykke er trukket tilbake",
    "consent_expiring": "Et samtykke utløper om mindre enn 30 dager",
    "emergency_access": "Noen har tatt nødtilgang til en sak",
    "emergency_access_requested": "Noen ber om nødtilgang til en sak og trenger din godkjenning",
    "emergency_access_approved": "En nødtilgang til en sak er godkjent",
    "deadline_level0_unresolved": "En bekymring på nivå 0 er ikke avklart innen fristen",
    "deadline_measure_evaluation_soon": "Et tiltak skal evalueres snart",
    "deadline_measure_evaluation_due": "Et tiltak skulle vært evaluert",
    "deadline_handover_unanswered": "En overføring har ikke fått svar",
    "deadline_inactive": "Det er lenge siden noe ble skrevet i saken",
    "deadline_holder_left_unit": "Stafettholderen har sluttet ved enheten",
    "consent_requested": "Et samtykke venter på deg",
    "consent_expires_soon": "Et samtykke utløper snart, og du kan fornye det",
    "new_holder": "Saken har fått en ny stafettholder",
}


@dataclass(frozen=True, slots=True)
class CaseFacts:
    case_id: str
    holder_id: str
    unit_id: str
    level: int
    team: frozenset[str] = frozenset()
    unit_leaders: frozenset[str] = frozenset()
    # For a report of concern: the intake staff of the child welfare unit it was sent to.
    intake: frozenset[str] = frozenset()
    # For notices to families: the child's guardians with parental responsibility.
    guardians: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Draft:
    """A notice before the access check: kind, case and who should get it."""

    kind: str
    case_id: str
    recipients: frozenset[str]
    ref_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventView:
    """The parts of an event the rules look at: its envelope's id, subject and actor, and its
    payload decoded by the registry (``registry.payload``, which upcasts)."""

    event_id: str
    subject: str
    actor: str
    payload: EventData


NoticeEvent = (
    HandoverRequested
    | HandoverAccepted
    | HandoverDeclined
    | EntryAppended
    | EntryCorrected
    | LevelChanged
    | ConsentWithdrawn
    | ConsentRequested
    | ConsentExpiryReminderDue
    | EmergencyAccessGranted
    | EmergencyAccessRequested
    | EmergencyAccessApproved
    | DeadlineDue
    | ChildWelfareReported
)
"""The payloads that may call for a notice."""

NOTICE_EVENTS: tuple[type[NoticeEvent], ...] = (
    HandoverRequested,
    HandoverAccepted,
    HandoverDeclined,
    EntryAppended,
    EntryCorrected,
    LevelChanged,
    ConsentWithdrawn,
    ConsentRequested,
    ConsentExpiryReminderDue,
    EmergencyAccessGranted,
    EmergencyAccessRequested,
    EmergencyAccessApproved,
    DeadlineDue,
    ChildWelfareReported,
)
"""The payload classes of :data:`NoticeEvent`: for any other, :func:`drafts` is empty and the
case's facts need not be read."""

LEADER_EVENTS: tuple[type[NoticeEvent], ...] = (LevelChanged,)
"""The payloads whose notices may go to the unit's leaders: for any other, :func:`drafts` is
the same without ``CaseFacts.unit_leaders``, and they need not be read."""

FAMILY_EVENTS: tuple[type[NoticeEvent], ...] = (HandoverAccepted,)
"""The payloads whose notices may go to the child's guardians: for any other, :func:`drafts`
is the same without ``CaseFacts.guardians``, and they need not be read."""

FAMILY_KINDS = frozenset({"consent_requested", "consent_expires_soon", "new_holder"})
"""Notices to families: their link is the families' page of the case (decision 0031)."""


def notice_case(payload: EventData) -> str | None:
    """The case a payload that may call for a notice is about; None for any other payload."""
    return payload.case_id if isinstance(payload, NOTICE_EVENTS) else None


def drafts(event: EventView, case: CaseFacts | None) -> list[Draft]:
    """The notices one event calls for (before the access check)."""
    match event.payload:
        case HandoverRequested(case_id=case_id, to_person_id=to):
            return [Draft("handover_requested", case_id, frozenset({to} if to else ()))]
        case HandoverAccepted(case_id=case_id, from_person_id=sender):
            accepted = Draft("handover_accepted", case_id, frozenset({sender} if sender else ()))
            if case is None or not case.guardians:
                return [accepted]
            # Only that the case has a new holder, never who (decision 0032).
            return [accepted, Draft("new_holder", case_id, case.guardians)]
        case ConsentRequested(case_id=case_id, consent_id=consent_id, grantors=groups):
            asked = frozenset(m for group in groups for m in group.members)
            return [Draft("consent_requested", case_id, asked - {event.actor}, consent_id)]
        case ConsentExpiryReminderDue(
            case_id=case_id, consent_id=consent_id, grantor_person_ids=grantors
        ):
            return [Draft("consent_expires_soon", case_id, frozenset(grantors), consent_id)]
        case HandoverDeclined(case_id=case_id):
            # The case keeps its holder, who asked for the handover.
            holder = frozenset({case.holder_id}) if case else frozenset()
            return [Draft("handover_declined", case_id, holder)]
        case EntryAppended(entry_id=entry) | EntryCorrected(entry_id=entry):
            if case is None:
                return []
            readers = frozenset({case.holder_id}) | case.team
            return [Draft("entry_appended", event.subject, readers - {event.actor}, entry)]
        case LevelChanged(level=level):
            if case is None or level != 3:
                return []
            return [Draft("level_raised_to_3", event.subject, case.unit_leaders)]
        case ConsentWithdrawn(case_id=case_id, consent_id=consent_id):
            if case is None:
                return []
            return [Draft("consent_withdrawn", case_id, frozenset({case.holder_id}), consent_id)]
        case EmergencyAccessGranted(case_id=case_id, grant_id=grant_id, notify_person_ids=named):
            return [Draft("emergency_access", case_id, frozenset(named), grant_id)]
        case EmergencyAccessRequested(case_id=case_id, grant_id=grant_id, notify_person_ids=named):
            # The leaders who may approve it; the holder and the guardians hear of the grant
            # when it is approved.
            return [Draft("emergency_access_requested", case_id, frozenset(named), grant_id)]
        case EmergencyAccessApproved(case_id=case_id, grant_id=grant_id, notify_person_ids=named):
            return [Draft("emergency_access_approved", case_id, frozenset(named), grant_id)]
        case ChildWelfareReported(case_id=case_id, report_id=report_id):
            # Only that a report arrived, to its intake staff: never its text or the child.
            intake = case.intake if case is not None else frozenset()
            return [Draft("child_welfare_report", case_id, intake, report_id)]
        case DeadlineDue(case_id=case_id, kind=kind, due_on=due_on, notify_person_ids=named):
            people = frozenset(named)
            if not people and case is not None:
                people = frozenset({case.holder_id})
            return [Draft(f"deadline_{kind}", case_id, people, due_on.isoformat())]
    return []


def notice_id(event_id: str, recipient: str, channel: Channel) -> str:
    """Derived from (event, recipient, channel): a redelivered event yields the same id."""
    digest = hashlib.sha256(f"{event_id}\x00{recipient}\x00{channel}".encode()).hexdigest()
    return f"n-{digest[:40]}"


ACTIONS: Mapping[str, str] = {
    # The receiver of a handover may not read the case until they accept it, but they are
    # asked to answer: their basis for this notice is the waiting handover's header.
    "handover_requested": "case:handover",
    # Child welfare's intake reads the report sent to it, never the case.
    "child_welfare_report": "case:report_read",
}
"""The action a recipient must be permitted on the case to be told, by notice kind."""

PAGES: Mapping[str, str] = {
    "child_welfare_report": "/barnevern/meldinger",
    # A leader asked to approve emergency access needs the page where they approve it.
    "emergency_access_requested": "/nodtilgang/godkjenn",
}
"""The portal page a notice links to, by kind (else the case's page)."""


def action(kind: str) -> str:
    return ACTIONS.get(kind, "case:read")


def page(kind: str, case_id: str) -> str:
    if kind in FAMILY_KINDS:
        return f"/familie/{case_id}"
    return PAGES.get(kind, f"/saker/{case_id}")


def title(kind: str) -> str:
    return TITLES.get(kind, "Noe har skjedd i en sak du følger")


@dataclass(frozen=True, slots=True)
class Notice:
    """What a recipient is told, on any channel: no content, only the kind and a link."""

    notice_id: str
    recipient: str
    channel: Channel
    kind: str
    case_id: str
    title: str
    link: str

    def body_text(self) -> str:
        return (
            f"{self.title}.\n\n"
            f"Saksreferanse: {self.case_id}\n"
            f"Åpne saken i Stafett: {self.link}\n\n"
            "Denne meldingen inneholder ingen opplysninger fra saken. "
            "Logg inn for å lese mer.\n"
        )

    def as_json(self) -> dict[str, str]:
        return {
            "id": self.notice_id,
            "kind": self.kind,
            "case_id": self.case_id,
            "title": self.title,
            "link": self.link,
        }


def channels_for(
    preferences: Mapping[str, bool], has_email: bool, has_webhook: bool
) -> Sequence[Channel]:
    """The inbox always; e-mail and webhooks when the person asked for them."""
    chosen: list[Channel] = ["inbox"]
    if preferences.get("email") and has_email:
        chosen.append("email")
    if preferences.get("webhook") and has_webhook:
        chosen.append("webhook")
    return chosen
