"""The real client address behind a reverse proxy, trusted only from configured proxies.

Behind nginx every request arrives from the proxy's address, which would make the
per-address session cap (``server.web.sessions``) cap the whole audience and the logs name
only the proxy. ``TrustedProxies.wsgi`` sets ``REMOTE_ADDR`` to the client named by the
``Forwarded`` (RFC 7239) or ``X-Forwarded-For`` header, but only when the connection comes
from a configured proxy: the chain is read from the right, each hop believed only while the
address that reported it is itself a trusted proxy. From anyone else both headers are
removed, so nothing further in reads a forged one. The proxy's own address stays in the
environ as ``PROXY_ADDR``. No proxies configured (the default): nobody is trusted.
"""

from __future__ import annotations

import ipaddress
import os
import re

TRUSTED_PROXIES_ENV = "GENRE_MONITOR_TRUSTED_PROXIES"  # comma-separated addresses or networks
_FORWARDED_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR")
_FOR = re.compile(r'(?:^|[;,])\s*for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)


class ProxyConfigError(ValueError):
    """A trusted proxy that is not an address or a network; the message names it."""


def configured_proxies(explicit=None) -> list[str]:
    """``explicit`` (a list, e.g. repeated ``--trusted-proxy``), else ``$GENRE_MONITOR_TRUSTED_PROXIES``."""
    if explicit:
        return list(explicit)
    return [p.strip() for p in os.environ.get(TRUSTED_PROXIES_ENV, "").split(",") if p.strip()]


def _address(text: str):
    """An address from a header entry: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``"[::1]"``; else None."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None  # "unknown", an obfuscated name, garbage


class TrustedProxies:
    def __init__(self, proxies=()):
        self.networks = []
        for p in proxies:
            try:
                self.networks.append(ipaddress.ip_network(str(p).strip(), strict=False))
            except ValueError:
                raise ProxyConfigError(f"trusted proxy {p!r} is not an IP address or network "
                                       "(e.g. 127.0.0.1, 10.0.0.0/8, ::1)") from None

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __str__(self) -> str:
        return ",".join(str(n) if n.num_addresses > 1 else str(n.network_address) for n in self.networks)

    def trusts(self, address) -> bool:
        if address is None:
            return False
        if getattr(address, "ipv4_mapped", None) is not None:
            address = address.ipv4_mapped
        return any(address in n for n in self.networks)

    def client(self, peer: str, environ) -> str:
        """The client's address for a request that came from ``peer``."""
        current = _address(peer)
        if not self.trusts(current):
            return peer
        if environ.get("HTTP_FORWARDED"):
            hops = _FOR.findall(environ["HTTP_FORWARDED"])
        else:
            hops = environ.get("HTTP_X_FORWARDED_FOR", "").split(",")
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # an entry we cannot read: the last one we could is as far as we know
            current = address
            if not self.trusts(current):
                break
        return str(current)

    def wsgi(self, app):
        """WSGI middleware in front of ``app``: ``REMOTE_ADDR`` becomes the real client."""

        def real_client(environ, start_response):
            peer = environ.get("REMOTE_ADDR") or ""
            if self.trusts(_address(peer)):
                environ["PROXY_ADDR"] = peer
                environ["REMOTE_ADDR"] = self.client(peer, environ)
            else:
                for key in _FORWARDED_HEADERS:
                    environ.pop(key, None)
            return app(environ, start_response)

        return real_client
