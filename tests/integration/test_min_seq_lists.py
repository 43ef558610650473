"""Stafett-Min-Seq on every list of the four services, over HTTP on real NATS: a list asked
for with a sequence its service's read model has not reached waits for it, and answers 503
with Retry-After when the read model does not get there in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness
from stafett_log.testing import LogHarness
from stafett_notify.testing import NotifyHarness
from stafett_shared.service import Runtime

HOLDER = "ann-kristin-allum"
AUDITOR = "statsforvalter-siri"
SECRET = "webhook-secret-0123456789"


@dataclass
class Service:
    client: httpx.AsyncClient
    runtime: Runtime
    auth: Callable[[str], dict[str, str]]
    lists: list[tuple[str, str]]  # path, and who asks


@dataclass
class World:
    consent: ConsentHarness
    log: LogHarness
    case_id: str
    services: dict[str, Service]


@pytest.fixture
async def world(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    notify_service: NotifyHarness,
) -> World:
    """A case with an entry and a webhook: every list route has something to list."""
    case_id, _ = await log_service.open_case(consent, case_service)
    assert (await log_service.append(case_id)).status_code == 201
    hook = await notify_service.client.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/stafett", "event_types": [], "secret": SECRET},
        headers=notify_service.auth(HOLDER),
    )
    assert hook.status_code == 201, hook.text
    scope = await consent.client.post(
        "/api/v1/audit-scopes",
        json={
            "auditor_person_id": AUDITOR,
            "org_id": "4010",
            "until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            "reason": "Tilsyn med kommunens oppfølging",
        },
        headers=consent.auth("admin"),
    )
    assert scope.status_code == 201, scope.text
    deliveries = f"/api/v1/webhooks/{hook.json()['id']}/deliveries"
    return World(
        consent,
        log_service,
        case_id,
        {
            "case": Service(
                case_service.client,
                case_service.runtime,
                case_service.auth,
                [("/api/v1/cases", HOLDER), ("/api/v1/handovers?to=me", HOLDER)],
            ),
            "log": Service(
                log_service.client,
                log_service.runtime,
                log_service.auth,
                [
                    (f"/api/v1/logs/{case_id}/entries", HOLDER),
                    (f"/api/v1/logs/{case_id}/access", HOLDER),
                ],
            ),
            "consent": Service(
                consent.client,
                consent.runtime,
                consent.auth,
                [
                    (f"/api/v1/consents?case_id={case_id}", HOLDER),
                    (f"/api/v1/decision-records?case_id={case_id}", AUDITOR),
                ],
            ),
            "notify": Service(
                notify_service.client,
                notify_service.runtime,
                notify_service.auth,
                [("/api/v1/notifications", HOLDER), (deliveries, HOLDER)],
            ),
        },
    )


async def _held_back(world: World, service: Service) -> int:
    """Stop the service's projector and write once elsewhere: a sequence the stream has and
    the service's read model has not reached."""
    await service.runtime.projector.stop()
    if service.runtime is world.consent.runtime:  # a service applies its own writes
        assert (await world.log.append(world.case_id)).status_code == 201
    else:
        await world.consent.register_child(10, [("Mor", True)])
    seq = await world.consent.store.last_seq()
    assert service.runtime.projector.known_position < seq
    return seq


async def _get_all(service: Service, seq: int) -> list[httpx.Response]:
    return await asyncio.gather(
        *(
            service.client.get(path, headers={**service.auth(who), "Stafett-Min-Seq": str(seq)})
            for path, who in service.lists
        )
    )


@pytest.mark.parametrize("name", ["case", "log", "consent", "notify"])
async def test_a_list_waits_for_its_min_seq_and_is_503_when_the_read_model_lags(
    world: World, name: str
) -> None:
    service = world.services[name]
    reached = service.runtime.projector.known_position
    now = await _get_all(service, reached)
    assert [r.status_code for r in now] == [200] * len(now), [r.text for r in now]

    seq = await _held_back(world, service)
    started = time.monotonic()
    behind = await _get_all(service, seq)
    waited = time.monotonic() - started
    for (path, _who), answer in zip(service.lists, behind, strict=True):
        assert answer.status_code == 503, (path, answer.status_code, answer.text)
        assert answer.headers["Retry-After"] == "1"
        assert answer.headers["Content-Type"] == "application/problem+json"
    assert waited >= service.runtime.settings.min_seq_wait_s * 0.9  # it waited, bounded

    async def catch_up_soon() -> None:
        await asyncio.sleep(0.3)
        service.runtime.projector.start()

    later: Awaitable[None] = asyncio.create_task(catch_up_soon())
    answers = await _get_all(service, seq)
    await later
    assert [r.status_code for r in answers] == [200] * len(answers), [r.text for r in answers]
    assert service.runtime.projector.known_position >= seq
