"""kube-proxy's per-family view of a Service: one ServicePortInfo per ``spec.ports`` entry.

Invariants (``pkg/proxy/serviceport.go``, ``pkg/proxy/servicechangetracker.go``, v1.32/v1.33):
- A Service yields no service ports when it is headless, has no ClusterIP of the proxier's
  family, or is ExternalName (``proxyutil.ShouldSkipService``, ``GetClusterIPByFamily``).
- Every address is parsed leniently (IPv4 octets with leading zeros read as decimal,
  ``netutils.ParseIPSloppy``) and kept canonical; only addresses of the proxier's family
  are kept. LB VIPs with ``ipMode: Proxy`` are ignored. Source ranges are trimmed and
  printed as network/prefix.
- ServicePortInfo values are frozen and compare by value: equal infos mean "no change" for
  the change tracker (kube-proxy's ``reflect.DeepEqual`` on the service port map).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from collections.abc import Iterable

from knet.model.core import Protocol, Service, ServiceType

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

DEFAULT_STICKY_MAX_AGE_SECONDS = 10800  # v1.DefaultClientIPServiceAffinitySeconds


# --- lenient parsing (k8s.io/utils/net ParseIPSloppy / ParseCIDRSloppy) --------------------

@lru_cache(maxsize=1 << 18)
def parse_ip_sloppy(text: str) -> IPAddress | None:
    """Parse an IP like Go's pre-1.17 net.ParseIP: IPv4 octets may carry leading zeros."""
    text = text.strip()
    try:
        return ip_address(text)
    except ValueError:
        pass
    if text.count(".") == 3 and ":" not in text:
        parts = text.split(".")
        if all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
            return IPv4Address(".".join(str(int(p)) for p in parts))
    if ":" in text and "." in text:  # IPv4-embedded IPv6 with sloppy octets
        head, _, tail = text.rpartition(":")
        v4 = parse_ip_sloppy(tail)
        if isinstance(v4, IPv4Address):
            try:
                return ip_address(f"{head}:{v4}")
            except ValueError:
                return None
    return None


def parse_cidr_sloppy(text: str) -> IPNetwork | None:
    """``ParseCIDRSloppy``: the address part is lenient; the result is the masked network."""
    text = text.strip()
    addr, sep, bits = text.partition("/")
    if not sep or not bits.isdigit():
        return None
    ip = parse_ip_sloppy(addr)
    if ip is None:
        return None
    try:
        return ip_network(f"{ip}/{int(bits)}", strict=False)
    except ValueError:
        return None


_CANON_V4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                       r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")


@lru_cache(maxsize=1 << 18)
def canonical_ip(text: str) -> str | None:
    """The canonical text of a sloppily-written IP, or None when it is not an IP."""
    if _CANON_V4.fullmatch(text):
        return text  # already canonical dotted-quad: skip ipaddress parsing
    ip = parse_ip_sloppy(text)
    return None if ip is None else str(ip)


def ip_family_of(text: str) -> int:
    """4 or 6 for an IP string (``netutils.IsIPv6String``: contains a colon)."""
    return 6 if ":" in text else 4


# --- names and hashes ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True, order=True)
class ServicePortName:
    """``proxy.ServicePortName``: the identity of a service port (protocol included)."""

    namespace: str
    name: str
    port: str = ""
    protocol: Protocol = Protocol.TCP

    def __str__(self) -> str:
        # ServicePortName.String(): protocol is not part of the string.
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port}" if self.port else base

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.name}"


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = tuple(_B32[i >> 5] + _B32[i & 31] for i in range(1024))


@lru_cache(maxsize=1 << 20)
def hash16(text: str) -> str:
    """``base32(sha256(text))[:16]``: the suffix of every iptables per-service chain name.

    16 base32 characters are exactly the first 10 digest bytes (RFC 4648 alphabet), so
    this encodes 80 bits directly (``base64.b32encode`` of the digest gives the same)."""
    n = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    t = _B32_PAIRS
    return (t[n >> 70] + t[(n >> 60) & 1023] + t[(n >> 50) & 1023] + t[(n >> 40) & 1023]
            + t[(n >> 30) & 1023] + t[(n >> 20) & 1023] + t[(n >> 10) & 1023] + t[n & 1023])


def hash16_reference(text: str) -> str:
    """The literal formula, for tests: ``base32(sha256(text))[:16]``."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def port_proto_hash(spn: str, protocol: str) -> str:
    """``servicePortPolicyClusterChain``/… suffix: ``hash16(spn + lower(protocol))``."""
    return hash16(spn + protocol.lower())


def endpoint_chain_name(spn: str, protocol: str, endpoint: str) -> str:
    """``servicePortEndpointChainName``: ``KUBE-SEP-`` + ``hash16(spn + proto + IP:port)``."""
    return "KUBE-SEP-" + hash16(spn + protocol.lower() + endpoint)


# --- ServicePortInfo ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ServicePortInfo:
    """``BaseServicePortInfo`` for one family (kube-proxy.md §1.1)."""

    name: ServicePortName
    cluster_ip: IPAddress
    port: int
    protocol: Protocol
    node_port: int = 0
    external_ips: tuple[IPAddress, ...] = ()
    load_balancer_vips: tuple[IPAddress, ...] = ()
    load_balancer_source_ranges: tuple[IPNetwork, ...] = ()
    health_check_node_port: int = 0
    session_affinity_client_ip: bool = False
    sticky_max_age_seconds: int = 0
    internal_policy_local: bool = False
    # Service-level ``apiservice.ExternalPolicyLocal`` (type NodePort/LB, or ClusterIP with
    # externalIPs, and eTP Local); the port-level predicate below additionally needs an
    # external destination, as kube-proxy.md §1.1 states.
    external_policy_local_svc: bool = False
    target_port: int | str = 0
    # Derived, cached: ``ns/name[:port]`` and the chain-name hash of (spn, protocol).
    name_string: str = field(default="", compare=False)
    chain_hash: str = field(default="", compare=False)

    @property
    def family(self) -> int:
        return self.cluster_ip.version

    @property
    def protocol_lower(self) -> str:
        return self.protocol.lower()

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.load_balancer_vips or self.external_ips)

    @property
    def external_policy_local(self) -> bool:
        return self.external_policy_local_svc and self.externally_accessible

    @property
    def uses_cluster_endpoints(self) -> bool:
        # Short-circuiting needs cluster endpoints even with eTP=Local.
        return not self.internal_policy_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or self.external_policy_local

    def __repr__(self) -> str:
        return (f"<ServicePortInfo {self.name_string}/{self.protocol} "
                f"{self.cluster_ip}:{self.port}>")


def _family_ips(texts: Iterable[str], family: int) -> tuple[IPAddress, ...]:
    out: list[IPAddress] = []
    for t in texts:
        ip = parse_ip_sloppy(t)
        if ip is not None and ip.version == family:
            out.append(ip)
    return tuple(out)


def cluster_ip_for_family(svc: Service, family: int) -> str:
    """``proxyutil.GetClusterIPByFamily``."""
    spec = svc.spec
    if not spec.ip_families:
        if not spec.cluster_ip or spec.cluster_ip == "None":
            return ""
        return spec.cluster_ip if ip_family_of(spec.cluster_ip) == family else ""
    ips = spec.cluster_ips or ((spec.cluster_ip,) if spec.cluster_ip else ())
    for idx, fam in enumerate(spec.ip_families):
        if fam == family and idx < len(ips):
            return ips[idx]
    return ""


def should_skip_service(svc: Service) -> bool:
    """``proxyutil.ShouldSkipService``: headless, no ClusterIP, or ExternalName."""
    spec = svc.spec
    return (spec.cluster_ip in ("", "None") or spec.type == ServiceType.EXTERNAL_NAME)


def _service_externally_accessible(svc: Service) -> bool:
    t = svc.spec.type
    return (t in (ServiceType.LOAD_BALANCER, ServiceType.NODE_PORT)
            or (t == ServiceType.CLUSTER_IP and bool(svc.spec.external_ips)))


def service_ports(svc: Service, family: int) -> tuple[ServicePortInfo, ...]:
    """The service ports kube-proxy derives from one Service for one IP family
    (``serviceToServiceMap`` + ``newBaseServiceInfo``)."""
    if should_skip_service(svc):
        return ()
    cip_text = cluster_ip_for_family(svc, family)
    if not cip_text:
        return ()
    cluster_ip = parse_ip_sloppy(cip_text)
    if cluster_ip is None or cluster_ip.version != family:
        return ()
    spec = svc.spec
    external_ips = _family_ips(spec.external_ips, family)
    ranges: list[IPNetwork] = []
    for r in spec.load_balancer_source_ranges:
        net = parse_cidr_sloppy(r)
        if net is not None and net.version == family:
            ranges.append(net)
    vips: list[IPAddress] = []
    for ing in svc.load_balancer_ingress:
        if not ing.ip or ing.ip_mode == "Proxy":  # proxyutil.IsVIPMode
            continue
        ip = parse_ip_sloppy(ing.ip)
        if ip is not None and ip.version == family:
            vips.append(ip)
    epl = (_service_externally_accessible(svc) and spec.external_traffic_policy == "Local")
    affinity = spec.session_affinity == "ClientIP"
    sticky = (spec.session_affinity_timeout or DEFAULT_STICKY_MAX_AGE_SECONDS) if affinity else 0
    out: list[ServicePortInfo] = []
    for p in spec.ports:
        spn = ServicePortName(svc.namespace, svc.name, p.name, p.protocol)
        name_string = str(spn)
        out.append(ServicePortInfo(
            name=spn, cluster_ip=cluster_ip, port=p.port, protocol=p.protocol,
            node_port=p.node_port, external_ips=external_ips,
            load_balancer_vips=tuple(vips), load_balancer_source_ranges=tuple(ranges),
            health_check_node_port=spec.health_check_node_port if epl else 0,
            session_affinity_client_ip=affinity, sticky_max_age_seconds=sticky,
            internal_policy_local=spec.internal_traffic_policy == "Local",
            external_policy_local_svc=epl, target_port=p.target_port,
            name_string=name_string,
            chain_hash=port_proto_hash(name_string, p.protocol),
        ))
    return tuple(out)


def build_service_port_map(services: Iterable[Service], family: int
                           ) -> dict[ServicePortName, ServicePortInfo]:
    """``ServicePortMap`` for one family: every service port of every Service."""
    out: dict[ServicePortName, ServicePortInfo] = {}
    for svc in services:
        for info in service_ports(svc, family):
            out[info.name] = info
    return out
