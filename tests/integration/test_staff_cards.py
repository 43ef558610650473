"""Staff by id (``GET /api/v1/staff``) and organisations by name
(``GET /api/v1/organisations``): what a family needs to know who holds the baton, who read
the log and which services a consent names (decision 0031), over HTTP on real NATS and both
databases."""

from __future__ import annotations

from stafett_consent.testing import ConsentHarness


async def test_a_guardian_sees_the_name_role_and_unit_of_staff_and_nobody_else(
    consent: ConsentHarness,
) -> None:
    _child, guardians, _ = await consent.register_child(10, [("Guri", True)])
    asked = await consent.client.get(
        "/api/v1/staff",
        params=[("id", "helse-hanne"), ("id", "ann-kristin-allum"), ("id", guardians[0])],
        headers=consent.auth(guardians[0]),
    )
    assert asked.status_code == 200, asked.text
    items = asked.json()["items"]
    assert [i["id"] for i in items] == ["ann-kristin-allum", "helse-hanne"]  # no guardian
    assert items[1] == {
        "id": "helse-hanne",
        "name": "Hanne Helse",
        "roles": [
            {
                "role": "health_nurse",
                "unit_id": "siljan-helsestasjon",
                "unit_name": "Helsestasjonen i Siljan",
                "sector": "health",
                "org_id": "4010",
                "org_name": "Siljan kommune",
            }
        ],
    }


async def test_a_guardian_reads_the_organisations_and_units_by_name(
    consent: ConsentHarness,
) -> None:
    _child, guardians, _ = await consent.register_child(10, [("Guri", True)])
    asked = await consent.client.get("/api/v1/organisations", headers=consent.auth(guardians[0]))
    assert asked.status_code == 200, asked.text
    siljan = next(o for o in asked.json()["items"] if o["id"] == "4010")
    assert siljan["name"] == "Siljan kommune"
    assert {"id": "siljan-helsestasjon", "name": "Helsestasjonen i Siljan", "sector": "health"} in (
        siljan["units"]
    )
    assert set(siljan) == {"id", "name", "kind", "units"}  # no guide, catalogue or staff


async def test_staff_cards_refuse_clients_bad_ids_and_too_many(consent: ConsentHarness) -> None:
    before = await consent.store.last_seq()
    client = await consent.client.get(
        "/api/v1/staff",
        params={"id": "helse-hanne"},
        headers=consent.auth("fagsystem", client=True),
    )
    assert client.status_code == 403, client.text
    orgs = await consent.client.get(
        "/api/v1/organisations", headers=consent.auth("fagsystem", client=True)
    )
    assert orgs.status_code == 403, orgs.text
    cases: list[tuple[tuple[str, str], ...]] = [
        (("id", "ikke gyldig"),),
        tuple(("id", f"p-{n}") for n in range(51)),
        (),
    ]
    for params in cases:
        bad = await consent.client.get(
            "/api/v1/staff", params=params, headers=consent.auth("helse-hanne")
        )
        assert bad.status_code == 422, (params[:1], bad.text)
        assert bad.headers["content-type"].startswith("application/problem+json")
    assert await consent.store.last_seq() == before
