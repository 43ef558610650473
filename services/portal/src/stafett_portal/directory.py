"""The region's directory as the portal shows it: names of organisations, units and staff,
each organisation's handlingsveileder and measure catalogue. It is the staff directory, not
case data; the consent service serves it to staff, and the portal keeps it for a minute."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from stafett_portal import texts

__all__ = ["INTAKE_ROLES", "Directory", "Me", "Person", "Unit"]

INTAKE_ROLES = frozenset({"child_welfare_worker", "leader"})


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    sector: str
    org_id: str
    org_name: str


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    roles: tuple[tuple[str, str], ...]  # (unit_id, role)


@dataclass(frozen=True)
class Me:
    id: str
    name: str
    units: tuple[Unit, ...] = ()
    leads: tuple[str, ...] = ()  # organisations whose indicators this person may see
    roles: tuple[tuple[str, str], ...] = ()
    intake: tuple[str, ...] = ()
    """The child welfare units where this person takes in reports of concern (decision 0026:
    a child welfare worker or a leader there). The case service decides; this only chooses
    whether the menu shows the reports."""

    @property
    def staff(self) -> bool:
        return bool(self.roles)


@dataclass
class Directory:
    region: str | None = None
    organisations: list[dict[str, Any]] = field(default_factory=list)
    units: dict[str, Unit] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Agencies' clients (decision 0039): id -> {name, org_id}."""
    fetched_at: float = field(default_factory=time.monotonic)

    @classmethod
    def from_answer(cls, body: Any) -> Directory:
        directory = cls()
        if not isinstance(body, dict):
            return directory
        region = body.get("region")
        directory.region = region if isinstance(region, str) else None
        for org in body.get("organisations") or []:
            if not isinstance(org, dict) or not isinstance(org.get("id"), str):
                continue
            directory.organisations.append(org)
            for unit in org.get("units") or []:
                if isinstance(unit, dict) and isinstance(unit.get("id"), str):
                    directory.units[unit["id"]] = Unit(
                        id=unit["id"],
                        name=str(unit.get("name") or unit["id"]),
                        sector=str(unit.get("sector") or "other"),
                        org_id=org["id"],
                        org_name=str(org.get("name") or org["id"]),
                    )
        for person in body.get("staff") or []:
            if not isinstance(person, dict) or not isinstance(person.get("id"), str):
                continue
            roles = tuple(
                (str(r.get("unit_id")), str(r.get("role")))
                for r in person.get("roles") or []
                if isinstance(r, dict)
            )
            directory.people[person["id"]] = Person(
                person["id"], str(person.get("name") or person["id"]), roles
            )
        for client in body.get("clients") or []:
            if isinstance(client, dict) and isinstance(client.get("id"), str):
                directory.clients[client["id"]] = client
        return directory

    def client_name(self, client_id: str | None) -> str:
        """An agency's system by its organisation: «NAV Grenland (fagsystem)»."""
        client = self.clients.get(client_id or "")
        if client is None:
            return "Et fagsystem"
        return f"{self.org_name(client.get('org_id'))} (fagsystem)"

    def person_name(self, person_id: str | None) -> str:
        if not person_id:
            return "–"
        person = self.people.get(person_id)
        return person.name if person else person_id

    def unit_name(self, unit_id: str | None) -> str:
        if not unit_id:
            return "–"
        unit = self.units.get(unit_id)
        return unit.name if unit else unit_id

    def org_name(self, org_id: str | None) -> str:
        for org in self.organisations:
            if org.get("id") == org_id:
                return str(org.get("name") or org_id)
        return org_id or "–"

    def organisation(self, org_id: str | None) -> dict[str, Any] | None:
        return next((o for o in self.organisations if o.get("id") == org_id), None)

    def describe(self, person_id: str) -> str:
        """«Name, role at unit» for pickers: staff are chosen by what they do and where."""
        person = self.people.get(person_id)
        if person is None:
            return person_id
        roles = ", ".join(
            f"{texts.ROLES.get(role, role)} ved {self.unit_name(unit)}"
            for unit, role in person.roles
        )
        return f"{person.name} – {roles}" if roles else person.name

    def staff_choices(self) -> list[tuple[str, str]]:
        """Each (person, unit) pair once, as «person_id|unit_id»: a role is held at a unit."""
        choices = []
        for person in sorted(self.people.values(), key=lambda p: p.name):
            for unit_id, role in person.roles:
                choices.append(
                    (
                        f"{person.id}|{unit_id}",
                        f"{person.name} – {texts.ROLES.get(role, role)} ved "
                        f"{self.unit_name(unit_id)}",
                    )
                )
        return choices

    def me(self, person_id: str) -> Me:
        person = self.people.get(person_id)
        if person is None:
            return Me(id=person_id, name=person_id)
        units = tuple(self.units[u] for u, _ in person.roles if u in self.units)
        leads = tuple(
            sorted(
                {
                    self.units[u].org_id
                    for u, role in person.roles
                    if role in ("leader", "coordinator") and u in self.units
                }
            )
        )
        intake = tuple(
            sorted(
                {
                    u
                    for u, role in person.roles
                    if role in INTAKE_ROLES
                    and u in self.units
                    and self.units[u].sector == "child_welfare"
                }
            )
        )
        return Me(
            id=person_id,
            name=person.name,
            units=units,
            leads=leads,
            roles=person.roles,
            intake=intake,
        )

    def people_by_org(self) -> list[tuple[str, list[tuple[Person, str]]]]:
        """For the development sign-in: each organisation with its people and what they do
        there (a person with several roles in one organisation is listed once)."""
        grouped: dict[str, dict[str, tuple[Person, list[str]]]] = {}
        for person in sorted(self.people.values(), key=lambda p: p.name):
            for unit_id, role in person.roles:
                unit = self.units.get(unit_id)
                org = unit.org_name if unit else "Uten virksomhet"
                what = f"{texts.ROLES.get(role, role)} ved {self.unit_name(unit_id)}"
                grouped.setdefault(org, {}).setdefault(person.id, (person, []))[1].append(what)
        return [
            (org, [(person, ", ".join(whats)) for person, whats in people.values()])
            for org, people in sorted(grouped.items())
        ]
