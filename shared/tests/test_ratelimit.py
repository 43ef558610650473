"""One principal cannot call a service faster than its limit; others are not held back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from stafett_shared.auth import DevIssuer, PrincipalDep, TokenVerifier
from stafett_shared.problems import PROBLEM_CONTENT_TYPE, install_problem_handlers
from stafett_shared.ratelimit import RateLimiter
from stafett_shared.settings import CommonSettings


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_the_rate_refills_the_bucket() -> None:
    clock = _Clock()
    limiter = RateLimiter(per_s=2.0, burst=3, clock=clock)
    assert [limiter.take("ola") for _ in range(3)] == [None, None, None]
    assert limiter.take("ola") == pytest.approx(0.5)  # one token comes in half a second
    clock.now += 0.5
    assert limiter.take("ola") is None
    assert limiter.take("ola") == pytest.approx(0.5)
    clock.now += 60  # never more than the burst, however long the pause
    assert [limiter.take("ola") for _ in range(4)][-1] is not None


def test_each_principal_has_a_bucket_of_its_own() -> None:
    limiter = RateLimiter(per_s=1.0, burst=1, clock=_Clock())
    assert limiter.take("ola") is None
    assert limiter.take("ola") is not None
    assert limiter.take("kari") is None


def test_the_limiter_forgets_the_least_recently_seen_principals() -> None:
    limiter = RateLimiter(per_s=1.0, burst=1, kept=2, clock=_Clock())
    for name in ("ola", "kari", "per"):
        assert limiter.take(name) is None
    assert limiter.take("per") is not None  # remembered
    assert limiter.take("ola") is None  # forgotten: a full bucket again


def test_a_limit_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        RateLimiter(per_s=0, burst=1)
    with pytest.raises(ValueError, match="positive rate"):
        RateLimiter(per_s=1, burst=0)


def test_the_default_limit_is_on() -> None:
    settings = CommonSettings()
    assert settings.rate_limit_per_s > 0
    assert settings.rate_limit_burst >= 1


@pytest.fixture
def dev() -> DevIssuer:
    return DevIssuer(Ed25519PrivateKey.generate())


@pytest.fixture
async def api(dev: DevIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = TokenVerifier(dev_issuer=dev)
    app.state.rate_limiter = RateLimiter(per_s=0.5, burst=2)

    @app.get("/me")
    async def me(principal: PrincipalDep) -> dict[str, str]:
        return {"id": principal.id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stafett.test") as client:
        yield client
    await app.state.token_verifier.aclose()


async def test_a_principal_over_its_limit_gets_a_429_problem_with_retry_after(
    api: httpx.AsyncClient, dev: DevIssuer
) -> None:
    ola = {"Authorization": f"Bearer {dev.issue('ola')}"}
    assert [(await api.get("/me", headers=ola)).status_code for _ in range(2)] == [200, 200]

    refused = await api.get("/me", headers=ola)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert refused.headers["retry-after"] == "2"
    assert refused.json()["code"] == "rate_limited"
    assert "ola" not in refused.text

    kari = {"Authorization": f"Bearer {dev.issue('kari')}"}
    assert (await api.get("/me", headers=kari)).status_code == 200
    # A request without a valid token is refused as before, and takes nobody's token.
    assert (await api.get("/me")).status_code == 401
