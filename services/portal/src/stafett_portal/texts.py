"""The portal's words, in bokmål: labels for the API's codes and sentences for its problems.

Staff words (stafettholder, nivå, tiltak) where staff use them; a sentence a person can act
on where something went wrong. Nothing here names a person or a child.
"""

from __future__ import annotations

LEVELS = {
    0: "Nivå 0 – undring og refleksjon",
    1: "Nivå 1 – enheten handler",
    2: "Nivå 2 – enheten og én tjeneste til",
    3: "Nivå 3 – bredt samarbeid",
}

LEVEL_SHORT = {0: "Nivå 0", 1: "Nivå 1", 2: "Nivå 2", 3: "Nivå 3"}

STATUS = {"open": "Åpen", "closed": "Avsluttet"}

# Levels as families read them: what it means for the child, not the model's name.
FAMILY_LEVELS = {
    0: "De voksne har lagt merke til noe og følger med. Ingen tiltak er satt i gang.",
    1: "Barnehagen eller skolen setter i gang tiltak selv, sammen med dere.",
    2: "Barnehagen eller skolen samarbeider med én tjeneste til, for eksempel helsestasjonen.",
    3: "Flere tjenester samarbeider om å hjelpe barnet, ofte i et tverrfaglig team.",
}

FAMILY_ENTRY_KINDS = {
    "conversation_guardian": "Samtale med dere foresatte",
    "child_voice": "Barnets egne ord – «Hva er viktig for meg?»",
    "measure_update": "Om et tiltak",
    "handover_note": "Notat da stafetten ble gitt videre",
}


ENTRY_KINDS = {
    "observation": "Observasjon",
    "conversation_child": "Samtale med barnet",
    "conversation_guardian": "Samtale med foresatte",
    "child_voice": "Barnets stemme – «Hva er viktig for meg?»",
    "meeting": "Møte",
    "measure_update": "Oppdatering om tiltak",
    "decision": "Beslutning",
    "handover_note": "Overføringsnotat",
    "note": "Notat",
    "concern": "Bekymring",
}

CATEGORIES = {"health": "Helseopplysninger", "child_welfare": "Barnevern"}

ROLES = {
    "leader": "leder",
    "teacher": "lærer",
    "social_worker": "sosiallærer/miljøterapeut",
    "health_nurse": "helsesykepleier",
    "pp_adviser": "PP-rådgiver",
    "child_welfare_worker": "barnevernsarbeider",
    "nav_adviser": "NAV-veileder",
    "coordinator": "koordinator",
    "pilot": "los",
}

SECTORS = {
    "kindergarten": "barnehage",
    "school": "skole",
    "upper_secondary": "videregående skole",
    "health": "helsestasjon og skolehelsetjeneste",
    "ppt": "PPT",
    "child_welfare": "barnevern",
    "nav": "NAV",
    "family": "familietjeneste",
    "followup": "oppfølgingstjeneste",
    "other": "annen tjeneste",
}

ORG_KINDS = {"municipality": "kommune", "county": "fylkeskommune", "state_agency": "statlig etat"}

OUTCOMES = {"not_achieved": "Ikke nådd", "partly": "Delvis nådd", "achieved": "Nådd"}

CLOSE_REASONS = {
    "resolved": "Bekymringen er løst",
    "moved": "Barnet har flyttet",
    "handed_to_child_welfare": "Overtatt av barnevernet",
    "consent_withdrawn": "Samtykket er trukket",
    "individual_plan_started": "Individuell plan er startet",
    "aged_out": "Over aldersgrensen",
    "other": "Annet",
}

REPORT_STATUS = {
    "sent": "Sendt",
    "received": "Mottatt av barneverntjenesten",
}

HANDOVER_STATUS = {
    "pending": "Venter på svar",
    "accepted": "Godtatt",
    "declined": "Avslått",
    "cancelled": "Trukket tilbake",
}

CONSENT_STATUS = {
    "pending": "Venter på signatur",
    "active": "Gyldig",
    "refused": "Nektet",
    "withdrawn": "Trukket",
    "expired": "Utløpt",
}

EVIDENCE = {
    "digital_signature": "digital signatur",
    "paper": "papirskjema",
    "verbal_documented": "muntlig, dokumentert av ansatt",
}

GROUNDS = {
    "pbrl_3_4_health_child_12_16": (
        "Helseopplysninger om barn 12–16 år som ber om at foresatte ikke får vite "
        "(pasient- og brukerrettighetsloven § 3-4)"
    ),
    "pbrl_3_4_not_needed_16_18": (
        "Barn 16–18 år: foresatte trenger ikke opplysningen for å utøve foreldreansvaret "
        "(pasient- og brukerrettighetsloven § 3-4)"
    ),
    "fvl_19_harmful_to_child": "Innsyn vil skade barnet (forvaltningsloven § 19)",
}

BASES = {
    "holder": "du er stafettholder",
    "own_unit": "du arbeider ved enheten som eier saken",
    "unit_leader": "du er leder ved enheten som eier saken",
    "team": "du er med i teamet, og et samtykke dekker tjenesten din",
    "guardian": "du er foresatt med foreldreansvar",
    "self": "saken gjelder deg",
    "emergency": "du har nødtilgang",
    "auditor": "du fører tilsyn",
    "handover_addressee": "du er bedt om å overta stafetten",
    "duty_to_report": "opplysningsplikten til barnevernet",
    "related_staff": "du arbeider i sakens kommune eller virksomhet, eller i samme sektor",
}

# Why someone could read, as the readers' list says it about them: "leste saken som …".
READ_BASES = {
    "holder": "som stafettholder",
    "own_unit": "som ansatt ved enheten som eier saken",
    "unit_leader": "som leder ved enheten som eier saken",
    "team": "som medlem av teamet, fordi et samtykke dekker tjenesten",
    "guardian": "som foresatt med foreldreansvar",
    "self": "som barnet saken gjelder",
    "emergency": "med nødtilgang og en skriftlig begrunnelse",
    "auditor": "som tilsyn",
    "handover_addressee": "fordi de er bedt om å overta stafetten",
    "duty_to_report": "etter opplysningsplikten til barnevernet",
    "related_staff": "som ansatt i sakens kommune eller virksomhet, eller i samme sektor",
    "client_consent": "som fagsystem for en tjeneste som et samtykke dekker",
}

READ_WHAT = {
    "case": "saken",
    "entries": "loggen",
    "consents": "samtykkene",
    "consent": "et samtykke og hva det er til",
    "handover": "overføringen",
}

NOTICE_KINDS = {
    "handover_requested": "Du er bedt om å overta en stafett",
    "handover_accepted": "En overføring er godtatt",
    "handover_declined": "En overføring er avslått",
    "team_member_added": "Du er lagt til i et team",
    "consent_requested": "Et samtykke venter",
    "consent_activated": "Et samtykke er gyldig",
    "consent_withdrawn": "Et samtykke er trukket",
    "entry_appended": "Ny innføring i en logg",
    "level_changed": "Nivået i en sak er endret",
    "measure_due": "Et tiltak skal evalueres",
}

# Problem codes from the services, as sentences a person can act on.
PROBLEMS = {
    "not_found": "Finnes ikke, eller du har ikke tilgang.",
    "forbidden": "Du har ikke tilgang til dette.",
    "unauthenticated": "Økten din er utløpt. Logg inn igjen.",
    "rate_limited": "Det kom for mange forespørsler på kort tid. Vent litt og prøv igjen.",
    "unavailable": "Tjenesten er ikke klar akkurat nå. Prøv igjen om litt.",
    "service_unreachable": "Vi får ikke kontakt med tjenesten akkurat nå. Prøv igjen om litt.",
    "version_conflict": "Saken er endret av noen andre mens du skrev. Se over og prøv igjen.",
    "conflict": "Saken er endret av noen andre mens du skrev. Se over og prøv igjen.",
    "validation_error": "Noen felt mangler eller er ikke fylt ut riktig.",
    "bad_request": "Skjemaet kunne ikke leses. Prøv igjen.",
    "case_closed": "Saken er avsluttet. Gjenåpne den først.",
    "case_exists": "Saken finnes allerede.",
    "invalid_level": "Det nivået kan ikke velges her.",
    "identification_required": "Barnet må identifiseres før saken kan gå til nivå 1 eller høyere.",
    "already_identified": "Barnet er allerede identifisert.",
    "same_level": "Saken er allerede på det nivået.",
    "consent_missing_for_team": (
        "Alle tjenester utenfor enheten i teamet må være dekket av et gyldig samtykke "
        "før saken kan gå til nivå 2 eller 3."
    ),
    "already_on_team": "Personen er allerede med i teamet.",
    "not_on_team": "Personen er ikke med i teamet.",
    "handover_pending": "Det venter allerede en overføring i denne saken.",
    "no_such_handover": "Overføringen finnes ikke eller er allerede besvart.",
    "not_addressee": "Bare den som er bedt om å overta, kan svare.",
    "handover_to_holder": "Personen er allerede stafettholder.",
    "consent_required_for_handover": (
        "Overføring til en annen virksomhet krever et gyldig samtykke som nevner "
        "virksomheten som skal overta."
    ),
    "no_such_measure": "Tiltaket finnes ikke.",
    "invalid_dates": "Datoene henger ikke sammen. Evalueringsdatoen må være etter startdatoen.",
    "not_closed": "Saken er ikke avsluttet.",
    "occurred_in_future": "Tidspunktet kan ikke være fram i tid.",
    "occurred_before_case": "Tidspunktet kan ikke være før saken ble opprettet.",
    "unknown_entry": "Innføringen finnes ikke.",
    "already_retracted": "Innføringen er allerede trukket tilbake.",
    "invalid_restriction_end": "Sluttdatoen for skjermingen må være fram i tid.",
    "unknown_unit": "Enheten finnes ikke.",
    "not_at_unit": "Personen har ingen rolle ved den enheten.",
    "unknown_child": "Du har ikke registrert barnet. Registrer barnet med foresatte først.",
    "invalid_national_id": "Fødselsnummeret er ikke gyldig. Sjekk de 11 sifrene.",
    "no_grantor": "Barnet har ingen foresatte med foreldreansvar registrert.",
    "validity_in_past": "Samtykket kan ikke gjelde til en dato som har vært.",
    "validity_too_long": "Et samtykke kan gjelde i høyst ett år.",
    "unknown_birth_date": "Barnets fødselsdato er ukjent, så aldersreglene kan ikke brukes.",
    "not_a_grantor": "Personen kan ikke gi dette samtykket.",
    "already_signed": "Personen har allerede signert.",
    "not_pending": "Samtykket venter ikke lenger på signatur.",
    "not_in_force": "Samtykket gjelder ikke.",
    "unknown_consent": "Samtykket finnes ikke.",
    "report_received": "Meldingen er allerede bekreftet mottatt.",
    "no_child_welfare_service": (
        "Saken hører til en virksomhet uten egen barneverntjeneste. Kontakt brukerstøtte, "
        "eller ring barneverntjenesten i kommunen der barnet bor."
    ),
    "not_child_welfare": "Enheten er ikke en barneverntjeneste.",
    "error": "Noe gikk galt hos tjenesten. Prøv igjen.",
}

STATUS_TITLES = {
    400: "Skjemaet kunne ikke leses",
    401: "Logg inn igjen",
    403: "Ingen tilgang",
    404: "Finnes ikke, eller du har ikke tilgang",
    409: "Noen andre har endret saken",
    422: "Noe må rettes",
    429: "For mange forespørsler",
    503: "Prøv igjen om litt",
    500: "Noe gikk galt hos oss",
}


def problem_sentence(code: str, status: int) -> str:
    if code in PROBLEMS:
        return PROBLEMS[code]
    if status == 404:
        return PROBLEMS["not_found"]
    if status == 403:
        return PROBLEMS["forbidden"]
    if status >= 500:
        return PROBLEMS["unavailable"]
    return PROBLEMS["error"]
