"""kube-proxy modes side by side: per-node dataplanes, rendering, and the mode comparison.

Invariants:
- ``make_dataplane`` is the one place a node's kube-proxy is built for a mode: one proxier per
  IP family (iptables ``Proxier``, ``IPVSProxier``, ``NFTProxier``) and the engine that
  executes their state (``Netfilter``, ``IPVSNetfilter``, ``Nftables``). The running
  emulation syncs it over time; ``node_datapath``/``render`` sync it once over a converged
  cluster. Each sync installs the new state into the same engine object, so conntrack, IPVS
  connections and draining real servers persist across syncs.
- ``render`` prints exactly the state the engine executes (iptables tables; IPVS glue +
  ipsets + the live virtual servers; the nftables transaction).
- ``compare`` only enumerates first-packet outcomes (no state is touched) and measures the
  rule-walk cost of one evaluation on a scratch connection table; it never samples.
- Pure: no IO, time is the caller's ``now``, randomness from the caller's rng.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any
from collections.abc import Iterable

from knet.errors import UsageError
from knet.netfilter.packet import Packet, Proto
from knet.proxy.text import only_table, ruleset_json

MODES = ("iptables", "ipvs", "nftables")
OUTSIDE_CLIENT = {4: ip_address("203.0.113.10"), 6: ip_address("2001:db8:ffff::10")}


def _families(cluster: Any) -> tuple[int, ...]:
    return tuple(cluster.config.families)


def _masq(node: Any) -> dict[int, Any]:
    return {ip.version: ip for ip in reversed(node.ips())}


# --- one node's kube-proxy in one mode, and the engine that executes its state -------------

def make_proxier(mode: str, node: Any, proxy_config: Any, cluster_config: Any,
                 family: int, **kw: Any) -> Any:
    """A per-node, per-family proxier (``on_service_change``/``on_slice_change``/
    ``on_node_change``/``needs_sync``/``sync(now)``) for ``mode``. ``kw`` goes to the
    proxier (``ipvs=`` the node's shared IPVS table)."""
    if mode == "iptables":
        from knet.proxy.iptables import Proxier

        return Proxier(node, proxy_config, cluster_config, family, **kw)
    if mode == "ipvs":
        from knet.proxy.ipvs import IPVSProxier

        return IPVSProxier(node, proxy_config, cluster_config, family, **kw)
    if mode == "nftables":
        from knet.proxy.nftables import NFTProxier

        return NFTProxier(node, proxy_config, cluster_config, family, **kw)
    raise UsageError(f"unknown kube-proxy mode {mode!r} (expected one of {', '.join(MODES)})")


class Dataplane:
    """kube-proxy on one node in one mode (one proxier per IP family) and the engine that
    executes what the proxiers last synced (``engine``: ``forward``/``process``/
    ``enumerate_outcomes``/``conntrack``). The engine object lives as long as the node: each
    ``sync(now)`` installs the new state in it in place, so connections (conntrack, IPVS
    connections and draining real servers) survive syncs."""

    mode = ""

    def __init__(self, node: Any, proxy_config: Any, cluster_config: Any,
                 families: Iterable[int], rng: random.Random) -> None:
        self.node = node
        self.proxy_config = proxy_config
        self.cluster_config = cluster_config
        self.families = tuple(families)
        self.results: dict[int, Any] = {}  # the last sync's result per family
        self.syncs = 0
        self.proxiers: dict[int, Any] = {}
        self.engine: Any = None
        # the objects as this node's kube-proxy last saw them (stale UDP flow cleanup)
        self._services: dict[str, Any] = {}
        self._slices: dict[tuple[str, str], Any] = {}

    # -- kube-proxy's change handlers (record only)
    def on_service_change(self, prev: Any, cur: Any) -> None:
        for p in self.proxiers.values():
            p.on_service_change(prev, cur)
        obj = cur if cur is not None else prev
        if obj is not None:
            if cur is None:
                self._services.pop(obj.key, None)
            else:
                self._services[obj.key] = cur

    def on_slice_change(self, prev: Any, cur: Any) -> None:
        for p in self.proxiers.values():
            p.on_slice_change(prev, cur)
        obj = cur if cur is not None else prev
        if obj is not None:
            key = (obj.metadata.namespace, obj.metadata.name)
            if cur is None:
                self._slices.pop(key, None)
            else:
                self._slices[key] = cur

    def on_node_change(self, prev: Any, cur: Any) -> None:
        for p in self.proxiers.values():
            p.on_node_change(prev, cur)
        if cur is not None and cur.name == self.node.name:
            self.node = cur
            self._install_addresses()

    @property
    def needs_sync(self) -> bool:
        return any(p.needs_sync for p in self.proxiers.values())

    def sync(self, now: float) -> dict[int, Any]:
        """One sync of every family; the engine runs the result from the next packet on."""
        self.results = {f: p.sync(now) for f, p in self.proxiers.items()}
        self._install(now)
        self.clean_stale_udp()
        self.syncs += 1
        return self.results

    def clean_stale_udp(self) -> int:
        """After a sync, delete UDP flows that would keep going to a gone endpoint
        (``pkg/proxy/conntrack/cleanup.go`` ``CleanStaleEntries``, v1.32, kube-proxy.md §1.4):
        for every UDP service port with serving endpoints, an entry whose original
        destination is one of its service IP:port (ClusterIP, LB IPs, externalIPs) — or whose
        original destination port is its NodePort — and whose reply source IP is not a
        serving endpoint's IP is deleted. Returns how many entries were deleted."""
        from knet.proxy.endpoints import build_endpoints_map
        from knet.proxy.serviceport import build_service_port_map

        ct = self.engine.conntrack
        flows = [e for e in ct.entries() if e.proto == "udp"]
        if not flows:
            return 0
        by_ip: dict[tuple[Any, int], set[Any]] = {}
        by_nodeport: dict[int, set[Any]] = {}
        for fam in self.proxiers:
            spm = build_service_port_map(self._services.values(), fam)
            epm = build_endpoints_map(self._slices.values(), fam, self.node.name)
            for info in spm.values():
                if info.protocol_lower != "udp":
                    continue
                ips = {ip_address(e.ip) for e in epm.get(info.name, ()) if e.serving}
                if not ips:  # a Service without endpoints needs no cleanup
                    continue
                for vip in (info.cluster_ip, *info.load_balancer_vips, *info.external_ips):
                    by_ip[(vip, info.port)] = ips
                if info.node_port:
                    by_nodeport[info.node_port] = ips
        dead = 0
        for e in flows:
            src = e.reply.src
            live = by_ip.get((e.orig.dst, e.orig.dport))
            nps = by_nodeport.get(e.orig.dport)
            if (live is not None and src not in live) or (nps is not None and src not in nps):
                ct.remove(e)
                dead += 1
        return dead

    # -- what the engine runs
    def local_addresses(self) -> tuple[Any, ...]:
        return tuple(self.node.ips())

    def _install_addresses(self) -> None:
        eng = self._netfilter()
        eng.set_local_addresses(self.local_addresses())
        eng.masquerade_address = _masq(self.node)

    def _netfilter(self) -> Any:
        return self.engine

    def _install(self, now: float) -> None:
        raise NotImplementedError

    # -- what users see
    def rulesets(self) -> dict[int, Any]:
        """The iptables tables the engine runs (IPVS mode: the glue); none in nftables mode."""
        return {}

    def tables(self) -> dict[int, Any]:
        """The mode's live tables per family (RuleSet, or NftTable in nftables mode)."""
        return self.rulesets()

    def restore_text(self, family: int = 4) -> str:
        from knet.netfilter.rules import render_restore

        rs = self.rulesets().get(family)
        return render_restore(rs) if rs is not None else ""

    def text(self, families: Iterable[int] | None = None, table: str | None = None,
             fmt: str = "restore") -> str:
        """The node's state in the mode's native text (what ``knet rules`` prints)."""
        raise NotImplementedError

    def to_json(self, families: Iterable[int] | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def _fams(self, families: Iterable[int] | None) -> list[int]:
        fams = list(self.families if families is None else families)
        return [f for f in fams if f in self.proxiers]


class IptablesDataplane(Dataplane):
    """iptables mode: ``knet.proxy.iptables.Proxier`` (KEP-3453 partial syncs) per family,
    executed by ``knet.netfilter.Netfilter`` over the proxiers' live RuleSets."""

    mode = "iptables"

    def __init__(self, node: Any, proxy_config: Any, cluster_config: Any,
                 families: Iterable[int], rng: random.Random) -> None:
        from knet.netfilter.engine import Netfilter

        super().__init__(node, proxy_config, cluster_config, families, rng)
        self.proxiers = {f: make_proxier("iptables", node, proxy_config, cluster_config, f)
                         for f in self.families}
        self.engine = Netfilter(None, None, local_addresses=self.local_addresses(),
                                masquerade_address=_masq(node), rng=rng)
        self._install(0.0)

    def _install(self, now: float) -> None:
        for f, p in self.proxiers.items():
            self.engine.rulesets[f] = p.ruleset  # updated in place by every sync

    def rulesets(self) -> dict[int, Any]:
        return {f: p.ruleset for f, p in self.proxiers.items()}

    def last_restore_input(self, family: int = 4) -> str:
        """What the last sync sent to iptables-restore (a partial sync is partial)."""
        r = self.results.get(family)
        return r.restore_text if r is not None else ""

    def text(self, families: Iterable[int] | None = None, table: str | None = None,
             fmt: str = "restore") -> str:
        from knet.netfilter.rules import render_restore, render_save

        fams = self._fams(families)
        out = []
        for f in fams:
            rs = self.proxiers[f].ruleset
            t = render_restore(rs) if fmt == "restore" else render_save(rs)
            if len(fams) > 1 and fmt == "restore":
                t = f"# {'iptables' if f == 4 else 'ip6tables'}-restore input (IPv{f})\n" + t
            out.append(only_table(t, table))
        return "".join(out)

    def to_json(self, families: Iterable[int] | None = None) -> dict[str, Any]:
        js = [ruleset_json(self.proxiers[f].ruleset) for f in self._fams(families)]
        return js[0] if len(js) == 1 else {"families": js}


class _FamilyTable:
    """One family's view of the node's IPVS table. Upstream runs one IPVS proxier per family
    over the one kernel table, and each leaves the other family's virtual servers alone
    (``cleanLegacyService`` skips them); ``IPVS.apply`` replaces the whole table, so the view
    re-applies the other family's virtual servers unchanged (a no-op for them)."""

    __slots__ = ("table", "family")

    def __init__(self, table: Any, family: int) -> None:
        self.table, self.family = table, family

    def apply(self, virtual_servers: Iterable[Any], now: float = 0.0) -> None:
        others = [s.spec for s in self.table.services.values()
                  if s.spec.address.version != self.family]
        self.table.apply([*virtual_servers, *others], now)

    @property
    def services(self) -> dict[tuple, Any]:
        return {k: s for k, s in self.table.services.items() if k[1] == self.family}


class IPVSDataplane(Dataplane):
    """IPVS mode (kube-proxy.md §4): ``IPVSProxier`` per family over the node's one IPVS
    table, executed by ``IPVSNetfilter`` (the glue ``Netfilter`` with the ipsets and the
    kube-ipvs0 addresses local, IPVS at LOCAL_IN/LOCAL_OUT). Every sync is a full one; the
    IPVS table persists, so removed real servers drain at weight 0 (graceful termination)."""

    mode = "ipvs"

    def __init__(self, node: Any, proxy_config: Any, cluster_config: Any,
                 families: Iterable[int], rng: random.Random) -> None:
        from knet.netfilter.engine import Netfilter
        from knet.netfilter.ipvs import IPVS, IPVSNetfilter

        super().__init__(node, proxy_config, cluster_config, families, rng)
        self.ipvs = IPVS(tcp_timeout=proxy_config.ipvs_tcp_timeout,
                         tcp_fin_timeout=proxy_config.ipvs_tcp_fin_timeout,
                         udp_timeout=proxy_config.ipvs_udp_timeout)
        self.proxiers = {f: make_proxier("ipvs", node, proxy_config, cluster_config, f,
                                         ipvs=_FamilyTable(self.ipvs, f))
                         for f in self.families}
        nf = Netfilter(None, None, local_addresses=self.local_addresses(),
                       masquerade_address=_masq(node), rng=rng, ipsets={}, ipvs=self.ipvs)
        self.engine = IPVSNetfilter(nf, self.ipvs, proxy_config.masquerade_mark)

    def _netfilter(self) -> Any:
        return self.engine.nf

    def local_addresses(self) -> tuple[Any, ...]:
        """The node's addresses plus those bound to kube-ipvs0 (§4.1)."""
        out = dict.fromkeys(self.node.ips())
        for st in self.results.values():
            out.update(dict.fromkeys(st.dummy_addresses))
        return tuple(out)

    def _install(self, now: float) -> None:
        nf = self.engine.nf
        ipsets: dict[str, Any] = {}
        for f, st in self.results.items():
            nf.rulesets[f] = st.ruleset()
            ipsets.update(st.ipset_map())
        nf.ipsets = ipsets
        self._install_addresses()
        self.engine._scratch = None  # enumerate_outcomes' dry-run engine saw the old tables
        self._expire_nodest_conns()

    def _expire_nodest_conns(self) -> None:
        """``net/ipv4/vs/expire_nodest_conn=1`` (set by kube-proxy): a connection whose real
        server was deleted (UDP/SCTP real servers go at once) does not keep its packets;
        the next one is scheduled anew. (The kernel expires it on its next packet and drops
        that packet; knet expires it when the real server goes.)"""
        t = self.ipvs
        for k, c in list(t.conns.items()):
            svc = t.services.get((c.protocol, c.vaddr.version, int(c.vaddr), c.vport))
            if svc is None or all(d is not c.dest for d in svc.dests.values()):
                t._drop_conn(k, c)

    def rulesets(self) -> dict[int, Any]:
        return dict(self.engine.nf.rulesets)

    def ipvsadm(self, family: int | None = None) -> str:
        """``ipvsadm -Ln`` of the live table: draining (weight 0) real servers and the
        ActiveConn/InActConn counters included."""
        from knet.netfilter.ipvs import dest_sort_key, render_ipvsadm, sort_key

        svcs = sorted((s for s in self.ipvs.services.values()
                       if family is None or s.spec.address.version == family),
                      key=lambda s: sort_key(s.spec))
        return render_ipvsadm((s.spec, sorted(s.dest_list(), key=dest_sort_key)) for s in svcs)

    def text(self, families: Iterable[int] | None = None, table: str | None = None,
             fmt: str = "restore") -> str:
        from knet.netfilter.rules import render_save

        parts: list[str] = []
        for f in self._fams(families):
            st = self.results.get(f)
            if st is None:
                continue
            tool = "iptables" if f == 4 else "ip6tables"
            ipt = st.restore_text if fmt == "restore" else render_save(st.ruleset())
            ipt = only_table(ipt, table)
            if table is not None:
                parts.append(ipt)
                continue
            parts.append(f"# ip addr show {'kube-ipvs0' if f == 4 else '-6 kube-ipvs0'} "
                         f"(IPv{f})\n" + "\n".join(_dummy_lines(st.dummy_addresses)) + "\n")
            parts.append(f"# ipvsadm -Ln (IPv{f} virtual servers)\n" + self.ipvsadm(f))
            parts.append(f"# ipset list (IPv{f})\n" + st.ipset_list())
            label = "restore input" if fmt == "restore" else "save"
            parts.append(f"# {tool}-{label} (IPv{f})\n" + ipt)
        return "\n".join(parts)

    def to_json(self, families: Iterable[int] | None = None) -> dict[str, Any]:
        from knet.netfilter.ipvs import sort_key
        from knet.proxy.ipvs import vs_json

        fams = self._fams(families)
        sts = [self.results[f] for f in fams if f in self.results]
        live = sorted((s for s in self.ipvs.services.values()
                       if s.spec.address.version in fams), key=lambda s: sort_key(s.spec))
        js: dict[str, Any] = {
            "virtualServers": [vs_json(s.spec, s.dest_list()) for s in live],
            "ipsets": {s.name: {"type": s.type, "entries": list(s.entries)}
                       for st in sts for s in st.ipsets},
            "dummyAddresses": [str(a) for st in sts for a in st.dummy_addresses],
            "iptables": sts[0].restore_text if sts else "",
        }
        if len(sts) > 1:
            js["ip6tables"] = sts[1].restore_text
        return js


class NftablesDataplane(Dataplane):
    """nftables mode (kube-proxy.md §5): ``NFTProxier`` per family, each applying its
    transactions to its live ``NftTable``; ``knet.netfilter.nft.Nftables`` executes the
    tables (one conntrack across table updates)."""

    mode = "nftables"

    def __init__(self, node: Any, proxy_config: Any, cluster_config: Any,
                 families: Iterable[int], rng: random.Random) -> None:
        from knet.netfilter.nft import Nftables

        super().__init__(node, proxy_config, cluster_config, families, rng)
        self.proxiers = {f: make_proxier("nftables", node, proxy_config, cluster_config, f)
                         for f in self.families}
        self.engine = Nftables({f: p.table for f, p in self.proxiers.items()},
                               local_addresses=self.local_addresses(),
                               masquerade_address=_masq(node), rng=rng)

    def _install(self, now: float) -> None:
        for f, p in self.proxiers.items():
            self.engine.tables[f] = p.table  # the transaction was applied in place

    def tables(self) -> dict[int, Any]:
        return {f: p.table for f, p in self.proxiers.items()}

    def last_transaction(self, family: int = 4) -> str:
        """What the last sync sent to ``nft -f`` (stale chain deletions included)."""
        p = self.proxiers.get(family)
        return p.last_transaction if p is not None else ""

    def text(self, families: Iterable[int] | None = None, table: str | None = None,
             fmt: str = "restore") -> str:
        if fmt != "restore":
            raise UsageError("--format iptables-save applies to the iptables and ipvs modes")
        return "".join(self.results[f].text for f in self._fams(families) if f in self.results)

    def to_json(self, families: Iterable[int] | None = None) -> dict[str, Any]:
        from knet.proxy.nftables import table_json

        fams = [f for f in self._fams(families) if f in self.results]
        return {"transaction": "".join(self.results[f].text for f in fams),
                "tables": [table_json(self.proxiers[f].table) for f in fams]}


_DATAPLANES: dict[str, type[Dataplane]] = {
    "iptables": IptablesDataplane, "ipvs": IPVSDataplane, "nftables": NftablesDataplane}


def make_dataplane(mode: str, node: Any, proxy_config: Any, cluster_config: Any,
                   families: Iterable[int], rng: random.Random) -> Dataplane:
    """The one place a node's kube-proxy + datapath is built for a mode (runtime and static
    paths alike)."""
    cls = _DATAPLANES.get(mode or "iptables")
    if cls is None:
        raise UsageError(f"unknown kube-proxy mode {mode!r} (expected one of {', '.join(MODES)})")
    return cls(node, proxy_config, cluster_config, families, rng)


def node_dataplane(cluster: Any, node: Any, rng: random.Random, mode: str,
                   families: Iterable[int] | None = None, now: float = 0.0) -> Dataplane:
    """A node's dataplane after kube-proxy's first (full) sync of the converged state."""
    cfg = cluster.config
    dp = make_dataplane(mode, node, cfg.kube_proxy, cfg,
                        tuple(families) if families is not None else _families(cluster), rng)
    for svc in cluster.services():
        dp.on_service_change(None, svc)
    for es in cluster.endpoint_slices():
        dp.on_slice_change(None, es)
    dp.sync(now)
    return dp


def node_datapath(cluster: Any, node: Any, rng: random.Random, mode: str) -> Any:
    """The node's datapath in ``mode`` (iptables, ipvs, nftables): the engine of its
    dataplane after a full sync."""
    return node_dataplane(cluster, node, rng, mode).engine


# --- knet rules --mode ipvs|nftables ------------------------------------------------------

def _dummy_lines(addrs: Iterable[Any]) -> list[str]:
    out = []
    for a in addrs:
        if a.version == 6:
            out.append(f"    inet6 {a}/128 scope global")
        else:
            out.append(f"    inet {a}/32 scope global kube-ipvs0")
    return out


def render(cluster: Any, node: Any, mode: str, families: list[int], table: str | None,
           fmt: str, output: str) -> str | dict:
    """``knet rules``: the mode's native text, or a JSON-able dict (``output == "json"``)."""
    if mode not in MODES:
        raise UsageError(f"unknown kube-proxy mode {mode!r}")
    if mode == "nftables" and fmt != "restore":
        raise UsageError("--format iptables-save applies to the iptables and ipvs modes")
    dp = node_dataplane(cluster, node, random.Random(0), mode, families)
    return dp.to_json() if output == "json" else dp.text(None, table, fmt)


# --- mode comparison ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Flow:
    node: str
    source: str       # "pod ns/name" | "outside"
    src: Any
    dst: Any
    port: int
    proto: str
    service: str      # ns/name:port
    kind: str         # ClusterIP | NodePort | LoadBalancer | ExternalIP | ClusterIP-unused-port
    iif: str

    @property
    def destination(self) -> str:
        return f"[{self.dst}]:{self.port}" if self.dst.version == 6 else f"{self.dst}:{self.port}"


@dataclass(frozen=True, slots=True)
class ModeResult:
    outcomes: tuple[str, ...]
    masquerade: bool
    rules_walked: int
    lookups: int


@dataclass(frozen=True, slots=True)
class FlowReport:
    flow: Flow
    results: dict[str, ModeResult]

    @property
    def differs(self) -> bool:
        vals = list(self.results.values())
        a = vals[0]
        return any(set(b.outcomes) != set(a.outcomes) or
                   (b.masquerade != a.masquerade and bool(b.outcomes) and bool(a.outcomes))
                   for b in vals[1:])


@dataclass(slots=True)
class Report:
    modes: tuple[str, ...]
    flows: list[FlowReport] = field(default_factory=list)

    @property
    def differences(self) -> list[FlowReport]:
        return [f for f in self.flows if f.differs]

    def cost(self, mode: str) -> dict[str, float]:
        rs = [f.results[mode] for f in self.flows if mode in f.results]
        if not rs:
            return {"flows": 0, "rules_walked_mean": 0.0, "rules_walked_max": 0,
                    "lookups_mean": 0.0}
        return {"flows": len(rs),
                "rules_walked_mean": round(sum(r.rules_walked for r in rs) / len(rs), 2),
                "rules_walked_max": max(r.rules_walked for r in rs),
                "lookups_mean": round(sum(r.lookups for r in rs) / len(rs), 2)}

    def to_json(self) -> dict[str, Any]:
        def fl(f: FlowReport) -> dict[str, Any]:
            x = f.flow
            return {"node": x.node, "source": x.source, "src": str(x.src),
                    "destination": x.destination, "protocol": x.proto, "service": x.service,
                    "kind": x.kind, "differs": f.differs,
                    "modes": {m: {"outcomes": list(r.outcomes), "masquerade": r.masquerade,
                                  "rulesWalked": r.rules_walked, "lookups": r.lookups}
                              for m, r in f.results.items()}}
        return {"modes": list(self.modes), "flows": len(self.flows),
                "differences": [fl(f) for f in self.differences],
                "cost": {m: self.cost(m) for m in self.modes},
                "all": [fl(f) for f in self.flows]}

    def render_text(self) -> str:
        out = [f"{len(self.flows)} flows compared across {', '.join(self.modes)}; "
               f"{len(self.differences)} differ."]
        for f in self.differences:
            x = f.flow
            out.append("")
            out.append(f"{x.node}: {x.source} ({x.src}) → {x.destination}/{x.proto} "
                       f"[{x.kind} {x.service}]")
            for m, r in f.results.items():
                oc = ", ".join(r.outcomes) if r.outcomes else "(no match: not load-balanced)"
                out.append(f"  {m:<9} {oc}{'  masquerade' if r.masquerade else ''}")
        out.append("")
        out.append("first-packet cost (one evaluation per flow):")
        out.append(f"  {'mode':<9} {'rules walked (mean)':>20} {'max':>6} {'set/map lookups':>16}")
        for m in self.modes:
            c = self.cost(m)
            out.append(f"  {m:<9} {c['rules_walked_mean']:>20} {c['rules_walked_max']:>6} "
                       f"{c['lookups_mean']:>16}")
        return "\n".join(out) + "\n"


def default_flows(cluster: Any) -> list[Flow]:
    """Every node × every service port (ClusterIP, NodePort on each node address, LB IPs,
    externalIPs, plus one unused ClusterIP port), from a pod on that node and from outside."""
    from knet.netfilter.packet import veth_name
    from knet.proxy.serviceport import build_service_port_map

    flows: list[Flow] = []
    fams = _families(cluster)
    pods_by_node: dict[str, Any] = {}
    for p in cluster.pods():
        if (p.spec.node_name and not p.spec.host_network and p.status.pod_ips
                and p.spec.node_name not in pods_by_node):
            pods_by_node[p.spec.node_name] = p
    for fam in fams:
        spm = build_service_port_map(cluster.services(), fam)
        infos = sorted(spm.values(), key=lambda i: (i.name_string, str(i.protocol)))
        for node in cluster.nodes():
            sources = []
            pod = pods_by_node.get(node.name)
            if pod is not None:
                ips = [ip for ip in pod.status.pod_ips if ip.version == fam]
                if ips:
                    sources.append((f"pod {pod.key}", ips[0], veth_name(pod.key)))
            sources.append(("outside", OUTSIDE_CLIENT[fam], "eth0"))
            for info in infos:
                proto = info.protocol_lower
                dests = [(info.cluster_ip, info.port, "ClusterIP")]
                if info.node_port:
                    dests += [(a, info.node_port, "NodePort") for a in node.ips(fam)]
                dests += [(a, info.port, "LoadBalancer") for a in info.load_balancer_vips]
                dests += [(a, info.port, "ExternalIP") for a in info.external_ips]
                used = {i.port for i in infos if i.cluster_ip == info.cluster_ip}
                unused = next(p for p in range(info.port + 1, 65536) if p not in used)
                if info is min((i for i in infos if i.cluster_ip == info.cluster_ip),
                               key=lambda i: (i.name_string, str(i.protocol))):
                    dests.append((info.cluster_ip, unused, "ClusterIP-unused-port"))
                for label, src, iif in sources:
                    for dst, port, kind in dests:
                        flows.append(Flow(node.name, label, src, dst, port, proto,
                                          info.name_string, kind, iif))
    return flows


def _cost(dp: Any, pkt: Packet) -> tuple[int, int]:
    r = dp.process(pkt, "prerouting", 0.0, explain=False)
    lookups = getattr(dp, "last_lookups", 0)
    if hasattr(dp, "reset"):
        dp.reset()
    else:
        dp.conntrack.flush()
    return r.rules_walked, lookups


def compare(cluster: Any, flows: list[Flow] | None = None,
            modes: tuple[str, ...] = MODES, seed: int = 0) -> Report:
    """Run every flow's first packet through each mode: outcomes, masquerade, cost."""
    flows = default_flows(cluster) if flows is None else flows
    rng = random.Random(seed)
    dps: dict[tuple[str, str], Any] = {}
    report = Report(tuple(modes))
    for fl in flows:
        results: dict[str, ModeResult] = {}
        pkt = Packet(fl.src, fl.dst, Proto(fl.proto), 40000, fl.port,
                     "S" if fl.proto == "tcp" else "", iif=fl.iif)
        for m in modes:
            dp = dps.get((m, fl.node))
            if dp is None:
                dp = dps[(m, fl.node)] = node_datapath(
                    cluster, cluster.node(fl.node), random.Random(rng.getrandbits(64)), m)
            oc = dp.enumerate_outcomes(pkt, "prerouting", affinity=False)
            walked, lookups = _cost(dp, pkt)
            results[m] = ModeResult(tuple(oc.outcomes), oc.masquerade, walked, lookups)
        report.flows.append(FlowReport(fl, results))
    return report


def render_text(report: Report) -> str:
    return report.render_text()


def to_json(report: Report) -> dict[str, Any]:
    return report.to_json()


__all__ = ["MODES", "Dataplane", "Flow", "FlowReport", "IPVSDataplane", "IptablesDataplane",
           "ModeResult", "NftablesDataplane", "Report", "compare", "default_flows",
           "make_dataplane", "make_proxier", "node_dataplane", "node_datapath", "render",
           "render_text", "to_json"]
