"""Kubernetes API benchmark: ``kubectl get pods -A`` on 1,000 and 10,000 pods, and watch
throughput with the Python ``kubernetes`` client.

The cluster is the pure control plane (no pod runtime: the API's cost is the point), built
from model values like bench/scale.py, served by the real HTTPS adapter (knet.api.server) on
127.0.0.1 in a background thread. For each size: kubectl's wall time (cold: discovery
included, fresh HOME; warm: cached discovery, best of 3) next to the server's own time for
the list request (``ApiCore.handle``, measured inside the server). Watch: a Python client
watches pods while a 1,000-replica Deployment is scaled to 0 and back; events/s counted at
the client. Goal: ≤ 1 s wall at 10,000 pods.

    python bench/api.py                  # 1,000 and 10,000 pods, then the watch
    python bench/api.py --pods 1000 --no-watch
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from knet.api.core import ApiCore, Request, Response
from knet.api.pki import kubeconfig, make_pki, write_kubeconfig
from knet.api.server import ApiServer
from knet.control import Cluster
from knet.manifests.nodes import kind_nodes
from knet.model import ClusterConfig, Deployment, LabelSelector, Namespace, ObjectMeta


def build(pods: int, per_deployment: int = 100) -> Cluster:
    n_nodes = pods // 100 + 2
    config = ClusterConfig(pod_subnets=(ip_network("100.64.0.0/10"),), nodes_declared=True)
    objs: list[Any] = list(kind_nodes("knet", ["control-plane"] + ["worker"] * (n_nodes - 1)))
    objs += [Namespace(ObjectMeta(name=f"ns{i}")) for i in range(10)]
    for i in range(pods // per_deployment):
        labels = {"app": f"app{i}"}
        template = {"metadata": {"labels": labels}, "spec": {"containers": [{
            "name": "web", "image": "knet/echo:1",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}
        objs.append(Deployment(ObjectMeta(name=f"app{i}", namespace=f"ns{i % 10}",
                                          creation_index=len(objs)),
                               selector=LabelSelector(labels), template=template,
                               replicas=per_deployment))
    return Cluster(config, objs, seed=1, event_log=0)


class Served:
    """An ApiServer on its own loop thread; ``handle`` time is accumulated per path."""

    def __init__(self, cluster: Cluster) -> None:
        self.core = ApiCore(cluster)
        self.times: dict[str, list[float]] = {}
        inner = self.core.handle

        def timed(req: Request) -> Response:
            t0 = time.perf_counter()
            try:
                return inner(req)
            finally:
                self.times.setdefault(req.path, []).append(time.perf_counter() - t0)

        self.core.handle = timed  # type: ignore[method-assign]
        self.pki = make_pki()
        self.loop = asyncio.new_event_loop()
        self.server = ApiServer(self.core, self.pki)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start("127.0.0.1", 0))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait()

    def call(self, fn: Any, *args: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(_call(fn, *args), self.loop).result()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.aclose(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


async def _call(fn: Any, *args: Any) -> Any:
    return fn(*args)


def kubectl_get(served: Served, tmp: Path, pods: int) -> dict[str, Any]:
    cfg = tmp / "kubeconfig"
    write_kubeconfig(cfg, kubeconfig("knet", served.server.url, served.pki.ca.cert_pem,
                                     client=served.pki.admin))
    env = {**os.environ, "KUBECONFIG": str(cfg), "HOME": str(tmp / f"home{pods}")}

    def once() -> tuple[float, int]:
        served.times.clear()
        t0 = time.perf_counter()
        p = subprocess.run(["kubectl", "get", "pods", "-A"], env=env, capture_output=True,
                           text=True, check=True)
        return time.perf_counter() - t0, p.stdout.count("\n") - 1

    cold, rows = once()
    warm = []
    server = []
    for _ in range(3):
        t, rows = once()
        warm.append(t)
        server.append(sum(served.times.get("/api/v1/pods", [0.0])))
    assert rows >= pods, (rows, pods)  # plus the system pods
    return {"pods": rows, "kubectl_cold_s": round(cold, 3), "kubectl_warm_s": round(min(warm), 3),
            "server_list_s": round(min(server), 3),
            "list_requests": len(served.times.get("/api/v1/pods", []))}


def watch_throughput(served: Served, tmp: Path) -> dict[str, Any]:
    from kubernetes import client, config, watch

    cfg = tmp / "kubeconfig"
    api = config.new_client_from_config(config_file=str(cfg))
    v1 = client.CoreV1Api(api)
    rv = v1.list_namespaced_pod("ns0", limit=1).metadata.resource_version
    counted = {"n": 0}
    done = threading.Event()
    cluster = served.core.cluster
    before = sum(1 for p in cluster.store.list("Pod", "ns0") if p.metadata.labels.get("app") == "app0")
    target = before + 2000  # scaled to 0, to 1,000, to 0 again: ADDED + DELETED events

    def watcher() -> None:
        w = watch.Watch()
        for ev in w.stream(v1.list_namespaced_pod, "ns0", resource_version=rv,
                           label_selector="app=app0", timeout_seconds=120):
            if ev["type"] in ("ADDED", "DELETED"):
                counted["n"] += 1
            if counted["n"] >= target:
                w.stop()
        done.set()

    th = threading.Thread(target=watcher, daemon=True)
    th.start()
    time.sleep(0.5)
    t0 = time.perf_counter()

    def to(n: int) -> None:
        cluster.scale("Deployment", "ns0/app0", n)
        for p in list(cluster.store.list("Pod", "ns0")):
            if p.metadata.labels.get("app") == "app0" and p.terminating:
                cluster.finalize_pod_deletion(p.key)

    for n in (0, 1000, 0):
        served.call(to, n)
    done.wait(120)
    dt = time.perf_counter() - t0
    api.close()
    return {"watch_events": counted["n"], "seconds": round(dt, 2),
            "events_per_s": round(counted["n"] / dt)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, action="append")
    ap.add_argument("--no-watch", action="store_true")
    args = ap.parse_args()
    if shutil.which("kubectl") is None:
        sys.exit("api bench: kubectl is not installed")
    with tempfile.TemporaryDirectory(prefix="knet-api-bench-") as d:
        tmp = Path(d)
        for n in args.pods or [1000, 10000]:
            t0 = time.perf_counter()
            cluster = build(n)
            served = Served(cluster)
            res = kubectl_get(served, tmp, n)
            res["build_s"] = round(time.perf_counter() - t0, 1)
            print(json.dumps(res), flush=True)
            if not args.no_watch and n == (args.pods or [1000, 10000])[-1]:
                print(json.dumps(watch_throughput(served, tmp)), flush=True)
            served.close()


if __name__ == "__main__":
    main()
