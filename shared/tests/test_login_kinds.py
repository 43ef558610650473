"""The consent service's login lookups for citizens and clients, as a service asks them: the
request names its kind, carries a citizen's blind index (never the number) or a client's
issuer, client id and consumer, and the answers share the staff logins' cache and its rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from stafett_shared import rpc
from stafett_shared.auth import IdentityUnavailable
from stafett_shared.logins import (
    LOGIN_SUBJECT,
    MISS_KEPT_S,
    CitizenLogin,
    ClientLogin,
    LoginDirectory,
    StaffLogin,
    answer_login,
    identity_request,
)

ISSUER = "https://maskinporten.no/"
INDEX = "A" * 43  # the shape of a blind index: base64url of 32 bytes
ORG = "889640782"


@dataclass
class _Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def replies(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Answers the consent service gives, in order (an exception is raised); the requests
    made are appended to ``ASKED``."""
    answers: list[Any] = []

    async def request(nc: Any, subject: str, payload: dict[str, Any], *, timeout: float) -> Any:
        assert subject.startswith(LOGIN_SUBJECT)
        ASKED.append(payload)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(rpc, "request", request)
    ASKED.clear()
    return answers


ASKED: list[dict[str, Any]] = []


def _directory(clock: _Clock, **kwargs: Any) -> LoginDirectory:
    return LoginDirectory(cast("Any", None), service="log", clock=clock, **kwargs)


async def test_a_citizen_is_asked_by_blind_index_and_kept_like_a_login(replies: list[Any]) -> None:
    clock = _Clock()
    directory = _directory(clock, cache_s=30)
    replies.append({"person_id": "01JGUARDIAN0000000000000000"})

    assert await directory.citizen(INDEX) == "01JGUARDIAN0000000000000000"
    clock.now += 29
    assert await directory.citizen(INDEX) == "01JGUARDIAN0000000000000000"
    assert ASKED == [{"kind": "citizen", "national_id_index": INDEX, "asked_by": "log"}]
    replies.append({"person_id": None})
    clock.now += 1
    assert await directory.citizen(INDEX) is None
    assert len(ASKED) == 2


async def test_a_client_is_asked_with_its_consumer_and_nobody_is_kept_briefly(
    replies: list[Any],
) -> None:
    clock = _Clock()
    directory = _directory(clock, cache_s=60)
    replies.extend([{"client": None}, {"client": "client-nav-tiltak"}])

    assert await directory.client(ISSUER, "nav-system", ORG) is None
    clock.now += MISS_KEPT_S - 0.1
    assert await directory.client(ISSUER, "nav-system", ORG) is None
    clock.now += 0.1
    assert await directory.client(ISSUER, "nav-system", ORG) == "client-nav-tiltak"
    assert (
        ASKED
        == [
            {
                "kind": "client",
                "issuer": ISSUER,
                "client_id": "nav-system",
                "consumer_org": ORG,
                "asked_by": "log",
            }
        ]
        * 2
    )


async def test_the_kinds_do_not_share_answers(replies: list[Any]) -> None:
    directory = _directory(_Clock())
    replies.extend([{"person_id": "kari"}, {"client": "client-kari"}, {"person_id": None}])
    assert await directory(ISSUER, "kari") == "kari"
    assert await directory.client(ISSUER, "kari", None) == "client-kari"
    assert await directory.citizen(INDEX) is None
    assert [payload.get("kind", "staff") for payload in ASKED] == ["staff", "client", "citizen"]


@pytest.mark.parametrize(
    ("ask", "answer"),
    [
        ("citizen", rpc.RpcUnavailable("no responders")),
        ("client", rpc.RpcRemoteError("bad_request", "kind must be staff, citizen or client")),
        ("citizen", {"person_id": "not an id!"}),
        ("client", {"client": "kari-nordmann"}),  # a person's id is never a client's
        ("client", {"client": 7}),
    ],
    ids=["unavailable", "refused", "no-person", "not-a-client-id", "garbled"],
)
async def test_a_lookup_that_cannot_be_made_is_unavailable_and_not_kept(
    replies: list[Any], ask: str, answer: Any
) -> None:
    directory = _directory(_Clock())

    async def lookup() -> str | None:
        if ask == "citizen":
            return await directory.citizen(INDEX)
        return await directory.client(ISSUER, "nav-system", ORG)

    replies.append(answer)
    with pytest.raises(IdentityUnavailable):
        await lookup()
    replies.append({"person_id": None, "client": None})
    assert await lookup() is None
    assert len(ASKED) == 2


@pytest.mark.parametrize(
    ("payload", "asked"),
    [
        ({"issuer": ISSUER, "subject": "oid", "asked_by": "case"}, StaffLogin(ISSUER, "oid")),
        (
            {"kind": "staff", "issuer": ISSUER, "subject": "oid", "asked_by": "case"},
            StaffLogin(ISSUER, "oid"),
        ),
        (
            {"kind": "citizen", "national_id_index": INDEX, "asked_by": "notify"},
            CitizenLogin(INDEX),
        ),
        (
            {"kind": "client", "issuer": ISSUER, "client_id": "c", "asked_by": "case"},
            ClientLogin(ISSUER, "c", None),
        ),
        (
            {
                "kind": "client",
                "issuer": ISSUER,
                "client_id": "c" * 255,
                "consumer_org": ORG,
                "asked_by": "log",
            },
            ClientLogin(ISSUER, "c" * 255, ORG),
        ),
    ],
)
def test_a_request_names_its_kind(payload: dict[str, Any], asked: object) -> None:
    assert identity_request(payload) == asked


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"kind": "citizen", "national_id_index": INDEX}, "unknown_service"),
        (
            {"kind": "client", "issuer": ISSUER, "client_id": "c", "asked_by": "portal"},
            "unknown_service",
        ),
        ({"kind": "person", "asked_by": "case"}, "bad_request"),
        (
            {"kind": "citizen", "national_id_index": "01818512321", "asked_by": "case"},
            "bad_request",
        ),
        ({"kind": "citizen", "national_id_index": INDEX + "A", "asked_by": "case"}, "bad_request"),
        ({"kind": "client", "issuer": "", "client_id": "c", "asked_by": "case"}, "bad_request"),
        (
            {"kind": "client", "issuer": ISSUER, "client_id": "c" * 256, "asked_by": "case"},
            "bad_request",
        ),
        (
            {
                "kind": "client",
                "issuer": ISSUER,
                "client_id": "c",
                "consumer_org": "0192:" + ORG,
                "asked_by": "case",
            },
            "bad_request",
        ),
    ],
)
def test_a_request_from_no_service_or_out_of_bounds_is_refused(
    payload: dict[str, Any], code: str
) -> None:
    with pytest.raises(rpc.RpcRemoteError) as refused:
        identity_request(payload)
    assert refused.value.code == code


class _Lookups:
    async def login_of(self, issuer: str, subject: str) -> str | None:
        return f"staff-{subject}"

    async def citizen_of(self, national_id_index: str) -> str | None:
        return "01JCHILD000000000000000000" if national_id_index == INDEX else None

    async def client_of(self, issuer: str, client_id: str, consumer_org: str | None) -> str | None:
        return f"client-{client_id}" if consumer_org in (None, ORG) else None


async def test_the_answer_names_a_person_or_a_client() -> None:
    lookups = _Lookups()
    asked = {"asked_by": "case"}
    assert await answer_login({**asked, "issuer": ISSUER, "subject": "ann"}, lookups) == {
        "person_id": "staff-ann"
    }
    assert await answer_login(
        {**asked, "kind": "citizen", "national_id_index": INDEX}, lookups
    ) == {"person_id": "01JCHILD000000000000000000"}
    client = {**asked, "kind": "client", "issuer": ISSUER, "client_id": "nav"}
    assert await answer_login(client, lookups) == {"client": "client-nav"}
    assert await answer_login({**client, "consumer_org": "974760673"}, lookups) == {"client": None}
