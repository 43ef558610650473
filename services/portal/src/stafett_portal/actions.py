"""What a person can do with a case, each as a small form: its fields, the API call it makes
and what it says when done. The routes in ``app.py`` serve them all the same way: a page
with the form (GET), and a post that calls the service and redirects (POST)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from stafett_portal import texts
from stafett_portal.backend import ServiceName
from stafett_portal.directory import Directory, Me
from stafett_portal.forms import Field, FormResult, national_id_field

__all__ = ["ACTIONS", "OSLO", "Action", "Call", "CaseContext", "local_to_utc"]

OSLO = ZoneInfo("Europe/Oslo")


@dataclass(frozen=True)
class Call:
    method: str
    service: ServiceName
    path: str
    body: Any = None


@dataclass
class CaseContext:
    case: dict[str, Any]
    directory: Directory
    me: Me
    today: date
    consents: list[dict[str, Any]] = field(default_factory=list)
    ref: str | None = None  # the handover, measure, entry, person or consent acted on


def local_to_utc(value: str) -> str:
    """A local time from a form (Norway) as RFC 3339 UTC."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=OSLO)
    return moment.astimezone(UTC).isoformat()


def _end_of_day_utc(value: str) -> str:
    day = date.fromisoformat(value)
    return datetime(day.year, day.month, day.day, 23, 59, tzinfo=OSLO).astimezone(UTC).isoformat()


@dataclass(frozen=True)
class Action:
    slug: str
    title: str
    submit: str
    fields: Callable[[CaseContext], Sequence[Field]]
    build: Callable[[dict[str, Any], CaseContext], Call]
    done: str
    intro: str = ""
    check: Callable[[FormResult, CaseContext], None] | None = None
    back: str = "case"  # "case" or "log": where the person returns
    danger: bool = False


def _staff(ctx: CaseContext) -> list[tuple[str, str]]:
    return ctx.directory.staff_choices()


def _split(value: str) -> tuple[str, str]:
    person, _, unit = value.partition("|")
    return person, unit


def _level_fields(ctx: CaseContext) -> list[Field]:
    current = ctx.case.get("level")
    return [
        Field(
            "level",
            "Nytt nivå",
            "radio",
            options=[(str(n), texts.LEVELS[n]) for n in range(4) if n != current],
        ),
        Field(
            "reason",
            "Hvorfor endres nivået?",
            "textarea",
            hint="Skriv kort hva som ligger til grunn. Begrunnelsen blir en del av saken.",
        ),
    ]


def _team_fields(ctx: CaseContext) -> list[Field]:
    return [
        Field(
            "member",
            "Hvem skal inn i teamet?",
            "select",
            options=_staff(ctx),
            hint="Velg personen og enheten personen er med fra.",
        ),
        Field(
            "access",
            "Tilgang",
            "radio",
            options=[("read", "Lese"), ("write", "Lese og skrive")],
            default="read",
            hint="Som regel lesetilgang; skrivetilgang der det trengs.",
        ),
    ]


def _remove_fields(ctx: CaseContext) -> list[Field]:
    # The person is chosen in the form, not named in the address (staff ids are names).
    members = [
        (
            str(m["person_id"]),
            f"{ctx.directory.person_name(m['person_id'])}, "
            f"{ctx.directory.unit_name(m.get('unit_id'))}",
        )
        for m in ctx.case.get("team", [])
        if isinstance(m, dict) and isinstance(m.get("person_id"), str)
    ]
    return [Field("member", "Hvem skal ut av teamet?", "radio", options=members)]


def _handover_fields(ctx: CaseContext) -> list[Field]:
    return [
        Field(
            "to",
            "Hvem skal overta stafetten?",
            "select",
            options=[
                c for c in _staff(ctx) if not c[0].startswith(f"{ctx.case['holder']['person_id']}|")
            ],
            hint="Personen må godta før overføringen gjelder. Til da er du fortsatt stafettholder.",
        ),
        Field(
            "note",
            "Overføringsnotat",
            "textarea",
            required=False,
            hint="Det mottakeren trenger å vite for å ta over. Mottakeren ser dette før de svarer.",
        ),
    ]


def _catalogue(ctx: CaseContext) -> list[dict[str, Any]]:
    org = ctx.directory.organisation(ctx.case.get("org_id")) or {}
    items = org.get("measure_catalogue") or []
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("title"), str)]


def _measure_fields(ctx: CaseContext) -> list[Field]:
    catalogue = _catalogue(ctx)
    fields: list[Field] = []
    if catalogue:
        fields.append(
            Field(
                "catalogue",
                "Velg fra tiltakskatalogen",
                "select",
                required=False,
                options=[(str(i), str(item["title"])) for i, item in enumerate(catalogue)],
                hint="Kommunens oversikt over hjelpetiltak. Eller skriv et eget tiltak under.",
            )
        )
    fields += [
        Field("title", "Tiltak", required=not catalogue, max_length=200),
        Field("goal", "Mål for tiltaket", "textarea", required=not catalogue),
        Field("responsible", "Ansvarlig", "select", options=_staff(ctx)),
        Field("start", "Start", "date", default=ctx.today.isoformat()),
        Field(
            "evaluate_by",
            "Evalueres innen",
            "date",
            default=(ctx.today + timedelta(weeks=6)).isoformat(),
        ),
    ]
    return fields


def _measure_check(result: FormResult, ctx: CaseContext) -> None:
    catalogue = _catalogue(ctx)
    choice = result.values.get("catalogue") or ""
    if catalogue and not choice and not result.values.get("title"):
        result.errors["title"] = "Velg et tiltak fra katalogen eller skriv et eget."
    if choice and not result.values.get("title"):
        result.values["title"] = str(catalogue[int(choice)]["title"])
    if choice and not result.values.get("goal"):
        goal = catalogue[int(choice)].get("goal")
        if isinstance(goal, str) and goal:
            result.values["goal"] = goal
        else:
            result.errors["goal"] = "Fyll ut «Mål for tiltaket»."
    start, end = result.values.get("start"), result.values.get("evaluate_by")
    checked = "start" not in result.errors and "evaluate_by" not in result.errors
    if start and end and checked and end < start:
        result.errors["evaluate_by"] = "Evalueringsdatoen må være etter startdatoen."


def _measure_body(values: dict[str, Any], ctx: CaseContext) -> Call:
    person, _ = _split(values["responsible"])
    return Call(
        "POST",
        "case",
        f"/api/v1/cases/{ctx.case['id']}/measures",
        {
            "title": values["title"],
            "goal": values["goal"],
            "responsible_person_id": person,
            "start": values["start"],
            "evaluate_by": values["evaluate_by"],
        },
    )


def _consent_fields(ctx: CaseContext) -> list[Field]:
    units = sorted(
        (u for u in ctx.directory.units.values() if u.id != ctx.case.get("unit_id")),
        key=lambda u: (u.org_name, u.name),
    )
    until = ctx.today + timedelta(days=364)
    return [
        Field(
            "units",
            "Hvilke tjenester skal kunne samarbeide om barnet?",
            "checkboxes",
            options=[(u.id, f"{u.name} ({u.org_name})") for u in units],
            hint="Samtykket gis til tjenester, ikke til enkeltpersoner.",
        ),
        Field(
            "purpose",
            "Hva er formålet?",
            "textarea",
            max_length=2000,
            hint="Skriv med ord familien forstår: hvorfor tjenestene skal snakke sammen.",
        ),
        Field(
            "history_travels",
            "Historikken kan følge med ved overføring til en annen virksomhet",
            "checkbox",
            required=False,
        ),
        Field(
            "exclude_health",
            "Helseopplysninger skal ikke deles",
            "checkbox",
            required=False,
        ),
        Field("valid_until", "Gjelder til", "date", default=until.isoformat()),
        Field(
            "method",
            "Hvordan gis samtykket?",
            "radio",
            options=list(texts.EVIDENCE.items()),
            default="paper",
        ),
    ]


def _consent_body(values: dict[str, Any], ctx: CaseContext) -> Call:
    chosen = [ctx.directory.units[u] for u in values["units"] if u in ctx.directory.units]
    return Call(
        "POST",
        "consent",
        "/api/v1/consents",
        {
            "case_id": ctx.case["id"],
            "scope": {
                "org_ids": sorted({u.org_id for u in chosen}),
                "sectors": sorted({u.sector for u in chosen}),
                "unit_ids": sorted(u.id for u in chosen),
                "history_travels": bool(values.get("history_travels")),
                "excluded_categories": ["health"] if values.get("exclude_health") else [],
                "purpose": values["purpose"],
            },
            "valid_until": _end_of_day_utc(values["valid_until"]),
            "evidence": {"method": values["method"]},
        },
    )


def _consent_grantors(ctx: CaseContext) -> list[tuple[str, str]]:
    consent = next((c for c in ctx.consents if c.get("id") == ctx.ref), None)
    if consent is None:
        return []
    signed = set(consent.get("signed") or [])
    people: list[str] = []
    for group in consent.get("grantors") or []:
        members = group.get("members", []) if isinstance(group, dict) else []
        people += [m for m in members if isinstance(m, str) and m not in signed]
    return [(p, f"Foresatt eller ungdom ({p[-6:]})") for p in dict.fromkeys(people)]


def _signature_fields(ctx: CaseContext) -> list[Field]:
    return [
        Field("grantor", "Hvem har signert?", "radio", options=_consent_grantors(ctx)),
        Field(
            "method",
            "Hvordan",
            "radio",
            options=[
                ("paper", "Papirskjema"),
                ("verbal_documented", "Muntlig, dokumentert av meg"),
            ],
            default="paper",
        ),
        Field(
            "reference",
            "Hvor er skjemaet arkivert?",
            required=False,
            max_length=500,
            hint="For eksempel saksnummer i arkivet.",
        ),
    ]


def _entry_fields(_ctx: CaseContext) -> list[Field]:
    now = datetime.now(OSLO).strftime("%Y-%m-%dT%H:%M")
    return [
        Field(
            "kind",
            "Hva slags innføring?",
            "select",
            options=[(k, v) for k, v in texts.ENTRY_KINDS.items() if k != "concern"],
            default="observation",
        ),
        Field(
            "text",
            "Tekst",
            "textarea",
            hint=(
                "Skriv det som skjedde, med egne ord. "
                "Barnets egne ord skriver du som «Barnets stemme»."
            ),
        ),
        Field("occurred_at", "Når skjedde det?", "datetime-local", default=now),
        Field(
            "category",
            "Særlige opplysninger",
            "select",
            required=False,
            options=list(texts.CATEGORIES.items()),
            hint="Helse- og barnevernsopplysninger leses bare av dem som har grunnlag for det.",
        ),
        Field(
            "participants",
            "Deltakere (for møter)",
            required=False,
            max_length=1000,
            hint="Skriv roller eller tjenester, skilt med komma. Ikke navn på barnet.",
        ),
    ]


def _entry_body(values: dict[str, Any], ctx: CaseContext) -> Call:
    participants = [p.strip() for p in values.get("participants", "").split(",") if p.strip()]
    body: dict[str, Any] = {
        "kind": values["kind"],
        "text": values["text"],
        "occurred_at": local_to_utc(values["occurred_at"]),
        "participants": participants[:50],
    }
    if values.get("category"):
        body["category"] = values["category"]
    return Call("POST", "log", f"/api/v1/logs/{ctx.case['id']}/entries", body)


def _case_path(ctx: CaseContext, suffix: str) -> str:
    return f"/api/v1/cases/{ctx.case['id']}{suffix}"


ACTIONS: dict[str, Action] = {
    a.slug: a
    for a in (
        Action(
            "skriv",
            "Skriv i stafettloggen",
            "Lagre innføringen",
            _entry_fields,
            _entry_body,
            "Innføringen er lagret i loggen.",
            back="log",
        ),
        Action(
            "niva",
            "Endre nivå",
            "Endre nivå",
            _level_fields,
            lambda v, c: Call(
                "POST",
                "case",
                _case_path(c, "/level"),
                {"level": int(v["level"]), "reason": v["reason"]},
            ),
            "Nivået er endret.",
            intro=(
                "Nivå 2 og 3 krever at alle tjenester utenfor enheten i teamet er dekket "
                "av et samtykke."
            ),
        ),
        Action(
            "team",
            "Legg til i teamet",
            "Legg til",
            _team_fields,
            lambda v, c: Call(
                "POST",
                "case",
                _case_path(c, "/team"),
                {
                    "person_id": _split(v["member"])[0],
                    "unit_id": _split(v["member"])[1],
                    "access": v["access"],
                },
            ),
            "Personen er lagt til i teamet.",
            intro=(
                "Personer fra andre tjenester får tilgang først når et samtykke dekker "
                "tjenesten deres."
            ),
        ),
        Action(
            "fjern",
            "Fjern fra teamet",
            "Fjern fra teamet",
            _remove_fields,
            lambda v, c: Call("DELETE", "case", _case_path(c, f"/team/{v['member']}")),
            "Personen er fjernet fra teamet.",
            danger=True,
        ),
        Action(
            "overforing",
            "Be noen overta stafetten",
            "Send forespørselen",
            _handover_fields,
            lambda v, c: Call(
                "POST",
                "case",
                _case_path(c, "/handovers"),
                {
                    "to_person_id": _split(v["to"])[0],
                    "to_unit_id": _split(v["to"])[1],
                    "note": v["note"] or None,
                },
            ),
            "Forespørselen er sendt. Du er stafettholder til mottakeren godtar.",
            intro=(
                "Til en annen virksomhet (for eksempel videregående skole) trengs et "
                "samtykke som nevner den."
            ),
        ),
        Action(
            "trekk-overforing",
            "Trekk tilbake overføringen",
            "Trekk tilbake",
            lambda c: [],
            lambda v, c: Call("POST", "case", _case_path(c, f"/handovers/{c.ref}/cancel")),
            "Overføringen er trukket tilbake.",
            danger=True,
        ),
        Action(
            "tiltak",
            "Legg til et tiltak",
            "Legg til tiltaket",
            _measure_fields,
            _measure_body,
            "Tiltaket er lagt til.",
            check=_measure_check,
        ),
        Action(
            "evaluer",
            "Evaluer tiltaket",
            "Lagre evalueringen",
            lambda c: [
                Field("outcome", "Er målet nådd?", "radio", options=list(texts.OUTCOMES.items())),
                Field("note", "Kommentar", "textarea", required=False),
                Field("next_evaluate_by", "Neste evaluering", "date", required=False),
            ],
            lambda v, c: Call(
                "POST",
                "case",
                _case_path(c, f"/measures/{c.ref}/evaluations"),
                {
                    "outcome": v["outcome"],
                    "note": v["note"] or None,
                    "next_evaluate_by": v["next_evaluate_by"] or None,
                },
            ),
            "Evalueringen er lagret.",
        ),
        Action(
            "samtykke",
            "Be om samtykke",
            "Be om samtykke",
            _consent_fields,
            _consent_body,
            "Samtykket er registrert og venter på signatur fra foresatte.",
            intro=(
                "Foresatte med foreldreansvar gir samtykket, og fra 15 år også ungdommen selv. "
                "Det kan trekkes når som helst."
            ),
        ),
        Action(
            "signatur",
            "Registrer signatur på papir",
            "Registrer signaturen",
            _signature_fields,
            lambda v, c: Call(
                "POST",
                "consent",
                f"/api/v1/consents/{c.ref}/signatures",
                {
                    "grantor_person_id": v["grantor"],
                    "method": v["method"],
                    "reference": v["reference"] or None,
                },
            ),
            "Signaturen er registrert.",
        ),
        Action(
            "barnevern",
            "Send bekymringsmelding til barnevernet",
            "Send meldingen",
            lambda c: [
                Field(
                    "text",
                    "Hva er du bekymret for?",
                    "textarea",
                    hint=(
                        "Opplysningsplikten gjelder uten samtykke. Barnevernet får denne "
                        "meldingen, ikke loggen."
                    ),
                )
            ],
            lambda v, c: Call(
                "POST", "case", _case_path(c, "/child-welfare-reports"), {"text": v["text"]}
            ),
            "Bekymringsmeldingen er sendt til barnevernet.",
        ),
        Action(
            "avslutt",
            "Avslutt saken",
            "Avslutt saken",
            lambda c: [
                Field(
                    "reason",
                    "Hvorfor avsluttes saken?",
                    "radio",
                    options=list(texts.CLOSE_REASONS.items()),
                ),
                Field("note", "Kommentar", "textarea", required=False),
            ],
            lambda v, c: Call(
                "POST",
                "case",
                _case_path(c, "/close"),
                {"reason": v["reason"], "note": v["note"] or None},
            ),
            "Saken er avsluttet.",
            intro="Ingenting slettes. En avsluttet sak kan gjenåpnes.",
            danger=True,
        ),
        Action(
            "gjenapne",
            "Gjenåpne saken",
            "Gjenåpne",
            lambda c: [Field("reason", "Hvorfor gjenåpnes saken?", "textarea")],
            lambda v, c: Call("POST", "case", _case_path(c, "/reopen"), {"reason": v["reason"]}),
            "Saken er åpnet igjen.",
        ),
        Action(
            "identifiser",
            "Identifiser barnet",
            "Identifiser",
            lambda c: [
                national_id_field(
                    "national_id",
                    "Barnets fødselsnummer",
                    hint="11 siffer. Du må ha registrert barnet med foresatte først.",
                )
            ],
            lambda v, c: Call(
                "POST", "case", _case_path(c, "/identify"), {"national_id": v["national_id"]}
            ),
            "Barnet er identifisert i saken.",
        ),
        Action(
            "rett",
            "Rett en innføring",
            "Lagre rettelsen",
            lambda c: [
                Field("text", "Ny tekst", "textarea"),
                Field("reason", "Hvorfor rettes den?", "textarea", max_length=2000),
            ],
            lambda v, c: Call(
                "POST",
                "log",
                f"/api/v1/logs/{c.case['id']}/entries/{c.ref}/corrections",
                {"text": v["text"], "reason": v["reason"]},
            ),
            "Rettelsen er lagret. Den opprinnelige teksten blir stående i historikken.",
            back="log",
        ),
        Action(
            "trekk",
            "Trekk tilbake en innføring",
            "Trekk tilbake",
            lambda c: [
                Field("reason", "Hvorfor trekkes den tilbake?", "textarea", max_length=2000)
            ],
            lambda v, c: Call(
                "POST",
                "log",
                f"/api/v1/logs/{c.case['id']}/entries/{c.ref}/retractions",
                {"reason": v["reason"]},
            ),
            "Innføringen er trukket tilbake. Den blir stående i historikken, merket.",
            back="log",
            danger=True,
        ),
        Action(
            "skjerm",
            "Skjerm en innføring for foresatte",
            "Skjerm innføringen",
            lambda c: [
                Field("ground", "Lovgrunnlag", "radio", options=list(texts.GROUNDS.items())),
                Field("reason", "Begrunnelse", "textarea", max_length=2000),
                Field(
                    "until",
                    "Skjermet til",
                    "date",
                    default=(c.today + timedelta(days=180)).isoformat(),
                ),
            ],
            lambda v, c: Call(
                "POST",
                "log",
                f"/api/v1/logs/{c.case['id']}/entries/{c.ref}/restrictions",
                {
                    "ground": v["ground"],
                    "reason": v["reason"],
                    "until": _end_of_day_utc(v["until"]),
                },
            ),
            "Innføringen er skjermet for foresatte. Skjermingen blir vist ved tilsyn.",
            back="log",
        ),
    )
}
