"""kube-proxy nftables mode: the ``nft -f`` transaction one node applies (kube-proxy.md §5).

Invariants (``pkg/proxy/nftables/proxier.go``, v1.33+ base-chain layout; knftables text):
- A full sync is one transaction: ``add table``; every base chain added *and flushed*; the
  fixed regular chains, their rules, sets and maps (setupNFTables order); the six
  dispatch sets/maps flushed; then per service port (sorted, Known ambiguity 1): its chains
  (endpoint chains first) added and flushed, its set/map elements, then its rules. Chains
  are always declared before anything references them, so ``nft -c -f`` accepts the text.
- Names: ``hashAndTruncate`` = ``base32(sha256(s))[:8] + "-" + s`` (bases longer than 240
  characters end in ``...``), with the prefixes of §5.2.
- The text is what executes: ``knet.netfilter.nft.NftTable.apply`` loads it.
- Numeric priorities and the mark as ``0x%08x`` (real kube-proxy's formatting).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any
from collections.abc import Iterable, Mapping, Sequence

from knet.model.config import ClusterConfig, KubeProxyConfig
from knet.model.core import Node, Service
from knet.model.discovery import EndpointSlice
from knet.netfilter.nft import NftTable
from knet.proxy.endpoints import EndpointInfo, build_endpoints_map, categorize_endpoints
from knet.proxy.iptables import NodeParams, node_params
from knet.proxy.serviceport import ServicePortInfo, build_service_port_map
from knet.proxy.tracker import RecordingProxier

TABLE = "kube-proxy"
CHAIN_BASE_MAX = 240

# (name, type, hook, priority) — nftablesBaseChains, v1.33+.
BASE_CHAINS = (
    ("filter-prerouting-pre-dnat", "filter", "prerouting", -110),
    ("filter-output-pre-dnat", "filter", "output", -110),
    ("filter-input", "filter", "input", 0),
    ("filter-forward", "filter", "forward", 0),
    ("filter-output", "filter", "output", 0),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
)
# (destination chain, source base chain, extra match) — nftablesJumpChains.
JUMP_CHAINS = (
    ("nodeport-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-forward", "ct state new"),
    ("service-endpoints-check", "filter-output", "ct state new"),
    ("firewall-check", "filter-prerouting-pre-dnat", "ct state new"),
    ("firewall-check", "filter-output-pre-dnat", "ct state new"),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new"),
    ("cluster-ips-check", "filter-output", "ct state new"),
)


def hash_and_truncate(s: str) -> str:
    name = base64.b32encode(hashlib.sha256(s.encode()).digest()).decode()[:8] + "-" + s
    if len(name) > CHAIN_BASE_MAX:
        name = name[:CHAIN_BASE_MAX - 3] + "..."
    return name


def service_base(info: ServicePortInfo) -> str:
    n = info.name
    return hash_and_truncate(f"{n.namespace}/{n.name}/{info.protocol_lower}/{n.port}")


def endpoint_base(info: ServicePortInfo, ep: EndpointInfo) -> str:
    n = info.name
    ip = ep.ip.replace(":", ".")
    return hash_and_truncate(f"{n.namespace}/{n.name}/{info.protocol_lower}/{n.port}__{ip}/{ep.port}")


@dataclass(frozen=True, slots=True)
class NftParams:
    p: NodeParams
    ipx: str                   # "ip" | "ip6"
    family_name: str           # "ip" | "ip6"
    addr_type: str             # ipv4_addr | ipv6_addr
    mark: str                  # 0x00004000
    if_local: str              # "ip saddr 10.244.0.0/16" or ""
    if_not_local: str
    service_cidrs: tuple[str, ...]
    nodeport_ips: tuple[str, ...]
    match_all: bool
    node_ip: str


def nft_params(node: Node, proxy: KubeProxyConfig, cluster: ClusterConfig | None,
               family: int) -> NftParams:
    # nftables mode defaults --nodeport-addresses to "primary" (§5.1).
    if not proxy.node_port_addresses:
        from dataclasses import replace
        proxy = replace(proxy, node_port_addresses=("primary",))
    p = node_params(node, proxy, cluster, family)
    ipx = "ip6" if family == 6 else "ip"

    def nft_detector(args: tuple[str, ...]) -> str:
        if not args:
            return ""
        neg = args[0] == "!"
        opt, val = args[-2], args[-1]
        if opt == "-s":
            return f"{ipx} saddr {'!= ' if neg else ''}{val}"
        val = val.replace("+", "*")
        return f'iifname {"!= " if neg else ""}"{val}"'
    cidrs = tuple(str(n) for n in (cluster.service_subnets if cluster is not None else ())
                  if n.version == family)
    nps = tuple(a for a in p.nodeport_ips if not ip_address(a).is_loopback)
    return NftParams(p, ipx, ipx, "ipv6_addr" if family == 6 else "ipv4_addr", p.mark,
                     nft_detector(p.if_local), nft_detector(p.if_not_local), cidrs, nps,
                     p.nodeport_match_all, str(p.node_ip) if p.node_ip else "")


class _Tx:
    def __init__(self, fam: str) -> None:
        self.fam = fam
        self.lines: list[str] = []
        self.created: set[str] = set()

    def add(self, s: str) -> None:
        self.lines.append(s)

    def chain(self, name: str, body: str = "") -> None:
        self.add(f"add chain {self.fam} {TABLE} {name}{' ' + body if body else ''}")
        self.add(f"flush chain {self.fam} {TABLE} {name}")

    def ensure(self, name: str) -> None:
        if name not in self.created:
            self.created.add(name)
            self.chain(name)

    def rule(self, chain: str, rule: str, comment: str = "") -> None:
        c = f' comment "{comment}"' if comment else ""
        self.add(f"add rule {self.fam} {TABLE} {chain} {rule}{c}")

    def element(self, name: str, body: str) -> None:
        self.add(f"add element {self.fam} {TABLE} {name} {{ {body} }}")


def _setup(tx: _Tx, np: NftParams) -> None:
    """setupNFTables: the fixed objects."""
    fam, ipx, at = tx.fam, np.ipx, np.addr_type
    tx.add(f'add table {fam} {TABLE} {{ comment "rules for kube-proxy" ; }}')
    for name, typ, hook, prio in BASE_CHAINS:
        tx.chain(name, f"{{ type {typ} hook {hook} priority {prio} ; }}")
    for dst, src, extra in JUMP_CHAINS:
        tx.ensure(dst)
        tx.rule(src, f"{extra + ' ' if extra else ''}jump {dst}")
    for name in ("services", "cluster-ips-check", "masquerading", "mark-for-masquerade"):
        tx.ensure(name)
    m = np.mark
    tx.rule("mark-for-masquerade", f"mark set mark or {m}")
    tx.rule("masquerading", f"mark and {m} == 0 return")
    tx.rule("masquerading", f"mark set mark xor {m}")
    tx.rule("masquerading", "masquerade fully-random")
    tx.add(f'add set {fam} {TABLE} cluster-ips {{ type {at} ; comment "Active ClusterIPs" ; }}')
    tx.rule("cluster-ips-check", f"{ipx} daddr @cluster-ips reject",
            "Reject traffic to invalid ports of ClusterIPs")
    if np.service_cidrs:
        tx.rule("cluster-ips-check", f"{ipx} daddr {{ {' , '.join(np.service_cidrs)} }} drop",
                "Drop traffic to unallocated ClusterIPs")
    tx.add(f'add set {fam} {TABLE} nodeport-ips {{ type {at} ; '
           f'comment "IPs that accept NodePort traffic" ; }}')
    if np.match_all:
        tx.add(f"delete set {fam} {TABLE} nodeport-ips")
    else:
        tx.add(f"flush set {fam} {TABLE} nodeport-ips")
        for ip in np.nodeport_ips:
            tx.element("nodeport-ips", ip)
    tx.add(f"add map {fam} {TABLE} no-endpoint-services {{ type {at} . inet_proto . "
           f'inet_service : verdict ; comment "vmap to drop or reject packets to services '
           f'with no endpoints" ; }}')
    tx.add(f"add map {fam} {TABLE} no-endpoint-nodeports {{ type inet_proto . inet_service "
           f': verdict ; comment "vmap to drop or reject packets to service nodeports with '
           f'no endpoints" ; }}')
    tx.chain("reject-chain",
             '{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }')
    tx.created.add("reject-chain")
    tx.rule("reject-chain", "reject")
    tx.rule("service-endpoints-check",
            f"{ipx} daddr . meta l4proto . th dport vmap @no-endpoint-services")
    no_lo = f"{ipx} daddr != {'::1' if ipx == 'ip6' else '127.0.0.0/8'}"
    if np.match_all:
        tx.rule("nodeport-endpoints-check",
                f"{no_lo} meta l4proto . th dport vmap @no-endpoint-nodeports")
    else:
        tx.rule("nodeport-endpoints-check",
                f"{ipx} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports")
    tx.add(f"add map {fam} {TABLE} firewall-ips {{ type {at} . inet_proto . inet_service : "
           f'verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }}')
    tx.ensure("firewall-check")
    tx.rule("firewall-check", f"{ipx} daddr . meta l4proto . th dport vmap @firewall-ips")
    tx.add(f"add map {fam} {TABLE} service-ips {{ type {at} . inet_proto . inet_service : "
           f'verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }}')
    tx.add(f"add map {fam} {TABLE} service-nodeports {{ type inet_proto . inet_service : "
           f'verdict ; comment "NodePort traffic" ; }}')
    tx.rule("services", f"{ipx} daddr . meta l4proto . th dport vmap @service-ips")
    if np.match_all:
        tx.rule("services", f"fib daddr type local {no_lo} meta l4proto . th dport "
                "vmap @service-nodeports")
    else:
        tx.rule("services", f"{ipx} daddr @nodeport-ips meta l4proto . th dport "
                "vmap @service-nodeports")
    for kind, name in (("set", "cluster-ips"), ("map", "service-ips"),
                       ("map", "service-nodeports"), ("map", "no-endpoint-services"),
                       ("map", "no-endpoint-nodeports"), ("map", "firewall-ips")):
        tx.add(f"flush {kind} {fam} {TABLE} {name}")


def _service(tx: _Tx, np: NftParams, info: ServicePortInfo, eps: Sequence[EndpointInfo]) -> None:
    """The per-service-port part of syncProxyRules (§5.3)."""
    p = np.p
    ipx = np.ipx
    base = service_base(info)
    spn = info.name_string
    proto = info.protocol_lower
    cat = categorize_endpoints(eps, info, p.node_name, p.node_labels,
                               prefer_same_node=p.host.prefer_same_node)
    cluster_eps, local_eps, has_eps = cat.cluster, cat.local, cat.has_any
    ep_chain = {e.endpoint: "endpoint-" + endpoint_base(info, e) for e in cat.all_reachable}
    affinity = info.session_affinity_client_ip
    for e in cat.all_reachable:
        tx.ensure(ep_chain[e.endpoint])
        if affinity:
            aset = "affinity-" + endpoint_base(info, e)
            tx.add(f"add set {tx.fam} {TABLE} {aset} {{ type {np.addr_type} ; flags "
                   f"dynamic,timeout ; timeout {info.sticky_max_age_seconds}s ; }}")
    cluster_chain = "service-" + base
    local_chain = "local-" + base
    ext_chain = "external-" + base
    fw_chain = "firewall-" + base
    uses_cluster = bool(cluster_eps) and info.uses_cluster_endpoints
    uses_local = bool(local_eps) and info.uses_local_endpoints
    if uses_cluster:
        tx.ensure(cluster_chain)
    if uses_local:
        tx.ensure(local_chain)
    internal_chain, has_internal = cluster_chain, has_eps
    if info.internal_policy_local:
        internal_chain = local_chain
        if not local_eps:
            has_internal = False
    epl = info.external_policy_local_svc
    external_policy_chain, has_external = cluster_chain, has_eps
    if epl:
        external_policy_chain = local_chain
        if not local_eps:
            has_external = False
    uses_ext = has_eps and info.externally_accessible
    if uses_ext:
        tx.ensure(ext_chain)
    int_verdict = ext_verdict = ""
    if not has_eps:
        int_verdict = ext_verdict = "goto reject-chain"
    else:
        if not has_internal:
            int_verdict = "drop"
        if not has_external:
            ext_verdict = "drop"
    uses_fw = bool(info.load_balancer_vips) and bool(info.load_balancer_source_ranges)
    if uses_fw:
        tx.ensure(fw_chain)
    port = info.port
    cip = str(info.cluster_ip)
    tx.element("cluster-ips", cip)
    if has_internal:
        tx.element("service-ips", f"{cip} . {proto} . {port} : goto {internal_chain}")
    else:
        tx.element("no-endpoint-services", f'{cip} . {proto} . {port} comment "{spn}" : '
                   f"{int_verdict}")
    for eip in info.external_ips:
        if has_eps:
            tx.element("service-ips", f"{eip} . {proto} . {port} : goto {ext_chain}")
        if not has_external:
            tx.element("no-endpoint-services", f'{eip} . {proto} . {port} comment "{spn}" : '
                       f"{ext_verdict}")
    for lb in info.load_balancer_vips:
        if has_eps:
            tx.element("service-ips", f"{lb} . {proto} . {port} : goto {ext_chain}")
        if uses_fw:
            tx.element("firewall-ips", f"{lb} . {proto} . {port} : goto {fw_chain}")
    if not has_external:
        for lb in info.load_balancer_vips:
            tx.element("no-endpoint-services", f'{lb} . {proto} . {port} comment "{spn}" : '
                       f"{ext_verdict}")
    if info.node_port:
        if has_eps:
            tx.element("service-nodeports", f"{proto} . {info.node_port} : goto {ext_chain}")
        if not has_external:
            tx.element("no-endpoint-nodeports", f'{proto} . {info.node_port} comment "{spn}" : '
                       f"{ext_verdict}")
    # chain contents
    if has_internal:
        if p.masquerade_all:
            tx.rule(internal_chain, f"{ipx} daddr {cip} jump mark-for-masquerade")
        elif np.if_not_local:
            tx.rule(internal_chain, f"{ipx} daddr {cip} {np.if_not_local} jump mark-for-masquerade")
    if uses_ext:
        if not epl:
            tx.rule(ext_chain, "jump mark-for-masquerade")
        else:
            if np.if_local:
                tx.rule(ext_chain, f"{np.if_local} goto {cluster_chain}", "short-circuit pod traffic")
            tx.rule(ext_chain, "fib saddr type local jump mark-for-masquerade",
                    "masquerade local traffic")
            tx.rule(ext_chain, f"fib saddr type local goto {cluster_chain}",
                    "short-circuit local traffic")
        if has_external:
            tx.rule(ext_chain, f"goto {external_policy_chain}")
    if uses_fw:
        sources = [str(n) for n in info.load_balancer_source_ranges]
        allow_from_node = bool(np.node_ip) and any(
            ip_address(np.node_ip) in n for n in info.load_balancer_source_ranges)
        if allow_from_node:
            sources += [str(lb) for lb in info.load_balancer_vips]
        tx.rule(fw_chain, f"{ipx} saddr != {{ {' , '.join(sources)} }} drop")
    if uses_cluster:
        _dispatch(tx, np, info, cluster_chain, cluster_eps)
    if uses_local:
        _dispatch(tx, np, info, local_chain, local_eps)
    for e in cat.all_reachable:
        ch = ep_chain[e.endpoint]
        tx.rule(ch, f"{ipx} saddr {e.ip} jump mark-for-masquerade")
        if affinity:
            tx.rule(ch, f"update @affinity-{endpoint_base(info, e)} {{ {ipx} saddr }}")
        tx.rule(ch, f"meta l4proto {proto} dnat to {e.endpoint}")


def _dispatch(tx: _Tx, np: NftParams, info: ServicePortInfo, chain: str,
              eps: Sequence[EndpointInfo]) -> None:
    """writeServiceToEndpointRules."""
    if info.session_affinity_client_ip:
        for e in eps:
            b = endpoint_base(info, e)
            tx.rule(chain, f"{np.ipx} saddr @affinity-{b} goto endpoint-{b}")
    elems = " , ".join(f"{i} : goto endpoint-{endpoint_base(info, e)}" for i, e in enumerate(eps))
    tx.rule(chain, f"numgen random mod {len(eps)} vmap {{ {elems} }}")


@dataclass(frozen=True, slots=True)
class NftState:
    family: int
    transaction: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.transaction) + "\n"

    def table(self) -> NftTable:
        t = NftTable("ip6" if self.family == 6 else "ip", TABLE)
        t.apply(self.transaction)
        return t


def build_from_maps(np: NftParams, spm: Mapping[Any, ServicePortInfo],
                    epm: Mapping[Any, Sequence[EndpointInfo]]) -> NftState:
    tx = _Tx(np.family_name)
    _setup(tx, np)
    for info in sorted(spm.values(), key=lambda i: (i.name_string, str(i.protocol))):
        _service(tx, np, info, epm.get(info.name, ()))
    return NftState(np.p.family, tuple(tx.lines))


def build_state(node: Node, services: Iterable[Service], slices: Iterable[EndpointSlice],
                proxy: KubeProxyConfig, cluster: ClusterConfig | None,
                family: int = 4) -> NftState:
    """One full nftables sync for ``node`` and ``family``."""
    np = nft_params(node, proxy, cluster, family)
    return build_from_maps(np, build_service_port_map(services, family),
                           build_endpoints_map(slices, family, node.name))


def table_json(t: NftTable) -> dict[str, Any]:
    def key(k: tuple) -> str:
        return " . ".join(str(x) for x in k)

    def verdict(v: object) -> str:
        return " ".join(x for x in v if x) if isinstance(v, tuple) else ""
    return {
        "family": t.family, "name": t.name,
        "chains": {c.name: {**({"type": c.type, "hook": c.hook, "priority": c.priority}
                               if c.hook else {}), "rules": [r.text for r in c.rules]}
                   for c in t.chains.values()},
        "sets": {s.name: {"type": " . ".join(s.types), "elements": [key(k) for k in s.elements]
                          + [str(n) for n in s.intervals]}
                 for s in t.sets.values() if not s.is_map},
        "maps": {s.name: {"type": " . ".join(s.types) + " : verdict",
                          "elements": {key(k): verdict(v) for k, v in s.elements.items()}}
                 for s in t.sets.values() if s.is_map},
    }


__all__ = ["BASE_CHAINS", "JUMP_CHAINS", "NftParams", "NftState", "build_from_maps",
           "build_state", "endpoint_base", "hash_and_truncate", "nft_params", "service_base",
           "table_json"]


class NFTProxier(RecordingProxier):
    """kube-proxy nftables mode on one node and family, for the runtime: change handlers
    record; ``sync(now)`` writes a full-sync transaction (plus the deletion of stale service
    chains and affinity sets) and applies it to the live table."""

    def __init__(self, node: Node, proxy_config: KubeProxyConfig,
                 cluster_config: ClusterConfig | None, family: int = 4) -> None:
        self.node, self.proxy_config, self.cluster_config = node, proxy_config, cluster_config
        self.family = family
        self.services: dict[str, Service] = {}
        self.slices: dict[tuple[str, str], EndpointSlice] = {}
        self.table = NftTable("ip6" if family == 6 else "ip", TABLE)
        self.last_transaction = ""
        self.syncs = 0
        self.dirty = True

    def sync(self, now: float) -> NftState:
        st = build_state(self.node, list(self.services.values()), list(self.slices.values()),
                         self.proxy_config, self.cluster_config, self.family)
        fam = "ip6" if self.family == 6 else "ip"
        active = {ln.split()[4] for ln in st.transaction if ln.startswith("add chain ")}
        sets = {ln.split()[4] for ln in st.transaction if ln.startswith("add set ")}
        stale: list[str] = []
        for name in self.table.chains:
            if name not in active and name.startswith(("service-", "local-", "external-",
                                                       "firewall-", "endpoint-")):
                stale += [f"flush chain {fam} {TABLE} {name}", f"delete chain {fam} {TABLE} {name}"]
        for name in self.table.sets:
            if name.startswith("affinity-") and name not in sets:
                stale.append(f"delete set {fam} {TABLE} {name}")
        lines = list(st.transaction) + stale
        self.table.apply(lines)
        self.last_transaction = "\n".join(lines) + "\n"
        self.syncs += 1
        self.dirty = False
        return st


__all__ += ["NFTProxier"]
