"""Each service's OpenAPI document, proved against the running service with schemathesis.

The four services run in-process beside each other (real NATS, SQLite), each behind a real
HTTP server on a free port. Schemathesis generates requests from the document each service
publishes, positive and negative, sends them with a valid token of a person with rights
(the holder of real cases; the administrator for the directory and checkpoints), and checks
every answer against the document: a documented status, content type, schema and headers.
No answer may be a server error other than a documented 503. Part of the generated requests
name real cases, entries, handovers, measures, consents, webhooks and people, so they reach
the domain rather than stopping at "not found".
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from stafett_case.testing import CaseHarness
from stafett_consent.testing import REGION, ConsentHarness
from stafett_log.testing import LogHarness
from stafett_notify.testing import NotifyHarness
from stafett_shared.embedded import free_port

pytestmark = pytest.mark.slow

HOLDER = "ann-kristin-allum"
ADMIN = "admin"
REQUESTS_PER_SERVICE = 1000
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@dataclass
class Stack:
    consent: ConsentHarness
    case: CaseHarness
    log: LogHarness
    notify: NotifyHarness


FourServices = Callable[
    [], AbstractAsyncContextManager[tuple[ConsentHarness, CaseHarness, LogHarness, NotifyHarness]]
]
"""The ``four_services`` fixture of tests/security/conftest.py."""


@pytest.fixture
async def stack(
    four_services: FourServices,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Stack]:
    """The four services on a fresh stream, each with a SQLite database of its own. No rate
    limit (the fuzzer is one principal at hundreds of requests a second) and a short wait for
    Stafett-Min-Seq."""
    monkeypatch.setenv("STAFETT_RATE_LIMIT_PER_S", "0")
    monkeypatch.setenv("STAFETT_MIN_SEQ_WAIT_S", "0.2")
    async with four_services() as (consent, case, log, notify):
        loaded = await consent.load_region()
        assert loaded.status_code == 200, loaded.text
        await case.settle(await consent.store.last_seq())
        yield Stack(consent, case, log, notify)


@contextlib.asynccontextmanager
async def served(client: httpx.AsyncClient) -> AsyncIterator[str]:
    """The harness's app behind uvicorn on a free port, on this event loop (its NATS
    connection and database engines belong to it); the requests come from a thread."""
    transport = client._transport  # the harness's ASGI app
    assert isinstance(transport, httpx.ASGITransport)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            transport.app,
            host="127.0.0.1",
            port=port,
            lifespan="off",  # the harness ran it
            log_config=None,
            access_log=False,
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


# --- real data for the generated requests ------------------------------------------------------


async def seed(stack: Stack) -> dict[str, list[Any]]:
    """Cases, a measure, a handover, a team member, a log entry, a consent, a webhook: their
    ids by the names the documents give such parameters and fields."""
    consent, case, log, notify = stack.consent, stack.case, stack.log, stack.notify
    child_id, guardians, child = await consent.register_child(15, [("Mor", True), ("Far", True)])
    await case.settle(await consent.store.last_seq())
    identified = (await case.open_case(national_id=child["national_id"]))["id"]
    pseudonymous = (await case.open_case())["id"]
    today = datetime.now(UTC).date()
    measure = await case.client.post(
        f"/api/v1/cases/{identified}/measures",
        json={
            "title": "Leksehjelp",
            "goal": "Bedre oppmøte",
            "responsible_person_id": HOLDER,
            "start": today.isoformat(),
            "evaluate_by": (today + timedelta(days=30)).isoformat(),
        },
        headers=case.auth(HOLDER),
    )
    assert measure.status_code == 201, measure.text
    team = await case.client.post(
        f"/api/v1/cases/{identified}/team",
        json={"person_id": "rektor-siljan", "unit_id": "siljan-ungdomsskole", "access": "write"},
        headers=case.auth(HOLDER),
    )
    assert team.status_code == 201, team.text
    handover = await case.client.post(
        f"/api/v1/cases/{pseudonymous}/handovers",
        json={"to_person_id": "rektor-siljan", "to_unit_id": "siljan-ungdomsskole"},
        headers=case.auth(HOLDER),
    )
    assert handover.status_code == 201, handover.text
    await consent.runtime.projector.wait_for(int(handover.headers["Stafett-Seq"]), 10)
    await log.runtime.projector.wait_for(int(handover.headers["Stafett-Seq"]), 10)
    entry = await log.append(identified)
    assert entry.status_code == 201, entry.text
    requested = await consent.client.post(
        "/api/v1/consents",
        json={
            "case_id": identified,
            "scope": {
                "org_ids": ["4010", "40"],
                "sectors": ["school", "upper_secondary"],
                "purpose": "Overgang til videregående skole.",
            },
            "evidence": {"method": "digital_signature"},
        },
        headers=consent.auth(HOLDER),
    )
    assert requested.status_code == 201, requested.text
    webhook = await notify.client.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "secret": "s" * 16},
        headers=notify.auth(HOLDER),
    )
    assert webhook.status_code == 201, webhook.text
    position = await consent.store.last_seq()
    for harness in (consent, case, log, notify):
        await harness.runtime.projector.wait_for(position, 10)
    notices = await notify.client.get("/api/v1/notifications", headers=notify.auth("rektor-siljan"))
    staff = [person["id"] for person in REGION["staff"]]
    units = [unit["id"] for org in REGION["organisations"] for unit in org["units"]]
    people = [*staff, *guardians]
    return {
        "case_id": [identified, pseudonymous],
        "case_ids": [[identified], [identified, pseudonymous]],
        "measure_id": [measure.json()["id"]],
        "handover_id": [handover.json()["id"]],
        "entry_id": [entry.json()["id"]],
        "consent_id": [requested.json()["id"]],
        "webhook_id": [webhook.json()["id"]],
        "notice_id": [item["id"] for item in notices.json()["items"]] or ["n-" + "0" * 40],
        "child_id": [child_id],
        "person_id": people,
        "to_person_id": staff,
        "responsible_person_id": staff,
        "grantor_person_id": guardians,
        "auditor_person_id": staff,
        "principal": [HOLDER],
        "id": [identified, HOLDER],
        "unit_id": units,
        "to_unit_id": units,
        "org_id": ["4010", "40"],
        "org_ids": [["4010"], ["4010", "40"]],
        "seq": list(range(1, position + 1)),
        "tree_size": list(range(1, position + 1)),
        "first": list(range(1, position + 1)),
        "second": list(range(1, position + 1)),
        "Stafett-Min-Seq": list(range(position + 1)),
    }


def seeded(strategy: st.SearchStrategy[Any], seeds: Mapping[str, list[Any]]) -> Any:
    """Cases from ``strategy`` in which, now and then, a path parameter, query parameter,
    header or body field (to one level of nesting) is replaced by a real value of its name.
    Stafett-Min-Seq (and a decision's ``min_seq``) always names a sequence already reached:
    an unreached one holds each request for seconds (its 503 is proved in the integration
    tests)."""

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        case = draw(strategy)

        def replace(values: Any, depth: int = 0) -> None:
            if not isinstance(values, dict):
                return
            for name, value in list(values.items()):
                if name in seeds and draw(st.booleans()):
                    values[name] = draw(st.sampled_from(seeds[name]))
                elif depth == 0:
                    replace(value, depth + 1)

        replace(case.path_parameters)
        replace(case.query)
        if isinstance(case.body, dict):
            replace(case.body)
        reached = len(seeds["Stafett-Min-Seq"])
        body = case.body if isinstance(case.body, dict) else {}
        for values in (case.headers, body, body.get("context")):
            if not isinstance(values, MutableMapping):
                continue
            for name in ("Stafett-Min-Seq", "min_seq"):
                value = values.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    values[name] = value % reached
                elif isinstance(value, str) and value.isascii() and value.isdigit():
                    values[name] = str(int(value) % reached)
        return case

    return build()


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Report:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"{self.requests} requests in {self.seconds:.1f} s: {dict(self.statuses)}"]
        lines += [f"{key}\n    {detail}" for key, detail in sorted(self.failures.items())]
        return "\n".join(lines)


def fuzz(
    document: dict[str, Any],
    base_url: str,
    tokens: Callable[[str, str], str],
    seeds: Mapping[str, list[Any]],
    *,
    last: Sequence[str] = (),
) -> Report:
    """Generate requests for every operation in ``document`` (``last``: labels to run at the
    end, as loading a random directory) and check each answer against it."""
    schema = schemathesis.openapi.from_dict(document)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "schemathesis cannot read every operation"
    operations.sort(key=lambda operation: operation.label in last)
    per_operation = math.ceil(REQUESTS_PER_SERVICE * 1.1 / len(operations))
    report = Report()
    started = time.monotonic()
    with requests.Session() as session:
        for operation in operations:
            call = Call(
                base_url,
                session,
                tokens(operation.method.upper(), operation.path),
                report,
            )
            for mode, share in (
                (schemathesis.GenerationMode.POSITIVE, 0.6),
                (schemathesis.GenerationMode.NEGATIVE, 0.4),
            ):
                strategy = seeded(operation.as_strategy(generation_mode=mode), seeds)
                examples = max(1, round(per_operation * share))
                with contextlib.suppress(Unsatisfiable):
                    call.run(strategy, examples, mode)
    report.seconds = time.monotonic() - started
    return report


@dataclass
class Call:
    """Sends generated cases with a valid token and checks the answers."""

    base_url: str
    session: requests.Session
    token: str
    report: Report

    def run(self, strategy: Any, examples: int, mode: schemathesis.GenerationMode) -> None:
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def one(case: schemathesis.Case[Any]) -> None:
            self.check(case, mode)

        one()

    def check(self, case: schemathesis.Case[Any], mode: schemathesis.GenerationMode) -> None:
        report = self.report
        response = case.call(
            base_url=self.base_url,
            session=self.session,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        report.requests += 1
        report.statuses[response.status_code] += 1
        label = f"{case.operation.label} [{mode.value}]"
        if response.status_code >= 500 and response.status_code != 503:
            report.failures.setdefault(
                f"{label}: server error {response.status_code}", case.as_curl_command()
            )
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                report.failures.setdefault(
                    f"{label}: {failure.title}",
                    f"{response.status_code} {failure.message[:400]!r} "
                    f"for {case.as_curl_command()[:600]}",
                )


def _tokens(issue: Callable[[str], str], admin_paths: Sequence[str]) -> Callable[[str, str], str]:
    holder, admin = issue(HOLDER), issue(ADMIN)

    def token(method: str, path: str) -> str:
        return admin if f"{method} {path}" in admin_paths else holder

    return token


@pytest.mark.parametrize("service", ["case", "log", "consent", "notify"])
async def test_every_answer_is_what_the_openapi_document_says(stack: Stack, service: str) -> None:
    harness: CaseHarness | LogHarness | ConsentHarness | NotifyHarness = getattr(stack, service)
    seeds = await seed(stack)
    document = (await harness.client.get("/openapi.json")).json()
    admin_paths = ["PUT /api/v1/directory", "POST /api/v1/checkpoints"]
    tokens = _tokens(stack.consent.token, admin_paths)
    async with served(harness.client) as base_url:
        report = await asyncio.to_thread(
            fuzz, document, base_url, tokens, seeds, last=["PUT /api/v1/directory"]
        )
    print(f"{service}: {report.summary()}")  # the figures for docs/security.md
    assert not report.failures, report.summary()
    assert report.requests >= REQUESTS_PER_SERVICE, report.summary()
