"""TLS: the server's SSLContext from the ``--ssl-*`` options, and the ASGI ``tls`` scope extension.

``create_ssl_context`` runs once at startup; ``tls_extension`` runs once per
TLS connection (in ``HttpCore.connection_made``), and its dict is shared by
every request on that connection, because it describes the connection.

The ``tls`` extension follows asgiref's ``specs/tls.rst``.  What Python's ssl
module can and cannot give:

- ``tls_version`` and ``cipher_suite`` are the IANA codes (0x0304 for TLS 1.3;
  the suite's 16-bit code from the TLS Cipher Suites registry).  The code is
  the low 16 bits of OpenSSL's cipher id, found through ``get_ciphers()``.
- ``client_cert_chain``: the whole chain the client sent on Python 3.13+
  (``get_unverified_chain``); on older Pythons only the client's own
  certificate, the one thing ``getpeercert`` returns.
- ``client_cert_error`` is always None: with ``--ssl-cert-reqs`` 1 or 2 a
  certificate that fails verification fails the handshake, so no request
  ever sees one.
"""

from __future__ import annotations

import os
import ssl
import weakref
from typing import Any

__all__ = [
    "MIN_VERSIONS", "PROTOCOL_TLS_SERVER", "create_ssl_context", "read_server_cert", "tls_extension",
]

# uvicorn's --ssl-version default.
PROTOCOL_TLS_SERVER = int(ssl.PROTOCOL_TLS_SERVER)

MIN_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}

# ssl.SSLObject.version() names -> the ProtocolVersion codes of RFC 8446 section 4.2.1 / RFC 5246.
_VERSION_CODES = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

# RFC 4514 section 2.3: short names for the attribute types Python spells out.
_RDN_SHORT = {
    "commonName": "CN", "localityName": "L", "stateOrProvinceName": "ST",
    "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
    "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID",
}

# Per SSLContext (weakly, so a context freed and another made at the same
# address never reads a stale table): OpenSSL cipher name -> IANA code.
_suite_codes: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


def create_ssl_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None = None,
    password: str | None = None,
    ssl_version: int = ssl.PROTOCOL_TLS_SERVER,
    cert_reqs: int = ssl.CERT_NONE,
    ca_certs: str | os.PathLike[str] | None = None,
    ciphers: str | None = None,
    min_version: str = "TLSv1.2",
) -> ssl.SSLContext:
    """A server SSLContext, as uvicorn builds it, plus a minimum protocol version.

    Unlike uvicorn, `ciphers` defaults to OpenSSL's own list: uvicorn's
    ``"TLSv1"`` leaves TLS 1.2 only the SHA-1 CBC suites (``openssl ciphers
    -v TLSv1``), no AES-GCM or ChaCha20.

    `cert_reqs` is 0 (no client certificate), 1 (optional, verified if sent)
    or 2 (required); `ca_certs` is the CA bundle client certificates are
    verified against.  Raises ValueError for an unknown `min_version` or
    `cert_reqs`, and OSError (ssl.SSLError included) for unreadable files,
    a key that does not match, or a wrong password.
    """
    if min_version not in MIN_VERSIONS:
        raise ValueError(f"--ssl-min-version must be one of {', '.join(MIN_VERSIONS)}")
    if cert_reqs not in (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
        raise ValueError("--ssl-cert-reqs must be 0 (none), 1 (optional) or 2 (required)")
    if cert_reqs != ssl.CERT_NONE and ca_certs is None:
        raise ValueError("--ssl-cert-reqs 1 or 2 needs --ssl-ca-certs to verify client certificates")
    ctx = ssl.SSLContext(ssl_version)
    ctx.minimum_version = MIN_VERSIONS[min_version]
    # Always a callback: without one, OpenSSL would prompt on the terminal for
    # an encrypted key and a server start would hang waiting for input.
    ctx.load_cert_chain(certfile, keyfile, lambda: password or "")
    ctx.verify_mode = ssl.VerifyMode(cert_reqs)
    if ca_certs:
        ctx.load_verify_locations(ca_certs)
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def read_server_cert(certfile: str | os.PathLike[str]) -> str | None:
    """The first PEM certificate in `certfile` (the one the server presents), or None."""
    with open(certfile, encoding="ascii", errors="replace") as file:
        text = file.read()
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end_marker = "-----END CERTIFICATE-----"
    end = text.find(end_marker, begin)
    if begin < 0 or end < 0:
        return None
    return text[begin:end + len(end_marker)] + "\n"


def _suite_code(ssl_object: Any, name: str) -> int | None:
    ctx = ssl_object.context
    codes = _suite_codes.get(ctx)
    if codes is None:
        # OpenSSL's cipher id is 0x03000000 | the IANA code (two bytes).
        codes = {c["name"]: c["id"] & 0xFFFF for c in ctx.get_ciphers()}
        _suite_codes[ctx] = codes
    return codes.get(name)


def _rfc4514(subject: Any) -> str:
    # getpeercert()["subject"] lists RDNs root first; RFC 4514 section 2.1
    # writes them last-first, escaping the special characters of section 2.4.
    parts = []
    for rdn in reversed(subject):
        avas = []
        for key, value in rdn:
            escaped = "".join("\\" + c if c in ',+"\\<>;=' else c for c in value)
            if escaped.startswith(("#", " ")):
                escaped = "\\" + escaped
            if escaped.endswith(" "):
                escaped = escaped[:-1] + "\\ "
            avas.append(f"{_RDN_SHORT.get(key, key)}={escaped}")
        parts.append("+".join(avas))
    return ",".join(parts)


def tls_extension(ssl_object: Any, server_cert: str | None) -> dict[str, Any]:
    """The ``scope["extensions"]["tls"]`` dict for one connection (asgiref specs/tls.rst)."""
    chain: list[str] = []
    name = None
    unverified = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+
    if unverified is not None:
        certs = unverified() or []
        chain = [ssl.DER_cert_to_PEM_cert(c if isinstance(c, bytes) else c.public_bytes(ssl.ENCODING_DER))
                 for c in certs]
    else:
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            chain = [ssl.DER_cert_to_PEM_cert(der)]
    if chain:
        subject = (ssl_object.getpeercert() or {}).get("subject")
        name = _rfc4514(subject) if subject else None
    cipher = ssl_object.cipher()
    return {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _VERSION_CODES.get(ssl_object.version()),
        "cipher_suite": _suite_code(ssl_object, cipher[0]) if cipher else None,
    }
