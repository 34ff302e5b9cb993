"""Reading inputs (files, directories, stdin, Lists), defaulting, Endpoints mirroring,
pod templates and the to_manifest round trip."""

from __future__ import annotations

import io
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from knet.errors import ManifestError
from knet.manifests import pod_from_template, read, read_text, to_manifest, to_yaml
from knet.model.apps import Deployment, Job
from knet.model.core import Node, Pod, Service
from knet.model.discovery import EndpointSlice

DATA = Path(__file__).parent / "data" / "manifests"


def same(a: Any, b: Any) -> bool:
    """Equal up to input position (creation_index; source never compares)."""
    return replace(a, metadata=replace(a.metadata, creation_index=0)) == replace(
        b, metadata=replace(b.metadata, creation_index=0))


def roundtrip(objects: list[Any]) -> None:
    for obj in objects:
        text = to_yaml(to_manifest(obj))
        again = [o for o in read_text(text).objects if o.kind == obj.kind]
        assert len(again) == 1 and same(again[0], obj), text


# --- inputs -----------------------------------------------------------------------------------

def test_kubectl_list_with_status_and_unknown_kind():
    inp = read([str(DATA / "kubectl-list.yaml")])
    node, pod, svc, eps = inp.objects
    assert isinstance(node, Node) and node.pod_cidrs[0].compressed == "10.244.1.0/24"
    assert node.ips() == (ip_address("172.18.0.3"),) and node.ready
    assert node.metadata.creation_timestamp == "2025-01-10T09:00:00Z"
    assert isinstance(pod, Pod) and pod.ip == ip_address("10.244.1.5")
    assert pod.status.phase == "Running" and pod.status.ready and pod.spec.node_name == "kind-worker"
    assert isinstance(svc, Service) and svc.spec.cluster_ip == "10.96.12.34"
    assert svc.load_balancer_ingress[0].ip == "172.18.255.200"
    assert svc.spec.ports[0].node_port == 30080 and svc.spec.external_traffic_policy == "Cluster"
    assert isinstance(eps, EndpointSlice) and eps.service_name == "web"
    assert eps.endpoints[0].conditions.is_ready and eps.endpoints[0].target_ref.name == "web-0"
    warning, summary = inp.warnings
    assert "rbac.authorization.k8s.io/v1 Role shop/reader" in warning
    assert summary.startswith("skipped 1 object of 1 kind knet does not model: Role;")
    assert [o.metadata.creation_index for o in inp.objects] == [0, 1, 2, 3]
    roundtrip(inp.objects)


def test_typed_list_items_take_kind_from_list():
    text = ("apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: a}\n"
            "  spec: {ports: [{port: 80}]}\n")
    (svc,) = read_text(text).objects
    assert isinstance(svc, Service) and svc.name == "a"


def test_directory_sorted_yaml_only():
    inp = read([str(DATA / "dir")])
    assert [(o.kind, o.metadata.source.file.rsplit("/", 1)[-1]) for o in inp.objects] == [
        ("Service", "10-service.yaml"), ("Pod", "20-pod.yml")]


def test_stdin_and_file_order():
    stdin = io.StringIO("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
    inp = read(["-", str(DATA / "dir")], stdin=stdin)
    assert [o.kind for o in inp.objects] == ["Namespace", "Service", "Pod"]
    assert inp.objects[0].metadata.source.file == "<stdin>"
    assert [o.metadata.creation_index for o in inp.objects] == [0, 1, 2]


def test_missing_file():
    with pytest.raises(ManifestError) as e:
        read([str(DATA / "nope.yaml")])
    assert e.value.problems[0].message == "no such file or directory"


def test_problems_across_files_all_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: A}\n"
                                     "spec: {ports: [{port: 80}]}\n")
    (tmp_path / "b.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                                     "spec: {containers: []}\n")
    with pytest.raises(ManifestError) as e:
        read([str(tmp_path)])
    assert [p.file.rsplit("/", 1)[-1] for p in e.value.problems] == ["a.yaml", "b.yaml"]


def test_crd_and_helm_noise_warn_only():
    text = ("apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\n"
            "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\n---\n# empty\n")
    inp = read_text(text, "chart.yaml")
    assert inp.objects == [] and len(inp.warnings) == 3  # one per object, then the summary
    assert inp.warnings[0].startswith("chart.yaml:1:1: skipped monitoring.coreos.com/v1 "
                                      "ServiceMonitor m")


def test_generate_name_is_deterministic():
    text = "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\nspec: {containers: [{name: c, image: i}]}\n"
    a = read_text(text).objects[0].metadata
    b = read_text(text).objects[0].metadata
    assert a.name == b.name and a.name.startswith("web-") and len(a.name) == 9
    assert a.uid == b.uid and a.uid


# --- defaulting ---------------------------------------------------------------------------------

def test_service_defaults():
    svc = read_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                    "spec: {ports: [{port: 80}]}\n").objects[0]
    sp = svc.spec
    assert svc.metadata.namespace == "default"
    assert (sp.type, sp.session_affinity, sp.internal_traffic_policy) == (
        "ClusterIP", "None", "Cluster")
    assert sp.external_traffic_policy == "" and sp.ip_families == (4,)
    assert sp.ip_family_policy == "SingleStack"
    assert (sp.ports[0].protocol, sp.ports[0].target_port) == ("TCP", 80)


def test_service_defaults_client_ip_and_load_balancer():
    svc = read_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n"
                    "  type: LoadBalancer\n  sessionAffinity: ClientIP\n"
                    "  ports: [{port: 80}]\n").objects[0]
    assert svc.spec.session_affinity_timeout == 10800
    assert svc.spec.external_traffic_policy == "Cluster"
    assert svc.spec.allocate_load_balancer_node_ports


def test_dual_stack_defaulting():
    kind = "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nnetworking: {ipFamily: dual}\n---\n"
    base = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80}]\n"
    s = read_text(kind + base).objects[-1].spec
    assert (s.ip_families, s.ip_family_policy) == ((4,), "SingleStack")
    s = read_text(kind + base + "  ipFamilyPolicy: PreferDualStack\n").objects[-1].spec
    assert (s.ip_families, s.ip_family_policy) == ((4, 6), "PreferDualStack")
    s = read_text(kind + base + "  ipFamilies: [IPv6, IPv4]\n").objects[-1].spec
    assert (s.ip_families, s.ip_family_policy) == ((6, 4), "RequireDualStack")
    single = read_text(base + "  ipFamilyPolicy: PreferDualStack\n").objects[-1].spec
    assert single.ip_families == (4,)


def test_pod_defaults():
    pod = read_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
                    "  - name: c\n    image: i\n    ports: [{containerPort: 80}]\n"
                    "    readinessProbe: {httpGet: {port: 80}}\n").objects[0]
    s = pod.spec
    assert (s.restart_policy, s.dns_policy, s.termination_grace_period_seconds) == (
        "Always", "ClusterFirst", 30)
    assert s.scheduler_name == "default-scheduler"
    c = s.containers[0]
    assert c.ports[0].protocol == "TCP"
    p = c.readiness_probe
    assert (p.period_seconds, p.timeout_seconds, p.success_threshold, p.failure_threshold) == (
        10, 1, 1, 3)
    assert p.http_get == {"port": 80, "path": "/", "scheme": "HTTP"}
    assert c.extra["imagePullPolicy"] == "Always"  # untagged image ⇒ :latest ⇒ Always


def test_workload_defaults():
    text = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec: {containers: [{name: c, image: i}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s}
spec:
  selector: {matchLabels: {app: s}}
  serviceName: s
  template:
    metadata: {labels: {app: s}}
    spec: {containers: [{name: c, image: i}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: i}]
"""
    d, s, j = read_text(text).objects
    assert isinstance(d, Deployment)
    assert (d.replicas, d.strategy_type, d.max_surge, d.max_unavailable) == (
        1, "RollingUpdate", "25%", "25%")
    assert (s.replicas, s.pod_management_policy) == (1, "OrderedReady")
    assert isinstance(j, Job) and j.completions == 1 and j.parallelism == 1
    assert j.selector.match_labels == {"batch.kubernetes.io/controller-uid": j.metadata.uid}
    assert j.template["metadata"]["labels"]["job-name"] == "j"
    roundtrip([d, s, j])


# --- Endpoints → EndpointSlices ---------------------------------------------------------------

def test_endpoints_mirrored_to_slices():
    inp = read([str(DATA / "endpoints.yaml")])
    svc, v4, v6 = inp.objects
    assert isinstance(v4, EndpointSlice) and isinstance(v6, EndpointSlice)
    assert (v4.address_type, v6.address_type) == ("IPv4", "IPv6")
    assert v4.metadata.name.startswith("external-db-") and len(v4.metadata.name) == 17
    assert v4.metadata.labels == {
        "team": "data", "kubernetes.io/service-name": "external-db",
        "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"}
    assert [(e.addresses, e.conditions.ready, e.hostname) for e in v4.endpoints] == [
        (("192.0.2.10",), True, "db-0"), (("192.0.2.11",), False, "")]
    assert v4.ports[0].name == "pg" and v4.ports[0].port == 5432
    assert v4.metadata.owner_references[0].kind == "Endpoints"
    roundtrip([v4])


def test_endpoints_not_mirrored_for_selector_service_or_missing_service():
    text = ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: w}\n"
            "  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: web}\n"
            "subsets: [{addresses: [{ip: 10.244.1.5}], ports: [{port: 80}]}]\n---\n"
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: ghost}\n"
            "subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{port: 80}]}]\n")
    inp = read_text(text)
    assert [o.kind for o in inp.objects] == ["Service"]
    assert len(inp.warnings) == 1 and "no Service \"ghost\"" in inp.warnings[0]


# --- pod templates ------------------------------------------------------------------------------

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "knet/echo:1",
                                     "ports": [{"name": "http", "containerPort": 8080}]}]}}


def test_pod_from_template_matches_pod_manifest():
    pod = pod_from_template(TEMPLATE, "shop", "web-abc", labels={"pod-template-hash": "abc"},
                            node_name="knet-worker")
    assert pod.metadata.labels == {"app": "web", "pod-template-hash": "abc"}
    assert pod.spec.node_name == "knet-worker" and pod.status.phase == "Pending"
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                "spec": TEMPLATE["spec"]}
    assert read_text(yaml.safe_dump(manifest)).objects[0].spec == replace(pod.spec, node_name="")


def test_pod_from_bad_template_raises():
    with pytest.raises(ManifestError) as e:
        pod_from_template({"spec": {"containers": [{"name": "c"}]}}, "ns", "p")
    assert e.value.problems[0].field == "template.spec.containers[0].image"


# --- round trip ---------------------------------------------------------------------------------

def test_roundtrip_demo_topology():
    inp = read(["topologies/demo.yaml"]) if Path("topologies/demo.yaml").exists() else None
    if inp is None:
        pytest.skip("run from the repository root")
    roundtrip(inp.objects)


names = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
ports = st.integers(1, 65535)


@settings(max_examples=60, deadline=None)
@given(name=names, port_list=st.lists(ports, min_size=1, max_size=4, unique=True),
       stype=st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]),
       affinity=st.sampled_from(["None", "ClientIP"]),
       target=st.one_of(ports, st.sampled_from(["http", "grpc-web"])),
       labels=st.dictionaries(names, names, max_size=3))
def test_roundtrip_services(name, port_list, stype, affinity, target, labels):
    spec: dict[str, Any] = {"type": stype, "sessionAffinity": affinity, "selector": labels,
                            "ports": [{"name": f"p{i}", "port": p, "targetPort": target}
                                      for i, p in enumerate(port_list)]}
    if stype != "ClusterIP":
        spec["ports"][0]["nodePort"] = 30000 + port_list[0] % 2768
    manifest = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "ns", "labels": labels}, "spec": spec}
    (svc,) = read_text(to_yaml(manifest)).objects
    roundtrip([svc])


def test_to_yaml_quotes_like_kubectl():
    """Double quotes where a plain scalar would read back as something else (kubectl's
    go-yaml style), YAML 1.1 booleans included; multi-line text as a literal block."""
    assert to_yaml({"a": "y", "b": "yes", "c": "x", "d": "False", "e": "80", "f": "",
                    "g": "a: b", "h": "line1\nline2\n"}) == (
        'a: "y"\nb: "yes"\nc: x\nd: "False"\ne: "80"\nf: ""\ng: "a: b"\nh: |\n  line1\n  line2\n')
