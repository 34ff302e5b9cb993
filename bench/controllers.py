"""Workload controllers on virtual time: a 1,000-replica Deployment rolling out on 100 nodes
under an HPA and a PodDisruptionBudget, then a node drain and an HPA scale-in.

The pure control plane (no runtime): every Deployment/ReplicaSet/EndpointSlice/disruption/
HPA reconcile, graceful terminations and the HPA's 15 s syncs, driven by ``next_deadline`` /
``sync`` through 30 virtual minutes. Metrics are a static table (each pod at 80 % of its cpu
request, then 20 %), so the numbers measure the controllers, not the work model.
Reported: virtual seconds simulated per wall second, and wall/cpu seconds of each phase.

    python bench/controllers.py [--replicas 1000] [--nodes 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from knet.control import Cluster
from knet.control.autoscaling import PodUsage
from knet.control.store import evolve
from knet.manifests import read_text


def manifests(replicas: int, nodes: int) -> str:
    docs = [f"""
apiVersion: v1
kind: Node
metadata: {{name: node-{i:03d}}}
status: {{capacity: {{cpu: "64", memory: 256Gi, pods: "250"}}}}
""" for i in range(nodes)]
    docs.append(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  strategy: {{rollingUpdate: {{maxSurge: 10%, maxUnavailable: 10%}}}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: knet/echo:v1
        resources: {{requests: {{cpu: 100m}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web}}
spec:
  maxUnavailable: 5%
  selector: {{matchLabels: {{app: web}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: web}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: {replicas // 4}
  maxReplicas: {replicas * 2}
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 80}}}}
""")
    return "---\n".join(docs)


class TableMetrics:
    """Every pod at ``level`` of its 100m request, sampled at the last 15 s boundary."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.level = 0.8

    def pod_usage(self, key: str) -> PodUsage | None:
        t = self.c.now // 15 * 15
        return PodUsage(0.1 * self.level, 64e6, t)

    def object_metric(self, *a: object) -> float | None:
        return None


def run_until(c: Cluster, end: float) -> int:
    steps = 0
    while True:
        t = c.next_deadline()
        if t is None or t > end:
            break
        c.sync(t)
        steps += 1
    c.sync(end)
    return steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicas", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=100)
    args = ap.parse_args()
    phases: dict[str, dict[str, float]] = {}

    def phase(name: str, fn: object, virtual: float) -> None:
        w, cpu = time.perf_counter(), time.process_time()
        out = fn()  # type: ignore[operator]
        wall = time.perf_counter() - w
        phases[name] = {"wall_s": round(wall, 3), "cpu_s": round(time.process_time() - cpu, 3),
                        "virtual_s": virtual,
                        "virtual_per_wall": round(virtual / wall, 1) if wall else 0.0}
        if isinstance(out, int):
            phases[name]["syncs"] = out

    holder: dict[str, Cluster] = {}

    def load() -> None:
        c = Cluster.from_input(read_text(manifests(args.replicas, args.nodes), "bench.yaml"),
                               seed=1, system_objects=False)
        c.metrics = TableMetrics(c)
        holder["c"] = c

    phase("load+converge", load, 0.0)
    c = holder["c"]

    def rollout() -> int:
        d = c.get("Deployment", "default/web")
        tpl = {**d.template, "spec": {**d.template["spec"], "containers": [
            {**d.template["spec"]["containers"][0], "image": "knet/echo:v2"}]}}
        c.apply(evolve(d, template=tpl), now=c.now + 1)
        return run_until(c, c.now + 600)

    phase("rollout (600 s)", rollout, 600.0)
    new = [p for p in c.pods("default") if p.spec.containers[0].image == "knet/echo:v2"]
    assert len(new) == args.replicas, len(new)

    def drain() -> int:
        node = c.nodes()[0].name
        c.cordon(node, now=c.now + 1)
        n = 0
        for p in c.pods_on_node(node):
            while c.evict(p.key, now=c.now).code == 429:
                n += run_until(c, c.now + 5)
        return n + run_until(c, c.now + 60)

    phase("drain one node (60 s+)", drain, 60.0)

    def scale_in() -> int:
        c.metrics.level = 0.2  # type: ignore[attr-defined]
        return run_until(c, c.now + 600)

    phase("HPA scale-in (600 s)", scale_in, 600.0)
    replicas = c.get("Deployment", "default/web").replicas
    total_virtual = sum(p["virtual_s"] for p in phases.values())
    total_wall = sum(p["wall_s"] for p in phases.values())
    print(json.dumps({
        "replicas": args.replicas, "nodes": args.nodes, "final_replicas": replicas,
        "phases": phases,
        "virtual_seconds_per_wall_second": round(total_virtual / total_wall, 1),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }, indent=2))


if __name__ == "__main__":
    main()
