"""Control-plane scale benchmark: load + converge time and peak RSS.

Cases: ``big`` is Kubernetes' documented limits (5,000 nodes, 150,000 pods, 10,000 Services,
Services of up to 250 endpoints); ``small`` is 1,000 pods on 3 nodes' worth of kind cluster
grown to 20 nodes. Objects are constructed directly as model values (Node/Deployment/Service),
not through YAML, so the numbers measure the control plane: scheduling every pod, IPAM,
ReplicaSet/Deployment controllers and the EndpointSlice controller.
Goals (2-core machine): big ≤ 30 s and ≤ 4 GiB; small ≤ 1 s. ``cpu_seconds`` is reported
next to wall time because the machine may be shared.

    python bench/scale.py            # both cases, each in a fresh process
    python bench/scale.py --case big
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from ipaddress import ip_network

from knet.control import Cluster
from knet.manifests.nodes import kind_nodes
from knet.model import ClusterConfig, Deployment, LabelSelector, ObjectMeta, Service, ServicePort, ServiceSpec

CASES = {
    # nodes, deployments: list of (count, replicas), namespaces
    "big": (5000, [(200, 250), (2000, 11), (7800, 10)], 50),
    "small": (20, [(100, 10)], 5),
}


def build(case: str) -> tuple[ClusterConfig, list]:
    n_nodes, groups, n_ns = CASES[case]
    config = ClusterConfig(pod_subnets=(ip_network("100.64.0.0/10"),), nodes_declared=True)
    roles = ["control-plane"] + ["worker"] * (n_nodes - 1)
    objs: list = list(kind_nodes("knet", roles))
    from knet.model import Namespace
    objs += [Namespace(ObjectMeta(name=f"ns{i}")) for i in range(n_ns)]
    i = 0
    for count, replicas in groups:
        for _ in range(count):
            ns, name = f"ns{i % n_ns}", f"app{i}"
            labels = {"app": name}
            template = {"metadata": {"labels": labels}, "spec": {"containers": [{
                "name": "web", "image": "knet/echo:1",
                "ports": [{"containerPort": 8080, "name": "http"}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}
            objs.append(Deployment(ObjectMeta(name=name, namespace=ns, creation_index=len(objs)),
                                   selector=LabelSelector(labels), template=template,
                                   replicas=replicas))
            objs.append(Service(ObjectMeta(name=name, namespace=ns, creation_index=len(objs)),
                                ServiceSpec(ports=(ServicePort(80, name="http",
                                                               target_port="http"),),
                                            selector=labels)))
            i += 1
    return config, objs


def run(case: str) -> dict:
    config, objs = build(case)
    t0, c0 = time.perf_counter(), time.process_time()
    c = Cluster(config, objs, seed=1, event_log=0)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    pods = c.store.count("Pod")
    running = sum(1 for p in c.store.list("Pod") if p.status.phase == "Running")
    return {"case": case, "nodes": c.store.count("Node"), "pods": pods, "running": running,
            "services": c.store.count("Service"),
            "endpointslices": c.store.count("EndpointSlice"),
            "seconds": round(dt, 2), "cpu_seconds": round(dc, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=sorted(CASES))
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run(args.case)))
        return
    for case in ("small", "big"):
        subprocess.run([sys.executable, __file__, "--case", case], check=True)


if __name__ == "__main__":
    main()
