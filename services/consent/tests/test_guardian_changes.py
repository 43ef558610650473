"""The pure rules of a change to a child's guardians (docs/decisions/0028-guardians-change.md):
what each command yields on the child's events, and what it refuses."""

from __future__ import annotations

import pytest

from stafett_consent import domain
from stafett_shared.contracts.directory import (
    ChildRegistered,
    GuardianAdded,
    GuardianRecord,
    GuardianRemoved,
    ParentalResponsibilityChanged,
)

CHILD = "01JC0000000000000000000001"
MOTHER = "01JG0000000000000000000001"
FATHER = "01JG0000000000000000000002"
NEWCOMER = "01JG0000000000000000000003"


def _guardian(
    person_id: str, *, responsible: bool = True, index: str | None = None
) -> GuardianRecord:
    return GuardianRecord(
        person_id=person_id,
        national_id="enc:x",
        national_id_index=index or f"idx-{person_id}",
        name="enc:x",
        parental_responsibility=responsible,
    )


def _registered(*guardians: GuardianRecord) -> ChildRegistered:
    return ChildRegistered(
        child_id=CHILD,
        national_id="enc:x",
        national_id_index="idx-child",
        name="enc:x",
        birth_date="enc:x",
        guardians=guardians,
        registered_by="ann",
    )


STATE = domain.replay_guardians([_registered(_guardian(MOTHER), _guardian(FATHER))])


def test_a_child_not_registered_has_no_guardians_to_change() -> None:
    with pytest.raises(domain.UnknownChild):
        domain.decide_guardians(None, domain.RemoveGuardian(MOTHER, "enc:why", "admin"))


def test_a_guardian_added_removed_and_relieved_follows_in_the_state() -> None:
    added = domain.decide_guardians(
        STATE, domain.AddGuardian(_guardian(NEWCOMER), "enc:why", "admin")
    )
    assert [type(e) for e in added] == [GuardianAdded]
    removed = domain.decide_guardians(STATE, domain.RemoveGuardian(MOTHER, "enc:why", "admin"))
    assert [type(e) for e in removed] == [GuardianRemoved]
    relieved = domain.decide_guardians(
        STATE, domain.SetParentalResponsibility(FATHER, False, "enc:why", "admin")
    )
    assert [type(e) for e in relieved] == [ParentalResponsibilityChanged]

    after = domain.replay_guardians(
        [_registered(_guardian(MOTHER), _guardian(FATHER)), *added, *removed, *relieved]
    )
    assert after is not None
    assert {p: r for p, (_i, r) in after.guardians.items()} == {FATHER: False, NEWCOMER: True}


def test_the_responsibility_a_guardian_has_already_yields_nothing() -> None:
    same = domain.SetParentalResponsibility(MOTHER, True, "enc:why", "admin")
    assert domain.decide_guardians(STATE, same) == []


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        (domain.RemoveGuardian(NEWCOMER, "enc:why", "admin"), domain.UnknownGuardian),
        (
            domain.SetParentalResponsibility(NEWCOMER, True, "enc:why", "admin"),
            domain.UnknownGuardian,
        ),
        (domain.AddGuardian(_guardian(MOTHER), "enc:why", "admin"), domain.AlreadyGuardian),
        (
            # Another person id, the same national id: the same person.
            domain.AddGuardian(_guardian(NEWCOMER, index=f"idx-{MOTHER}"), "enc:why", "admin"),
            domain.AlreadyGuardian,
        ),
        (
            domain.AddGuardian(_guardian(NEWCOMER, index="idx-child"), "enc:why", "admin"),
            domain.ChildIsGuardian,
        ),
    ],
)
def test_a_change_the_rules_refuse_yields_nothing(
    command: domain.GuardianCommand, refusal: type[domain.ConsentError]
) -> None:
    with pytest.raises(refusal):
        domain.decide_guardians(STATE, command)


def test_a_child_has_at_most_ten_guardians() -> None:
    full = domain.replay_guardians(
        [_registered(*(_guardian(f"01JG00000000000000000001{i:02d}") for i in range(10)))]
    )
    with pytest.raises(domain.TooManyGuardians):
        domain.decide_guardians(full, domain.AddGuardian(_guardian(NEWCOMER), "enc:why", "admin"))
