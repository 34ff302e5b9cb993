"""EndpointSlice controller rules (k8s.io/endpointslice reconciler and podToEndpoint)."""

from __future__ import annotations

import random
from ipaddress import ip_address

from control_factories import container, node, pod, port, running, service, tcp
from knet.control import Cluster
from knet.control.endpointslices import reconcile
from knet.model import (
    ClusterConfig, Endpoint, EndpointConditions, EndpointPort, EndpointSlice, ObjectMeta,
    PodStatus, ServicePort, ServiceType,
)
from knet.model.discovery import MANAGED_BY_CONTROLLER, MANAGED_BY_LABEL, SERVICE_NAME_LABEL

NODES = {"a": "z1", "b": "z2"}


def zone(n: str) -> str:
    return NODES.get(n, "")


def slices(svc, pods, existing=(), seed=0):
    return reconcile(svc, pods, list(existing), zone, random.Random(seed), (4,)).apply


def web(i: int, ready: bool = True, **kw) -> object:
    return pod(f"web-{i}", labels={"app": "web"}, node_name="a" if i % 2 else "b",
               containers=(container(ports=(port(8080, "http"),)),),
               status=running(f"10.244.0.{i + 2}", ready=ready), **kw)


def test_basic_slice_shape():
    svc = service("web", selector={"app": "web"}, ports=(tcp(80, "http", "http"),))
    (s,) = slices(svc, [web(1), web(2)])
    assert s.metadata.name.startswith("web-") and len(s.metadata.name) == 9
    assert s.metadata.generate_name == "web-"
    assert s.metadata.labels[SERVICE_NAME_LABEL] == "web"
    assert s.metadata.labels[MANAGED_BY_LABEL] == MANAGED_BY_CONTROLLER
    assert s.metadata.owner_references[0].kind == "Service"
    assert s.address_type == "IPv4"
    assert s.ports == (EndpointPort(8080, "http"),)
    e = s.endpoints[0]
    assert e.addresses == ("10.244.0.3",) and e.node_name == "a" and e.zone == "z1"
    assert e.conditions == EndpointConditions(True, True, False)
    assert e.target_ref.kind == "Pod" and e.target_ref.name == "web-1"
    assert e.hostname == ""


def test_readiness_terminating_and_publish_not_ready():
    svc = service("web", selector={"app": "web"})
    term = web(3)
    term = type(term)(ObjectMetaTerm(term), term.spec, term.status)
    pods = [web(1, ready=False), term]
    (s,) = slices(svc, pods)
    conds = {e.target_ref.name: e.conditions for e in s.endpoints}
    assert conds["web-1"] == EndpointConditions(ready=False, serving=False, terminating=False)
    assert conds["web-3"] == EndpointConditions(ready=False, serving=True, terminating=True)
    pub = service("web", selector={"app": "web"}, publish_not_ready=True)
    (s2,) = slices(pub, pods)
    assert all(e.conditions.ready for e in s2.endpoints)
    assert {e.target_ref.name: e.conditions.serving for e in s2.endpoints} == {
        "web-1": False, "web-3": True}


def ObjectMetaTerm(p):
    from dataclasses import replace
    return replace(p.metadata, deletion_timestamp="1970-01-01T00:00:30Z")


def test_skips_pods_without_ip_or_finished():
    svc = service("web", selector={"app": "web"})
    no_ip = pod("x", labels={"app": "web"}, node_name="a")
    done = pod("y", labels={"app": "web"}, node_name="a",
               status=PodStatus("Succeeded", pod_ips=(ip_address("10.244.0.50"),)))
    failed = pod("z", labels={"app": "web"}, node_name="a",
                 status=PodStatus("Failed", pod_ips=(ip_address("10.244.0.51"),)))
    (s,) = slices(svc, [no_ip, done, failed, web(1)])
    assert [e.target_ref.name for e in s.endpoints] == ["web-1"]


def test_hostname_only_when_subdomain_is_the_service():
    svc = service("db", selector={"app": "web"})
    a = web(1, hostname="h1", subdomain="db")
    b = web(2, hostname="h2", subdomain="other")
    c = web(3, subdomain="db")
    (s,) = slices(svc, [a, b, c])
    assert {e.target_ref.name: e.hostname for e in s.endpoints} == {
        "web-1": "h1", "web-2": "", "web-3": ""}


def test_named_target_port_per_pod_groups_slices():
    svc = service("web", selector={"app": "web"},
                  ports=(tcp(80, "http", "http"), ServicePort(53, name="dns", target_port="dns")))
    p8080 = web(1)
    p9090 = pod("alt", labels={"app": "web"}, node_name="a",
                containers=(container(ports=(port(9090, "http"),)),),
                status=running("10.244.0.20"))
    udp_only = pod("udp", labels={"app": "web"}, node_name="a",
                   containers=(container(ports=(port(8080, "http"), port(53, "dns", "UDP"))),),
                   status=running("10.244.0.21"))
    out = slices(svc, [p8080, p9090, udp_only])
    by_ports = {s.ports: [e.target_ref.name for e in s.endpoints] for s in out}
    # "dns" is TCP on the Service; the pod's "dns" port is UDP: not resolved
    assert by_ports == {
        (EndpointPort(8080, "http"),): ["web-1", "udp"],
        (EndpointPort(9090, "http"),): ["alt"],
    }


def test_at_most_100_endpoints_per_slice_and_stable_on_update():
    svc = service("big", selector={"app": "web"})
    pods = [web(i) for i in range(1, 251)]
    out = slices(svc, pods)
    assert sorted(len(s.endpoints) for s in out) == [50, 100, 100]
    names = {s.metadata.name for s in out}
    assert len(names) == 3
    # removing one pod keeps everything else where it was
    changed = reconcile(svc, pods[1:], out, zone, random.Random(1), (4,))
    assert not changed.delete and len(changed.apply) == 1
    assert changed.apply[0].metadata.name in names


def test_placeholder_slice_when_no_endpoints():
    svc = service("empty", selector={"app": "none"})
    (s,) = slices(svc, [])
    assert s.endpoints == () and s.ports == ()


def test_prefer_close_hints():
    svc = service("web", selector={"app": "web"}, traffic_distribution="PreferClose")
    (s,) = slices(svc, [web(1), web(2)])
    assert {e.zone: e.hints_zones for e in s.endpoints} == {"z1": ("z1",), "z2": ("z2",)}
    nozone = pod("nz", labels={"app": "web"}, node_name="c", status=running("10.244.9.9"))
    (s2,) = slices(svc, [web(1), nozone])
    assert all(not e.hints_zones for e in s2.endpoints)


def _cluster(*objs) -> Cluster:
    return Cluster(ClusterConfig(nodes_declared=True), [node("a"), node("b"), *objs],
                   system_objects=False)


def test_selectorless_service_slices_untouched_and_external_name_has_none():
    svc = service("ext", selector=None)
    user = EndpointSlice(ObjectMeta("ext-1", "default", labels={SERVICE_NAME_LABEL: "ext"}),
                         endpoints=(Endpoint(("192.0.2.7",), node_name="elsewhere"),),
                         ports=(EndpointPort(443, "https"),))
    en = service("alias", type=ServiceType.EXTERNAL_NAME, selector={"app": "web"})
    c = _cluster(svc, user, en, pod("w", labels={"app": "web"}))
    (s,) = c.endpoint_slices("default/ext")
    assert s.endpoints == user.endpoints and s.ports == user.ports
    assert c.endpoint_slices("default/alias") == []


def test_cluster_follows_pod_lifecycle():
    svc = service("web", selector={"app": "web"}, ports=(tcp(80, "", 8080),))
    c = _cluster(svc, pod("w1", labels={"app": "web"}), pod("w2", labels={"app": "web"}))
    (s,) = c.endpoint_slices("default/web")
    assert len(s.endpoints) == 2
    c.set_pod_ready("default/w1", False, now=1.0)
    (s,) = c.endpoint_slices("default/web")
    assert {e.target_ref.name: e.conditions.ready for e in s.endpoints} == {"w1": False, "w2": True}
    c.delete_pod("default/w2", now=2.0)
    (s,) = c.endpoint_slices("default/web")
    w2 = next(e for e in s.endpoints if e.target_ref.name == "w2")
    assert w2.conditions == EndpointConditions(ready=False, serving=True, terminating=True)
    c.sync(40.0)
    (s,) = c.endpoint_slices("default/web")
    assert [e.target_ref.name for e in s.endpoints] == ["w1"]
    c.delete("Service", "default/web")
    assert c.endpoint_slices("default/web") == []
