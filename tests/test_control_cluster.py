"""Cluster: system objects, events, node failure on the clock, determinism properties."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from control_factories import deployment, node, pod, service
from knet.control import Cluster, ObjectAdded, ObjectDeleted, ObjectUpdated, load
from knet.control.defaults import corefile
from knet.model import ClusterConfig, Toleration
from knet.model.discovery import SERVICE_NAME_LABEL


def test_system_objects_like_kind():
    c = Cluster()
    assert [n.metadata.name for n in c.namespaces()] == [
        "default", "kube-node-lease", "kube-public", "kube-system"]
    k = c.service("default/kubernetes")
    assert (k.spec.cluster_ip, k.spec.ports[0].port, k.spec.ports[0].name,
            k.spec.ports[0].target_port, k.spec.selector) == ("10.96.0.1", 443, "https", 6443, None)
    (ks,) = c.endpoint_slices("default/kubernetes")
    assert ks.metadata.name == "kubernetes" and ks.endpoints[0].addresses == ("172.18.0.2",)
    assert ks.ports[0].port == 6443
    dns = c.service("kube-system/kube-dns")
    assert [(p.name, p.port, str(p.protocol)) for p in dns.spec.ports] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    assert dns.spec.selector == {"k8s-app": "kube-dns"}
    assert dns.metadata.labels["kubernetes.io/name"] == "CoreDNS"
    (dslice,) = c.endpoint_slices("kube-system/kube-dns")
    assert len(dslice.endpoints) == 2 and all(e.conditions.ready for e in dslice.endpoints)
    cm = c.get("ConfigMap", "kube-system/coredns")
    assert cm.data["Corefile"] == corefile("cluster.local")
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in cm.data["Corefile"]
    coredns = [p for p in c.pods("kube-system") if p.name.startswith("coredns-")]
    assert coredns[0].spec.containers[0].image == "registry.k8s.io/coredns/coredns:v1.11.3"
    proxies = [p for p in c.pods("kube-system") if p.name.startswith("kube-proxy-")]
    assert len(proxies) == 3 and all(p.spec.host_network for p in proxies)
    assert {str(p.ip) for p in proxies} == {str(n.ips()[0]) for n in c.nodes()}


def test_user_objects_replace_system_ones():
    mine = service("kube-dns", "kube-system", selector={"app": "mydns"}, cluster_ip="10.96.0.53")
    c = Cluster(ClusterConfig(), [mine])
    assert c.service("kube-system/kube-dns").spec.cluster_ip == "10.96.0.53"


def test_every_pod_gets_default_toleration_seconds():
    c = Cluster(ClusterConfig(), [pod("p")])
    tols = c.pod("default/p").spec.tolerations
    assert Toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute", 300) in tols
    assert Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute", 300) in tols


def test_events_and_resource_versions():
    c = Cluster(ClusterConfig(nodes_declared=True), [node("a")], system_objects=False)
    seen = []
    c.subscribe(seen.append)
    out = c.apply(pod("p"), now=1.0)
    assert out == seen
    assert isinstance(out[0], ObjectAdded) and out[0].current.name == "p"
    assert any(isinstance(e, ObjectUpdated) and e.current.spec.node_name == "a"
               and not e.previous.spec.node_name for e in out)
    rvs = [e.resource_version for e in out]
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)
    assert int(c.pod("default/p").metadata.resource_version) == rvs[-1]
    out = c.delete_pod("default/p", grace=0)
    assert isinstance(out[-1], ObjectDeleted)


def test_node_not_ready_evicts_after_toleration_seconds():
    c = Cluster(ClusterConfig(nodes_declared=True),
                [node("a"), node("b"), deployment("web", replicas=2),
                 service("web", selector={"app": "web"})], system_objects=False)
    on_a = [p.key for p in c.pods() if p.spec.node_name == "a"]
    assert on_a
    c.set_node_ready("a", False, now=100.0)
    n = c.node("a")
    assert not n.ready and {(t.key, t.effect) for t in n.taints} == {
        ("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute")}
    # pods marked not ready at once: endpoints not ready
    (s,) = c.endpoint_slices("default/web")
    ready = {e.target_ref.name: e.conditions.ready for e in s.endpoints}
    assert all(not ready[k.split("/")[1]] for k in on_a)
    assert c.next_deadline() == 400.0
    c.sync(399.0)
    assert all(not c.pod(k).terminating for k in on_a)
    c.sync(400.0)
    assert all(c.pod(k).terminating for k in on_a)
    # replacements go to the healthy node
    live = [p for p in c.pods() if not p.terminating]
    assert len(live) == 2 and {p.spec.node_name for p in live} == {"b"}
    c.sync(430.0)  # kubelet on a NotReady (not unreachable) node finishes the termination
    assert all(p.spec.node_name == "b" for p in c.pods())


def test_unreachable_node_pods_stay_terminating_until_node_returns():
    c = Cluster(ClusterConfig(nodes_declared=True), [node("a"), pod("p", node_name="a")],
                system_objects=False)
    c.set_node_ready("a", False, now=0.0, unreachable=True)
    assert {t.key for t in c.node("a").taints} == {"node.kubernetes.io/unreachable"}
    c.sync(300.0)
    assert c.pod("default/p").terminating
    c.sync(10_000.0)
    assert c.pod("default/p").terminating and c.next_deadline() is None
    c.set_node_ready("a", True, now=10_001.0)
    c.sync(10_001.0)
    assert c.pods() == []


def test_untolerated_no_execute_evicts_at_once_and_forever_toleration_never():
    forever = Toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute")
    c = Cluster(ClusterConfig(nodes_declared=True),
                [node("a"), pod("keep", node_name="a", tolerations=(forever,))],
                system_objects=False)
    c.set_node_ready("a", False, now=5.0)
    assert c.next_deadline() is None and not c.pod("default/keep").terminating


def test_cordon():
    c = Cluster(ClusterConfig(nodes_declared=True), [node("a"), node("b")], system_objects=False)
    c.cordon("a")
    assert c.node("a").unschedulable
    for i in range(4):
        c.apply(pod(f"p{i}"))
    assert {p.spec.node_name for p in c.pods()} == {"b"}


def snapshot(c: Cluster) -> list:
    return [(p.key, p.spec.node_name, tuple(map(str, p.status.pod_ips))) for p in c.pods()] + [
        (s.key, s.spec.cluster_ip, tuple(p.node_port for p in s.spec.ports)) for s in c.services()
    ] + [(s.key, tuple(e.addresses for e in s.endpoints)) for s in c.endpoint_slices()]


def workload(n_deploy: int, n_pods: int) -> list:
    objs: list = [deployment(f"d{i}", replicas=1 + i % 3) for i in range(n_deploy)]
    objs += [service(f"d{i}", selector={"app": f"d{i}"}) for i in range(n_deploy)]
    objs += [pod(f"p{i}", labels={"app": "d0"}) for i in range(n_pods)]
    return objs


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n_deploy=st.integers(0, 4), n_pods=st.integers(0, 4))
def test_same_seed_same_cluster(seed, n_deploy, n_pods):
    objs = workload(n_deploy, n_pods)
    assert snapshot(Cluster(ClusterConfig(), objs, seed=seed)) == \
        snapshot(Cluster(ClusterConfig(), objs, seed=seed))


@settings(max_examples=25, deadline=None)
@given(order_seed=st.integers(0, 2**16), n_deploy=st.integers(1, 4), n_pods=st.integers(0, 5))
def test_any_apply_order_gives_valid_unique_addresses(order_seed, n_deploy, n_pods):
    objs = workload(n_deploy, n_pods)
    random.Random(order_seed).shuffle(objs)
    c = Cluster(ClusterConfig(), objs, seed=1)
    pod_ips = [ip for p in c.pods() if not p.spec.host_network for ip in p.status.pod_ips]
    assert len(pod_ips) == len(set(pod_ips))
    for p in c.pods():
        if p.spec.host_network:
            continue
        cidrs = c.node(p.spec.node_name).pod_cidrs
        assert all(any(ip in net for net in cidrs) for ip in p.status.pod_ips)
    ips = [s.spec.cluster_ip for s in c.services()]
    assert len(ips) == len(set(ips))
    svc_net = ClusterConfig().service_subnets[0]
    from ipaddress import ip_address
    assert all(ip_address(x) in svc_net for x in ips)
    for s in c.services():
        if s.spec.selector:
            slices = c.endpoint_slices(s.key)
            assert all(sl.metadata.labels[SERVICE_NAME_LABEL] == s.name for sl in slices)
            got = sorted(e.target_ref.name for sl in slices for e in sl.endpoints)
            want = sorted(p.name for p in c.pods(s.namespace)
                          if all(p.metadata.labels.get(k) == v for k, v in s.spec.selector.items()))
            assert got == want


def test_load_from_manifests(tmp_path: Path):
    f = tmp_path / "app.yaml"
    f.write_text("""
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: knet/echo, ports: [{containerPort: 5432, name: pg}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432, targetPort: pg, name: pg}]
""")
    c = load([str(f)], seed=3)
    (s,) = c.endpoint_slices("default/db")
    assert sorted(e.hostname for e in s.endpoints) == ["db-0", "db-1"]
    assert s.metadata.labels["service.kubernetes.io/headless"] == ""
    assert s.ports[0].port == 5432
    assert snapshot(load(str(f), seed=3)) == snapshot(c)


def test_deleting_a_node_removes_its_pods_and_reschedules():
    c = Cluster(ClusterConfig(nodes_declared=True),
                [node("a"), node("b"), deployment("web", replicas=4)], system_objects=False)
    c.delete("Node", "a")
    assert [n.name for n in c.nodes()] == ["b"]
    assert len(c.pods()) == 4 and {p.spec.node_name for p in c.pods()} == {"b"}
    c.apply(pod("late"))
    assert c.pod("default/late").spec.node_name == "b"
