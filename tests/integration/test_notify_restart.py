"""A notify process killed in the middle of a batch and started again delivers every notice,
and the inbox holds each exactly once."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from stafett_case.testing import CaseHarness
from stafett_consent.testing import REGION, ConsentHarness
from stafett_log.testing import LogHarness
from stafett_notify.projections import deliveries, inbox
from stafett_notify.testing import Mailbox
from stafett_shared.db import create_engine
from stafett_shared.embedded import free_port

TEACHERS = [f"laerer-{i}" for i in range(8)]
ENTRIES = 12


async def _start(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stafett_notify",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise AssertionError("notify did not become ready")


@pytest.mark.slow
async def test_a_notify_process_killed_mid_batch_delivers_every_notice_exactly_once(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    mailbox: tuple[int, Mailbox],
    tmp_path: Path,
    database_url: str,
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("one run is enough: the notify process keeps its own SQLite database")
    region: dict[str, Any] = copy.deepcopy(REGION)
    region["staff"] += [
        {
            "id": t,
            "name": f"Lærer {i}",
            "roles": [{"unit_id": "siljan-ungdomsskole", "role": "teacher"}],
        }
        for i, t in enumerate(TEACHERS)
    ]
    assert (await consent.load_region(region)).status_code == 200
    opened = await case_service.open_case()
    case_id = opened["id"]
    await consent.runtime.projector.wait_for(opened["seq"], 20)
    for teacher in TEACHERS:
        added = await case_service.client.post(
            f"/api/v1/cases/{case_id}/team",
            json={"person_id": teacher, "unit_id": "siljan-ungdomsskole"},
            headers=case_service.auth("ann-kristin-allum"),
        )
        assert added.status_code == 201, added.text
    seq = await consent.store.last_seq()
    for harness in (consent, case_service, log_service):
        await harness.runtime.projector.wait_for(seq, 20)

    port = free_port()
    database = tmp_path / "notify.db"
    env = {
        **os.environ,
        "STAFETT_NATS_URL": consent.runtime.settings.nats_url,
        "STAFETT_DATA_DIR": str(tmp_path),
        "STAFETT_NOTIFY_PORT": str(port),
        "STAFETT_NOTIFY_DATABASE_URL": f"sqlite:///{database}",
        "STAFETT_NOTIFY_SMTP_PORT": str(mailbox[0]),
        "STAFETT_NOTIFY_ACK_WAIT_S": "2",
    }
    process = await _start(env, port)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for teacher in TEACHERS[:3]:
            token = case_service.issuer.issue(teacher)
            response = await client.put(
                "/api/v1/preferences",
                json={
                    "channels": {"inbox": True, "email": True},
                    "email_address": f"{teacher}@siljan.kommune.no",
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200, response.text
    for i in range(ENTRIES):
        assert (await log_service.append(case_id, text=f"Innføring {i}.")).status_code == 201

    engine = create_engine(f"sqlite:///{database}")

    async def inbox_count() -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(inbox)) or 0)

    expected = ENTRIES * len(TEACHERS)
    kills = 0
    for _round in range(2):
        target = (await inbox_count()) + 10
        for _ in range(600):
            if await inbox_count() >= target or await inbox_count() >= expected:
                break
            await asyncio.sleep(0.02)
        if await inbox_count() >= expected:
            break
        process.send_signal(signal.SIGKILL)  # wherever it is: mid-batch, mid-transaction
        await process.wait()
        kills += 1
        process = await _start(env, port)
    for _ in range(600):
        if await inbox_count() >= expected:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # anything still in flight would show now
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(inbox.c.notice_id, inbox.c.recipient))).all()
            statuses = Counter((await conn.scalars(select(deliveries.c.status))).all())
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
        await engine.dispose()
    assert kills >= 1, "the process should have been killed mid-stream"
    per_recipient = Counter(r.recipient for r in rows)
    assert per_recipient == dict.fromkeys(TEACHERS, ENTRIES)
    assert len({r.notice_id for r in rows}) == expected
    assert set(statuses) <= {"delivered"}
    # E-mail carries the delivery id as Message-ID: every notice arrived, and a repeat can
    # only come from a kill between the SMTP server's answer and the delivery record.
    ids = Counter(m["Message-ID"] for m in mailbox[1].messages)
    assert len(ids) == ENTRIES * 3
    assert sum(ids.values()) - len(ids) <= kills
