"""The case service's schema history, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import func, select

import stafett_case
from stafett_case.projections import (
    cases,
    child_welfare_services,
    deadlines_sent,
    handovers,
    level_history,
    reports,
)
from stafett_shared.db import create_engine, position_table, run_migrations

MIGRATIONS = Path(stafett_case.__file__).parent / "alembic"
AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def test_revision_0003_adds_the_timeline_and_replays_the_read_models(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await run_migrations(engine, MIGRATIONS, revision="0002")
        async with engine.begin() as conn:
            await conn.execute(
                cases.insert().values(
                    case_id="0" * 26,
                    org_id="4010",
                    unit_id="siljan-ungdomsskole",
                    level=1,
                    opened_level=1,
                    status="open",
                    holder_id="ann",
                    holder_unit_id="siljan-ungdomsskole",
                    concern="enc:v1:x",
                    opened_by="ann",
                    opened_at=AT,
                    level_changed_at=AT,
                    version=7,
                )
            )
            await conn.execute(
                deadlines_sent.insert().values(
                    case_id="0" * 26, kind="inactive", ref_id="-", due_on=date(2026, 12, 1), seq=9
                )
            )
            await conn.execute(
                position_table.insert().values(name="case", last_seq=42, updated_at=func.now())
            )

        await run_migrations(engine, MIGRATIONS)

        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(cases)) == 0
            assert await conn.scalar(select(func.count()).select_from(level_history)) == 0
            columns = select(handovers.c.from_unit_id, handovers.c.decline_reason)
            assert (await conn.execute(columns)).all() == []
            position = select(position_table.c.last_seq).where(position_table.c.name == "case")
            assert await conn.scalar(position) == 0  # the projector replays from the start
            kept = await conn.scalar(select(func.count()).select_from(deadlines_sent))
            assert kept == 1  # deadlines already published are not published again
    finally:
        await engine.dispose()


async def test_revision_0005_addresses_reports_and_replays_the_read_models(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await run_migrations(engine, MIGRATIONS, revision="0004")
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO child_welfare_reports (report_id, case_id, reported_by, "
                    "reported_at) VALUES (:r, :c, 'ann', :at)"
                ),
                {"r": "1" * 26, "c": "0" * 26, "at": AT},
            )
            await conn.execute(
                position_table.insert().values(name="case", last_seq=42, updated_at=func.now())
            )

        await run_migrations(engine, MIGRATIONS)

        async with engine.begin() as conn:
            # The text of earlier reports is only in the stream: the projector replays it.
            assert await conn.scalar(select(func.count()).select_from(reports)) == 0
            position = select(position_table.c.last_seq).where(position_table.c.name == "case")
            assert await conn.scalar(position) == 0
            await conn.execute(
                reports.insert().values(
                    report_id="1" * 26,
                    case_id="0" * 26,
                    reported_by="ann",
                    reported_at=AT,
                    unit_id="skien-barnevern",
                    text="enc:v2:x",
                    status="sent",
                )
            )
            await conn.execute(
                child_welfare_services.insert().values(org_id="4010", unit_id="skien-barnevern")
            )
            inbox = select(reports.c.status, reports.c.received_at).where(
                reports.c.unit_id == "skien-barnevern"
            )
            assert (await conn.execute(inbox)).all() == [("sent", None)]
    finally:
        await engine.dispose()
