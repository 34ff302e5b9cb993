"""kube-proxy modes side by side: per-node datapaths, rendering, and the mode comparison.

Invariants:
- ``node_datapath`` builds, for one node, exactly the state ``render`` prints for the same
  mode (iptables tables; IPVS glue + ipsets + virtual servers; the nftables transaction),
  and returns an object with ``forward(packet, entered_from, now) -> Result`` and
  ``enumerate_outcomes(packet, hook_path, affinity=False) -> Outcomes``.
- ``compare`` only enumerates first-packet outcomes (no state is touched) and measures the
  rule-walk cost of one evaluation on a scratch connection table; it never samples.
- Pure: no IO, randomness from the caller's rng.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, Iterable

from knet.errors import UsageError
from knet.netfilter.packet import Packet, Proto

MODES = ("iptables", "ipvs", "nftables")
OUTSIDE_CLIENT = {4: ip_address("203.0.113.10"), 6: ip_address("2001:db8:ffff::10")}


def _families(cluster: Any) -> tuple[int, ...]:
    return tuple(cluster.config.families)


def _masq(node: Any) -> dict[int, Any]:
    return {ip.version: ip for ip in reversed(node.ips())}


def ipvs_states(cluster: Any, node: Any, families: Iterable[int] | None = None) -> dict:
    from knet.proxy import ipvs

    cfg = cluster.config
    return {f: ipvs.build_state(node, cluster.services(), cluster.endpoint_slices(),
                                cfg.kube_proxy, cfg, f)
            for f in (families or _families(cluster))}


def nft_states(cluster: Any, node: Any, families: Iterable[int] | None = None) -> dict:
    from knet.proxy import nftables

    cfg = cluster.config
    return {f: nftables.build_state(node, cluster.services(), cluster.endpoint_slices(),
                                    cfg.kube_proxy, cfg, f)
            for f in (families or _families(cluster))}


def ipvs_datapath(states: dict, node: Any, rng: random.Random) -> Any:
    from knet.netfilter.engine import Netfilter
    from knet.netfilter.ipvs import IPVS, IPVSNetfilter

    ipsets: dict = {}
    local = list(node.ips())
    vss = []
    for st in states.values():
        ipsets.update(st.ipset_map())
        local.extend(st.dummy_addresses)
        vss.extend(st.virtual_servers)
    table = IPVS()
    table.apply(vss)
    # the engine's IPVS hook (LOCAL_IN/LOCAL_OUT), when this engine has it
    native = "ipvs" in inspect.signature(Netfilter.__init__).parameters
    nf = Netfilter(states[4].ruleset() if 4 in states else None,
                   states[6].ruleset() if 6 in states else None,
                   local_addresses=local, masquerade_address=_masq(node), rng=rng,
                   ipsets=ipsets, **({"ipvs": table} if native else {}))
    mark = next(iter(states.values())).nat_rules[-1].args[-1]
    return IPVSNetfilter(nf, table, int(mark, 16), native=native)


def nft_datapath(states: dict, node: Any, rng: random.Random) -> Any:
    from knet.netfilter.nft import Nftables

    return Nftables({f: st.table() for f, st in states.items()},
                    local_addresses=node.ips(), masquerade_address=_masq(node), rng=rng)


def node_datapath(cluster: Any, node: Any, rng: random.Random, mode: str) -> Any:
    """The node's datapath in ``mode`` (iptables, ipvs, nftables)."""
    if mode == "ipvs":
        return ipvs_datapath(ipvs_states(cluster, node), node, rng)
    if mode == "nftables":
        return nft_datapath(nft_states(cluster, node), node, rng)
    if mode == "iptables":
        from knet.netfilter.engine import Netfilter
        from knet.proxy.iptables import build_ruleset

        cfg = cluster.config
        rs = {f: build_ruleset(node, cluster.services(), cluster.endpoint_slices(),
                               cfg.kube_proxy, cfg, f) for f in _families(cluster)}
        return Netfilter(rs.get(4), rs.get(6), local_addresses=node.ips(),
                         masquerade_address=_masq(node), rng=rng)
    raise UsageError(f"unknown kube-proxy mode {mode!r} (expected one of {', '.join(MODES)})")


# --- knet rules --mode ipvs|nftables ------------------------------------------------------

def _only_table(text: str, table: str | None) -> str:
    from knet.cli.rules import only_table

    return only_table(text, table)


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
    """``knet rules --mode ipvs|nftables``: text, or a JSON-able dict (``output == "json"``)."""
    if mode == "ipvs":
        from knet.netfilter.rules import render_save
        from knet.proxy.ipvs import vs_json

        states = ipvs_states(cluster, node, families)
        if output == "json":
            sts = list(states.values())
            js: dict[str, Any] = {
                "virtualServers": [vs_json(vs) for st in sts for vs in st.virtual_servers],
                "ipsets": {s.name: {"type": s.type, "entries": list(s.entries)}
                           for st in sts for s in st.ipsets},
                "dummyAddresses": [str(a) for st in sts for a in st.dummy_addresses],
                "iptables": sts[0].restore_text,
            }
            if len(sts) > 1:
                js["ip6tables"] = sts[1].restore_text
            return js
        parts: list[str] = []
        for f, st in states.items():
            tool = "iptables" if f == 4 else "ip6tables"
            ipt = (st.restore_text if fmt == "restore" else render_save(st.ruleset()))
            ipt = _only_table(ipt, table)
            if table is not None:
                parts.append(ipt)
                continue
            parts.append(f"# ip addr show {'kube-ipvs0' if f == 4 else '-6 kube-ipvs0'} "
                         f"(IPv{f})\n" + "\n".join(_dummy_lines(st.dummy_addresses)) + "\n")
            parts.append(f"# ipvsadm -Ln (IPv{f} virtual servers)\n" + st.ipvsadm())
            parts.append(f"# ipset list (IPv{f})\n" + st.ipset_list())
            label = "restore input" if fmt == "restore" else "save"
            parts.append(f"# {tool}-{label} (IPv{f})\n" + ipt)
        return "\n".join(parts)
    if mode == "nftables":
        from knet.proxy.nftables import table_json

        if fmt != "restore":
            raise UsageError("--format iptables-save applies to the iptables and ipvs modes")
        states = nft_states(cluster, node, families)
        if output == "json":
            return {"transaction": "".join(st.text for st in states.values()),
                    "tables": [table_json(st.table()) for st in states.values()]}
        return "".join(st.text for st in states.values())
    raise UsageError(f"unknown kube-proxy mode {mode!r}")


# --- proxier objects for the runtime -------------------------------------------------------

def make_proxier(mode: str, node: Any, proxy_config: Any, cluster_config: Any,
                 family: int) -> Any:
    """A per-node, per-family proxier (``on_service_change``/``on_slice_change``/
    ``on_node_change``/``sync(now)``) for ``mode``."""
    if mode == "ipvs":
        from knet.proxy.ipvs import IPVSProxier

        return IPVSProxier(node, proxy_config, cluster_config, family)
    if mode == "nftables":
        from knet.proxy.nftables import NFTProxier

        return NFTProxier(node, proxy_config, cluster_config, family)
    raise UsageError(f"no proxier for mode {mode!r}")


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
    from knet.path import veth_name
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


__all__ = ["MODES", "Flow", "FlowReport", "ModeResult", "Report", "compare", "default_flows",
           "make_proxier", "node_datapath", "render", "render_text", "to_json"]
