"""Outgoing webhook requests that can reach only the public internet.

A webhook's URL is chosen by whoever registers it. Checking its host when it is registered
is not enough: a name can resolve to an address inside the deployment's own network (the
database, the metadata service of a cloud), at registration or only later. In production
the notify service therefore connects through :class:`PublicOnlyBackend`, which resolves
the host itself at every connection, refuses unless every address it resolves to is public,
and connects to the address it checked, so a second lookup cannot point elsewhere. TLS is
still verified against the URL's host name. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import httpcore
import httpx

__all__ = ["NotPublic", "PublicOnlyBackend", "is_public", "public_only_client", "webhook_client"]

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class NotPublic(httpcore.ConnectError):
    """The host is, or resolves to, an address that is not on the public internet."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, where it is one of the forms that
    carry one: IPv4-mapped or -translated, IPv4-compatible, 6to4 or well-known NAT64."""
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    high = int(ip) >> 32
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if high in (0, 0xFFFF0000) or ip in _NAT64:  # ::a.b.c.d, ::ffff:0:a.b.c.d, NAT64
        return low
    return ip.sixtofour


def is_public(address: str) -> bool:
    """Whether an IP address is globally reachable: not loopback, private, link-local,
    shared, reserved or multicast, nor an IPv6 form that carries or reaches such an IPv4
    address (mapped, translated, compatible, 6to4, NAT64, Teredo) or a site-local one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or ip.teredo is not None or ip in _NAT64_LOCAL:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return embedded.is_global and not embedded.is_multicast
    return ip.is_global and not ip.is_multicast


async def _resolve(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to public addresses (see the module)."""

    def __init__(
        self,
        inner: httpcore.AsyncNetworkBackend | None = None,
        *,
        resolve: Resolver = _resolve,
    ) -> None:
        self._inner = inner or httpcore.AnyIOBackend()
        self._resolve = resolve

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self._resolve(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError("the host name could not be resolved") from exc
        if not addresses or not all(is_public(address) for address in addresses):
            raise NotPublic("the host is not a public internet address")
        failed: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # in the resolver's order, as a browser would
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        assert failed is not None
        raise failed

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def public_only_client(
    *,
    timeout_s: float = 10.0,
    backend: httpcore.AsyncNetworkBackend | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """An HTTP client whose connections go only to public addresses. It ignores proxy
    settings from the environment (a proxy would make the connection in its place) and does
    not follow redirects. TLS is verified against the URL's host name with the system's
    certificate authorities (or ``ssl_context``)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx does not take a network backend; its pool, built the same way, does.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or httpx.create_ssl_context(),
        max_connections=100,  # httpx's default limits
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=backend or PublicOnlyBackend(),
    )
    return httpx.AsyncClient(
        transport=transport, timeout=timeout_s, trust_env=False, follow_redirects=False
    )


def webhook_client(*, production: bool) -> httpx.AsyncClient | None:
    """The client the notify service sends webhooks with: in production one that reaches
    only public addresses; elsewhere None, for the default (development and tests deliver
    to this machine)."""
    return public_only_client() if production else None
