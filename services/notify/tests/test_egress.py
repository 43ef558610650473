"""Webhook requests in production reach only public addresses, whatever a name resolves to."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore
import httpx
import pytest

from stafett_notify.egress import (
    NotPublic,
    PublicOnlyBackend,
    is_public,
    public_only_client,
    webhook_client,
)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.10",
        "169.254.169.254",  # a cloud's metadata service
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1%eth0",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",  # NAT64 to 10.0.0.1
        "64:ff9b:1::1",  # local-use NAT64
        "2002:a00:1::1",  # 6to4 through 10.0.0.1
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:0:7f00:1",  # IPv4-translated
        "fec0::1",  # site-local
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "not-an-address",
    ],
)
def test_addresses_inside_a_network_are_not_public(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize(
    "address",
    ["1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_internet_addresses_are_public(address: str) -> None:
    assert is_public(address)


class _Recording(httpcore.AsyncNetworkBackend):
    """Connects wherever it is asked to the local test server, and notes the address."""

    def __init__(self, port: int | None = None, *, unreachable: Iterable[str] = ()) -> None:
        self.port = port
        self.unreachable = set(unreachable)
        self.asked: list[str] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.asked.append(host)
        if host in self.unreachable:
            raise httpcore.ConnectError("no route")
        if self.port is None:
            raise AssertionError("no connection was to be made")
        return await self._real.connect_tcp("127.0.0.1", self.port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


def _resolving_to(*addresses: str) -> Any:
    async def resolve(_host: str, _port: int) -> Sequence[str]:
        return addresses

    return resolve


@pytest.mark.parametrize(
    "addresses", [("10.0.0.5",), ("93.184.215.14", "127.0.0.1"), ("169.254.169.254",), ()]
)
async def test_a_name_resolving_to_any_address_that_is_not_public_is_refused(
    addresses: tuple[str, ...],
) -> None:
    inner = _Recording()
    backend = PublicOnlyBackend(inner, resolve=_resolving_to(*addresses))
    with pytest.raises(NotPublic):
        await backend.connect_tcp("intranet.example", 443)
    assert inner.asked == []


async def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    async def fails(_host: str, _port: int) -> Sequence[str]:
        raise OSError("no such host")

    with pytest.raises(httpcore.ConnectError):
        await PublicOnlyBackend(_Recording(), resolve=fails).connect_tcp("nowhere.example", 443)


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def hook_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_client_refuses_a_webhook_on_this_machine(hook_port: int, host: str) -> None:
    url = f"http://{host}:{hook_port}/hook"
    async with httpx.AsyncClient() as plain:
        assert (await plain.post(url, content=b"{}")).status_code == 204  # it is there
    async with public_only_client() as guarded:
        with pytest.raises(httpx.ConnectError):
            await guarded.post(url, content=b"{}")


async def test_the_client_delivers_to_a_public_address(hook_port: int) -> None:
    inner = _Recording(hook_port)  # stands in for the internet: reaches the local server
    backend = PublicOnlyBackend(inner, resolve=_resolving_to("93.184.215.14", "1.1.1.1"))
    async with public_only_client(backend=backend) as guarded:
        response = await guarded.post("http://hooks.example/hook", content=b"{}")
    assert response.status_code == 204
    # The address that was checked, not the name: a second lookup cannot move it.
    assert inner.asked == ["93.184.215.14"]


async def test_production_sends_webhooks_only_to_public_addresses(hook_port: int) -> None:
    assert webhook_client(production=False) is None  # the default client, for development
    guarded = webhook_client(production=True)
    assert guarded is not None
    async with guarded:
        with pytest.raises(httpx.ConnectError):
            await guarded.post(f"http://127.0.0.1:{hook_port}/hook", content=b"{}")


async def test_when_the_first_address_cannot_be_reached_the_next_checked_one_is_tried(
    hook_port: int,
) -> None:
    inner = _Recording(hook_port, unreachable={"2606:4700:4700::1111"})
    backend = PublicOnlyBackend(inner, resolve=_resolving_to("2606:4700:4700::1111", "1.1.1.1"))
    async with public_only_client(backend=backend) as guarded:
        response = await guarded.post("http://hooks.example/hook", content=b"{}")
    assert response.status_code == 204
    assert inner.asked == ["2606:4700:4700::1111", "1.1.1.1"]
