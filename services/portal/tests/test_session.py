"""Sealed session cookies: a forged, altered or stale cookie is a fresh, signed-out session."""

from __future__ import annotations

import time

import pytest

from stafett_portal.session import Session, SessionSealer

KEY = bytes(range(32))


def test_a_sealed_session_opens_again_with_its_token() -> None:
    sealer = SessionSealer(KEY, secure=False)
    session = Session(person_id="ann-kristin-allum", token="t", expires_at=time.time() + 60)
    opened = sealer.open(sealer.seal(session))
    assert opened.signed_in()
    assert opened.token == "t"
    assert opened.csrf == session.csrf


def test_the_cookie_does_not_show_the_token() -> None:
    sealer = SessionSealer(KEY, secure=False)
    value = sealer.seal(Session(person_id="p", token="secret-token-value", expires_at=9e9))
    assert "secret" not in value
    assert b"secret-token-value" not in value.encode()


@pytest.mark.parametrize(
    "cookie",
    ["", "not-base64!", "AAAA", "x" * 5000, None],
    ids=["empty", "junk", "short", "huge", "none"],
)
def test_a_bad_cookie_is_a_fresh_signed_out_session(cookie: str | None) -> None:
    session = SessionSealer(KEY, secure=False).open(cookie)
    assert not session.signed_in()
    assert session.token is None


def test_a_cookie_sealed_with_another_key_is_refused() -> None:
    other = SessionSealer(bytes(32), secure=False)
    value = other.seal(Session(person_id="p", token="t", expires_at=time.time() + 60))
    assert SessionSealer(KEY, secure=False).open(value).token is None


def test_a_changed_byte_is_refused() -> None:
    sealer = SessionSealer(KEY, secure=False)
    value = sealer.seal(Session(person_id="p", token="t", expires_at=time.time() + 60))
    flipped = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
    assert sealer.open(flipped).token is None


def test_the_session_ends_when_the_token_does() -> None:
    sealer = SessionSealer(KEY, secure=False)
    value = sealer.seal(Session(person_id="p", token="t", expires_at=time.time() - 1))
    opened = sealer.open(value)
    assert not opened.signed_in()
    assert opened.token is None and opened.person_id is None


def test_behind_https_the_cookie_is_host_only_and_secure() -> None:
    sealer = SessionSealer(KEY, secure=True)
    args = sealer.cookie_args(60)
    assert sealer.cookie_name.startswith("__Host-")
    assert args["secure"] and args["httponly"] and args["samesite"] == "lax"
    assert args["path"] == "/"


def test_csrf_is_compared_in_constant_time_and_needs_a_value() -> None:
    session = Session()
    assert session.valid_csrf(session.csrf)
    assert not session.valid_csrf(None)
    assert not session.valid_csrf(session.csrf + "x")


def test_a_token_too_large_for_a_cookie_cannot_be_sealed() -> None:
    sealer = SessionSealer(KEY, secure=False)
    with pytest.raises(ValueError, match="does not fit"):
        sealer.seal(Session(person_id="p", token="x" * 4000, expires_at=time.time() + 60))
