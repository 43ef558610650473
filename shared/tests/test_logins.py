"""The directory's logins as a service asks for them: a small bounded cache, a short memory of
"bound to nobody", and a lookup that cannot be made failing closed (503, never 401)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from stafett_shared import rpc
from stafett_shared.auth import IdentityUnavailable, TokenVerifier
from stafett_shared.logins import LOGIN_SUBJECT, MISS_KEPT_S, LoginDirectory, login_request

ISSUER = "https://login.example.no"


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every request the directory makes; answers from ``BOUND`` (or raises ``FAIL``)."""
    requests: list[dict[str, Any]] = []

    async def request(nc: Any, subject: str, payload: dict[str, Any], *, timeout: float) -> Any:
        assert subject == f"{LOGIN_SUBJECT}.case"  # the asking service names itself
        requests.append(payload)
        if FAIL:
            raise FAIL[0]
        return {"person_id": BOUND.get((payload["issuer"], payload["subject"]))}

    monkeypatch.setattr(rpc, "request", request)
    BOUND.clear()
    FAIL.clear()
    return requests


BOUND: dict[tuple[str, str], Any] = {}
FAIL: list[Exception] = []


def _directory(clock: _Clock, **kwargs: Any) -> LoginDirectory:
    return LoginDirectory(cast("Any", None), service="case", clock=clock, **kwargs)


async def test_an_answer_is_kept_for_the_window_and_asked_again_after(
    asked: list[dict[str, Any]],
) -> None:
    clock = _Clock()
    directory = _directory(clock, cache_s=30)
    BOUND[(ISSUER, "oid-1")] = "kari"

    assert await directory(ISSUER, "oid-1") == "kari"
    assert asked == [{"issuer": ISSUER, "subject": "oid-1", "asked_by": "case"}]
    clock.now += 29
    assert await directory(ISSUER, "oid-1") == "kari"
    assert len(asked) == 1
    del BOUND[(ISSUER, "oid-1")]  # unbound
    clock.now += 1
    assert await directory(ISSUER, "oid-1") is None
    assert len(asked) == 2


async def test_bound_to_nobody_is_kept_only_a_few_seconds(asked: list[dict[str, Any]]) -> None:
    clock = _Clock()
    directory = _directory(clock, cache_s=60)
    assert await directory(ISSUER, "oid-2") is None
    clock.now += MISS_KEPT_S - 0.1
    assert await directory(ISSUER, "oid-2") is None
    assert len(asked) == 1
    BOUND[(ISSUER, "oid-2")] = "ola"  # bound a moment ago
    clock.now += 0.1
    assert await directory(ISSUER, "oid-2") == "ola"
    assert MISS_KEPT_S <= 5


async def test_no_window_asks_every_time(asked: list[dict[str, Any]]) -> None:
    directory = _directory(_Clock(), cache_s=0)
    BOUND[(ISSUER, "oid-3")] = "kari"
    for _ in range(3):
        assert await directory(ISSUER, "oid-3") == "kari"
    assert len(asked) == 3


async def test_the_cache_is_bounded(asked: list[dict[str, Any]]) -> None:
    directory = _directory(_Clock(), kept=2)
    for subject in ("a", "b", "c", "a"):
        BOUND[(ISSUER, subject)] = f"person-{subject}"
        await directory(ISSUER, subject)
    assert [p["subject"] for p in asked] == ["a", "b", "c", "a"]  # "a" was forgotten


@pytest.mark.parametrize(
    "failure",
    [
        rpc.RpcUnavailable("no responders"),
        rpc.RpcRemoteError("unknown_service", "asked_by names no known service"),
        rpc.RpcError("reply is not JSON"),
    ],
    ids=["unavailable", "refused", "garbled"],
)
async def test_a_lookup_that_cannot_be_made_is_unavailable_and_not_kept(
    asked: list[dict[str, Any]], failure: Exception
) -> None:
    directory = _directory(_Clock())
    FAIL.append(failure)
    with pytest.raises(IdentityUnavailable):
        await directory(ISSUER, "oid-4")
    FAIL.clear()
    BOUND[(ISSUER, "oid-4")] = "kari"
    assert await directory(ISSUER, "oid-4") == "kari"


@pytest.mark.parametrize("answer", [42, "not an id!", ""])
async def test_an_answer_naming_no_person_is_unavailable(
    asked: list[dict[str, Any]], answer: object
) -> None:
    BOUND[(ISSUER, "oid-5")] = answer
    with pytest.raises(IdentityUnavailable):
        await _directory(_Clock())(ISSUER, "oid-5")


def test_the_window_is_at_most_a_minute() -> None:
    with pytest.raises(ValueError, match="at most"):
        _directory(_Clock(), cache_s=61)
    with pytest.raises(ValueError, match="at most"):
        TokenVerifier(verified_for_s=61)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"issuer": ISSUER, "subject": "oid"}, "unknown_service"),
        ({"issuer": ISSUER, "subject": "oid", "asked_by": "portal"}, "unknown_service"),
        ({"issuer": "", "subject": "oid", "asked_by": "case"}, "bad_request"),
        ({"issuer": "i" * 501, "subject": "oid", "asked_by": "case"}, "bad_request"),
        ({"issuer": ISSUER, "subject": 7, "asked_by": "case"}, "bad_request"),
        ({"issuer": ISSUER, "subject": "s" * 256, "asked_by": "case"}, "bad_request"),
    ],
)
def test_a_request_from_no_service_or_out_of_bounds_is_refused(
    payload: dict[str, Any], code: str
) -> None:
    with pytest.raises(rpc.RpcRemoteError) as refused:
        login_request(payload)
    assert refused.value.code == code


def test_a_request_from_a_service_names_the_login() -> None:
    payload = {"issuer": "i" * 500, "subject": "s" * 255, "asked_by": "notify"}
    assert login_request(payload) == ("i" * 500, "s" * 255)
