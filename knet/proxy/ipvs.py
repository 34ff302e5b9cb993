"""kube-proxy IPVS mode: the kernel objects one node programs (kube-proxy.md §4).

Invariants (``pkg/proxy/ipvs/proxier.go``, ``ipset.go``, v1.31–v1.33):
- One sync yields: the addresses bound to ``kube-ipvs0``, the virtual servers with their real
  servers, the 17 ipsets (real names, types, comments, entry strings), and the iptables glue
  as ``iptables-restore`` input (``*nat`` then ``*filter``, §4.3 order) plus the built-in
  chain jumps (EnsureRule, Prepend).
- Real servers come from ``categorize_endpoints``; a virtual server whose policy is Local
  uses the local endpoints, and falls back to the cluster endpoints when there is none
  (kubernetes PR #97081, Known ambiguity 5) — unlike iptables and nftables modes.
- Every IPVS sync is a full one (§1.4); ``IPVSProxier`` keeps the kernel's IPVS table between
  syncs so that removed real servers drain with weight 0 (graceful termination).
- Deterministic order: virtual servers and real servers sorted by address (the kernel lists
  them in hash/insertion order), set members sorted as ``ipset save`` does not guarantee.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address
from typing import Any
from collections.abc import Iterable, Mapping, Sequence

from knet.model.config import ClusterConfig, KubeProxyConfig
from knet.model.core import Node, Service
from knet.model.discovery import EndpointSlice
from knet.netfilter.ipset import IPSet
from knet.netfilter.ipvs import (IPVS, RealServer, VirtualServer, dest_sort_key, render_ipvsadm,
                                 sort_key)
from knet.netfilter.rules import Rule, RuleSet
from knet.proxy.endpoints import Categorized, EndpointInfo, build_endpoints_map, categorize_endpoints
from knet.proxy.iptables import NodeParams, node_params
from knet.proxy.serviceport import IPAddress, ServicePortInfo, build_service_port_map
from knet.proxy.tracker import RecordingProxier

DUMMY_DEVICE = "kube-ipvs0"

# (name, type, comment) — pkg/proxy/ipvs/ipset.go, in ipsetInfo order.
IPSETS: tuple[tuple[str, str, str], ...] = (
    ("KUBE-LOOP-BACK", "hash:ip,port,ip",
     "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"),
    ("KUBE-CLUSTER-IP", "hash:ip,port", "Kubernetes service cluster ip + port for masquerade purpose"),
    ("KUBE-LOAD-BALANCER", "hash:ip,port", "Kubernetes service lb portal"),
    ("KUBE-LOAD-BALANCER-FW", "hash:ip,port",
     "Kubernetes service load balancer ip + port for load balancer with sourceRange"),
    ("KUBE-LOAD-BALANCER-LOCAL", "hash:ip,port",
     "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"),
    ("KUBE-LOAD-BALANCER-SOURCE-IP", "hash:ip,port,ip",
     "Kubernetes service load balancer ip + port + source IP for packet filter purpose"),
    ("KUBE-LOAD-BALANCER-SOURCE-CIDR", "hash:ip,port,net",
     "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"),
    ("KUBE-NODE-PORT-TCP", "bitmap:port", "Kubernetes nodeport TCP port for masquerade purpose"),
    ("KUBE-NODE-PORT-LOCAL-TCP", "bitmap:port",
     "Kubernetes nodeport TCP port with externalTrafficPolicy=local"),
    ("KUBE-NODE-PORT-UDP", "bitmap:port", "Kubernetes nodeport UDP port for masquerade purpose"),
    ("KUBE-NODE-PORT-LOCAL-UDP", "bitmap:port",
     "Kubernetes nodeport UDP port with externalTrafficPolicy=local"),
    ("KUBE-NODE-PORT-SCTP-HASH", "hash:ip,port",
     "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"),
    ("KUBE-NODE-PORT-LOCAL-SCTP-HASH", "hash:ip,port",
     "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"),
    ("KUBE-EXTERNAL-IP", "hash:ip,port",
     "Kubernetes service external ip + port for masquerade and filter purpose"),
    ("KUBE-EXTERNAL-IP-LOCAL", "hash:ip,port",
     "Kubernetes service external ip + port with externalTrafficPolicy=local"),
    ("KUBE-HEALTH-CHECK-NODE-PORT", "bitmap:port", "Kubernetes health check node port"),
    ("KUBE-IPVS-IPS", "hash:ip", "Addresses on the ipvs interface"),
)
IPSET_TYPES = {n: t for n, t, _c in IPSETS}
IPSET_COMMENTS = {n: c for n, _t, c in IPSETS}
# `ipset list` Revision of each type on a v6.x kernel (ipset 7.x).
IPSET_REVISIONS = {"hash:ip": 6, "hash:ip,port": 7, "hash:ip,port,ip": 6, "hash:ip,port,net": 8,
                   "bitmap:port": 3}

# nat/filter chains of IPVS mode (§4.3).
NAT_CHAINS = ("KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-NODE-PORT", "KUBE-LOAD-BALANCER",
              "KUBE-MARK-MASQ")
FILTER_CHAINS = ("KUBE-FORWARD", "KUBE-NODE-PORT", "KUBE-PROXY-FIREWALL",
                 "KUBE-SOURCE-RANGES-FIREWALL", "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER")
# iptablesJumpChain (table, chain, source chain, comment), inserted with Prepend in this order.
JUMPS = (
    ("nat", "KUBE-SERVICES", "OUTPUT", "kubernetes service portals"),
    ("nat", "KUBE-SERVICES", "PREROUTING", "kubernetes service portals"),
    ("nat", "KUBE-POSTROUTING", "POSTROUTING", "kubernetes postrouting rules"),
    ("filter", "KUBE-FORWARD", "FORWARD", "kubernetes forwarding rules"),
    ("filter", "KUBE-NODE-PORT", "INPUT", "kubernetes health check rules"),
    ("filter", "KUBE-PROXY-FIREWALL", "INPUT", "kube-proxy firewall rules"),
    ("filter", "KUBE-PROXY-FIREWALL", "FORWARD", "kube-proxy firewall rules"),
    ("filter", "KUBE-IPVS-FILTER", "INPUT", "kubernetes ipvs access filter"),
    ("filter", "KUBE-IPVS-OUT-FILTER", "OUTPUT", "kubernetes ipvs access filter"),
)


def set_name(name: str, family: int) -> str:
    """IPv6 sets: ``KUBE-`` → ``KUBE-6-``, cut to 31 characters (IPSET_MAXNAMELEN - 1)."""
    if family == 6:
        name = name.replace("KUBE-", "KUBE-6-", 1)
    return name[:31]


@dataclass(frozen=True, slots=True)
class IPSetState:
    name: str          # family-specific name
    base: str          # the IPv4 name (kube-proxy's constant)
    type: str
    family: int
    comment: str
    entries: tuple[str, ...]

    def ipset(self) -> IPSet:
        return IPSet.of(self.name, self.type, self.entries)

    def header(self) -> str:
        if self.type.startswith("bitmap"):
            return "range 0-65535 comment"
        fam = "inet6" if self.family == 6 else "inet"
        initval = hashlib.sha256(self.name.encode()).hexdigest()[:8]
        return (f"family {fam} hashsize 1024 maxelem 65536 comment bucketsize 12 "
                f"initval 0x{initval}")

    def create_line(self) -> str:
        if self.type.startswith("bitmap"):
            return f"create {self.name} {self.type} range 0-65535 comment"
        fam = "inet6" if self.family == 6 else "inet"
        return f"create {self.name} {self.type} family {fam} hashsize 1024 maxelem 65536 comment"


@dataclass(frozen=True, slots=True)
class IPVSState:
    """One node's IPVS-mode state for one family after a full sync."""
    family: int
    virtual_servers: tuple[VirtualServer, ...]
    ipsets: tuple[IPSetState, ...]
    dummy_addresses: tuple[IPAddress, ...]
    nat_chains: tuple[str, ...]
    nat_rules: tuple[Rule, ...]
    filter_chains: tuple[str, ...]
    filter_rules: tuple[Rule, ...]
    nodeport_addresses: tuple[IPAddress, ...] = ()

    @property
    def restore_text(self) -> str:
        lines = ["*nat", *(f":{c} - [0:0]" for c in self.nat_chains),
                 *(r.text for r in self.nat_rules), "COMMIT",
                 "*filter", *(f":{c} - [0:0]" for c in self.filter_chains),
                 *(r.text for r in self.filter_rules), "COMMIT"]
        return "\n".join(lines) + "\n"

    def ruleset(self) -> RuleSet:
        """The live tables: restore input applied on a fresh node, then the §4.3 jumps."""
        rs = RuleSet(self.family)
        nat, flt = rs.table("nat"), rs.table("filter")
        for c in self.nat_chains:
            nat.declare(c)
        nat.extend(self.nat_rules)
        for c in self.filter_chains:
            flt.declare(c)
        flt.extend(self.filter_rules)
        for tname, chain, src, comment in JUMPS:
            t = rs.table(tname)
            rule = Rule(src, ("-m", "comment", "--comment", f'"{comment}"', "-j", chain))
            if rule not in t.chain(src).rules:
                t.insert(rule, 1)
        return rs

    def ipset_map(self) -> dict[str, IPSet]:
        return {s.name: s.ipset() for s in self.ipsets}

    def ipset_list(self) -> str:
        """``ipset list`` for the kube-proxy sets (Size in memory omitted: not emulated)."""
        refs: dict[str, int] = {}
        for r in (*self.nat_rules, *self.filter_rules):
            for i, a in enumerate(r.args):
                if a == "--match-set":
                    refs[r.args[i + 1]] = refs.get(r.args[i + 1], 0) + 1
        out: list[str] = []
        for s in self.ipsets:
            out += [f"Name: {s.name}", f"Type: {s.type}",
                    f"Revision: {IPSET_REVISIONS[s.type]}", f"Header: {s.header()}",
                    f"References: {refs.get(s.name, 0)}", f"Number of entries: {len(s.entries)}",
                    "Members:", *s.entries, ""]
        return "\n".join(out[:-1]) + "\n" if out else ""

    def ipset_restore(self) -> str:
        """``ipset restore`` input creating and filling the sets."""
        out: list[str] = []
        for s in self.ipsets:
            out.append(s.create_line())
            out += [f"add {s.name} {e}" for e in s.entries]
        return "\n".join(out) + "\n"

    def ipvsadm(self) -> str:
        return render_ipvsadm((vs, sorted(vs.real_servers, key=dest_sort_key))
                              for vs in self.virtual_servers)

    def to_json(self) -> dict[str, Any]:
        return {
            "virtualServers": [vs_json(vs) for vs in self.virtual_servers],
            "ipsets": {s.name: {"type": s.type, "entries": list(s.entries)} for s in self.ipsets},
            "dummyAddresses": [str(a) for a in self.dummy_addresses],
            "iptables": self.restore_text,
        }


def vs_json(vs: VirtualServer, dests: Iterable[Any] | None = None) -> dict[str, Any]:
    rs = dests if dests is not None else vs.real_servers
    return {"address": str(vs.address), "port": vs.port, "protocol": vs.protocol,
            "scheduler": vs.scheduler, "flags": list(vs.flags), "timeout": vs.timeout,
            "realServers": [{"address": str(d.address), "port": d.port, "weight": d.weight}
                            for d in sorted(rs, key=dest_sort_key)]}


# --- building -----------------------------------------------------------------------------

def nodeport_addresses(node: Node, p: NodeParams) -> tuple[IPAddress, ...]:
    """§4.1/§9: all local addresses not on kube-ipvs0, loopback and IPv6 link-local dropped;
    with --nodeport-addresses only the matching ones (loopback excluded)."""
    if p.nodeport_match_all:
        cands: Sequence[IPAddress] = node.ips(p.family)
    else:
        cands = [ip_address(a) for a in p.nodeport_ips]
    out: list[IPAddress] = []
    for a in cands:
        if a.is_loopback or (a.version == 6 and a.is_link_local) or a in out:
            continue
        out.append(a)
    return tuple(out)


def _entry(ip: IPAddress, proto: str, port: int, third: str = "") -> str:
    s = f"{ip},{proto}:{port}"
    return f"{s},{third}" if third else s


def real_servers(eps: Sequence[EndpointInfo]) -> tuple[RealServer, ...]:
    return tuple(RealServer(ip_address(e.ip), e.port, 1) for e in eps)


def build_state(node: Node, services: Iterable[Service], slices: Iterable[EndpointSlice],
                proxy: KubeProxyConfig, cluster: ClusterConfig | None,
                family: int = 4) -> IPVSState:
    """One full IPVS sync for ``node`` and ``family``."""
    p = node_params(node, proxy, cluster, family)
    spm = build_service_port_map(services, family)
    epm = build_endpoints_map(slices, family, node.name)
    return build_from_maps(node, p, proxy, spm, epm)


def build_from_maps(node: Node, p: NodeParams, proxy: KubeProxyConfig,
                    spm: Mapping[Any, ServicePortInfo],
                    epm: Mapping[Any, Sequence[EndpointInfo]]) -> IPVSState:
    fam = p.family
    sched = proxy.ipvs_scheduler or "rr"
    node_ips = set(node.ips(fam))
    np_addrs = nodeport_addresses(node, p)
    sets: dict[str, set[str]] = {n: set() for n, _t, _c in IPSETS}
    vss: list[VirtualServer] = []
    dummy: dict[IPAddress, None] = {}
    out_filter: list[Rule] = []
    for info in sorted(spm.values(), key=lambda i: (i.name_string, str(i.protocol))):
        eps = epm.get(info.name, ())
        cat = categorize_endpoints(eps, info, p.node_name, p.node_labels,
                                   prefer_same_node=p.host.prefer_same_node)
        proto = info.protocol.lower()
        PROTO = str(info.protocol).upper()
        flags: tuple[str, ...] = ()
        timeout = 0
        if info.session_affinity_client_ip:
            flags, timeout = ("persistent",), info.sticky_max_age_seconds
        if sched == "mh":
            flags += ("mh-port",)

        def rs_for(local_only: bool, cat: Categorized = cat) -> tuple[RealServer, ...]:
            if local_only:
                return real_servers(cat.local if cat.local else cat.cluster)  # PR #97081
            return real_servers(cat.cluster)

        def vs(addr: IPAddress, port: int, local_only: bool, what: str, PROTO: str = PROTO,
               flags: tuple[str, ...] = flags, timeout: int = timeout, info: ServicePortInfo = info) -> VirtualServer:
            return VirtualServer(addr, port, PROTO, sched, flags, timeout, rs_for(local_only),
                                 f"{info.name_string} {what}")

        for e in eps:
            if e.is_local:
                eip = ip_address(e.ip)
                sets["KUBE-LOOP-BACK"].add(_entry(eip, proto, e.port, e.ip))
        cip = info.cluster_ip
        sets["KUBE-CLUSTER-IP"].add(_entry(cip, proto, info.port))
        vss.append(vs(cip, info.port, info.internal_policy_local, "cluster IP"))
        dummy[cip] = None
        epl = info.external_policy_local
        for eip in info.external_ips:
            sets["KUBE-EXTERNAL-IP-LOCAL" if epl else "KUBE-EXTERNAL-IP"].add(
                _entry(eip, proto, info.port))
            vss.append(vs(eip, info.port, epl, "external IP"))
            if eip not in node_ips:
                dummy[eip] = None
        for lb in info.load_balancer_vips:
            ent = _entry(lb, proto, info.port)
            sets["KUBE-LOAD-BALANCER"].add(ent)
            if epl:
                sets["KUBE-LOAD-BALANCER-LOCAL"].add(ent)
            ranges = info.load_balancer_source_ranges
            if ranges:
                sets["KUBE-LOAD-BALANCER-FW"].add(ent)
                allow_from_node = False
                for net in ranges:
                    sets["KUBE-LOAD-BALANCER-SOURCE-CIDR"].add(_entry(lb, proto, info.port,
                                                                     str(net)))
                    if any(a in net for a in node_ips):
                        allow_from_node = True
                if allow_from_node:
                    sets["KUBE-LOAD-BALANCER-SOURCE-IP"].add(_entry(lb, proto, info.port, str(lb)))
                else:
                    out_filter.append(Rule("KUBE-IPVS-OUT-FILTER", (
                        "-s", str(lb), "-m", "ipvs", "--vaddr", str(lb), "--vproto", proto,
                        "--vport", str(info.port), "-j", "DROP")))
            vss.append(vs(lb, info.port, epl, "loadbalancer IP"))
            if lb not in node_ips:
                dummy[lb] = None
        if info.node_port:
            if PROTO == "SCTP":
                for a in np_addrs:
                    ent = _entry(a, "sctp", info.node_port)
                    sets["KUBE-NODE-PORT-SCTP-HASH"].add(ent)
                    if epl:
                        sets["KUBE-NODE-PORT-LOCAL-SCTP-HASH"].add(ent)
            else:
                sets[f"KUBE-NODE-PORT-{PROTO}"].add(str(info.node_port))
                if epl:
                    sets[f"KUBE-NODE-PORT-LOCAL-{PROTO}"].add(str(info.node_port))
            for a in np_addrs:
                vss.append(vs(a, info.node_port, epl, "node port"))
        if info.health_check_node_port:
            sets["KUBE-HEALTH-CHECK-NODE-PORT"].add(str(info.health_check_node_port))
    for a in dummy:
        sets["KUBE-IPVS-IPS"].add(str(a))
    states = tuple(IPSetState(set_name(n, fam), n, t, fam, c, tuple(sorted(sets[n], key=_member_key)))
                   for n, t, c in IPSETS)
    nat_rules, filter_rules = glue_rules(p, {s.base: s for s in states}, out_filter)
    vss.sort(key=sort_key)
    return IPVSState(fam, tuple(vss), states, tuple(sorted(dummy, key=int)), NAT_CHAINS,
                     tuple(nat_rules), FILTER_CHAINS, tuple(filter_rules), np_addrs)


def _member_key(e: str) -> tuple:
    parts = e.split(",")
    try:
        a = ip_address(parts[0])
        head: tuple = (a.version, int(a))
    except ValueError:
        head = (0, int(parts[0]))
    return (head, e)


def _cm(comment: str) -> tuple[str, ...]:
    return ("-m", "comment", "--comment", f'"{comment}"')


def glue_rules(p: NodeParams, sets: Mapping[str, IPSetState], out_filter: Sequence[Rule]
               ) -> tuple[list[Rule], list[Rule]]:
    """``writeIptablesRules`` (§4.3): nat and filter rules in write order."""
    nat: list[Rule] = []
    flt: list[Rule] = []
    m = p.mark
    loopback = "::1/128" if p.family == 6 else "127.0.0.0/8"
    nat.append(Rule("KUBE-SERVICES", ("-s", loopback, "-j", "RETURN")))

    def nonempty(base: str) -> bool:
        return bool(sets[base].entries)

    def name(base: str) -> str:
        return sets[base].name

    table = (
        ("KUBE-LOOP-BACK", nat, "KUBE-POSTROUTING", "", "dst,dst,src", "MASQUERADE"),
        ("KUBE-LOAD-BALANCER", nat, "KUBE-SERVICES", "", "dst,dst", "KUBE-LOAD-BALANCER"),
        ("KUBE-LOAD-BALANCER-LOCAL", nat, "KUBE-LOAD-BALANCER", "", "dst,dst", "RETURN"),
        ("KUBE-NODE-PORT-LOCAL-TCP", nat, "KUBE-NODE-PORT", "tcp", "dst", "RETURN"),
        ("KUBE-NODE-PORT-TCP", nat, "KUBE-NODE-PORT", "tcp", "dst", "KUBE-MARK-MASQ"),
        ("KUBE-NODE-PORT-LOCAL-UDP", nat, "KUBE-NODE-PORT", "udp", "dst", "RETURN"),
        ("KUBE-NODE-PORT-UDP", nat, "KUBE-NODE-PORT", "udp", "dst", "KUBE-MARK-MASQ"),
        ("KUBE-NODE-PORT-LOCAL-SCTP-HASH", nat, "KUBE-NODE-PORT", "sctp", "dst,dst", "RETURN"),
        ("KUBE-NODE-PORT-SCTP-HASH", nat, "KUBE-NODE-PORT", "sctp", "dst,dst", "KUBE-MARK-MASQ"),
        ("KUBE-LOAD-BALANCER-FW", flt, "KUBE-PROXY-FIREWALL", "", "dst,dst",
         "KUBE-SOURCE-RANGES-FIREWALL"),
        ("KUBE-LOAD-BALANCER-SOURCE-CIDR", flt, "KUBE-SOURCE-RANGES-FIREWALL", "", "dst,dst,src",
         "RETURN"),
        ("KUBE-LOAD-BALANCER-SOURCE-IP", flt, "KUBE-SOURCE-RANGES-FIREWALL", "", "dst,dst,src",
         "RETURN"),
    )
    for base, buf, chain, proto, match, to in table:
        if not nonempty(base):
            continue
        args: tuple[str, ...] = (("-p", proto) if proto else ())
        buf.append(Rule(chain, (*args, *_cm(IPSET_COMMENTS[base]), "-m", "set", "--match-set",
                                name(base), match, "-j", to)))
    if nonempty("KUBE-CLUSTER-IP"):
        head = (*_cm(IPSET_COMMENTS["KUBE-CLUSTER-IP"]), "-m", "set", "--match-set",
                name("KUBE-CLUSTER-IP"))
        if p.masquerade_all:
            nat.append(Rule("KUBE-SERVICES", (*head, "dst,dst", "-j", "KUBE-MARK-MASQ")))
        elif p.if_not_local:
            nat.append(Rule("KUBE-SERVICES", (*head, "dst,dst", *p.if_not_local, "-j",
                                              "KUBE-MARK-MASQ")))
        else:
            nat.append(Rule("KUBE-SERVICES", (*head, "src,dst", "-j", "KUBE-MARK-MASQ")))
    for base in ("KUBE-EXTERNAL-IP", "KUBE-EXTERNAL-IP-LOCAL"):
        if not nonempty(base):
            continue
        head = (*_cm(IPSET_COMMENTS[base]), "-m", "set", "--match-set", name(base), "dst,dst")
        if base == "KUBE-EXTERNAL-IP":
            nat.append(Rule("KUBE-SERVICES", (*head, "-j", "KUBE-MARK-MASQ")))
        nat.append(Rule("KUBE-SERVICES", (*head, "-m", "physdev", "!", "--physdev-is-in",
                                          "-m", "addrtype", "!", "--src-type", "LOCAL",
                                          "-j", "ACCEPT")))
        nat.append(Rule("KUBE-SERVICES", (*head, "-m", "addrtype", "--dst-type", "LOCAL",
                                          "-j", "ACCEPT")))
    nat.append(Rule("KUBE-SERVICES", ("-m", "addrtype", "--dst-type", "LOCAL", "-j",
                                      "KUBE-NODE-PORT")))
    nat.append(Rule("KUBE-LOAD-BALANCER", ("-j", "KUBE-MARK-MASQ")))
    flt.append(Rule("KUBE-SOURCE-RANGES-FIREWALL", ("-j", "DROP")))
    flt.extend(out_filter)
    for base in ("KUBE-CLUSTER-IP", "KUBE-LOAD-BALANCER"):
        if nonempty(base):
            nat.append(Rule("KUBE-SERVICES", ("-m", "set", "--match-set", name(base), "dst,dst",
                                              "-j", "ACCEPT")))
    flt.append(Rule("KUBE-FORWARD", (*_cm("kubernetes forwarding rules"), "-m", "mark",
                                     "--mark", f"{m}/{m}", "-j", "ACCEPT")))
    flt.append(Rule("KUBE-FORWARD", (*_cm("kubernetes forwarding conntrack rule"), "-m",
                                     "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                                     "-j", "ACCEPT")))
    flt.append(Rule("KUBE-NODE-PORT", (*_cm("Kubernetes health check node port"), "-m", "set",
                                       "--match-set", name("KUBE-HEALTH-CHECK-NODE-PORT"),
                                       "dst", "-j", "ACCEPT")))
    for base, match in (("KUBE-LOAD-BALANCER", "dst,dst"), ("KUBE-CLUSTER-IP", "dst,dst"),
                        ("KUBE-EXTERNAL-IP", "dst,dst"), ("KUBE-EXTERNAL-IP-LOCAL", "dst,dst"),
                        ("KUBE-HEALTH-CHECK-NODE-PORT", "dst")):
        flt.append(Rule("KUBE-IPVS-FILTER", ("-m", "set", "--match-set", name(base), match,
                                             "-j", "RETURN")))
    flt.append(Rule("KUBE-IPVS-FILTER", ("-m", "conntrack", "--ctstate", "NEW", "-m", "set",
                                         "--match-set", name("KUBE-IPVS-IPS"), "dst",
                                         "-j", "REJECT")))
    nat.append(Rule("KUBE-POSTROUTING", ("-m", "mark", "!", "--mark", f"{m}/{m}", "-j",
                                         "RETURN")))
    nat.append(Rule("KUBE-POSTROUTING", ("-j", "MARK", "--xor-mark", m)))
    nat.append(Rule("KUBE-POSTROUTING", (*_cm("kubernetes service traffic requiring SNAT"),
                                         "-j", "MASQUERADE",
                                         *(("--random-fully",) if p.host.random_fully else ()))))
    nat.append(Rule("KUBE-MARK-MASQ", ("-j", "MARK", "--or-mark", m)))
    return nat, flt


# --- the per-node proxier (state kept across syncs) ---------------------------------------

@dataclass(slots=True)
class IPVSProxier(RecordingProxier):
    """kube-proxy IPVS mode on one node and family. Change handlers record; ``sync(now)``
    rebuilds everything (every IPVS sync is full) and applies it to the live IPVS table,
    whose removed real servers drain with weight 0."""

    node: Node
    proxy_config: KubeProxyConfig
    cluster_config: ClusterConfig | None
    family: int = 4
    ipvs: IPVS = field(default_factory=IPVS)
    services: dict[str, Service] = field(default_factory=dict)
    slices: dict[tuple[str, str], EndpointSlice] = field(default_factory=dict)
    state: IPVSState | None = None
    syncs: int = 0
    dirty: bool = True

    def sync(self, now: float) -> IPVSState:
        st = build_state(self.node, list(self.services.values()), list(self.slices.values()),
                         self.proxy_config, self.cluster_config, self.family)
        self.ipvs.apply(st.virtual_servers, now)
        self.state = st
        self.syncs += 1
        self.dirty = False
        return st

    def ipvsadm(self) -> str:
        """The live table, with weight-0 draining servers and connection counters."""
        return render_ipvsadm((svc.spec, sorted(svc.dest_list(), key=dest_sort_key))
                              for svc in sorted(self.ipvs.services.values(),
                                                key=lambda s: sort_key(s.spec)))


__all__ = ["DUMMY_DEVICE", "IPSETS", "IPSetState", "IPVSProxier", "IPVSState", "build_state",
           "build_from_maps", "glue_rules", "nodeport_addresses", "set_name", "vs_json",
           "IPv4Address"]
