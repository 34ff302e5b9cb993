"""Reachability tables (``knet reach``): who can open a connection to whom, per port/protocol.

Invariants:
- Every cell is the first packet of a new connection sent through the real datapath (the
  nodes' kube-proxy tables, then the network-policy hook) by ``knet.path.ClusterPath``: to a
  ClusterIP of a Service whose only endpoint is the destination pod (``via="service"``, as
  the upstream e2e probes do; the pod IP when there is none) or to the pod IP (``via="pod"``).
  A cell is allowed iff the packet is delivered to the destination pod itself.
- A pod to itself is never scored (``~``): upstream e2e ignores those cells (kubernetes#95879).
- Text form = the upstream e2e / cyclonus truth table: a header row ``-`` then the "to"
  pods, one row per "from" pod, ``.`` allowed, ``X`` blocked, ``~`` self; columns separated
  by whitespace. Pure: no IO.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from knet.errors import UsageError

PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(slots=True)
class Probe:
    port: int
    protocol: str
    via: str
    pods: list[str]
    matrix: dict[str, dict[str, bool | None]] = field(default_factory=dict)
    stories: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    @property
    def title(self) -> str:
        return f"{self.protocol}/{self.port} via {self.via}"

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "protocol": self.protocol, "via": self.via,
                "pods": list(self.pods),
                "matrix": {f: {t: v for t, v in row.items() if v is not None}
                           for f, row in self.matrix.items()}}

    def render(self) -> str:
        return render_matrix(self.pods, self.matrix)


@dataclass(slots=True)
class Reachability:
    probes: list[Probe]

    def to_json(self) -> dict[str, Any]:
        return {"probes": [p.to_json() for p in self.probes]}

    def render(self) -> str:
        return "".join(f"{p.title}\n{p.render()}\n" for p in self.probes).rstrip("\n") + "\n"

    def __str__(self) -> str:
        return self.render()

    def probe(self, port: int, protocol: str = "TCP") -> Probe:
        for p in self.probes:
            if p.port == port and p.protocol == protocol.upper():
                return p
        raise KeyError(f"{protocol}/{port}")

    def differences(self, expected: str) -> list[str]:
        """Cells that differ from a table in the text format (``[]``: equal)."""
        tables = parse_tables(expected)
        out: list[str] = []
        for p in self.probes:
            want = tables.get(p.title.split(" ")[0]) or tables.get("")
            if want is None:
                continue
            for f in p.pods:
                for t in p.pods:
                    got = p.matrix[f][t]
                    exp = want.get(f, {}).get(t)
                    if got is None or exp is None:
                        continue
                    if got != exp:
                        out.append(f"{p.title}: {f} → {t}: expected "
                                   f"{'.' if exp else 'X'}, got {'.' if got else 'X'}")
        return out


def render_matrix(pods: Sequence[str], matrix: dict[str, dict[str, bool | None]]) -> str:
    rows = ["\t".join(["-", *pods])]
    for f in pods:
        cells = []
        for t in pods:
            v = matrix[f][t]
            cells.append("~" if v is None else ("." if v else "X"))
        rows.append("\t".join([f, *cells]))
    return "\n".join(r.rstrip() for r in rows) + "\n"


def parse_tables(text: str) -> dict[str, dict[str, dict[str, bool | None]]]:
    """``{"TCP/80": {from: {to: allowed}}}`` (key "" for a table without a title line)."""
    out: dict[str, dict[str, dict[str, bool | None]]] = {}
    title = ""
    header: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            header = None if not line else header
            continue
        toks = line.split()
        if toks[0] == "-":
            header = toks[1:]
            out.setdefault(title, {})
            continue
        if header is None:
            title = toks[0].upper()
            continue
        if len(toks) != len(header) + 1:
            raise UsageError(f"reachability row {toks[0]!r} has {len(toks) - 1} cells for "
                             f"{len(header)} columns")
        row: dict[str, bool | None] = {}
        for t, mark in zip(header, toks[1:]):
            if mark not in (".", "X", "x", "~"):
                raise UsageError(f"reachability cell {toks[0]} → {t}: expected '.', 'X' or "
                                 f"'~', got {mark!r}")
            row[t] = None if mark == "~" else mark == "."
        out[title][toks[0]] = row
    return out


def table_shape(text: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The pods (the first table's header) and the ``(port, protocol)`` probes (its title
    lines, e.g. ``TCP/80``; ``[(80, "TCP")]`` without one) of a table in the text format."""
    tables = parse_tables(text)
    if not tables:
        raise UsageError("no reachability table (a header row starting with '-') found")
    first = next(iter(tables.values()))
    pods: list[str] = list(first)
    for row in first.values():
        pods += [t for t in row if t not in pods]
    probes = []
    for title in tables:
        proto, _, port = title.partition("/")
        if port.isdigit() and proto in PROTOCOLS:
            probes.append((int(port), proto))
    return pods, probes or [(80, "TCP")]


def _service_for(cluster: Any, pod: Any, port: int, proto: str) -> tuple[Any, int] | None:
    """A ClusterIP and service port whose only endpoint is ``pod`` at ``port``/``proto``."""
    from knet.model.meta import selector_matches

    best = None
    for svc in cluster.services(pod.namespace):
        sel = svc.spec.selector
        if not sel or not svc.spec.cluster_ip or svc.spec.cluster_ip == "None":
            continue
        if not selector_matches(sel, pod.metadata.labels):
            continue
        others = [p for p in cluster.pods(pod.namespace)
                  if p.key != pod.key and p.ip is not None
                  and selector_matches(sel, p.metadata.labels)]
        if others:
            continue
        for sp in svc.spec.ports:
            if str(sp.protocol).upper() != proto:
                continue
            target = sp.target_port
            if isinstance(target, str):
                target = _named(pod, target, proto)
            if (target or sp.port) == port:
                cand = (svc.spec.cluster_ip, sp.port)
                if best is None or svc.metadata.name < best[2]:
                    best = (*cand, svc.metadata.name)
    return None if best is None else (best[0], best[1])


def _named(pod: Any, name: str, proto: str) -> int | None:
    for c in pod.spec.containers:
        for p in c.ports:
            if p.name == name and str(p.protocol).upper() == proto:
                return int(p.container_port)
    return None


def select_pods(cluster: Any, pods: Iterable[str] = (), namespaces: Iterable[str] = ()
                ) -> list[str]:
    """The pods of a table: the named ones, else every pod with an IP that is not
    host-network (in the given namespaces, else outside kube-system)."""
    named = list(pods)
    if named:
        for key in named:
            cluster.pod(key)
        return named
    nss = set(namespaces)
    out = []
    for p in cluster.pods():
        if p.spec.host_network or p.ip is None:
            continue
        if nss and p.namespace not in nss:
            continue
        if not nss and p.namespace in ("kube-system", "local-path-storage"):
            continue
        out.append(p.key)
    return sorted(out)


def reachability(cluster: Any, *, pods: Iterable[str] = (), namespaces: Iterable[str] = (),
                 ports: Iterable[int] = (80,), protocols: Iterable[str] = ("TCP",),
                 via: str = "service", mode: str | None = None, seed: int | None = None,
                 explain: bool = False, path: Any = None) -> Reachability:
    """Send each cell's first packet through the cluster's datapath (module docstring).
    ``cluster``: a converged control-plane ``Cluster``; ``path``: reuse a ``ClusterPath``."""
    from knet.path import ClusterPath

    if via not in ("service", "pod"):
        raise UsageError(f"--via must be service or pod, not {via!r}")
    keys = select_pods(cluster, pods, namespaces)
    objs = {k: cluster.pod(k) for k in keys}
    cp = path if path is not None else ClusterPath(cluster, mode, seed)
    out = []
    sport = 20000
    for proto in [p.upper() for p in protocols]:
        if proto not in PROTOCOLS:
            raise UsageError(f"--protocol must be one of {', '.join(PROTOCOLS)}, not {proto!r}")
        for port in ports:
            probe = Probe(port, proto, via, list(keys))
            targets: dict[str, tuple[str, int]] = {}
            for t in keys:
                svc = _service_for(cluster, objs[t], port, proto) if via == "service" else None
                targets[t] = (str(svc[0]), svc[1]) if svc else (str(objs[t].ip), port)
            for f in keys:
                src = cp.endpoint(f)
                row: dict[str, bool | None] = {}
                for t in keys:
                    if t == f:
                        row[t] = None
                        continue
                    sport += 1
                    host, dport = targets[t]
                    w = cp.walk_packet(src, host, dport, proto.lower(), sport=sport,
                                       explain=explain)
                    ok = (w.verdict == "ACCEPT" and w.destination is not None
                          and w.destination.pod is not None and w.destination.pod.key == t)
                    row[t] = ok
                    if explain:
                        probe.stories[(f, t)] = w
                probe.matrix[f] = row
            out.append(probe)
    return Reachability(out)


def explain_cell(cluster: Any, src: str, dst: str, port: int, protocol: str = "TCP", *,
                 via: str = "service", mode: str | None = None, seed: int | None = None
                 ) -> str:
    """The policy story of one cell (``knet reach --explain``)."""
    table = reachability(cluster, pods=[src, dst], ports=[port], protocols=[protocol],
                         via=via, mode=mode, seed=seed, explain=True)
    probe = table.probes[0]
    w = probe.stories.get((src, dst))
    ok = probe.matrix[src][dst]
    lines = [f"{src} → {dst} {protocol.upper()}/{port} via {via}: "
             f"{'allowed' if ok else 'blocked' if ok is not None else 'self (not scored)'}"]
    if w is not None:
        lines.append(f"  packet: {w.packet!r}")
        lines += [f"  {n}" for n in policy_notes(w)]
        if w.destination is not None and w.destination.pod is not None and \
                w.destination.pod.key != dst:
            lines.append(f"  delivered to {w.destination} instead")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Change:
    """One cell that differs between two tables, and the policy story behind the new value."""

    probe: str
    src: str
    dst: str
    before: bool
    after: bool
    why: tuple[str, ...] = ()

    def __str__(self) -> str:
        mark = {True: ".", False: "X"}
        why = "".join(f"\n    {w}" for w in self.why)
        return f"{self.probe}: {self.src} → {self.dst}: {mark[self.before]} → " \
               f"{mark[self.after]}{why}"

    def to_json(self) -> dict[str, Any]:
        return {"probe": self.probe, "from": self.src, "to": self.dst, "before": self.before,
                "after": self.after, "why": list(self.why)}


def policy_notes(walk: Any) -> tuple[str, ...]:
    """The policy steps of a walk (``on NODE: network policy: …``)."""
    if walk is None:
        return ()
    out = tuple(f"on {h.node}: {s.note}" for h in walk.hops for s in h.result.steps
                if s.table == "policy")
    if not out and walk.verdict != "ACCEPT":
        out = (f"dropped by the node's tables ({walk.verdict}), not by policy",)
    return out


def diff(before: Reachability, after: Reachability) -> list[Change]:
    """Every cell that changes between two tables (``after`` computed with ``explain=True``
    carries the story of each new value)."""
    out = []
    for p in before.probes:
        try:
            q = after.probe(p.port, p.protocol)
        except KeyError:
            continue
        for f in p.pods:
            for t in p.pods:
                a, b = p.matrix[f].get(t), q.matrix.get(f, {}).get(t)
                if a is None or b is None or a == b:
                    continue
                out.append(Change(p.title, f, t, a, b, policy_notes(q.stories.get((f, t)))))
    return out
