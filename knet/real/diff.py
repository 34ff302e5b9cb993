"""``knet diff``: what knet predicts for the files, next to what a live cluster reports.

Checks, object by object (each row agrees or differs):
- ``object``: every object of the files exists in the cluster (same kind, namespace, name).
- ``scheduling``: pods with stable names (bare Pods, StatefulSet pods) on the node knet's
  scheduler picks; for ReplicaSet pods, how many land on each node.
- ``endpoints``: per Service, the ready endpoints and their ports (EndpointSlices).
- ``dns``: per Service name, knet's CoreDNS answer computed over the *live* objects, next to
  the answer a helper pod gets from the cluster's DNS (``nslookup`` in a busybox pod that the
  check creates in the Service's namespace and deletes).
- ``reach`` (``--reach-port P``): the reachability table of the files' stably named pods
  (TCP to each pod IP) that knet's datapath and policies give, against ``nc -z`` from each pod
  in the cluster.
- ``rules`` (``--rules-from NODE=FILE``, a real node's ``iptables-save``): the KUBE-SVC /
  KUBE-SEP / KUBE-EXT / KUBE-FW chains per Service in the dump, next to the chains knet's
  kube-proxy writes for the same Services and endpoints (chain names are hashes of the
  Service port and endpoint, so they match when the two agree).
Addresses the API server allocates (ClusterIPs, pod IPs) are compared through the live
objects, not against knet's own allocation, which is seeded and differs by design.
"""

from __future__ import annotations

import asyncio
import re
import contextlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from knet.errors import UsageError
from knet.real.state import LiveState, close_api, open_api


@dataclass(frozen=True, slots=True)
class Row:
    check: str
    object: str
    knet: str
    cluster: str

    @property
    def agrees(self) -> bool:
        return self.knet == self.cluster


@dataclass(slots=True)
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, check: str, obj: str, knet: object, cluster: object) -> None:
        self.rows.append(Row(check, obj, _show(knet), _show(cluster)))

    @property
    def differences(self) -> list[Row]:
        return [r for r in self.rows if not r.agrees]

    def to_json(self) -> dict[str, Any]:
        return {"agreements": sum(r.agrees for r in self.rows),
                "differences": [_row(r) for r in self.differences],
                "rows": [dict(_row(r), agrees=r.agrees) for r in self.rows]}

    def render(self, *, all_rows: bool = False) -> str:
        rows = self.rows if all_rows else self.differences
        out = [("CHECK", "OBJECT", "KNET", "CLUSTER", "")]
        out += [(r.check, r.object, r.knet, r.cluster, "agree" if r.agrees else "DIFFER")
                for r in rows]
        widths = [max(len(r[i]) for r in out) for i in range(5)]
        lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in out]
        n = len(self.differences)
        lines.append("")
        lines.append(f"{len(self.rows) - n} agree, {n} differ")
        return "\n".join(lines) + "\n"


def _row(r: Row) -> dict[str, str]:
    return {"check": r.check, "object": r.object, "knet": r.knet, "cluster": r.cluster}


def _show(v: object) -> str:
    if isinstance(v, (list, tuple, set, frozenset)):
        return ",".join(sorted(str(x) for x in v)) or "-"
    if isinstance(v, dict):
        return ",".join(f"{k}={v[k]}" for k in sorted(v)) or "-"
    return str(v) if v not in (None, "") else "-"


# --- the checks --------------------------------------------------------------------------------

async def diff(files: Sequence[str], *, kubeconfig: str, context: str | None = None,
               rules_from: Iterable[tuple[str, str]] = (), seed: int | None = None,
               dns: bool = True, reach_ports: Sequence[int] = ()) -> Report:
    import knet
    from knet.manifests import read
    from knet.manifests.config import is_config_kind
    from knet.manifests.read import raw_documents

    read(list(files))  # located errors first
    predicted = knet.load(list(files), seed=seed)
    docs = [d for d in raw_documents(list(files))
            if not is_config_kind(str(d.get("apiVersion", "")), str(d.get("kind", "")))
            and d.get("kind") != "Node"]
    api = await open_api(kubeconfig, context)
    try:
        live = await LiveState.fetch(api, ("namespaces", "nodes", "pods", "services",
                                           "endpointslices", "configmaps"))
        report = Report()
        await _objects(report, api, docs)
        _scheduling(report, predicted, live)
        _endpoints(report, predicted, live)
        if dns:
            await _dns(report, api, predicted, live)
        for node, path in rules_from:
            _rules(report, node, path, live)
        if reach_ports:
            await _reach(report, api, predicted, live, reach_ports)
        return report
    finally:
        await close_api(api)


async def _objects(report: Report, api: Any, docs: list[dict[str, Any]]) -> None:
    for d in docs:
        kind, meta = str(d.get("kind")), d.get("metadata") or {}
        name = meta.get("name") or meta.get("generateName", "") + "*"
        ns = meta.get("namespace") or ("" if _cluster_scoped(kind) else "default")
        key = f"{kind} {ns}/{name}" if ns else f"{kind} {name}"
        found = "present"
        try:
            got = [o async for o in api.get(kind, name, namespace=ns or None)]
            if not got:
                found = "missing"
        except Exception as e:  # noqa: BLE001 - not found, or the kind is not served at all
            found = "kind not served" if "could not find the requested resource" in str(e) \
                else "missing"
        report.add("object", key, "present", found)


def _cluster_scoped(kind: str) -> bool:
    from knet.real.cluster import _CLUSTER_SCOPED

    return kind in _CLUSTER_SCOPED


def _owner(pod: Any) -> tuple[str, str]:
    for ref in getattr(pod.metadata, "owner_references", ()) or ():
        return ref.kind, ref.name
    return "", ""


def _workload(pod: Any) -> str:
    kind, name = _owner(pod)
    if kind == "ReplicaSet":
        return f"{pod.namespace}/{name.rsplit('-', 1)[0]}"
    return ""


def _scheduling(report: Report, predicted: Any, live: LiveState) -> None:
    live_pods = {p.key: p for p in live.of("Pod")}
    mine = {p.namespace for p in predicted.pods() if p.namespace != "kube-system"}
    pods = [p for p in predicted.pods() if p.namespace in mine]
    groups: dict[str, Counter[str]] = {}
    for p in pods:
        wl = _workload(p)
        if wl:
            groups.setdefault(wl, Counter())[p.spec.node_name or "<none>"] += 1
            continue
        real = live_pods.get(p.key)
        report.add("scheduling", f"Pod {p.key}", p.spec.node_name or "<pending>",
                   (real.spec.node_name or "<pending>") if real is not None else "missing")
    real_groups: dict[str, Counter[str]] = {}
    for p in live_pods.values():
        wl = _workload(p)
        if wl in groups:
            real_groups.setdefault(wl, Counter())[p.spec.node_name or "<none>"] += 1
    for wl, counts in sorted(groups.items()):
        report.add("scheduling", f"Deployment {wl}", dict(counts), dict(real_groups.get(wl, {})))


def _ready_endpoints(slices: Iterable[Any], service: str) -> tuple[int, set[str]]:
    n, ports = 0, set()
    for es in slices:
        if es.service_name != service:
            continue
        for ep in es.endpoints:
            if ep.conditions.ready is not False:
                n += len(ep.addresses)
        for port in es.ports:
            ports.add(f"{port.name or '-'}:{port.port}/{port.protocol}")
    return n, ports


def _endpoints(report: Report, predicted: Any, live: LiveState) -> None:
    live_slices = live.of("EndpointSlice")
    for svc in predicted.services():
        if svc.namespace == "kube-system" or svc.key == "default/kubernetes":
            continue
        if live.get("Service", svc.key) is None:
            report.add("endpoints", f"Service {svc.key}", "present", "missing")
            continue
        want = _ready_endpoints([s for s in predicted.endpoint_slices() if s.namespace == svc.namespace],
                                svc.name)
        got = _ready_endpoints([s for s in live_slices if s.namespace == svc.namespace], svc.name)
        report.add("endpoints", f"Service {svc.key}", f"{want[0]} ready " + _show(want[1]),
                   f"{got[0]} ready " + _show(got[1]))


async def _dns(report: Report, api: Any, predicted: Any, live: LiveState) -> None:
    from dnslib import QTYPE, DNSRecord

    from knet.dns import DnsView
    from knet.dns.answer import answer

    view = DnsView(services=live.of("Service"), endpoint_slices=live.of("EndpointSlice"),
                   pods=live.of("Pod"), namespaces=live.of("Namespace"),
                   config_maps=live.of("ConfigMap"), shuffle=False)
    by_ns: dict[str, list[Any]] = {}
    for svc in predicted.services():
        if svc.namespace != "kube-system" and svc.key != "default/kubernetes" and \
                live.get("Service", svc.key) is not None:
            by_ns.setdefault(svc.namespace, []).append(svc)
    for ns, services in sorted(by_ns.items()):
        async with _helper_pod(api, ns) as helper:
            for svc in services:
                name = f"{svc.name}.{svc.namespace}.svc.cluster.local"
                reply = answer(view, DNSRecord.question(name, "A").pack())
                want = sorted(str(rr.rdata) for rr in DNSRecord.parse(reply).rr
                              if rr.rtype == QTYPE.A) if reply else []
                got = await _nslookup(helper, name) if helper is not None else ["<no helper pod>"]
                report.add("dns", f"{name} A", want, got)


@contextlib.asynccontextmanager
async def _helper_pod(api: Any, namespace: str) -> Any:
    """A busybox pod in ``namespace`` to ask the cluster's DNS from (deleted afterwards)."""
    from kr8s.asyncio.objects import Pod

    pod = await Pod({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"generateName": "knet-diff-", "namespace": namespace},
                     "spec": {"containers": [{"name": "probe", "image": "busybox:1.36",
                                              "command": ["sleep", "3600"]}],
                              "terminationGracePeriodSeconds": 0}}, api=api)
    await pod.create()
    try:
        try:
            await pod.wait("condition=Ready", timeout=120)
        except Exception:  # noqa: BLE001 - reported as a difference, not a crash
            yield None
            return
        yield pod
    finally:
        with contextlib.suppress(Exception):
            await pod.delete(grace_period=0)


async def _nslookup(pod: Any, name: str) -> list[str]:
    done = await pod.exec(["nslookup", "-type=a", name], check=False)
    out = done.stdout.decode() if isinstance(done.stdout, bytes) else str(done.stdout)
    addrs, seen_name = [], False
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Name:"):
            seen_name = True
        elif seen_name and line.startswith("Address"):
            addrs.append(line.split(":", 1)[1].strip().split()[0])
    return sorted(addrs)


async def _reach(report: Report, api: Any, predicted: Any, live: LiveState,
                 ports: Sequence[int]) -> None:
    """The reachability table (TCP to each pod's IP) knet predicts for the files' stably named
    pods, against probes in the cluster: ``nc -z`` run in each source pod (as the upstream e2e
    probes run from the pods themselves), eight at a time."""
    from kr8s.asyncio.objects import Pod

    from knet.policy.reach import reachability

    mine = {p.namespace for p in predicted.pods() if p.namespace != "kube-system"}
    keys = sorted(p.key for p in predicted.pods() if p.namespace in mine and not _workload(p)
                  and not p.spec.host_network and live.get("Pod", p.key) is not None)
    if len(keys) < 2:
        return
    table = reachability(predicted, pods=keys, ports=list(ports), via="pod")
    gate = asyncio.Semaphore(8)

    async def probe(src: str, dst: str, port: int) -> bool:
        ns, name = src.split("/", 1)
        ip = str(live.get("Pod", dst).status.pod_ips[0])
        async with gate:
            pod = await Pod.get(name, namespace=ns, api=api)
            done = await pod.exec(["nc", "-z", "-w", "2", ip, str(port)], check=False)
        return int(done.returncode) == 0

    for p in table.probes:
        cells = [(f, t) for f in keys for t in keys if f != t]
        got = await asyncio.gather(*(probe(f, t, p.port) for f, t in cells))
        for (f, t), ok in zip(cells, got):
            want = p.matrix[f][t]
            report.add("reach", f"TCP/{p.port} {f} → {t}", "." if want else "X",
                       "." if ok else "X")


def _rules(report: Report, node: str, path: str, live: LiveState) -> None:
    """A real node's dump against knet's kube-proxy over the same Services and endpoints."""
    from knet.netfilter.rules import parse_rules

    try:
        with open(path, encoding="utf-8") as f:
            dump = parse_rules(f.read(), validate=False)
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--rules-from {node}={path}: {e}") from None
    n = live.get("Node", node)
    if n is None:
        raise UsageError(f"--rules-from {node}=…: the cluster has no node {node!r}")
    real = _service_chains(dump)
    ours = _service_chains(_knet_rules(n, live.of("Service"), live.of("EndpointSlice")))
    for chain in sorted(set(real) | set(ours)):
        svc = (ours.get(chain) or real.get(chain) or ("", ""))[1]
        report.add("rules", f"{node} nat {chain}" + (f" ({svc})" if svc else ""),
                   ours.get(chain, ("missing",))[0], real.get(chain, ("missing",))[0])


def _knet_rules(node: Any, services: Iterable[Any], slices: Iterable[Any]) -> Any:
    """knet's kube-proxy (iptables mode) on ``node`` after a full sync of these objects."""
    import random

    from knet.model.config import ClusterConfig
    from knet.proxy.modes import make_dataplane

    cfg = ClusterConfig()
    dp = make_dataplane("iptables", node, cfg.kube_proxy, cfg, (4,), random.Random(0))
    for svc in services:
        dp.on_service_change(None, svc)
    for es in slices:
        dp.on_slice_change(None, es)
    dp.sync(0.0)
    return dp.rulesets()[4]


_SVC_IN_COMMENT = re.compile(r'--comment "?[^"]*?([a-z0-9][-a-z0-9]*/[a-z0-9][-.a-z0-9]*(?::[-\w.]+)?)')


def _service_chains(ruleset: Any) -> dict[str, tuple[str, str]]:
    """Per Service chain of the nat table: (its rules' text, the Service port its comments
    name). Two chains agree when their rules are the same, in order."""
    import hashlib

    out: dict[str, tuple[str, str]] = {}
    nat = ruleset.tables.get("nat")
    if nat is None:
        return out
    for name, chain in nat.chains.items():
        if name.startswith(("KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SVL-")):
            texts = [r.save_text(ruleset.family) for r in chain.rules]
            m = next((m for t in texts if (m := _SVC_IN_COMMENT.search(t))), None)
            digest = f"{len(texts)} rules #" + hashlib.sha256("\n".join(texts).encode()).hexdigest()[:8]
            out[name] = (digest, m.group(1) if m else "")
    return out


def run_diff(files: Sequence[str], kubeconfig: str, context: str | None,
             rules_from: Sequence[str], seed: int | None, reach_ports: Sequence[int] = ()
             ) -> Report:
    pairs = []
    for spec in rules_from:
        node, sep, path = spec.partition("=")
        if not sep or not node or not path:
            raise UsageError(f"--rules-from expects NODE=FILE, got {spec!r}")
        pairs.append((node, path))
    return asyncio.run(diff(files, kubeconfig=kubeconfig, context=context, rules_from=pairs,
                            seed=seed, reach_ports=reach_ports))


__all__ = ["Report", "Row", "diff", "run_diff"]
