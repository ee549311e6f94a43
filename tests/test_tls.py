"""TLS through the real CLI: https scheme, client certificates, the ASGI tls extension."""

from __future__ import annotations

import json
import ssl

import httpx
import pytest
import trustme

from fasterapi.tls import create_ssl_context, tls_extension


@pytest.fixture
def pki(tmp_path):
    """A trustme CA, a server certificate for 127.0.0.1 and a client certificate, as files."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.com", common_name="test client")
    paths = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "server.pem",
        "key": tmp_path / "server.key",
        "client": tmp_path / "client.pem",
    }
    ca.cert_pem.write_to_path(paths["ca"])
    server.cert_chain_pems[0].write_to_path(paths["cert"])
    server.private_key_pem.write_to_path(paths["key"])
    client.private_key_and_cert_chain_pem.write_to_path(paths["client"])
    return ca, server, paths


def _client_ctx(paths, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(paths["ca"]))
    if with_cert:
        ctx.load_cert_chain(str(paths["client"]))
    return ctx


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_https_scheme_and_tls_extension(serve, pki, loop):
    _, server_cert, paths = pki
    proc = serve("ops_scope:app", "--ssl-certfile", str(paths["cert"]),
                 "--ssl-keyfile", str(paths["key"]), "--loop", loop)
    url = f"https://127.0.0.1:{proc.port}/"
    with httpx.Client(verify=_client_ctx(paths, False)) as client:
        first = client.get(url).json()
        second = client.get(url).json()
    assert first["scheme"] == "https"
    tls = first["tls"]
    assert tls["server_cert"] == server_cert.cert_chain_pems[0].bytes().decode()
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == 0x0304
    # TLS 1.3 suites: 0x1301-0x1305 (RFC 8446 appendix B.4).
    assert 0x1301 <= tls["cipher_suite"] <= 0x1305
    assert second["tls"] == tls
    assert first["extensions_is_fresh"] and second["extensions_is_fresh"]
    assert "https://127.0.0.1" in proc.output()


def test_tls12_cipher_suite_code(serve, pki):
    _, _, paths = pki
    proc = serve("ops_scope:app", "--ssl-certfile", str(paths["cert"]),
                 "--ssl-keyfile", str(paths["key"]), "--ssl-ciphers", "ECDHE+AESGCM")
    ctx = _client_ctx(paths, False)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256")
    with httpx.Client(verify=ctx) as client:
        tls = client.get(f"https://127.0.0.1:{proc.port}/").json()["tls"]
    assert tls["tls_version"] == 0x0303
    # IANA: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 0xC02F, ..._ECDSA_... 0xC02B.
    assert tls["cipher_suite"] in (0xC02F, 0xC02B)


def test_min_version_refuses_tls12(serve, pki):
    _, _, paths = pki
    proc = serve("ops_scope:app", "--ssl-certfile", str(paths["cert"]),
                 "--ssl-keyfile", str(paths["key"]), "--ssl-min-version", "TLSv1.3")
    ctx = _client_ctx(paths, False)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(verify=ctx) as client, pytest.raises(httpx.ConnectError):
        client.get(f"https://127.0.0.1:{proc.port}/")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_required_client_certificate(serve, pki, loop):
    _, _, paths = pki
    proc = serve("ops_scope:app", "--ssl-certfile", str(paths["cert"]),
                 "--ssl-keyfile", str(paths["key"]), "--ssl-cert-reqs", "2",
                 "--ssl-ca-certs", str(paths["ca"]), "--loop", loop)
    url = f"https://127.0.0.1:{proc.port}/"
    # TLS 1.3 clients learn of the refusal on their first read, so the error
    # may come from the connect or from reading the response.
    with httpx.Client(verify=_client_ctx(paths, False)) as client, \
            pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        client.get(url)
    with httpx.Client(verify=_client_ctx(paths, True)) as client:
        tls = client.get(url).json()["tls"]
    assert len(tls["client_cert_chain"]) == 1
    assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert "CN=test client" in tls["client_cert_name"]
    assert tls["client_cert_error"] is None


def test_bad_key_is_a_startup_error(cli, pki, tmp_path):
    _, _, paths = pki
    other = trustme.CA().issue_cert("127.0.0.1")
    wrong_key = tmp_path / "other.key"
    other.private_key_pem.write_to_path(wrong_key)
    proc = cli("run", "ops_scope:app", "--app-dir", "tests/apps", "--port", "0",
               "--ssl-certfile", str(paths["cert"]), "--ssl-keyfile", str(wrong_key))
    assert proc.proc.wait(15) == 3
    assert "Error:" in proc.output()


def test_cert_reqs_without_ca_is_refused():
    with pytest.raises(ValueError, match="ssl-ca-certs"):
        create_ssl_context("unused.pem", cert_reqs=ssl.CERT_REQUIRED)


class _FakeSSLObject:
    """Just what tls_extension reads, for the distinguished-name escaping."""

    context = ssl.create_default_context()

    def getpeercert(self, binary_form=False):
        if binary_form:
            return b"0\x00"
        return {"subject": ((("countryName", "DE"),), (("organizationName", "A, B+C"),),
                            (("commonName", " x"),))}

    def version(self):
        return "TLSv1.3"

    def cipher(self):
        return ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128)


def test_client_cert_name_is_rfc4514():
    tls = tls_extension(_FakeSSLObject(), None)
    # RFC 4514 section 2.1: last RDN first; section 2.4: escapes.
    assert tls["client_cert_name"] == "CN=\\ x,O=A\\, B\\+C,C=DE"
    assert tls["cipher_suite"] == 0x1301


def test_encrypted_key_needs_the_password(pki, tmp_path):
    from cryptography.hazmat.primitives import serialization

    _, server_cert, paths = pki
    key = serialization.load_pem_private_key(server_cert.private_key_pem.bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    ))
    ctx = create_ssl_context(paths["cert"], encrypted, "s3cret")
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        create_ssl_context(paths["cert"], encrypted, "wrong")
    with pytest.raises(ssl.SSLError):   # no password: an error, never a prompt
        create_ssl_context(paths["cert"], encrypted)


def test_wss_scheme(serve, pki):
    from websockets.sync.client import connect

    _, _, paths = pki
    proc = serve("ops_scope:app", "--ssl-certfile", str(paths["cert"]),
                 "--ssl-keyfile", str(paths["key"]))
    with connect(f"wss://127.0.0.1:{proc.port}/", ssl=_client_ctx(paths, False)) as ws:
        body = json.loads(ws.recv(timeout=5))
    assert body["scheme"] == "wss"


def test_wss_keeps_tls_extension(serve, pki):
    from websockets.sync.client import connect

    _, _, paths = pki
    proc = serve("ops_scope:app", "--ssl-certfile", str(paths["cert"]),
                 "--ssl-keyfile", str(paths["key"]))
    with connect(f"wss://127.0.0.1:{proc.port}/", ssl=_client_ctx(paths, False)) as ws:
        body = json.loads(ws.recv(timeout=5))
    assert body["tls"]["tls_version"] == 0x0304
