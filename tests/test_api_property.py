"""Property: any sequence of writes through the API leaves the cluster in a state whose kube-proxy
rules equal a fresh ``knet rules`` on the same objects.

The writes (create/scale/delete Deployments, create/patch/delete Services, relabel pods) go
through ``ApiCore`` into the real control plane; then the user objects are read back through
the API (Services and Pods as clients see them, status included), loaded from YAML into a fresh
cluster as ``knet rules -f`` would, and every node's iptables rules are compared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import knet
from knet.api.core import ApiCore, Request, User
from knet.control import Cluster
from knet.manifests import read_text, to_yaml
from knet.proxy import modes

ROOT = Path(__file__).resolve().parents[1]
TOPO = ROOT / "topologies" / "runtime-basic.yaml"
ADMIN = User("admin", ("system:masters",))
APPS = ["a", "b", "c"]

write = st.one_of(
    st.tuples(st.just("deploy"), st.sampled_from(APPS), st.integers(0, 3)),
    st.tuples(st.just("scale"), st.sampled_from(APPS), st.integers(0, 3)),
    st.tuples(st.just("undeploy"), st.sampled_from(APPS), st.just(0)),
    st.tuples(st.just("service"), st.sampled_from(APPS), st.sampled_from([80, 8080])),
    st.tuples(st.just("unservice"), st.sampled_from(APPS), st.just(0)),
    st.tuples(st.just("relabel"), st.sampled_from(APPS), st.sampled_from(APPS)),
)


def req(core: ApiCore, method: str, path: str, body: Any = None,
        ctype: str = "application/json") -> Any:
    raw = json.dumps(body).encode() if body is not None else b""
    r = core.handle(Request(method, path, "", {"content-type": ctype}, raw, ADMIN))
    assert r.status < 500, r.body
    return r


def apply(core: ApiCore, op: str, app: str, n: Any) -> None:
    dep = "/apis/apps/v1/namespaces/default/deployments"
    svc = "/api/v1/namespaces/default/services"
    if op == "deploy":
        req(core, "POST", dep, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"d-{app}"},
            "spec": {"replicas": n, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [
                         {"name": "c", "image": "knet/echo:1",
                          "ports": [{"containerPort": 8080}]}]}}}})
    elif op == "scale":
        req(core, "PATCH", f"{dep}/d-{app}/scale", {"spec": {"replicas": n}},
            "application/merge-patch+json")
    elif op == "undeploy":
        req(core, "DELETE", f"{dep}/d-{app}", {"propagationPolicy": "Background",
                                                "gracePeriodSeconds": 0})
        for p in list(core.store.list("Pod", "default")):
            if p.metadata.labels.get("app") == app and p.terminating:
                core.cluster.finalize_pod_deletion(p.key)
    elif op == "service":
        r = req(core, "POST", svc, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s-{app}"},
            "spec": {"selector": {"app": app}, "ports": [{"port": n, "targetPort": 8080}]}})
        if r.status == 409:
            req(core, "PATCH", f"{svc}/s-{app}", {"spec": {"ports": [
                {"port": n, "targetPort": 8080}]}}, "application/merge-patch+json")
    elif op == "unservice":
        req(core, "DELETE", f"{svc}/s-{app}")
    elif op == "relabel":
        pods = [p for p in core.store.list("Pod", "default") if p.metadata.labels.get("app") == app]
        if pods:
            pod = sorted(pods, key=lambda p: p.name)[0]
            req(core, "PATCH", f"/api/v1/namespaces/default/pods/{pod.name}",
                {"metadata": {"labels": {"app": n}}}, "application/merge-patch+json")


def exported(core: ApiCore) -> str:
    docs = []
    for path in ("/api/v1/namespaces/default/services", "/api/v1/namespaces/default/pods"):
        for item in req(core, "GET", path).json()["items"]:
            kind = "Service" if "services" in path else "Pod"
            meta = item["metadata"]
            meta.pop("ownerReferences", None)  # standalone pods: no controller re-creates them
            docs.append({"apiVersion": "v1", "kind": kind, **item})
    return to_yaml(docs)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(write, min_size=1, max_size=8))
def test_api_writes_leave_rules_equal_to_a_fresh_load(ops: list[tuple[str, str, Any]]) -> None:
    live = knet.load([str(TOPO)], seed=5)
    core = ApiCore(live)
    for op in ops:
        apply(core, *op)
    base = read_text(TOPO.read_text(), str(TOPO)).objects
    keep = [o for o in base if o.metadata.namespace != "default" or o.kind not in (
        "Service", "Pod", "Deployment", "ReplicaSet", "EndpointSlice")]
    fresh_input = read_text(exported(core), "<api>").objects
    fresh = Cluster(live.config, keep + fresh_input, seed=5)
    for node in live.nodes():
        a = modes.render(live, node, "iptables", [4], None, "restore", "text")
        b = modes.render(fresh, fresh.node(node.name), "iptables", [4], None, "restore", "text")
        assert a == b, f"{node.name} after {ops}"
