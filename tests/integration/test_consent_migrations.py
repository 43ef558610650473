"""The consent service's schema history, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

import stafett_consent
from stafett_consent.decisions import decision_outbox
from stafett_consent.projections import (
    access_index,
    client_key,
    clients,
    consents,
    emergency_requests,
    login_key,
    logins,
    organisations,
    staff,
)
from stafett_shared.db import create_engine, position_table, run_migrations

MIGRATIONS = Path(stafett_consent.__file__).parent / "alembic"


async def test_revision_0004_empties_the_read_models_for_a_replay_and_keeps_the_records(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await run_migrations(engine, MIGRATIONS, revision="0003")
        async with engine.begin() as conn:
            await conn.execute(staff.insert().values(person_id="ann", name_index="indeks"))
            await conn.execute(
                position_table.insert().values(name="consent", last_seq=42, updated_at=func.now())
            )
            await conn.execute(decision_outbox.insert().values(decision_id="0" * 26, tenant="4010"))

        await run_migrations(engine, MIGRATIONS)

        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(staff)) == 0
            assert await conn.scalar(select(func.count()).select_from(access_index)) == 0
            position = select(position_table.c.last_seq).where(position_table.c.name == "consent")
            assert await conn.scalar(position) == 0  # the projector replays from the start
            kept = await conn.scalar(select(func.count()).select_from(decision_outbox))
            assert kept == 1  # decision records are no read model
    finally:
        await engine.dispose()


async def test_revision_0005_adds_guides_and_staff_names_and_asks_for_a_replay(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await run_migrations(engine, MIGRATIONS, revision="0004")
        async with engine.begin() as conn:
            await conn.execute(
                organisations.insert().values(
                    org_id="4010", region="grenland", name="Siljan kommune", kind="municipality"
                )
            )
            await conn.execute(staff.insert().values(person_id="ann", name_index="indeks"))
            await conn.execute(
                position_table.insert().values(name="consent", last_seq=42, updated_at=func.now())
            )

        await run_migrations(engine, MIGRATIONS, revision="0005")

        async with engine.begin() as conn:
            assert await conn.scalar(select(func.count()).select_from(organisations)) == 0
            assert await conn.scalar(select(func.count()).select_from(staff)) == 0
            position = select(position_table.c.last_seq).where(position_table.c.name == "consent")
            assert await conn.scalar(position) == 0  # staff names are learnt again by a replay
            await conn.execute(
                organisations.insert().values(
                    org_id="4010",
                    region="grenland",
                    name="Siljan kommune",
                    kind="municipality",
                    guide=[["Snakk med eleven."], [], [], []],
                    measure_catalogue=[{"title": "Leksehjelp", "goal": None}],
                )
            )
            await conn.execute(
                staff.insert().values(person_id="ann", name_index="indeks", name="enc:v1:x")
            )
            stored = (await conn.execute(select(organisations.c.guide))).scalar_one()
            assert stored == [["Snakk med eleven."], [], [], []]
    finally:
        await engine.dispose()


async def _upgraded_keeping_the_read_models(engine: AsyncEngine, before: str, after: str) -> None:
    """From ``before`` (a staff member known, the projection at 42) to ``after``: the read
    models and the position are kept, so no replay is asked (no event of the revision's
    new types was written before it)."""
    await run_migrations(engine, MIGRATIONS, revision=before)
    async with engine.begin() as conn:
        await conn.execute(staff.insert().values(person_id="ann", name_index="indeks"))
        await conn.execute(
            position_table.insert().values(name="consent", last_seq=42, updated_at=func.now())
        )
    await run_migrations(engine, MIGRATIONS, revision=after)
    async with engine.begin() as conn:
        assert await conn.scalar(select(func.count()).select_from(staff)) == 1
        position = select(position_table.c.last_seq).where(position_table.c.name == "consent")
        assert await conn.scalar(position) == 42


async def test_revision_0009_adds_the_logins_and_keeps_the_read_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await _upgraded_keeping_the_read_models(engine, "0008", "0009")
        issuer = "https://login.microsoftonline.com/" + "t" * 36 + "/v2.0"
        async with engine.begin() as conn:
            await conn.execute(
                logins.insert().values(
                    login=login_key(issuer, "s" * 255),
                    issuer=issuer + "i" * (500 - len(issuer)),
                    subject="s" * 255,
                    person_id="ann",
                )
            )
            bound = select(logins.c.person_id).where(logins.c.login == login_key(issuer, "s" * 255))
            assert await conn.scalar(bound) == "ann"
    finally:
        await engine.dispose()


async def test_revision_0010_adds_the_clients_and_keeps_the_read_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await _upgraded_keeping_the_read_models(engine, "0009", "0010")
        issuer = "https://maskinporten.no/" + "i" * 476
        async with engine.begin() as conn:
            await conn.execute(
                clients.insert().values(
                    registration=client_key(issuer, "c" * 255, "889640782"),
                    issued_as=login_key(issuer, "c" * 255),
                    client="client-" + "a" * 57,
                    org_id="o" * 32,
                    name="N" * 200,
                    issuer=issuer,
                    client_id="c" * 255,
                    consumer_org="889640782",
                )
            )
            found = select(clients.c.client).where(
                clients.c.registration == client_key(issuer, "c" * 255, "889640782")
            )
            assert await conn.scalar(found) == "client-" + "a" * 57
    finally:
        await engine.dispose()


async def test_revision_0012_adds_the_emergency_requests_and_keeps_the_read_models(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await _upgraded_keeping_the_read_models(engine, "0011", "0012")
        at = datetime(2026, 12, 16, 9, 30, tzinfo=UTC)
        async with engine.begin() as conn:
            await conn.execute(
                emergency_requests.insert().values(
                    grant_id="G" * 26,
                    case_id="C" * 26,
                    person_id="p" * 64,
                    requested_at=at,
                    status="pending",
                )
            )
            waiting = select(emergency_requests.c.requested_at).where(
                emergency_requests.c.person_id == "p" * 64,
                emergency_requests.c.case_id == "C" * 26,
                emergency_requests.c.status == "pending",
            )
            assert await conn.scalar(waiting) == at
    finally:
        await engine.dispose()


async def test_revision_0015_adds_organisations_own_settings_and_keeps_the_read_models(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await _upgraded_keeping_the_read_models(engine, "0012", "0015")
        async with engine.begin() as conn:
            await conn.execute(
                organisations.insert().values(
                    org_id="4010",
                    region="grenland",
                    name="Siljan kommune",
                    kind="municipality",
                    settings={"youth_consent_age": 16},
                )
            )
            kept = select(organisations.c.settings).where(organisations.c.org_id == "4010")
            assert await conn.scalar(kept) == {"youth_consent_age": 16}
    finally:
        await engine.dispose()


async def test_revision_0018_keeps_who_asked_for_a_consent_and_keeps_the_read_models(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await _upgraded_keeping_the_read_models(engine, "0017", "0018")
        at = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
        row = {
            "case_id": "C" * 26,
            "child_id": "B" * 26,
            "status": "pending",
            "scope": {"org_ids": ["4010"], "sectors": ["health"], "purpose": "enc:v2:x"},
            "grantors": [],
            "signed": [],
            "rule": "guardians",
            "age_applied": 12,
            "valid_from": at,
            "valid_until": at,
            "evidence_method": "digital_signature",
            "version": 43,
        }
        async with engine.begin() as conn:
            await conn.execute(
                consents.insert().values(consent_id="K" * 26, requested_by="p" * 64, **row)
            )
            # A consent learnt before the revision: who asked is unknown until a replay.
            await conn.execute(consents.insert().values(consent_id="L" * 26, **row))
            asked = select(consents.c.consent_id, consents.c.requested_by).order_by(
                consents.c.consent_id
            )
            assert (await conn.execute(asked)).all() == [("K" * 26, "p" * 64), ("L" * 26, None)]
    finally:
        await engine.dispose()
