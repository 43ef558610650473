"""Webhook requests in production reach only public addresses, whatever a name resolves to."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stafett_notify.api import _allowed_webhook_host
from stafett_notify.egress import (
    NotPublic,
    PublicOnlyBackend,
    is_public,
    public_only_client,
    webhook_client,
)
from stafett_shared.service import Runtime


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


def _certificate_authority(tmp_path: Path, server_name: str) -> tuple[Path, Path, Path]:
    """A CA of the test's own and a server certificate it signed for ``server_name``: the
    CA's file, the certificate's and its key's."""
    now = datetime.now(UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Stafett test CA"))
        .issuer_name(name("Stafett test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name(server_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = (tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key")
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@contextlib.contextmanager
def _https_hook(certificate: Path, key: Path) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("served_as", "delivered"), [("hooks.example", True), ("other.example", False)]
)
async def test_tls_is_checked_against_the_urls_host_name_on_the_pinned_address(
    tmp_path: Path, served_as: str, delivered: bool
) -> None:
    ca, certificate, key = _certificate_authority(tmp_path, served_as)
    with _https_hook(certificate, key) as port:
        inner = _Recording(port)  # the checked public address, standing in for the internet
        backend = PublicOnlyBackend(inner, resolve=_resolving_to("93.184.215.14"))
        trusted = ssl.create_default_context(cafile=str(ca))
        async with public_only_client(backend=backend, ssl_context=trusted) as guarded:
            if delivered:
                response = await guarded.post("https://hooks.example/hook", content=b"{}")
                assert response.status_code == 204
            else:  # a certificate for another name, from a trusted CA: refused
                with pytest.raises(httpx.ConnectError, match=r"(?i)certificate|hostname"):
                    await guarded.post("https://hooks.example/hook", content=b"{}")
    assert inner.asked == ["93.184.215.14"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example/hook", True),  # a name: checked at every connection
        ("https://93.184.215.14/hook", True),
        ("https://[2606:4700:4700::1111]/hook", True),
        ("http://hooks.example/hook", False),
        ("https://localhost/hook", False),
        ("https://10.0.0.5/hook", False),
        ("https://[64:ff9b::a00:1]/hook", False),  # NAT64 to 10.0.0.1: as at delivery
        ("https://[::ffff:127.0.0.1]/hook", False),
    ],
)
def test_registration_in_production_refuses_what_delivery_would(url: str, allowed: bool) -> None:
    production = cast("Runtime", SimpleNamespace(settings=SimpleNamespace(production=True)))
    development = cast("Runtime", SimpleNamespace(settings=SimpleNamespace(production=False)))
    assert _allowed_webhook_host(production, url) is allowed
    assert _allowed_webhook_host(development, url)
