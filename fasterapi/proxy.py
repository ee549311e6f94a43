"""Trusted-proxy headers: who the client really is when a proxy forwards the request.

Rules this module keeps:

1. The headers are believed only when the *immediate* peer is trusted
   (``--forwarded-allow-ips``).  That check runs once per connection, in
   ``HttpCore.connection_made``, through ``ProxyTrust.for_peer``; an untrusted
   peer gets ``None`` and its requests pay nothing.
2. Per request, ``ProxyTrust.rewrite(scope)`` scans the header list once and
   returns at once when no proxy header is present.  It sets only
   ``scope["client"]`` and ``scope["scheme"]``; ``Host`` and
   ``X-Forwarded-Host`` stay untouched in the headers (see docs/deployment.md).
3. A chain of hops is read right to left (each proxy appends), and the client
   is the rightmost hop that is not itself a trusted proxy, so a client cannot
   choose its address by sending a forged header of its own.
4. ``Forwarded`` (RFC 7239) wins over ``X-Forwarded-*`` when both are present:
   it is the standard, and mixing two chains has no defined meaning.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["ProxyTrust", "parse_forwarded"]

# Bounded memos: trust decisions per peer/hop address, and (client, scheme)
# per combination of header values.  Keys longer than these are not memoized,
# so the memos stay small whatever a client puts in its headers.
_CACHE_SIZE = 1024
_MEMO_KEY_MAX = 64
_MEMO_VALUES_MAX = 256

_NAMES = frozenset((b"forwarded", b"x-forwarded-for", b"x-forwarded-proto"))
_PROTOS = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_PROTOS = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}

# RFC 7239 section 4: forwarded-pair = token "=" value; value = token / quoted-string
# (RFC 7230 section 3.2.6 for token and quoted-string, with quoted-pair escapes).
_PAIR = re.compile(
    r"[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(\"(?:[^\"\\]|\\.)*\"|[!#$%&'*+.^_`|~0-9A-Za-z:\[\]-]*)"
    r"[ \t]*([;,]|$)"
)


def parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """Split an RFC 7239 ``Forwarded`` value into one dict per forwarded-element.

    Parameter names are lower-cased (section 4: case-insensitive); quoted
    strings are unquoted.  Returns None for a malformed value, which callers
    ignore as a whole rather than guess at a partial chain.
    """
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    pos, end = 0, len(value)
    while pos < end:
        # Empty list members and empty pairs are allowed (RFC 7230 section 7, "#rule").
        if value[pos] in " \t,;":
            if value[pos] == "," and current:
                elements.append(current)
                current = {}
            pos += 1
            continue
        match = _PAIR.match(value, pos)
        if match is None:
            return None
        name, raw, sep = match.groups()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        current[name.lower()] = raw
        pos = match.end()
        if sep == "," and current:
            elements.append(current)
            current = {}
    if current:
        elements.append(current)
    return elements


def _split_node(node: str) -> tuple[str, int]:
    """RFC 7239 section 6 node (also used for X-Forwarded-For items): host and port (0 if none).

    ``"[2001:db8::1]:8080"`` -> ``("2001:db8::1", 8080)``; ``"192.0.2.1:80"``
    -> ``("192.0.2.1", 80)``; a bare IPv6 address (as X-Forwarded-For carries
    it) stays whole.  An obfuscated port (``_abc``) counts as 0.
    """
    node = node.strip()
    port = ""
    if node.startswith("["):
        host, _, rest = node[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif node.count(":") == 1:
        host, _, port = node.partition(":")
    else:
        host = node
    return host, int(port) if port.isdigit() else 0


class ProxyTrust:
    """The ``--forwarded-allow-ips`` list, compiled once per server.

    Entries: IPv4/IPv6 addresses, CIDR networks (``10.0.0.0/8``), ``*`` (trust
    everyone), ``unix:`` (any peer on a Unix socket) and literal strings,
    matched exactly (a Unix socket path, or a non-IP name a proxy writes into
    ``Forwarded``).  Raises ValueError for an empty list.
    """

    def __init__(self, allow: str | Iterable[str]):
        entries = allow.split(",") if isinstance(allow, str) else list(allow)
        entries = [e.strip() for e in entries if e.strip()]
        if not entries:
            raise ValueError("--forwarded-allow-ips is empty")
        self.everyone = "*" in entries
        self.unix = "unix:" in entries
        self.addresses: set[Any] = set()
        self.networks: list[Any] = []
        self.literals: set[str] = set()
        for entry in entries:
            if entry in ("*", "unix:"):
                continue
            if entry.startswith("unix:"):
                self.literals.add(entry[len("unix:"):])
                continue
            try:
                if "/" in entry:
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                else:
                    self.addresses.add(ipaddress.ip_address(entry))
            except ValueError:
                self.literals.add(entry)
        # Per-instance LRU (C-implemented): a busy server sees few distinct
        # proxy addresses, so nearly every check is one dict lookup.
        self.trusts = functools.lru_cache(maxsize=_CACHE_SIZE)(self._trusts)
        self._resolve = functools.lru_cache(maxsize=_CACHE_SIZE)(self._resolve_uncached)

    def _trusts(self, host: str) -> bool:
        if self.everyone:
            return True
        if host in self.literals:
            return True
        try:
            ip = ipaddress.ip_address(host.partition("%")[0])  # drop an IPv6 zone id
        except ValueError:
            return False
        if ip in self.addresses:
            return True
        if getattr(ip, "ipv4_mapped", None) is not None and ip.ipv4_mapped in self.addresses:
            return True
        return any(ip in net for net in self.networks)

    def for_peer(self, client: tuple[str, int] | None, sockname: Any) -> ProxyTrust | None:
        """Called once per connection: ``self`` if the peer is a trusted proxy, else None.

        `client` is the scope's ``client`` (None on a Unix socket, whose peer
        has no address: it is trusted by ``unix:``, ``*`` or the socket's path).
        """
        if client is None:
            if self.everyone or self.unix:
                return self
            return self if isinstance(sockname, str) and sockname in self.literals else None
        return self if self.trusts(client[0]) else None

    def _hop_trusted(self, host: str) -> bool:
        # Hops come from the client's side of the chain: only address-sized
        # strings enter the memo, so long junk cannot fill it with big keys.
        return self.trusts(host) if len(host) <= _MEMO_KEY_MAX else self._trusts(host)

    def _client_from(self, items: list[str]) -> tuple[str, int] | None:
        # Rightmost hop that is not a trusted proxy; all trusted: the leftmost.
        # Parsed lazily from the right: the walk usually stops at the first hop.
        node = None
        for item in reversed(items):
            if not item.strip():
                continue
            node = _split_node(item)
            if not self._hop_trusted(node[0]):
                return node
        return node

    def rewrite(self, scope: dict[str, Any]) -> None:
        """Set ``scope["client"]`` and ``scope["scheme"]`` from the proxy headers, if any.

        Only for requests from a trusted peer (see ``for_peer``).  Unknown
        protocols and malformed values are ignored, leaving the scope as the
        socket made it.
        """
        found = None
        # PERF: one frozenset lookup per header (names are the parser's
        # interned bytes, hashes cached): ~0.3 us for 6 headers.  The
        # protocol runs a C version of this test first, so requests without
        # a proxy header never call us.
        for name, value in scope["headers"]:
            if name in _NAMES:
                if found is None:
                    found = {name: value}
                elif name in found and name != b"x-forwarded-proto":
                    # Repeated list-valued fields join with commas (RFC 9110 section 5.3).
                    found[name] += b"," + value
                else:
                    found[name] = value
        if found is None:
            return
        get = found.get
        forwarded, xff, xfp = get(b"forwarded"), get(b"x-forwarded-for"), get(b"x-forwarded-proto")
        size = len(forwarded or b"") + len(xff or b"") + len(xfp or b"")
        # Bounded memo with small keys only: 1024 entries of up to 256 bytes.
        resolve = self._resolve if size <= _MEMO_VALUES_MAX else self._resolve_uncached
        client, proto = resolve(forwarded, xff, xfp)
        if client is not None:
            scope["client"] = client
        if proto is not None:
            self._set_scheme(scope, proto)

    def _resolve_uncached(
        self, forwarded: bytes | None, xff: bytes | None, xfp: bytes | None
    ) -> tuple[tuple[str, int] | None, str | None]:
        # (client, proto) for one combination of header values.  Memoized by
        # self._resolve: a proxy sends the same few values again and again.
        if forwarded is not None:
            return self._from_forwarded(forwarded.decode("latin-1"))
        client = None
        if xff is not None:
            client = self._client_from(xff.decode("latin-1").split(","))
        # Several X-Forwarded-Proto values: the rightmost came from the proxy next to us.
        proto = xfp.decode("latin-1").rsplit(",", 1)[-1] if xfp is not None else None
        return client, proto

    def _from_forwarded(self, value: str) -> tuple[tuple[str, int] | None, str | None]:
        elements = parse_forwarded(value)
        if not elements:
            return None, None
        # Walk right to left like X-Forwarded-For; the chosen element's proto
        # is the one that hop's proxy saw from the client (RFC 7239 section 5.4).
        chosen = None
        for element in reversed(elements):
            node = element.get("for")
            if node is None:
                continue
            chosen = element
            if not self._hop_trusted(_split_node(node)[0]):
                break
        if chosen is None:
            return None, elements[-1].get("proto")
        return _split_node(chosen["for"]), chosen.get("proto")

    @staticmethod
    def _set_scheme(scope: dict[str, Any], proto: str) -> None:
        proto = proto.strip().lower()
        table = _WS_PROTOS if scope.get("type") == "websocket" else _PROTOS
        scheme = table.get(proto)
        if scheme is not None:
            scope["scheme"] = scheme
