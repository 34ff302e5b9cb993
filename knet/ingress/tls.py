"""TLS termination material: per-host certificates from ``kubernetes.io/tls`` Secrets, SNI.

ingress-nginx behaviour reproduced (``internal/ingress/controller/controller.go``,
``lua/certificate.lua``):
- a host's certificate comes from the Secret named by the ``spec.tls`` entry listing it, in the
  Ingress's namespace, with keys ``tls.crt``/``tls.key``; a missing or unusable Secret, or one
  whose certificate does not cover the host, falls back to the default certificate;
- the default certificate is a self-signed "Kubernetes Ingress Controller Fake Certificate";
- SNI picks the certificate (exact name, then ``*.`` + parent); Host still picks the route.

This module builds ``ssl.SSLContext`` objects (an adapter concern); it opens no sockets.
"""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile
from dataclasses import dataclass
from collections.abc import Iterable, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from knet.errors import UsageError
from knet.ingress.routes import RoutingTable
from knet.model import ObjectMeta, Secret

FAKE_CN = "Kubernetes Ingress Controller Fake Certificate"
FAKE_ORG = "Acme Co"


@dataclass(frozen=True, slots=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


_fake: KeyPair | None = None


def fake_certificate() -> KeyPair:
    """ingress-nginx's default certificate (``ssl.GetFakeSSLCert``): CN/O as upstream, SAN
    ``ingress.local``. knet uses an EC P-256 key (upstream: RSA 2048) to start fast."""
    global _fake
    if _fake is None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, FAKE_ORG),
                          x509.NameAttribute(NameOID.COMMON_NAME, FAKE_CN)])
        start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=365 * 30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("ingress.local")]), False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                .sign(key, hashes.SHA256()))
        _fake = KeyPair(cert.public_bytes(serialization.Encoding.PEM),
                        key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return _fake


def _covers(pattern: str, host: str) -> bool:
    pattern = pattern.lower()
    if pattern == host:
        return True
    if pattern.startswith("*.") and "." in host:
        return host.split(".", 1)[1] == pattern[2:]
    return False


def cert_covers(cert_pem: bytes, host: str) -> bool:
    """The certificate is valid for ``host`` (SAN DNS names, else the CN)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return False
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return any(_covers(str(n), host.lower()) for n in names)


def certificates(table: RoutingTable, secrets: Iterable[Secret]) -> dict[str, KeyPair]:
    """Host (``*.x`` for wildcard servers) → key pair, for every server with a usable Secret."""
    by_key = {s.metadata.key: s for s in secrets}
    out: dict[str, KeyPair] = {}
    for server in table.all_servers():
        if not server.tls or not server.tls_secret:
            continue
        sec = by_key.get(server.tls_secret)
        if sec is None or "tls.crt" not in sec.data or "tls.key" not in sec.data:
            continue
        crt, key = bytes(sec.data["tls.crt"]), bytes(sec.data["tls.key"])
        host = server.hostname
        if not cert_covers(crt, host.replace("*.", "wildcard.", 1) if host.startswith("*.") else host):
            continue  # "ssl certificate … does not contain a Common Name or SAN for server"
        out[host] = KeyPair(crt, key)
    return out


def _context(pair: KeyPair) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # ingress-nginx ssl-protocols: TLSv1.2 TLSv1.3
    ctx.set_alpn_protocols(["http/1.1"])
    fd, path = tempfile.mkstemp(prefix="knet-tls-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pair.cert_pem.rstrip(b"\n") + b"\n" + pair.key_pem)
        ctx.load_cert_chain(path)
    except ssl.SSLError as e:
        raise UsageError(f"unusable TLS key pair: {e}") from e
    finally:
        os.unlink(path)
    return ctx


class SNIContexts:
    """A server SSLContext whose ``sni_callback`` swaps in the certificate for the SNI name."""

    def __init__(self, certs: Mapping[str, KeyPair] | None = None) -> None:
        self.default = _context(fake_certificate())
        self._by_host: dict[str, ssl.SSLContext] = {}
        self._cache: dict[KeyPair, ssl.SSLContext] = {}
        self.default.sni_callback = self._sni
        self.update(certs or {})

    @property
    def context(self) -> ssl.SSLContext:
        return self.default

    def update(self, certs: Mapping[str, KeyPair]) -> None:
        cache: dict[KeyPair, ssl.SSLContext] = {}
        by_host: dict[str, ssl.SSLContext] = {}
        for host, pair in certs.items():
            ctx = cache.get(pair) or self._cache.get(pair)
            if ctx is None:
                try:
                    ctx = _context(pair)
                except UsageError:
                    continue  # invalid Secret: default certificate
            cache[pair] = ctx
            by_host[host.lower()] = ctx
        self._cache, self._by_host = cache, by_host

    def for_host(self, name: str | None) -> ssl.SSLContext | None:
        if not name:
            return None
        name = name.lower().rstrip(".")
        ctx = self._by_host.get(name)
        if ctx is None and "." in name:
            ctx = self._by_host.get("*." + name.split(".", 1)[1])
        return ctx

    def _sni(self, sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        ctx = self.for_host(name)
        if ctx is not None:
            sslobj.context = ctx


def issue_test_certificates(hosts: Iterable[str], *, namespace: str = "default",
                            ca: object | None = None) -> tuple[object, dict[str, Secret]]:
    """Self-signed test certificates (trustme): one ``kubernetes.io/tls`` Secret per host.

    Returns ``(ca, {host: Secret})``; the Secret is named ``<host with dots as dashes>-tls``.
    ``ca.configure_trust(ssl_ctx)`` makes a client trust them.
    """
    import trustme

    ca = ca or trustme.CA()
    out: dict[str, Secret] = {}
    for host in hosts:
        leaf = ca.issue_cert(host)  # type: ignore[attr-defined]
        name = host.replace("*", "wildcard").replace(".", "-") + "-tls"
        out[host] = Secret(ObjectMeta(name=name, namespace=namespace), type="kubernetes.io/tls",
                           data={"tls.crt": leaf.cert_chain_pems[0].bytes(),
                                 "tls.key": leaf.private_key_pem.bytes()})
    return ca, out
