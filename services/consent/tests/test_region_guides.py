"""An organisation's guide (handlingsveileder) and measure catalogue in the region document:
strict validation, and the events a load yields (none when nothing changed)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from stafett_consent.domain import EMPTY_GUIDE, DirectoryState, RegionDocument, diff_directory
from stafett_shared.contracts.directory import (
    CatalogueMeasure,
    OrganisationGuideSet,
    OrganisationMeasureCatalogueSet,
    OrganisationRegistered,
    OrgKind,
)
from stafett_shared.envelope import registry

ROOT = Path(__file__).resolve().parents[3]

GUIDE = {
    0: ["Snakk med eleven om det du har lagt merke til."],
    1: ["Snakk med eleven og foresatte om bekymringen.", "Opprett stafettlogg."],
    2: ["Vurder om helsesykepleier eller PPT bør inn."],
    3: ["Meld saken til ressursteamet."],
}
CATALOGUE = [
    {"title": "Samtale med elev hver fredag", "goal": "Eleven har en fast voksen å snakke med."},
    {"title": "Leksehjelp"},
]


def _document(**organisation: Any) -> dict[str, Any]:
    return {
        "region": "grenland",
        "organisations": [
            {"id": "4010", "name": "Siljan kommune", "kind": "municipality", **organisation}
        ],
    }


def _state_after(document: RegionDocument) -> DirectoryState:
    """The directory as it stands once ``document`` has been loaded."""
    org = document.organisations[0]
    return DirectoryState(
        organisations={org.id: (org.name, org.kind)},
        guides={org.id: org.guide_steps()},
        catalogues={org.id: org.measure_catalogue},
    )


def test_a_document_without_guide_or_catalogue_stays_valid() -> None:
    org = RegionDocument.model_validate(_document()).organisations[0]
    assert org.guide_steps() == EMPTY_GUIDE
    assert org.measure_catalogue == ()


def test_guide_levels_may_be_numbers_as_in_yaml_or_strings_as_in_json() -> None:
    from_yaml = RegionDocument.model_validate(_document(guide=GUIDE))
    from_json = RegionDocument.model_validate(
        _document(guide={str(level): steps for level, steps in GUIDE.items()})
    )
    assert from_yaml == from_json
    assert from_yaml.organisations[0].guide_steps()[1] == tuple(GUIDE[1])


def test_a_level_left_out_has_no_steps_and_steps_are_trimmed() -> None:
    org = RegionDocument.model_validate(
        _document(guide={2: ["  Vurder PPT.  "]}, measure_catalogue=[{"title": " Leksehjelp "}])
    ).organisations[0]
    assert org.guide_steps() == ((), (), ("Vurder PPT.",), ())
    assert org.measure_catalogue == (CatalogueMeasure(title="Leksehjelp"),)


@pytest.mark.parametrize(
    "organisation",
    [
        pytest.param({"guide": {4: ["Finnes ikke"]}}, id="level-4"),
        pytest.param({"guide": {-1: ["Finnes ikke"]}}, id="level-minus-1"),
        pytest.param({"guide": {"01": ["Nesten nivå 1"]}}, id="level-01"),
        pytest.param({"guide": {True: ["Sann"]}}, id="level-bool"),
        pytest.param({"guide": {"nivå": ["Tekst"]}}, id="level-word"),
        pytest.param({"guide": {0: ["x" * 301]}}, id="step-too-long"),
        pytest.param({"guide": {0: ["   "]}}, id="step-blank"),
        pytest.param({"guide": {0: ["Steg"] * 21}}, id="too-many-steps"),
        pytest.param({"guide": {0: "Ett steg, ikke en liste"}}, id="steps-not-a-list"),
        pytest.param({"guide": {0: [{"tekst": "Steg"}]}}, id="step-not-text"),
        pytest.param({"guide": ["Steg"]}, id="guide-not-a-mapping"),
        pytest.param({"measure_catalogue": [{"title": "x" * 201}]}, id="title-too-long"),
        pytest.param({"measure_catalogue": [{"title": ""}]}, id="title-empty"),
        pytest.param({"measure_catalogue": [{"goal": "Mål uten tittel"}]}, id="title-missing"),
        pytest.param(
            {"measure_catalogue": [{"title": "Leksehjelp", "goal": "x" * 1001}]},
            id="goal-too-long",
        ),
        pytest.param(
            {"measure_catalogue": [{"title": "Leksehjelp", "goal": "  "}]}, id="goal-blank"
        ),
        pytest.param(
            {"measure_catalogue": [{"title": "Leksehjelp", "responsible": "Ann"}]},
            id="measure-extra-key",
        ),
        pytest.param(
            {"measure_catalogue": [{"title": f"Tiltak {i}"} for i in range(201)]},
            id="too-many-measures",
        ),
        pytest.param(
            {"measure_catalogue": [{"title": "Leksehjelp"}, {"title": "Leksehjelp"}]},
            id="duplicate-titles",
        ),
        pytest.param({"handbook": {0: ["Steg"]}}, id="unknown-organisation-key"),
    ],
)
def test_a_bad_guide_or_catalogue_is_refused(organisation: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RegionDocument.model_validate(_document(**organisation))


def test_the_limits_themselves_are_accepted() -> None:
    org = RegionDocument.model_validate(
        _document(
            guide={level: ["x" * 300] * 20 for level in range(4)},
            measure_catalogue=[
                {"title": f"{i:03d}" + "t" * 197, "goal": "g" * 1000} for i in range(200)
            ],
        )
    ).organisations[0]
    assert [len(steps) for steps in org.guide_steps()] == [20, 20, 20, 20]
    assert len(org.measure_catalogue) == 200


def test_a_new_organisation_with_a_guide_gets_one_event_for_each() -> None:
    document = RegionDocument.model_validate(_document(guide=GUIDE, measure_catalogue=CATALOGUE))
    events = diff_directory(DirectoryState(), document, {})["org-4010"]
    assert [type(e) for e in events] == [
        OrganisationRegistered,
        OrganisationGuideSet,
        OrganisationMeasureCatalogueSet,
    ]
    guide = events[1]
    assert isinstance(guide, OrganisationGuideSet)
    assert guide.levels == document.organisations[0].guide_steps()


def test_a_new_organisation_without_guide_gets_no_guide_event() -> None:
    document = RegionDocument.model_validate(_document())
    events = diff_directory(DirectoryState(), document, {})["org-4010"]
    assert [type(e) for e in events] == [OrganisationRegistered]


def test_an_unchanged_guide_and_catalogue_yield_no_event() -> None:
    document = RegionDocument.model_validate(_document(guide=GUIDE, measure_catalogue=CATALOGUE))
    assert diff_directory(_state_after(document), document, {}) == {}


def test_a_changed_guide_is_set_anew_and_the_unchanged_catalogue_is_not() -> None:
    before = RegionDocument.model_validate(_document(guide=GUIDE, measure_catalogue=CATALOGUE))
    changed = copy.deepcopy(GUIDE)
    changed[2].append("Hent samtykke før andre tjenester blir med.")
    after = RegionDocument.model_validate(_document(guide=changed, measure_catalogue=CATALOGUE))
    events = diff_directory(_state_after(before), after, {})["org-4010"]
    assert len(events) == 1
    assert isinstance(events[0], OrganisationGuideSet)
    assert events[0].levels[2][-1] == "Hent samtykke før andre tjenester blir med."


def test_a_guide_and_catalogue_left_out_of_a_later_document_are_cleared() -> None:
    before = RegionDocument.model_validate(_document(guide=GUIDE, measure_catalogue=CATALOGUE))
    after = RegionDocument.model_validate(_document())
    events = diff_directory(_state_after(before), after, {})["org-4010"]
    assert events == [
        OrganisationGuideSet(org_id="4010", levels=EMPTY_GUIDE),
        OrganisationMeasureCatalogueSet(org_id="4010", measures=()),
    ]


def test_the_guide_events_round_trip_through_the_event_registry() -> None:
    document = RegionDocument.model_validate(_document(guide=GUIDE, measure_catalogue=CATALOGUE))
    for event in diff_directory(DirectoryState(), document, {})["org-4010"]:
        envelope = registry.envelope(
            event,
            subject="org-4010",
            source="stafett/consent",
            tenant="4010",
            actor="admin",
            time=datetime.now(UTC),
        )
        assert registry.payload(envelope) == event
    assert OrganisationGuideSet.event_type == "no.stafett.directory.organisation_guide_set.v1"
    assert (
        OrganisationMeasureCatalogueSet.event_type
        == "no.stafett.directory.organisation_measure_catalogue_set.v1"
    )


def test_the_demo_region_has_guides_and_catalogues_for_siljan_skien_and_the_county() -> None:
    raw = yaml.safe_load((ROOT / "data" / "grenland.yaml").read_text(encoding="utf-8"))
    document = RegionDocument.model_validate(raw)
    by_id = {org.id: org for org in document.organisations}
    for org_id in ("4010", "4003", "40"):
        assert all(by_id[org_id].guide_steps()), org_id
        assert len(by_id[org_id].measure_catalogue) >= 5, org_id
    assert by_id["40"].kind is OrgKind.COUNTY
