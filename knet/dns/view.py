"""DnsView: the cluster as CoreDNS's informers see it, indexed for answering, plus the answer cache.

Invariants:
- The view holds exactly what CoreDNS's ``kubernetes`` plugin reads (plugin/kubernetes/object):
  Services (ClusterIPs, ports with the −1 "no ports" sentinel), EndpointSlices reduced to their
  *ready* endpoints (``conditions.ready`` nil or true; FQDN slices ignored), Pods (for
  ``pods verified``), Namespaces. Plus the parsed Corefile and the topology's external hosts.
- Every answer computed records the dependency tokens it read (``("svc", ns, name)``,
  ``("ns", ns)``, ``("ip", addr)``, ``("podip", addr)``, ``("nsaddrs",)``). ``apply_change``
  emits the tokens an object change touches and drops exactly the cached answers that read
  them, so the cache never serves stale bytes. The SOA serial is not a dependency: cached
  replies carry its offset and get the current serial patched in.
- The SOA serial is the (virtual-clock) Unix second of the last Service/EndpointSlice change
  (CoreDNS ``dnsControl.modified``), or of a Pod change when some ``pods verified`` is on.
- Randomness (loadbalance shuffles) comes from the view's own seeded ``random.Random``.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterable

from knet.dns.corefile import Corefile, PodsMode, kubeadm_corefile, parse_corefile
from knet.model.config import ClusterConfig
from knet.model.core import ConfigMap, Namespace, Pod, Service, ServiceType
from knet.model.discovery import EndpointSlice

BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
COREDNS_CONFIGMAP = ("kube-system", "coredns")
KUBE_DNS_SERVICE = ("kube-system", "kube-dns")
CACHE_LIMIT = 100_000

Token = tuple[str, ...]


def canon_ip(text: str) -> str:
    """Canonical string of an IP (Go net.IP.String()); unparsable text is returned as is."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


@dataclass(frozen=True, slots=True)
class SvcInfo:
    """CoreDNS object.Service."""

    namespace: str
    name: str
    type: ServiceType
    cluster_ips: tuple[str, ...]
    external_name: str
    ports: tuple[tuple[int, str, str], ...]  # (port, name, protocol); (-1, "", "") if none
    order: tuple[int, str]

    @property
    def headless(self) -> bool:
        return bool(self.cluster_ips) and self.cluster_ips[0] == "None"


@dataclass(frozen=True, slots=True)
class EpAddr:
    ip: str
    hostname: str
    target_ref_name: str


@dataclass(frozen=True, slots=True)
class SliceInfo:
    """CoreDNS object.Endpoints built from one EndpointSlice (EndpointSliceToEndpoints)."""

    namespace: str
    name: str
    service: str
    ports: tuple[tuple[int, str, str], ...]
    addresses: tuple[EpAddr, ...]  # ready endpoints only


def svc_info(svc: Service) -> SvcInfo:
    spec = svc.spec
    ips = tuple(spec.cluster_ips) if spec.cluster_ips else ((spec.cluster_ip,) if spec.cluster_ip else ())
    ports = tuple((p.port, p.name, str(p.protocol)) for p in spec.ports) or ((-1, "", ""),)
    return SvcInfo(namespace=svc.namespace, name=svc.name, type=spec.type, cluster_ips=ips,
                   external_name=spec.external_name, ports=ports,
                   order=(svc.metadata.creation_index, svc.key))


def slice_info(es: EndpointSlice) -> SliceInfo | None:
    if es.address_type not in ("IPv4", "IPv6") or not es.service_name:
        return None
    ports = tuple((p.port if p.port is not None else -1, p.name or "", str(p.protocol))
                  for p in es.ports) or ((-1, "", ""),)
    addrs: list[EpAddr] = []
    for ep in es.endpoints:
        if not ep.conditions.is_ready:
            continue
        ref = ep.target_ref.name if ep.target_ref is not None and len(ep.target_ref.name) < 64 else ""
        for a in ep.addresses:
            addrs.append(EpAddr(ip=a, hostname=ep.hostname, target_ref_name=ref))
    return SliceInfo(namespace=es.namespace, name=es.metadata.name, service=es.service_name,
                     ports=ports, addresses=tuple(addrs))


@dataclass(slots=True)
class CacheEntry:
    variants: list[bytes]      # packed replies without the 2-byte ID
    serial_offset: int         # offset of the SOA serial in the packed reply, or -1
    serial: int


@dataclass(slots=True)
class _State:
    services: dict[tuple[str, str], SvcInfo] = field(default_factory=dict)
    slices: dict[tuple[str, str], SliceInfo] = field(default_factory=dict)
    slices_by_svc: dict[tuple[str, str], dict[str, SliceInfo]] = field(default_factory=dict)
    svc_by_ip: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    slices_by_ip: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    pods: dict[tuple[str, str], Pod] = field(default_factory=dict)
    pods_by_ip: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    ns_refs: dict[str, int] = field(default_factory=dict)


class DnsView:
    """Cluster DNS state + configuration + answer cache. Build it from plain collections.

    ``corefile``: Corefile text; when None, the ``kube-system/coredns`` ConfigMap's
    ``Corefile`` key is used, else kubeadm's default Corefile for ``cluster.dns_domain``.
    ``local_ips``: the DNS server's own addresses (for the apex NS and ``ns.dns.<zone>``);
    default: the first ready endpoint of ``kube-system/kube-dns``, else 127.0.0.1.
    ``shuffle``: apply the ``loadbalance`` plugin's shuffle (False = keep sorted order).
    """

    def __init__(self, *, services: Iterable[Service] = (), endpoint_slices: Iterable[EndpointSlice] = (),
                 pods: Iterable[Pod] = (), namespaces: Iterable[Namespace | str] = (),
                 config_maps: Iterable[ConfigMap] = (), cluster: ClusterConfig | None = None,
                 corefile: str | None = None, local_ips: Iterable[str] | None = None,
                 now: float = 0.0, seed: int = 0, shuffle: bool = True) -> None:
        self.cluster = cluster or ClusterConfig()
        self.rng = random.Random(seed)
        self.shuffle = shuffle
        self.serial = int(now)
        self._explicit_corefile = corefile
        self._explicit_local_ips = tuple(canon_ip(i) for i in local_ips) if local_ips is not None else None
        self._s = _State()
        self._s.namespaces.update(BUILTIN_NAMESPACES)
        for n in namespaces:
            self._s.namespaces.add(n if isinstance(n, str) else n.metadata.name)
        self._coredns_cm: str | None = None
        for cm in config_maps:
            if (cm.metadata.namespace, cm.metadata.name) == COREDNS_CONFIGMAP and "Corefile" in cm.data:
                self._coredns_cm = cm.data["Corefile"]
        for svc in services:
            self._put_service(None, svc)
        for es in endpoint_slices:
            self._put_slice(None, es)
        for pod in pods:
            self._put_pod(None, pod)
        self.cache: dict[tuple[bool, bytes], CacheEntry] = {}
        self._deps: dict[Token, set[tuple[bool, bytes]]] = {}
        self.stats = {"hits": 0, "misses": 0, "invalidated": 0}
        self._load_config()

    # --- configuration -----------------------------------------------------------------------

    def _load_config(self) -> None:
        text = self._explicit_corefile
        if text is None:
            text = self._coredns_cm
        if text is None:
            text = kubeadm_corefile(self.cluster.dns_domain)
        self.corefile: Corefile = parse_corefile(text)
        self.pods_verified = any(b.kubernetes is not None and b.kubernetes.pods == PodsMode.VERIFIED
                                 for b in self.corefile.blocks)
        hosts: dict[str, list[str]] = {}
        rev: dict[str, list[str]] = {}
        for name, ip in self.cluster.external_hosts:
            n = name.lower() if name.endswith(".") else name.lower() + "."
            c = canon_ip(ip)
            hosts.setdefault(n, [])
            if c not in hosts[n]:
                hosts[n].append(c)
            rev.setdefault(c, [])
            if n not in rev[c]:
                rev[c].append(n)
        self.external_hosts = hosts
        self.external_reverse = rev
        self.plugins_state: dict[int, Any] = {}  # answer.py's per-block compiled plugins
        self.flush()

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.corefile.warnings

    # --- reads (used by knet.dns.answer) -------------------------------------------------------

    def namespace_exists(self, ns: str) -> bool:
        return ns in self._s.namespaces or self._s.ns_refs.get(ns, 0) > 0

    def service(self, ns: str, name: str) -> SvcInfo | None:
        return self._s.services.get((ns, name))

    def slices_of(self, ns: str, name: str) -> list[SliceInfo]:
        d = self._s.slices_by_svc.get((ns, name))
        if not d:
            return []
        return [d[k] for k in sorted(d)]

    def services_by_cluster_ip(self, ip: str) -> list[SvcInfo]:
        keys = self._s.svc_by_ip.get(ip, ())
        return sorted((self._s.services[k] for k in keys), key=lambda s: s.order)

    def slices_by_ip(self, ip: str) -> list[SliceInfo]:
        keys = self._s.slices_by_ip.get(ip, ())
        return [self._s.slices[k] for k in sorted(keys)]

    def pods_by_ip(self, ip: str) -> list[Pod]:
        keys = self._s.pods_by_ip.get(ip, ())
        return [self._s.pods[k] for k in sorted(keys)]

    def local_ips(self) -> tuple[str, ...]:
        if self._explicit_local_ips is not None:
            return self._explicit_local_ips
        for sl in self.slices_of(*KUBE_DNS_SERVICE):
            if sl.addresses:
                return (canon_ip(sl.addresses[0].ip),)
        return ("127.0.0.1",)

    # --- changes -------------------------------------------------------------------------------

    def apply_change(self, kind: str, prev: Any, cur: Any, now: float | None = None) -> None:
        """Apply one object change (prev=None: added; cur=None: deleted) and invalidate."""
        tokens: set[Token] = set()
        touched_serial = False
        if kind == "Service":
            tokens |= self._put_service(prev, cur)
            touched_serial = True
        elif kind == "EndpointSlice":
            tokens |= self._put_slice(prev, cur)
            touched_serial = True
        elif kind == "Pod":
            tokens |= self._put_pod(prev, cur)
            touched_serial = self.pods_verified
        elif kind == "Namespace":
            for obj in (prev, cur):
                if obj is not None:
                    tokens.add(("ns", obj.metadata.name))
            if prev is not None and prev.metadata.name not in BUILTIN_NAMESPACES:
                self._s.namespaces.discard(prev.metadata.name)
            if cur is not None:
                self._s.namespaces.add(cur.metadata.name)
        elif kind == "ConfigMap":
            obj = cur if cur is not None else prev
            if obj is not None and (obj.metadata.namespace, obj.metadata.name) == COREDNS_CONFIGMAP:
                self._coredns_cm = cur.data.get("Corefile") if cur is not None else None
                self._load_config()
            return
        elif kind == "ClusterConfig":
            self.cluster = cur
            self._load_config()
            return
        else:
            return
        if touched_serial and now is not None:
            self.serial = int(now)
        self.invalidate(tokens)

    def invalidate(self, tokens: Iterable[Token]) -> None:
        for t in tokens:
            keys = self._deps.pop(t, None)
            if not keys:
                continue
            for k in keys:
                if self.cache.pop(k, None) is not None:
                    self.stats["invalidated"] += 1

    def flush(self) -> None:
        self.cache = {}
        self._deps = {}

    def remember(self, key: tuple[bool, bytes], entry: CacheEntry, deps: set[Token]) -> None:
        if len(self.cache) >= CACHE_LIMIT:
            # Drop the oldest half; their dependency entries become harmless leftovers.
            for k in list(self.cache)[: CACHE_LIMIT // 2]:
                del self.cache[k]
        self.cache[key] = entry
        for t in deps:
            self._deps.setdefault(t, set()).add(key)

    # --- index maintenance ---------------------------------------------------------------------

    def _ns_ref(self, ns: str, delta: int, tokens: set[Token]) -> None:
        before = self._s.ns_refs.get(ns, 0)
        after = before + delta
        self._s.ns_refs[ns] = after
        if (before > 0) != (after > 0):
            tokens.add(("ns", ns))

    def _put_service(self, prev: Service | None, cur: Service | None) -> set[Token]:
        tokens: set[Token] = {("nsaddrs",)}
        s = self._s
        for obj, sign in ((prev, -1), (cur, 1)):
            if obj is None:
                continue
            key = (obj.namespace, obj.name)
            tokens.add(("svc", *key))
            if sign < 0:
                old = s.services.pop(key, None)
                if old is None:
                    continue
                self._ns_ref(obj.namespace, -1, tokens)
                for ip in old.cluster_ips:
                    c = canon_ip(ip)
                    tokens.add(("ip", c))
                    s.svc_by_ip.get(c, set()).discard(key)
            else:
                if key in s.services:  # replaced without prev: drop the old one first
                    tokens |= self._put_service(_as_prev(s.services[key]), None)
                info = svc_info(obj)
                s.services[key] = info
                self._ns_ref(obj.namespace, 1, tokens)
                for ip in info.cluster_ips:
                    c = canon_ip(ip)
                    tokens.add(("ip", c))
                    s.svc_by_ip.setdefault(c, set()).add(key)
        return tokens

    def _put_slice(self, prev: EndpointSlice | None, cur: EndpointSlice | None) -> set[Token]:
        tokens: set[Token] = {("nsaddrs",)}
        s = self._s
        for obj, sign in ((prev, -1), (cur, 1)):
            if obj is None:
                continue
            key = (obj.namespace, obj.metadata.name)
            if sign < 0 or key in s.slices:
                old = s.slices.pop(key, None)
                if old is not None:
                    tokens.add(("svc", old.namespace, old.service))
                    s.slices_by_svc.get((old.namespace, old.service), {}).pop(old.name, None)
                    for a in old.addresses:
                        c = canon_ip(a.ip)
                        tokens.add(("ip", c))
                        s.slices_by_ip.get(c, set()).discard(key)
                if sign < 0:
                    continue
            info = slice_info(obj)
            tokens.add(("svc", obj.namespace, obj.service_name))
            if info is None:
                continue
            s.slices[key] = info
            s.slices_by_svc.setdefault((info.namespace, info.service), {})[info.name] = info
            for a in info.addresses:
                c = canon_ip(a.ip)
                tokens.add(("ip", c))
                s.slices_by_ip.setdefault(c, set()).add(key)
        return tokens

    def _put_pod(self, prev: Pod | None, cur: Pod | None) -> set[Token]:
        tokens: set[Token] = set()
        s = self._s
        for obj, sign in ((prev, -1), (cur, 1)):
            if obj is None:
                continue
            key = (obj.namespace, obj.name)
            if sign < 0 or key in s.pods:
                old = s.pods.pop(key, None)
                if old is not None:
                    self._ns_ref(old.namespace, -1, tokens)
                    for ip in old.status.pod_ips:
                        tokens.add(("podip", str(ip)))
                        s.pods_by_ip.get(str(ip), set()).discard(key)
                if sign < 0:
                    continue
            s.pods[key] = obj
            self._ns_ref(obj.namespace, 1, tokens)
            for ip in obj.status.pod_ips:
                tokens.add(("podip", str(ip)))
                s.pods_by_ip.setdefault(str(ip), set()).add(key)
        return tokens


class _PrevService:
    """A stand-in with the fields _put_service reads, for replacing an indexed service."""

    __slots__ = ("namespace", "name")

    def __init__(self, info: SvcInfo) -> None:
        self.namespace = info.namespace
        self.name = info.name


def _as_prev(info: SvcInfo) -> Any:
    return _PrevService(info)
