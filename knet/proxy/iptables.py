"""kube-proxy iptables mode: the rules one node writes, byte-exact with v1.32/v1.33.

Invariants (``pkg/proxy/iptables/proxier.go`` ``syncProxyRules``; kube-proxy.md §2):
- Output is kube-proxy's own ``iptables-restore`` input: ``*filter`` (chain lines, rules),
  then ``*nat``; rule arguments in kube-proxy's order, comments quoted exactly where
  kube-proxy quotes them, probabilities ``%0.10f``, the mark as ``%#08x``.
- Service ports are emitted in (``ns/name[:port]``, protocol) order (upstream: Go map order,
  Known ambiguity 1). Within one service port the generation order is §2.5 exactly.
- Everything a service port contributes is a pure function of (its ServicePortInfo, its
  endpoints, the node, the options, large-cluster mode) and is cached as one ``PortRules``
  value; a partial sync (KEP-3453) rebuilds only the changed ones and rewrites the fixed
  chains from the cached heads.
- Built-in chain jumps (§2.2) and the ``KUBE-PROXY-CANARY`` chains are not part of the
  restore input (kube-proxy uses EnsureChain/EnsureRule) but are in the live RuleSet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain as _chain
from operator import attrgetter
from ipaddress import IPv4Address, IPv4Network, ip_network
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from knet.model.config import ClusterConfig, KubeProxyConfig
from knet.model.core import Node, Service
from knet.model.discovery import EndpointSlice
from knet.netfilter.rules import Chain, Rule, RuleSet, bulk_build
from knet.proxy.endpoints import EndpointInfo, build_endpoints_map, categorize_endpoints
from knet.proxy.serviceport import (
    IPAddress, IPNetwork, ServicePortInfo, ServicePortName, build_service_port_map,
    hash16, parse_cidr_sloppy,
)

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"  # kubelet's chain, also written by kube-proxy (IPv4)
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"

LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000  # largeClusterEndpointsThreshold
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")
LOCALHOST_NPS_NFACCT = "localhost_nps_accepted_pkts"
CT_INVALID_NFACCT = "ct_state_invalid_dropped_pkts"
NODEPORTS_COMMENT = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'


def is_service_chain(name: str) -> bool:
    return name.startswith(SERVICE_CHAIN_PREFIXES)


# --- options ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HostOptions:
    """Host capabilities that change the rule text (kube-proxy.md Known ambiguity 4)."""

    nfacct: bool = True          # nfacct counters available (upstream test proxier: yes)
    random_fully: bool = True    # iptables supports MASQUERADE --random-fully
    tcp_be_liberal: bool = False  # net.netfilter.nf_conntrack_tcp_be_liberal
    prefer_same_node: bool = False  # PreferSameTrafficDistribution gate (alpha in v1.33)

    @classmethod
    def from_config(cls, cluster: ClusterConfig | None) -> HostOptions:
        """Read ``ClusterConfig.extra["kubeProxyHost"]`` (keys as the field names)."""
        raw = (cluster.extra.get("kubeProxyHost") if cluster is not None else None) or {}
        return cls(**{k: bool(v) for k, v in raw.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class NodeParams:
    """Everything per node and family that the rule text depends on."""

    family: int
    node_name: str
    node_labels: Mapping[str, str]
    node_ip: IPAddress | None  # primary IP of the family (FW allowFromNode, §9)
    mark: str  # "0x00004000"
    masquerade_all: bool
    if_local: tuple[str, ...]  # () = no local detector
    if_not_local: tuple[str, ...]
    localhost_nodeports: bool  # effective (IPv4 only, needs loopback in nodePortAddresses)
    nodeport_match_all: bool
    nodeport_ips: tuple[str, ...]  # with --nodeport-addresses: the matching local IPs
    host: HostOptions = field(default_factory=HostOptions)

    @property
    def ipv6(self) -> bool:
        return self.family == 6


def _first_of_family(nets: Iterable[IPNetwork], family: int) -> IPNetwork | None:
    for n in nets:
        if n.version == family:
            return n
    return None


def node_params(node: Node, proxy: KubeProxyConfig, cluster: ClusterConfig | None,
                family: int = 4, host: HostOptions | None = None) -> NodeParams:
    """Resolve detect-local mode, nodePortAddresses and localhost NodePorts for one node."""
    host = host if host is not None else HostOptions.from_config(cluster)
    ips = node.ips(family)
    node_ip = ips[0] if ips else None
    # Local-traffic detector (pkg/proxy/util/localdetector.go).
    if_local: tuple[str, ...] = ()
    if_not_local: tuple[str, ...] = ()
    mode = proxy.detect_local_mode or "ClusterCIDR"
    if mode == "ClusterCIDR":
        pod_cidrs = proxy.cluster_cidr or (cluster.pod_subnets if cluster is not None else ())
        cidr = _first_of_family(pod_cidrs, family)
        if cidr is not None:
            if_local, if_not_local = ("-s", str(cidr)), ("!", "-s", str(cidr))
    elif mode == "NodeCIDR":
        cidr = _first_of_family(node.pod_cidrs, family)
        if cidr is not None:
            if_local, if_not_local = ("-s", str(cidr)), ("!", "-s", str(cidr))
    elif mode == "BridgeInterface" and proxy.bridge_interface:
        if_local = ("-i", proxy.bridge_interface)
        if_not_local = ("!", "-i", proxy.bridge_interface)
    elif mode == "InterfaceNamePrefix" and proxy.interface_name_prefix:
        if_local = ("-i", proxy.interface_name_prefix + "+")
        if_not_local = ("!", "-i", proxy.interface_name_prefix + "+")
    # nodePortAddresses (pkg/proxy/util/nodeport_addresses.go; "primary": cmd/kube-proxy).
    strings = list(proxy.node_port_addresses)
    if strings == ["primary"]:
        strings = []
        for fam, bits in ((4, 32), (6, 128)):
            fips = node.ips(fam)
            if fips and not fips[0].is_loopback:
                strings.append(f"{fips[0]}/{bits}")
    fam_cidrs: list[IPNetwork] = []
    for s in strings:
        net = parse_cidr_sloppy(s)
        if net is not None and net.version == family:
            fam_cidrs.append(net)
    if not fam_cidrs:
        fam_cidrs = [ip_network("0.0.0.0/0" if family == 4 else "::/0")]
    contains_v4_loopback = False
    match_all = False
    cidrs: list[IPNetwork] = []
    for net in fam_cidrs:
        if isinstance(net, IPv4Network) and (
                net.network_address.is_loopback or IPv4Address("127.0.0.0") in net):
            contains_v4_loopback = True
        if net.prefixlen == 0:
            cidrs, match_all = [net], True
            break
        cidrs.append(net)
    localhost = proxy.localhost_nodeports and contains_v4_loopback and family == 4
    nodeport_ips: list[str] = []
    if not match_all:
        local_addrs: list[IPAddress] = [ip_network("127.0.0.1/32" if family == 4 else "::1/128")
                                         .network_address, *ips]
        for net in cidrs:
            for a in local_addrs:
                if a in net and str(a) not in nodeport_ips:
                    if a.is_loopback and (family == 6 or not localhost):
                        continue
                    nodeport_ips.append(str(a))
    return NodeParams(
        family=family, node_name=node.name, node_labels=dict(node.labels), node_ip=node_ip,
        mark="0x" + format(proxy.masquerade_mark, "08x"), masquerade_all=proxy.masquerade_all,
        if_local=if_local, if_not_local=if_not_local, localhost_nodeports=localhost,
        nodeport_match_all=match_all, nodeport_ips=tuple(nodeport_ips), host=host)


# --- per service port ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PortRules:
    """What one service port writes in one sync (restore order within each list)."""

    services: tuple[Rule, ...]   # nat KUBE-SERVICES rules (ClusterIP, externalIPs, LB VIPs)
    nodeports: tuple[Rule, ...]  # nat KUBE-NODEPORTS rules
    filter: tuple[Rule, ...]     # filter rules, in write order (several chains)
    chains: tuple[str, ...]      # nat per-service chains, in declaration order
    body: tuple[Rule, ...]       # the rules of those chains, in write order
    n_endpoints: int             # len(endpointsMap[svcPortName]) (large-cluster count)


def _probability(n: int) -> str:
    return "%0.10f" % (1.0 / n)


def port_rules(svc: ServicePortInfo, endpoints: Sequence[EndpointInfo], p: NodeParams,
               large: bool) -> PortRules:
    """Steps 1–11 of kube-proxy.md §2.5 for one service port."""
    proto = svc.protocol.lower()
    spn = svc.name_string
    h = svc.chain_hash
    svc_chain, svl_chain = "KUBE-SVC-" + h, "KUBE-SVL-" + h
    ext_chain, fw_chain = "KUBE-EXT-" + h, "KUBE-FW-" + h
    cat = categorize_endpoints(endpoints, svc, p.node_name, p.node_labels,
                               prefer_same_node=p.host.prefer_same_node)
    cluster_eps, local_eps, has_eps = cat.cluster, cat.local, cat.has_any
    uses_cluster = bool(cluster_eps) and svc.uses_cluster_endpoints
    uses_local = bool(local_eps) and svc.uses_local_endpoints
    internal_chain = svc_chain
    has_internal = has_eps
    if svc.internal_policy_local:
        internal_chain = svl_chain
        if not local_eps:
            has_internal = False
    external_policy_chain = svc_chain
    has_external = has_eps
    epl = svc.external_policy_local_svc  # proxier uses svcInfo.ExternalPolicyLocal()
    if epl:
        external_policy_chain = svl_chain
        if not local_eps:
            has_external = False
    uses_ext = has_eps and svc.externally_accessible
    vips = svc.load_balancer_vips
    uses_fw = has_eps and bool(vips) and bool(svc.load_balancer_source_ranges)
    lb_chain = fw_chain if uses_fw else ext_chain
    int_target = int_comment = ext_target = ext_comment = ""
    if not has_eps:
        int_target = ext_target = "REJECT"
        int_comment = ext_comment = f'"{spn} has no endpoints"'
    else:
        if not has_internal:
            int_target, int_comment = "DROP", f'"{spn} has no local endpoints"'
        if not has_external:
            ext_target, ext_comment = "DROP", f'"{spn} has no local endpoints"'

    mp = ("-m", proto, "-p", proto)
    port = str(svc.port)
    cip = str(svc.cluster_ip)
    services: list[Rule] = []
    nodeports: list[Rule] = []
    filt: list[Rule] = []
    # 1. ClusterIP
    if has_internal:
        services.append(Rule(KUBE_SERVICES, ("-m", "comment", "--comment", f'"{spn} cluster IP"',
                                             *mp, "-d", cip, "--dport", port, "-j", internal_chain)))
    else:
        filt.append(Rule(KUBE_SERVICES, ("-m", "comment", "--comment", int_comment, *mp,
                                         "-d", cip, "--dport", port, "-j", int_target)))
    # 2. externalIPs
    for eip in svc.external_ips:
        if has_eps:
            services.append(Rule(KUBE_SERVICES, (
                "-m", "comment", "--comment", f'"{spn} external IP"', *mp, "-d", str(eip),
                "--dport", port, "-j", ext_chain)))
        if not has_external:
            filt.append(Rule(KUBE_EXTERNAL_SERVICES, (
                "-m", "comment", "--comment", ext_comment, *mp, "-d", str(eip),
                "--dport", port, "-j", ext_target)))
    # 3. LoadBalancer VIPs
    for lb in vips:
        if has_eps:
            services.append(Rule(KUBE_SERVICES, (
                "-m", "comment", "--comment", f'"{spn} loadbalancer IP"', *mp, "-d", str(lb),
                "--dport", port, "-j", lb_chain)))
        if uses_fw:
            filt.append(Rule(KUBE_PROXY_FIREWALL, (
                "-m", "comment", "--comment", f'"{spn} traffic not accepted by {fw_chain}"',
                *mp, "-d", str(lb), "--dport", port, "-j", "DROP")))
    if not has_external:
        for lb in vips:
            filt.append(Rule(KUBE_EXTERNAL_SERVICES, (
                "-m", "comment", "--comment", ext_comment, *mp, "-d", str(lb),
                "--dport", port, "-j", ext_target)))
    # 4. NodePort
    if svc.node_port:
        np = str(svc.node_port)
        if has_eps:
            if p.localhost_nodeports and p.family == 4 and p.host.nfacct:
                nodeports.append(Rule(KUBE_NODEPORTS, (
                    "-m", "comment", "--comment", spn, *mp, "-d", "127.0.0.0/8", "--dport", np,
                    "-m", "nfacct", "--nfacct-name", LOCALHOST_NPS_NFACCT, "-j", ext_chain)))
            nodeports.append(Rule(KUBE_NODEPORTS, (
                "-m", "comment", "--comment", spn, *mp, "--dport", np, "-j", ext_chain)))
        if not has_external:
            filt.append(Rule(KUBE_EXTERNAL_SERVICES, (
                "-m", "comment", "--comment", ext_comment, "-m", "addrtype", "--dst-type",
                "LOCAL", *mp, "--dport", np, "-j", ext_target)))
    # 5. health check node port (written even without endpoints)
    if svc.health_check_node_port:
        filt.append(Rule(KUBE_NODEPORTS, (
            "-m", "comment", "--comment", f'"{spn} health check node port"', "-m", "tcp", "-p",
            "tcp", "--dport", str(svc.health_check_node_port), "-j", "ACCEPT")))

    # 7.–11. the per-service chains (skipped in a partial sync when unchanged)
    chains: list[str] = []
    body: list[Rule] = []
    if has_internal:
        args = ("-m", "comment", "--comment", f'"{spn} cluster IP"', *mp, "-d", cip,
                "--dport", port)
        if p.masquerade_all:
            body.append(Rule(internal_chain, (*args, "-j", KUBE_MARK_MASQ)))
        elif p.if_not_local:
            body.append(Rule(internal_chain, (*args, *p.if_not_local, "-j", KUBE_MARK_MASQ)))
    if uses_ext:
        chains.append(ext_chain)
        if not epl:
            body.append(Rule(ext_chain, (
                "-m", "comment", "--comment",
                f'"masquerade traffic for {spn} external destinations"', "-j", KUBE_MARK_MASQ)))
        else:
            if p.if_local:
                body.append(Rule(ext_chain, (
                    "-m", "comment", "--comment",
                    f'"pod traffic for {spn} external destinations"', *p.if_local,
                    "-j", svc_chain)))
            body.append(Rule(ext_chain, (
                "-m", "comment", "--comment",
                f'"masquerade LOCAL traffic for {spn} external destinations"',
                "-m", "addrtype", "--src-type", "LOCAL", "-j", KUBE_MARK_MASQ)))
            body.append(Rule(ext_chain, (
                "-m", "comment", "--comment",
                f'"route LOCAL traffic for {spn} external destinations"',
                "-m", "addrtype", "--src-type", "LOCAL", "-j", svc_chain)))
        if has_external:
            body.append(Rule(ext_chain, ("-j", external_policy_chain)))
    if uses_fw:
        chains.append(fw_chain)
        fw_args = ("-m", "comment", "--comment", f'"{spn} loadbalancer IP"')
        allow_from_node = False
        for cidr in svc.load_balancer_source_ranges:
            body.append(Rule(fw_chain, (*fw_args, "-s", str(cidr), "-j", ext_chain)))
            if p.node_ip is not None and p.node_ip in cidr:
                allow_from_node = True
        if allow_from_node:
            for lb in vips:
                body.append(Rule(fw_chain, (*fw_args, "-s", str(lb), "-j", ext_chain)))
        body.append(Rule(fw_chain, (
            "-m", "comment", "--comment",
            f'"other traffic to {spn} will be dropped by KUBE-PROXY-FIREWALL"')))
    prefix = spn + proto
    seps = {e.endpoint: "KUBE-SEP-" + hash16(prefix + e.endpoint) for e in cat.all_reachable}
    sep = seps.__getitem__  # cluster and local endpoints are all in all_reachable

    affinity = svc.session_affinity_client_ip
    for use, chain, eps in ((uses_cluster, svc_chain, cluster_eps),
                            (uses_local, svl_chain, local_eps)):
        if not use:
            continue
        chains.append(chain)
        if affinity:
            secs = str(svc.sticky_max_age_seconds)
            for e in eps:
                n = sep(e.endpoint)
                c = () if large else ("-m", "comment", "--comment", f'"{spn} -> {e.endpoint}"')
                body.append(Rule(chain, (*c, "-m", "recent", "--name", n, "--rcheck",
                                         "--seconds", secs, "--reap", "-j", n)))
        last = len(eps) - 1
        for i, e in enumerate(eps):
            n = sep(e.endpoint)
            c = () if large else ("-m", "comment", "--comment", f'"{spn} -> {e.endpoint}"')
            if i < last:
                body.append(Rule(chain, (*c, "-m", "statistic", "--mode", "random",
                                         "--probability", _probability(last + 1 - i), "-j", n)))
            else:
                body.append(Rule(chain, (*c, "-j", n)))
    c = () if large else ("-m", "comment", "--comment", spn)
    for e in cat.all_reachable:
        n = sep(e.endpoint)
        chains.append(n)
        body.append(Rule(n, (*c, "-s", e.ip, "-j", KUBE_MARK_MASQ)))
        if affinity:
            body.append(Rule(n, (*c, "-m", "recent", "--name", n, "--set", *mp,
                                 "-j", "DNAT", "--to-destination", e.endpoint)))
        else:
            body.append(Rule(n, (*c, *mp, "-j", "DNAT", "--to-destination", e.endpoint)))
    return PortRules(tuple(services), tuple(nodeports), tuple(filt), tuple(chains),
                     tuple(body), len(endpoints))


# --- global rules and the restore input ---------------------------------------------------

def _filter_chain_names(p: NodeParams) -> tuple[str, ...]:
    names: tuple[str, ...] = (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS,
                              KUBE_PROXY_FIREWALL)
    if not p.ipv6 and p.localhost_nodeports:
        names += (KUBE_FIREWALL,)
    return names


NAT_FIXED_CHAINS = (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ)
_FILTER = attrgetter("filter")
_SERVICES = attrgetter("services")
_NODEPORTS = attrgetter("nodeports")


@dataclass(frozen=True, slots=True)
class GlobalRules:
    filter_head: tuple[Rule, ...]
    filter_tail: tuple[Rule, ...]
    nat_head: tuple[Rule, ...]
    nat_tail: tuple[Rule, ...]  # the final KUBE-SERVICES → KUBE-NODEPORTS rule(s)


def global_rules(p: NodeParams) -> GlobalRules:
    m = p.mark
    nat_head = [
        Rule(KUBE_POSTROUTING, ("-m", "mark", "!", "--mark", f"{m}/{m}", "-j", "RETURN")),
        Rule(KUBE_POSTROUTING, ("-j", "MARK", "--xor-mark", m)),
        Rule(KUBE_POSTROUTING, ("-m", "comment", "--comment",
                                '"kubernetes service traffic requiring SNAT"', "-j", "MASQUERADE",
                                *(("--random-fully",) if p.host.random_fully else ()))),
        Rule(KUBE_MARK_MASQ, ("-j", "MARK", "--or-mark", m)),
    ]
    filter_head: list[Rule] = []
    if not p.ipv6 and p.localhost_nodeports:
        filter_head.append(Rule(KUBE_FIREWALL, (
            "-m", "comment", "--comment", '"block incoming localnet connections"',
            "-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate",
            "RELATED,ESTABLISHED,DNAT", "-j", "DROP")))
    nat_tail: list[Rule] = []
    if p.nodeport_match_all:
        dest: tuple[str, ...] = ("-m", "addrtype", "--dst-type", "LOCAL")
        if p.ipv6:
            dest += ("!", "-d", "::1/128")
        elif not p.localhost_nodeports:
            dest += ("!", "-d", "127.0.0.0/8")
        nat_tail.append(Rule(KUBE_SERVICES, ("-m", "comment", "--comment", NODEPORTS_COMMENT,
                                             *dest, "-j", KUBE_NODEPORTS)))
    else:
        for ip in p.nodeport_ips:
            nat_tail.append(Rule(KUBE_SERVICES, ("-m", "comment", "--comment", NODEPORTS_COMMENT,
                                                 "-d", ip, "-j", KUBE_NODEPORTS)))
    filter_tail: list[Rule] = []
    if not p.host.tcp_be_liberal:
        nf = ("-m", "nfacct", "--nfacct-name", CT_INVALID_NFACCT) if p.host.nfacct else ()
        filter_tail.append(Rule(KUBE_FORWARD, ("-m", "conntrack", "--ctstate", "INVALID", *nf,
                                               "-j", "DROP")))
    filter_tail.append(Rule(KUBE_FORWARD, (
        "-m", "comment", "--comment", '"kubernetes forwarding rules"', "-m", "mark", "--mark",
        f"{m}/{m}", "-j", "ACCEPT")))
    filter_tail.append(Rule(KUBE_FORWARD, (
        "-m", "comment", "--comment", '"kubernetes forwarding conntrack rule"', "-m", "conntrack",
        "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")))
    return GlobalRules(tuple(filter_head), tuple(filter_tail), tuple(nat_head), tuple(nat_tail))


@dataclass(frozen=True, slots=True)
class RestoreInput:
    """One sync's ``iptables-restore --noflush`` input, kept structured; ``text`` renders it.

    ``ports`` is the ordered snapshot of every service port's rules; ``changed`` names the
    ones whose chains are written (None: all, i.e. a full sync); ``stale`` chains get a
    chain line and ``-X``.
    """

    family: int
    filter_chains: tuple[str, ...]
    glob: GlobalRules
    ports: tuple[PortRules, ...]
    changed: frozenset[int] | None  # indexes into ``ports``
    stale: tuple[str, ...] = ()

    @property
    def full(self) -> bool:
        return self.changed is None

    def written(self, i: int) -> bool:
        return self.changed is None or i in self.changed

    def nat_chains(self) -> list[str]:
        out = list(NAT_FIXED_CHAINS)
        for i, pr in enumerate(self.ports):
            if self.written(i):
                out.extend(pr.chains)
        out.extend(self.stale)
        return out

    def filter_rules(self) -> list[Rule]:
        out = list(self.glob.filter_head)
        out.extend(_chain.from_iterable(map(_FILTER, self.ports)))
        out.extend(self.glob.filter_tail)
        return out

    def nat_lines(self) -> list[Rule | str]:
        """nat rules in write order; stale deletions appear as ``"-X CHAIN"`` strings."""
        out: list[Rule | str] = list(self.glob.nat_head)
        for i, pr in enumerate(self.ports):
            out.extend(pr.services)
            out.extend(pr.nodeports)
            if self.written(i):
                out.extend(pr.body)
        out.extend(f"-X {c}" for c in self.stale)
        out.extend(self.glob.nat_tail)
        return out

    @property
    def text(self) -> str:
        lines = ["*filter"]
        lines.extend(f":{c} - [0:0]" for c in self.filter_chains)
        lines.extend(r.text for r in self.filter_rules())
        lines.append("COMMIT")
        lines.append("*nat")
        lines.extend(f":{c} - [0:0]" for c in self.nat_chains())
        lines.extend(r if type(r) is str else r.text for r in self.nat_lines())  # type: ignore
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.text


# --- applying restore input and EnsureRule to a live RuleSet ------------------------------

# (table, built-in chain, extra match, comment, target) — kube-proxy.md §2.2, insertion order.
_NEW = ("-m", "conntrack", "--ctstate", "NEW")
JUMP_CHAINS: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = (
    ("filter", "INPUT", _NEW, "kubernetes externally-visible service portals",
     KUBE_EXTERNAL_SERVICES),
    ("filter", "FORWARD", _NEW, "kubernetes externally-visible service portals",
     KUBE_EXTERNAL_SERVICES),
    ("filter", "INPUT", (), "kubernetes health check service ports", KUBE_NODEPORTS),
    ("filter", "FORWARD", _NEW, "kubernetes service portals", KUBE_SERVICES),
    ("filter", "OUTPUT", _NEW, "kubernetes service portals", KUBE_SERVICES),
    ("filter", "FORWARD", (), "kubernetes forwarding rules", KUBE_FORWARD),
    ("filter", "INPUT", _NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("filter", "OUTPUT", _NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("filter", "FORWARD", _NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("nat", "OUTPUT", (), "kubernetes service portals", KUBE_SERVICES),
    ("nat", "PREROUTING", (), "kubernetes service portals", KUBE_SERVICES),
    ("nat", "POSTROUTING", (), "kubernetes postrouting rules", KUBE_POSTROUTING),
    ("filter", "INPUT", (), "", KUBE_FIREWALL),
    ("filter", "OUTPUT", (), "", KUBE_FIREWALL),
)


def ensure_jumps(rs: RuleSet, p: NodeParams) -> None:
    """Full-sync ``EnsureChain``/``EnsureRule(Prepend, …)`` for §2.2 and the canary chains."""
    for tname in ("filter", "nat"):
        t = rs.table(tname)
        if KUBE_PROXY_CANARY not in t.chains:
            t.chains[KUBE_PROXY_CANARY] = Chain(KUBE_PROXY_CANARY, None, declared=False)
    for tname, chain, extra, comment, target in JUMP_CHAINS:
        t = rs.table(tname)
        if target not in t.chains:
            continue  # KUBE-FIREWALL only exists with IPv4 localhost NodePorts
        args = (*extra, *(("-m", "comment", "--comment", f'"{comment}"') if comment else ()),
                "-j", target)
        rule = Rule(chain, args)
        if rule not in t.chain(chain).rules:
            t.insert(rule, 1)


def apply_restore(rs: RuleSet, ri: RestoreInput) -> set[tuple[str, str]]:
    """Apply restore input with ``--noflush`` semantics: every chain named in it is flushed
    and refilled, ``-X`` deletes, other chains stay. Returns the (table, chain) changed."""
    changed: set[tuple[str, str]] = set()
    filt = rs.table("filter")
    if not any(c.declared for c in filt.chains.values()):
        for c in ri.filter_chains:
            filt.declare(c)
        filt.extend(ri.filter_rules())
    else:
        groups: dict[str, list[Rule]] = {c: [] for c in ri.filter_chains}
        for r in ri.filter_rules():
            groups[r.chain].append(r)
        for c, rules in groups.items():
            cur = filt.chains.get(c)
            if cur is not None and cur.declared and cur.rules == rules:
                continue
            filt.replace_chain(c, rules)
            changed.add(("filter", c))
        return _apply_nat(rs, ri, changed)
    changed.update(("filter", c) for c in ri.filter_chains)
    return _apply_nat(rs, ri, changed)


def _apply_nat(rs: RuleSet, ri: RestoreInput, changed: set[tuple[str, str]]
               ) -> set[tuple[str, str]]:
    nat = rs.table("nat")
    if not any(c.declared for c in nat.chains.values()):
        for c in ri.nat_chains():
            if c not in ri.stale:
                nat.declare(c)
                changed.add(("nat", c))
        lines = ri.nat_lines()
        # "-X CHAIN" strings only exist for stale chains
        nat.extend(cast("list[Rule]", lines) if not ri.stale else [r for r in lines if not isinstance(r, str)])
        return changed
    ngroups: dict[str, list[Rule]] = {
        KUBE_SERVICES: [*_chain.from_iterable(map(_SERVICES, ri.ports)), *ri.glob.nat_tail],
        KUBE_NODEPORTS: list(_chain.from_iterable(map(_NODEPORTS, ri.ports))),
        KUBE_POSTROUTING: list(ri.glob.nat_head[:3]),
        KUBE_MARK_MASQ: list(ri.glob.nat_head[3:]),
    }
    for i in (range(len(ri.ports)) if ri.changed is None else sorted(ri.changed)):
        pr = ri.ports[i]
        for c in pr.chains:
            ngroups[c] = []
        for r in pr.body:
            ngroups[r.chain].append(r)
    chains = nat.chains
    for c, rules in ngroups.items():
        cur = chains.get(c)
        # Unchanged service ports reuse their Rule objects, so this is mostly identity checks.
        if cur is not None and cur.declared and cur.rules == rules:
            continue  # flushed and rewritten with the same rules: nothing changed
        nat.replace_chain(c, rules)
        changed.add(("nat", c))
    for c in ri.stale:
        if c in nat.chains:
            nat.delete_chain(c)
            changed.add(("nat", c))
    return changed


# --- the full build -----------------------------------------------------------------------

def order_key(info: ServicePortInfo) -> tuple[str, str]:
    return (info.name_string, str(info.protocol))


def build_restore(
    params: NodeParams,
    svc_port_map: Mapping[ServicePortName, ServicePortInfo],
    endpoints_map: Mapping[ServicePortName, Sequence[EndpointInfo]],
) -> RestoreInput:
    """A full sync's restore input from the service-port and endpoints maps."""
    infos = sorted(svc_port_map.values(), key=order_key)
    total = 0
    for info in infos:
        total += len(endpoints_map.get(info.name, ()))
    large = total > LARGE_CLUSTER_ENDPOINTS_THRESHOLD
    ports = tuple(port_rules(info, endpoints_map.get(info.name, ()), params, large)
                  for info in infos)
    return RestoreInput(params.family, _filter_chain_names(params), global_rules(params),
                        ports, None, ())


def build_ruleset(
    node: Node,
    services: Iterable[Service],
    slices: Iterable[EndpointSlice],
    proxy_config: KubeProxyConfig,
    cluster_config: ClusterConfig | None = None,
    family: int = 4,
    *,
    host: HostOptions | None = None,
) -> RuleSet:
    """The node's filter and nat tables after one full sync on a fresh node (§2):
    ``render_restore(result)`` is kube-proxy's restore input; the built-in chains carry the
    §2.2 jumps."""
    rs, _ = build(node, services, slices, proxy_config, cluster_config, family, host=host)
    return rs


def build(
    node: Node,
    services: Iterable[Service],
    slices: Iterable[EndpointSlice],
    proxy_config: KubeProxyConfig,
    cluster_config: ClusterConfig | None = None,
    family: int = 4,
    *,
    host: HostOptions | None = None,
) -> tuple[RuleSet, RestoreInput]:
    """``build_ruleset`` plus the structured restore input (``.text`` is the restore text)."""
    with bulk_build():  # no GC passes during the build (freezing is the entry point's: knet.heap)
        return _build(node, services, slices, proxy_config, cluster_config, family, host)


def _build(node: Node, services: Iterable[Service], slices: Iterable[EndpointSlice],
           proxy_config: KubeProxyConfig, cluster_config: ClusterConfig | None, family: int,
           host: HostOptions | None) -> tuple[RuleSet, RestoreInput]:
    params = node_params(node, proxy_config, cluster_config, family, host)
    spm = build_service_port_map(services, family)
    epm = build_endpoints_map(slices, family, node.name)
    ri = build_restore(params, spm, epm)
    rs = RuleSet(family)
    rs.table("filter")
    rs.table("nat")
    apply_restore(rs, ri)
    ensure_jumps(rs, params)
    return rs, ri


def restore_text(node: Node, services: Iterable[Service], slices: Iterable[EndpointSlice],
                 proxy_config: KubeProxyConfig, cluster_config: ClusterConfig | None = None,
                 family: int = 4, *, host: HostOptions | None = None) -> str:
    """kube-proxy's full-sync ``iptables-restore`` input for the node, as text."""
    _, ri = build(node, services, slices, proxy_config, cluster_config, family, host=host)
    return ri.text


__all__ = [
    "HostOptions", "NodeParams", "PortRules", "RestoreInput", "GlobalRules", "node_params",
    "port_rules", "global_rules", "build_restore", "build_ruleset", "build", "restore_text",
    "apply_restore", "ensure_jumps", "is_service_chain", "Proxier", "SyncResult",
]


# --- incremental syncs (KEP-3453) ---------------------------------------------------------

FULL_SYNC_PERIOD = 3600.0  # proxyutil.FullSyncPeriod; also the runner's max interval
BURST_SYNCS = 2


@dataclass(frozen=True, slots=True)
class SyncResult:
    """One sync: the live tables after it, and what kube-proxy sent to iptables-restore.

    ``ruleset`` is the proxier's live RuleSet (updated in place, shared across syncs).
    ``changed_chains`` lists the (table, chain) pairs rewritten or deleted (None after a
    full sync: treat everything as changed). ``restore.text`` renders the restore input.
    """

    now: float
    full: bool
    ruleset: RuleSet
    restore: RestoreInput
    changed_chains: frozenset[tuple[str, str]] | None
    updated_services: frozenset[str]
    stale_chains: tuple[str, ...]
    large_cluster: bool

    @property
    def restore_text(self) -> str:
        return self.restore.text


_OrderKey = tuple[str, str, ServicePortName]
_PLACEHOLDER = PortRules((), (), (), (), (), 0)


class Proxier:
    """iptables-mode kube-proxy for one node and one IP family.

    Change handlers only record; ``sync(now)`` consumes them and writes the rules: a full
    sync at start, after ``request_full_sync()``, after a node label/IP change and once per
    ``FULL_SYNC_PERIOD``; otherwise a partial sync that rewrites the fixed chains and the
    chains of the changed service ports only (kube-proxy.md §2.10). ``next_sync_time(now)``
    is the bounded-frequency runner (``minSyncPeriod``, burst 2); the runtime calls ``sync``.
    """

    def __init__(self, node: Node, proxy_config: KubeProxyConfig,
                 cluster_config: ClusterConfig | None = None, family: int = 4, *,
                 host: HostOptions | None = None) -> None:
        from knet.proxy.tracker import ChangeTracker

        self.family = family
        self.proxy_config = proxy_config
        self.cluster_config = cluster_config
        self.host = host if host is not None else HostOptions.from_config(cluster_config)
        self.node = node
        self.params = node_params(node, proxy_config, cluster_config, family, self.host)
        self.tracker = ChangeTracker(family, node.name)
        self.ruleset = RuleSet(family)
        self.ruleset.table("filter")  # restore order: *filter, then *nat
        self.ruleset.table("nat")
        self._cache: dict[ServicePortName, PortRules] = {}
        self._infos: dict[ServicePortName, ServicePortInfo] = {}
        self._ports_of: dict[str, tuple[ServicePortName, ...]] = {}
        self._n_eps: dict[ServicePortName, int] = {}
        self._eps: dict[ServicePortName, tuple[EndpointInfo, ...]] = {}
        self._order: list[_OrderKey] = []
        self._plist: list[PortRules] = []  # PortRules in ``_order`` order
        self._total_endpoints = 0
        self._active: set[str] = set()
        self._pending_stale: set[str] = set()
        self._need_full = True
        self._last_full: float | None = None
        self._last_cleanup: float | None = None
        self._last_sync: float | None = None
        self._tokens = float(BURST_SYNCS)
        self._tokens_at = 0.0

    # -- change handlers (record only) ----------------------------------------------------
    def on_service_change(self, prev: Service | None, cur: Service | None) -> None:
        self.tracker.on_service_change(prev, cur)

    def on_slice_change(self, prev: EndpointSlice | None, cur: EndpointSlice | None) -> None:
        self.tracker.on_slice_change(prev, cur)

    def on_node_change(self, prev: Node | None, cur: Node | None) -> None:
        """This node changed: labels (topology) force a full sync; so do new IPs or pod
        CIDRs (upstream kube-proxy restarts on those)."""
        if cur is None or cur.name != self.node.name:
            return
        params = node_params(cur, self.proxy_config, self.cluster_config, self.family,
                             self.host)
        if params != self.params or dict(cur.labels) != dict(self.node.labels):
            self.params = params
            self._need_full = True
        self.node = cur

    def request_full_sync(self) -> None:
        """E.g. the canary chain disappeared, or the previous restore failed."""
        self._need_full = True

    # -- timing ---------------------------------------------------------------------------
    @property
    def needs_sync(self) -> bool:
        return self._need_full or self.tracker.pending

    def _tokens_now(self, now: float) -> float:
        period = self.proxy_config.min_sync_period
        if period <= 0:
            return float(BURST_SYNCS)
        return min(float(BURST_SYNCS), self._tokens + (now - self._tokens_at) / period)

    def next_sync_time(self, now: float) -> float:
        """When the bounded-frequency runner would run the next sync."""
        if not self.needs_sync:
            base = self._last_sync if self._last_sync is not None else now
            return base + FULL_SYNC_PERIOD
        tokens = self._tokens_now(now)
        if tokens >= 1.0:
            return now
        return now + (1.0 - tokens) * self.proxy_config.min_sync_period

    # -- sync -----------------------------------------------------------------------------
    def sync(self, now: float) -> SyncResult:
        # No gc.freeze() here: a long-running node syncs often, and freezing everything alive
        # (the runtime's cyclic objects included) at each sync would keep their garbage forever.
        with bulk_build():
            return self._sync(now)

    def _set_port(self, spn: ServicePortName, pr: PortRules | None) -> None:
        old = self._cache.get(spn)
        if old is not None:
            self._active.difference_update(old.chains)
            if pr is None or pr.chains != old.chains:
                self._pending_stale.update(old.chains)
        if pr is None:
            self._cache.pop(spn, None)
        else:
            self._cache[spn] = pr
            self._active.update(pr.chains)

    def _key(self, spn: ServicePortName) -> _OrderKey:
        info = self._infos[spn]
        return (info.name_string, str(info.protocol), spn)

    def _sync(self, now: float) -> SyncResult:
        import bisect

        self._tokens = max(0.0, self._tokens_now(now) - 1.0)
        self._tokens_at = now
        full = (self._need_full or self._last_full is None
                or now - self._last_full >= FULL_SYNC_PERIOD)
        updated = self.tracker.checkout()
        changed: set[ServicePortName] = set()
        for key in updated:
            state = self.tracker.applied.get(key)
            new_ports = state.ports if state is not None else ()
            new_names = tuple(info.name for info in new_ports)
            for spn in self._ports_of.get(key, ()):
                if spn not in new_names:  # service port removed
                    i = bisect.bisect_left(self._order, self._key(spn))
                    del self._order[i]
                    del self._plist[i]
                    del self._infos[spn]
                    self._total_endpoints -= self._n_eps.pop(spn, 0)
                    self._eps.pop(spn, None)
                    self._set_port(spn, None)
            for info in new_ports:
                spn = info.name
                if spn not in self._infos:
                    k = (info.name_string, str(info.protocol), spn)
                    i = bisect.bisect_left(self._order, k)
                    self._order.insert(i, k)
                    self._plist.insert(i, _PLACEHOLDER)
                self._infos[spn] = info
                eps = state.endpoints.get(spn, ()) if state is not None else ()
                self._eps[spn] = eps
                self._total_endpoints += len(eps) - self._n_eps.get(spn, 0)
                self._n_eps[spn] = len(eps)
                changed.add(spn)
            if new_names:
                self._ports_of[key] = new_names
            else:
                self._ports_of.pop(key, None)
        large = self._total_endpoints > LARGE_CLUSTER_ENDPOINTS_THRESHOLD
        p = self.params
        if full:
            plist = self._plist
            for i, k in enumerate(self._order):
                spn = k[2]
                pr = port_rules(self._infos[spn], self._eps.get(spn, ()), p, large)
                self._set_port(spn, pr)
                plist[i] = pr
            idx: frozenset[int] | None = None
        else:
            positions = []
            for spn in changed:
                pr = port_rules(self._infos[spn], self._eps.get(spn, ()), p, large)
                self._set_port(spn, pr)
                i = bisect.bisect_left(self._order, self._key(spn))
                self._plist[i] = pr
                positions.append(i)
            idx = frozenset(positions)
        nat = self.ruleset.table("nat")
        # Stale chains (§2.8): looked for every sync, in large-cluster mode once per syncPeriod.
        stale: tuple[str, ...] = ()
        if (not large or self._last_cleanup is None
                or now - self._last_cleanup > self.proxy_config.sync_period):
            if full:
                candidates: Iterable[str] = [c for c in nat.chains if is_service_chain(c)]
            else:
                candidates = self._pending_stale
            stale = tuple(sorted(c for c in candidates
                                 if c in nat.chains and c not in self._active))
            self._pending_stale.clear()
            self._last_cleanup = now
        ports = tuple(self._plist)
        ri = RestoreInput(self.family, _filter_chain_names(p), global_rules(p), ports, idx,
                          stale)
        chains = apply_restore(self.ruleset, ri)
        if full:
            ensure_jumps(self.ruleset, p)
            self._need_full = False
            self._last_full = now
        self._last_sync = now
        return SyncResult(now, full, self.ruleset, ri, None if full else frozenset(chains),
                          frozenset(updated), stale, large)
