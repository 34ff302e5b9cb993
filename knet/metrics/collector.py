"""The scrape side: a ``prometheus_client`` collector over a running cluster.

Invariants:
- Scrape-time gauges (kube-proxy's rule counts, conntrack entries, running pods and
  containers, CoreDNS's cache counters, the fabric's packet count) are read from the live
  runtime when Prometheus asks, so the datapath pays nothing for them.
- One collector per running cluster, registered in its own ``CollectorRegistry``: two
  clusters in one process never mix series, and the process-wide default registry is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from knet.metrics.components import ClusterMetrics


class Runtime(Protocol):
    """What the collector reads from a running cluster."""

    metrics: ClusterMetrics
    state: Any
    proxies: dict[str, Any]
    datapaths: dict[str, Any]
    kubelets: dict[str, Any]
    dns_view: Any
    fabric: Any
    # and, where the runtime has one, ``work``: the work model (knet.runtime.work)


class RuntimeCollector:
    """``collect()`` refreshes the scrape-time gauges, then yields the component families."""

    def __init__(self, rt: Runtime, component: str | None = None,
                 instance: str | None = None) -> None:
        self.rt = rt
        self.component = component
        self.instance = instance

    def refresh(self) -> None:
        rt, m = self.rt, self.rt.metrics
        for name, proxy in rt.proxies.items():
            counts: dict[str, int] = {}
            for rs in proxy.rulesets().values():
                for tname, table in getattr(rs, "tables", {}).items():
                    counts[tname] = counts.get(tname, 0) + table.rule_count()
            for tname in ("filter", "nat"):
                m.iptables_total.set((name, tname), float(counts.get(tname, 0)))
        for name, dp in rt.datapaths.items():
            m.conntrack.set((name,), float(len(dp.conntrack)))
        pods: dict[str, int] = {}
        running: dict[tuple[str, str], int] = {}
        for p in rt.state.pods():
            node = p.spec.node_name
            if not node or p.status.phase not in ("Running", "Pending"):
                continue
            if p.status.phase == "Running":
                pods[node] = pods.get(node, 0) + 1
            for cs in p.status.container_statuses:
                # kubelet's container_state values: created, running, exited, unknown
                st = {"running": "running", "terminated": "exited"}.get(cs.state, "created")
                running[(node, st)] = running.get((node, st), 0) + 1
        for node in rt.proxies:
            m.running_pods.set((node,), float(pods.get(node, 0)))
            for st in ("created", "running", "exited"):
                m.running_containers.set((node, st), float(running.get((node, st), 0)))
        work = getattr(rt, "work", None)  # the work model (CPU per request, memory)
        if work is not None:
            nodes_of = {p.key: p.spec.node_name for p in rt.state.pods()}
            for key, w in list(work.pods.items()):
                ns, _, name = key.partition("/")
                container = w.containers[0] if w.containers else ""
                labels = (nodes_of.get(key, ""), ns, name, container)
                m.container_cpu.values[labels] = float(w.cpu_seconds)
                m.container_throttled.values[labels] = float(w.throttled_seconds)
                m.container_memory.set(labels, float(w.memory))
        for p in rt.state.pods():
            if p.namespace == "kube-system" and p.metadata.labels.get("k8s-app") == "kube-dns":
                m.build_info.set((p.name, "1.11.3", "a6338e9", "go1.21.11"), 1.0)
        m.packets.values[("delivered",)] = float(rt.fabric.delivered)
        m.packets.values[("dropped",)] = float(rt.fabric.dropped)

    def collect(self) -> Iterator[Metric]:
        self.refresh()
        yield from self.rt.metrics.collect(self.component, self.instance)


def exposition(rt: Runtime, component: str | None = None, instance: str | None = None) -> bytes:
    """The Prometheus text exposition of ``rt``'s metrics (all, or one component instance)."""
    from knet.metrics.series import expose

    reg = CollectorRegistry(auto_describe=False)
    reg.register(RuntimeCollector(rt, component, instance))
    return expose(generate_latest(reg))


__all__ = ["RuntimeCollector", "exposition"]
