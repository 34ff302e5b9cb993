"""Per-cluster PKI for ``knet up --api``: a CA, the API server's serving certificate, the
admin's client certificate, and the kubeconfig that ties them together.

Invariants: keys are EC P-256 (fast to make; kube-apiserver and kubectl accept them); the
serving certificate names every address a client may use (127.0.0.1, localhost, the in-cluster
``kubernetes.default.svc`` names and the ``kubernetes`` Service's ClusterIP); the admin user is
``kubernetes-admin`` in group ``system:masters`` (kind's kubeadm admin). Files are written with
mode 0600 inside a 0700 directory.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADMIN_USER = "kubernetes-admin"
ADMIN_GROUPS = ("system:masters",)
_VALID = dt.timedelta(days=365)


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def make_ca(cn: str = "kubernetes") -> tuple[KeyPair, Any, Any]:
    key = _key()
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    name = _name(cn)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + _VALID * 10)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)), cert, key


def issue(ca_cert: Any, ca_key: Any, cn: str, *, orgs: tuple[str, ...] = (),
          server: bool = False, hosts: tuple[str, ...] = ()) -> KeyPair:
    """A certificate signed by the CA: a client certificate (CN user, O groups) or, with
    ``server``, a serving certificate for ``hosts`` (IP addresses and DNS names)."""
    key = _key()
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    b = (x509.CertificateBuilder().subject_name(_name(cn, orgs)).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + _VALID)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage(
             [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
             critical=False))
    if hosts:
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class ClusterPKI:
    ca: KeyPair
    serving: KeyPair
    admin: KeyPair
    ca_cert: Any
    ca_key: Any

    def client(self, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
        return issue(self.ca_cert, self.ca_key, user, orgs=groups)


def make_pki(service_ip: str | None = None) -> ClusterPKI:
    ca, ca_cert, ca_key = make_ca()
    hosts: tuple[str, ...] = ("127.0.0.1", "::1", "localhost", "kubernetes", "kubernetes.default",
             "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
    if service_ip:
        hosts += (service_ip,)
    serving = issue(ca_cert, ca_key, "kube-apiserver", server=True, hosts=hosts)
    admin = issue(ca_cert, ca_key, ADMIN_USER, orgs=ADMIN_GROUPS)
    return ClusterPKI(ca, serving, admin, ca_cert, ca_key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(cluster: str, server: str, ca_pem: bytes, *, user: str = ADMIN_USER,
               client: KeyPair | None = None, token: str | None = None) -> dict[str, Any]:
    """A kubeconfig with one cluster, one user and context ``knet-<cluster>``."""
    name = f"knet-{cluster}"
    cred: dict[str, Any] = {}
    if client is not None:
        cred["client-certificate-data"] = _b64(client.cert_pem)
        cred["client-key-data"] = _b64(client.key_pem)
    if token is not None:
        cred["token"] = token
    uname = f"{user}@{name}" if user == ADMIN_USER else user
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server,
                                                "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": uname, "user": cred}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": uname}}],
        "current-context": name,
    }


def write_private(path: Path, data: bytes | str) -> Path:
    """Atomically, mode 0600, never through a planted symlink (``knet.expose.state``)."""
    from knet.expose.state import write_bytes

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    return write_bytes(path.parent, path.name, raw)


def write_kubeconfig(path: Path, config: dict[str, Any]) -> Path:
    return write_private(path, yaml.safe_dump(config, sort_keys=False))
