"""API-server-like validation: one test per error class, messages as the API words them."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from knet.errors import ManifestError, Problem
from knet.manifests import read_text


def problems(*docs: Any) -> list[Problem]:
    text = "---\n".join(d if isinstance(d, str) else yaml.safe_dump(d) for d in docs)
    with pytest.raises(ManifestError) as e:
        read_text(text, "t.yaml")
    return e.value.problems


def only(*docs: Any) -> tuple[str, str]:
    ps = problems(*docs)
    assert len(ps) == 1, [str(p) for p in ps]
    return ps[0].field, ps[0].message


def svc(name: str = "web", **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def deploy(selector: Any, labels: Any, **pod: Any) -> dict[str, Any]:
    pod.setdefault("containers", [{"name": "c", "image": "i"}])
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": selector, "template": {"metadata": {"labels": labels},
                                                         "spec": pod}}}


def pod(**spec: Any) -> dict[str, Any]:
    spec.setdefault("containers", [{"name": "c", "image": "i"}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def ingress(*paths: dict[str, Any], **spec: Any) -> dict[str, Any]:
    if paths:
        spec["rules"] = [{"host": "a.example.com", "http": {"paths": list(paths)}}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "i"}, "spec": spec}


BACKEND = {"service": {"name": "web", "port": {"number": 80}}}


# --- names ---------------------------------------------------------------------------------

def test_service_name_is_dns1035_label():
    field, msg = only(svc("1web"))
    assert field == "metadata.name" and "DNS-1035 label" in msg and msg.startswith(
        'Invalid value: "1web"')


def test_pod_name_is_dns1123_subdomain():
    p = pod()
    p["metadata"]["name"] = "web.v1"
    read_text(yaml.safe_dump(p))  # dots are fine in a subdomain
    p["metadata"]["name"] = "Web"
    field, msg = only(p)
    assert field == "metadata.name" and "RFC 1123 subdomain" in msg


def test_namespace_name_is_dns1123_label():
    field, msg = only({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}})
    assert "RFC 1123 label" in msg


def test_name_too_long():
    ps = problems(svc("a" * 64))
    assert ps[0].message.endswith("must be no more than 63 characters")


def test_name_required():
    field, msg = only({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    assert (field, msg) == ("metadata.name", "Required value: name or generateName is required")


def test_bad_label_key_and_value():
    p = pod()
    p["metadata"]["labels"] = {"bad key": "ok", "k": "-bad"}
    ps = problems(p)
    assert [q.field for q in ps] == ["metadata.labels[bad key]", "metadata.labels[k]"]


def test_container_port_name_iana():
    field, msg = only(pod(containers=[{"name": "c", "image": "i", "ports": [
        {"name": "a-very-long-port-name", "containerPort": 80}]}]))
    assert field == "spec.containers[0].ports[0].name"
    assert msg.endswith("must be no more than 15 characters")
    field, msg = only(pod(containers=[{"name": "c", "image": "i", "ports": [
        {"name": "8080", "containerPort": 80}]}]))
    assert msg.endswith("must contain at least one letter (a-z)")


def test_service_port_name_is_dns_label_and_required_when_many():
    field, msg = only(svc(ports=[{"port": 80, "name": "Http"}]))
    assert field == "spec.ports[0].name" and "RFC 1123 label" in msg
    field, msg = only(svc(ports=[{"port": 80, "name": "a"}, {"port": 81}]))
    assert (field, msg) == ("spec.ports[1].name", "Required value")


# --- ports / protocols ---------------------------------------------------------------------

@pytest.mark.parametrize("port", [0, 65536, -1])
def test_port_range(port):
    field, msg = only(svc(ports=[{"port": port}]))
    assert field == "spec.ports[0].port"
    assert msg == f"Invalid value: {port}: must be between 1 and 65535, inclusive"


def test_protocol_supported():
    field, msg = only(svc(ports=[{"port": 53, "protocol": "udp"}]))
    assert field == "spec.ports[0].protocol"
    assert msg == 'Unsupported value: "udp": supported values: "SCTP", "TCP", "UDP"'


def test_target_port_name_or_number():
    field, msg = only(svc(ports=[{"port": 80, "targetPort": "http_alt"}]))
    assert field == "spec.ports[0].targetPort"
    field, msg = only(svc(ports=[{"port": 80, "targetPort": 70000}]))
    assert msg.endswith("must be between 1 and 65535, inclusive")


def test_duplicate_service_ports():
    field, msg = only(svc(ports=[{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]))
    assert field == "spec.ports[1]" and msg.startswith("Duplicate value")
    read_text(yaml.safe_dump(svc(ports=[{"port": 53, "name": "a"},
                                        {"port": 53, "name": "b", "protocol": "UDP"}])))


def test_duplicate_port_names():
    field, msg = only(svc(ports=[{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]))
    assert (field, msg) == ("spec.ports[1].name", 'Duplicate value: "a"')


# --- Service types, IPs, families ------------------------------------------------------------

def test_external_name_required():
    field, msg = only(svc(type="ExternalName", ports=[]))
    assert (field, msg) == ("spec.externalName", "Required value")


def test_external_name_forbids_cluster_ip():
    field, msg = only(svc(type="ExternalName", externalName="db.example.com",
                          clusterIP="10.96.0.50"))
    assert field == "spec.clusterIPs" and "ExternalName" in msg


def test_headless_node_port_invalid():
    field, msg = only(svc(type="NodePort", clusterIP="None"))
    assert field == "spec.clusterIPs[0]"
    assert msg == "Invalid value: \"None\": may not be set to 'None' for NodePort services"


def test_ports_required_unless_headless():
    field, msg = only(svc(ports=[]))
    assert (field, msg) == ("spec.ports", "Required value")
    read_text(yaml.safe_dump(svc(ports=[], clusterIP="None")))


def test_cluster_ip_outside_range():
    field, msg = only(svc(clusterIP="10.0.0.10"))
    assert field == "spec.clusterIP"
    assert msg == ('Invalid value: "10.0.0.10": failed to allocate IP 10.0.0.10: provided IP is '
                   'not in the valid range. The range of valid IPs is 10.96.0.0/12')


def test_cluster_ip_already_allocated():
    ps = problems(svc("a", clusterIP="10.96.0.20"), svc("b", clusterIP="10.96.0.20"))
    assert len(ps) == 1 and ps[0].name == "default/b"
    assert ps[0].message.endswith("provided IP is already allocated")


def test_kubernetes_service_ip_is_taken():
    field, msg = only(svc("a", clusterIP="10.96.0.1"))
    assert msg.endswith("provided IP is already allocated")


def test_cluster_ip_not_an_ip():
    field, msg = only(svc(clusterIP="10.96.0.300"))
    assert "must be a valid IP address" in msg


def test_cluster_ips_must_match_cluster_ip():
    field, msg = only(svc(clusterIP="10.96.0.20", clusterIPs=["10.96.0.21"]))
    assert (field, msg) == ("spec.clusterIPs",
                            'Invalid value: ["10.96.0.21"]: first value must match `clusterIP`')


def test_require_dual_stack_on_single_stack_cluster():
    field, msg = only(svc(ipFamilyPolicy="RequireDualStack"))
    assert field == "spec.ipFamilyPolicy"
    assert msg.endswith("this cluster is not configured for dual-stack services")


def test_family_not_configured():
    field, msg = only(svc(ipFamilies=["IPv6"]))
    assert (field, msg) == ("spec.ipFamilies[0]",
                            'Invalid value: "IPv6": IPv6 is not configured on this cluster')


def test_single_stack_with_two_families():
    ps = problems(svc(ipFamilyPolicy="SingleStack", ipFamilies=["IPv4", "IPv6"]))
    assert any(p.field == "spec.ipFamilyPolicy" and "multiple 'ipFamilies'" in p.message
               for p in ps)


def test_duplicate_family_and_unsupported_policy():
    ps = problems(svc(ipFamilies=["IPv4", "IPv4"], ipFamilyPolicy="DualStack"))
    assert ps[0].field == "spec.ipFamilies[1]" and ps[0].message == 'Duplicate value: "IPv4"'
    assert ps[1].field == "spec.ipFamilyPolicy" and ps[1].message.startswith("Unsupported")


def test_cluster_ip_family_mismatch():
    kind = {"apiVersion": "kind.x-k8s.io/v1alpha4", "kind": "Cluster",
            "networking": {"ipFamily": "dual"}}
    field, msg = only(kind, svc(clusterIPs=["fd00:10:96::a"], ipFamilies=["IPv4"]))
    assert msg == ('Invalid value: "fd00:10:96::a": expected an IPv4 value as indicated by '
                   '`ipFamilies[0]`')


def test_two_cluster_ips_same_family():
    kind = {"apiVersion": "kind.x-k8s.io/v1alpha4", "kind": "Cluster",
            "networking": {"ipFamily": "dual"}}
    field, msg = only(kind, svc(clusterIPs=["10.96.0.5", "10.96.0.6"],
                                ipFamilyPolicy="RequireDualStack"))
    assert msg.endswith("may specify no more than one IP for each IP family")


def test_node_port_out_of_range():
    field, msg = only(svc(type="NodePort", ports=[{"port": 80, "nodePort": 8080}]))
    assert field == "spec.ports[0].nodePort"
    assert msg == ("Invalid value: 8080: provided port is not in the valid range. The range of "
                   "valid ports is 30000-32767")


def test_node_port_taken_across_services_and_protocols():
    ps = problems(svc("a", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]),
                  svc("b", type="NodePort", ports=[{"port": 53, "protocol": "UDP",
                                                     "nodePort": 30080}]))
    assert [(p.name, p.message) for p in ps] == [
        ("default/b", "Invalid value: 30080: provided port is already allocated")]


def test_node_port_same_service_two_protocols_ok():
    read_text(yaml.safe_dump(svc(type="NodePort", ports=[
        {"name": "t", "port": 53, "nodePort": 30053},
        {"name": "u", "port": 53, "protocol": "UDP", "nodePort": 30053}])))


def test_duplicate_node_port_same_protocol():
    field, msg = only(svc(type="NodePort", ports=[{"name": "a", "port": 80, "nodePort": 30001},
                                                  {"name": "b", "port": 81,
                                                   "nodePort": 30001}]))
    assert (field, msg) == ("spec.ports[1].nodePort", "Duplicate value: 30001")


def test_node_port_forbidden_for_cluster_ip():
    field, msg = only(svc(ports=[{"port": 80, "nodePort": 30001}]))
    assert msg == "Forbidden: may not be used when `type` is 'ClusterIP'"


def test_load_balancer_source_ranges():
    field, msg = only(svc(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/33"]))
    assert field == "spec.loadBalancerSourceRanges[0]" and "valid CIDR" in msg
    field, msg = only(svc(loadBalancerSourceRanges=["10.0.0.0/8"]))
    assert msg == "Forbidden: may only be used when `type` is 'LoadBalancer'"


def test_session_affinity_values_and_timeout():
    field, msg = only(svc(sessionAffinity="Cookie"))
    assert msg == 'Unsupported value: "Cookie": supported values: "ClientIP", "None"'
    field, msg = only(svc(sessionAffinity="ClientIP",
                          sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86401}}))
    assert field == "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
    assert msg == "Invalid value: 86401: must be greater than 0 and less than 86400"
    field, msg = only(svc(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 5}}))
    assert msg == "Forbidden: must not be set when session affinity is None"


def test_external_traffic_policy_only_external():
    field, msg = only(svc(externalTrafficPolicy="Local"))
    assert msg == 'Invalid value: "Local": may only be set for externally-accessible services'


def test_health_check_node_port_needs_lb_local():
    field, msg = only(svc(type="NodePort", healthCheckNodePort=30100))
    assert field == "spec.healthCheckNodePort"


def test_unsupported_service_type():
    field, msg = only(svc(type="Headless"))
    assert field == "spec.type" and msg.startswith('Unsupported value: "Headless"')


# --- workloads -------------------------------------------------------------------------------

def test_selector_must_match_template_labels():
    field, msg = only(deploy({"matchLabels": {"app": "a"}}, {"app": "b"}))
    assert field == "spec.template.metadata.labels"
    assert msg == 'Invalid value: {"app": "b"}: `selector` does not match template `labels`'


def test_empty_selector_invalid():
    field, msg = only(deploy({}, {"app": "b"}))
    assert (field, msg) == ("spec.selector",
                            "Invalid value: {}: empty selector is invalid for deployment")


def test_selector_required():
    d = deploy({"matchLabels": {"a": "b"}}, {"a": "b"})
    del d["spec"]["selector"]
    field, msg = only(d)
    assert (field, msg) == ("spec.selector", "Required value")


def test_selector_expression_operator():
    field, msg = only(deploy({"matchExpressions": [{"key": "a", "operator": "In"}]}, {"a": "b"}))
    assert field == "spec.selector.matchExpressions[0].values"


def test_template_restart_policy_for_deployment():
    field, msg = only(deploy({"matchLabels": {"a": "b"}}, {"a": "b"}, restartPolicy="Never"))
    assert (field, msg) == ("spec.template.spec.restartPolicy",
                            'Unsupported value: "Never": supported values: "Always"')


def test_job_needs_restart_policy():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    field, msg = only(job)
    assert field == "spec.template.spec.restartPolicy" and msg.startswith("Required value")


def test_template_container_errors_are_located_in_template():
    ps = problems(deploy({"matchLabels": {"a": "b"}}, {"a": "b"},
                         containers=[{"name": "c", "image": "i", "ports": [
                             {"containerPort": 99999}]}]))
    assert ps[0].field == "spec.template.spec.containers[0].ports[0].containerPort"


def test_max_surge_and_unavailable_both_zero():
    d = deploy({"matchLabels": {"a": "b"}}, {"a": "b"})
    d["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
    field, msg = only(d)
    assert msg == "Invalid value: 0: may not be 0 when `maxSurge` is 0"


# --- pods ----------------------------------------------------------------------------------------

def test_containers_required_and_image_required():
    ps = problems(pod(containers=[]))
    assert [(p.field, p.message) for p in ps] == [("spec.containers", "Required value")]
    field, msg = only(pod(containers=[{"name": "c"}]))
    assert (field, msg) == ("spec.containers[0].image", "Required value")


def test_duplicate_container_names():
    field, msg = only(pod(containers=[{"name": "c", "image": "i"}, {"name": "c", "image": "i"}]))
    assert (field, msg) == ("spec.containers[1].name", 'Duplicate value: "c"')


def test_probe_handler_count():
    field, msg = only(pod(containers=[{"name": "c", "image": "i", "readinessProbe": {
        "periodSeconds": 3}}]))
    assert msg == "Required value: must specify a handler type"
    field, msg = only(pod(containers=[{"name": "c", "image": "i", "readinessProbe": {
        "httpGet": {"port": 80}, "tcpSocket": {"port": 80}}}]))
    assert msg == "Forbidden: may not specify more than 1 handler type"


def test_dns_policy_none_needs_config():
    field, msg = only(pod(dnsPolicy="None"))
    assert field == "spec.dnsConfig" and msg.startswith("Required value")


def test_host_network_host_port_must_match():
    field, msg = only(pod(hostNetwork=True, containers=[{"name": "c", "image": "i", "ports": [
        {"containerPort": 80, "hostPort": 81}]}]))
    assert msg == "Invalid value: 81: must match `containerPort` when `hostNetwork` is true"


def test_toleration_exists_with_value():
    field, msg = only(pod(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]))
    assert field == "spec.tolerations[0].operator"


# --- ingress ---------------------------------------------------------------------------------

def test_ingress_path_type_required():
    field, msg = only(ingress({"path": "/", "backend": BACKEND}))
    assert (field, msg) == ("spec.rules[0].http.paths[0].pathType",
                            "Required value: pathType must be specified")


def test_ingress_path_must_be_absolute():
    field, msg = only(ingress({"path": "api", "pathType": "Prefix", "backend": BACKEND}))
    assert (field, msg) == ("spec.rules[0].http.paths[0].path",
                            'Invalid value: "api": must be an absolute path')


@pytest.mark.parametrize("path,frag", [("/a//b", "must not contain '//'"),
                                       ("/a/./b", "must not contain '/./'"),
                                       ("/a%2Fb", "must not contain '%2F'"),
                                       ("/a/..", "cannot end with '/..'")])
def test_ingress_exact_prefix_path_chars(path, frag):
    field, msg = only(ingress({"path": path, "pathType": "Exact", "backend": BACKEND}))
    assert msg.endswith(frag)


def test_implementation_specific_allows_regex_like_paths():
    read_text(yaml.safe_dump(ingress({"path": "/a//(.*)", "pathType": "ImplementationSpecific",
                                      "backend": BACKEND})))


def test_ingress_backend_service_xor_resource():
    b = {"service": {"name": "web", "port": {"number": 80}},
         "resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "b"}}
    field, msg = only(ingress({"path": "/", "pathType": "Prefix", "backend": b}))
    assert msg == 'Invalid value: "": cannot set both resource and service backends'


def test_ingress_port_name_xor_number():
    b = {"service": {"name": "web", "port": {"number": 80, "name": "http"}}}
    field, msg = only(ingress({"path": "/", "pathType": "Prefix", "backend": b}))
    assert msg == 'Invalid value: "": cannot set both port name & port number'
    b = {"service": {"name": "web", "port": {}}}
    field, msg = only(ingress({"path": "/", "pathType": "Prefix", "backend": b}))
    assert msg == "Required value: port name or number is required"


def test_ingress_needs_rules_or_default_backend():
    field, msg = only(ingress())
    assert msg.endswith("either `defaultBackend` or `rules` must be specified")


def test_ingress_host_not_ip():
    i = ingress({"path": "/", "pathType": "Prefix", "backend": BACKEND})
    i["spec"]["rules"][0]["host"] = "10.0.0.1"
    field, msg = only(i)
    assert msg.endswith("must be a DNS name, not an IP address")


# --- objects across the input -------------------------------------------------------------------

def test_duplicate_objects():
    ps = problems(svc("a"), svc("a"))
    assert len(ps) == 1 and ps[0].message.startswith('Duplicate value: Service "default/a"')
    read_text(yaml.safe_dump_all([svc("a"), {**svc("a"), "metadata": {
        "name": "a", "namespace": "other"}}]))


def test_removed_api_version_is_error():
    p = ingress({"path": "/", "pathType": "Prefix", "backend": BACKEND})
    p["apiVersion"] = "extensions/v1beta1"
    field, msg = only(p)
    assert msg.startswith('no matches for kind "Ingress" in version "extensions/v1beta1"')


def test_secret_bad_base64_and_tls_keys():
    ps = problems({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "type": "kubernetes.io/tls", "data": {"tls.crt": "!!!"}})
    got = {p.field: p.message for p in ps}
    assert set(got) == {"data[tls.crt]", "data[tls.key]"}
    assert "illegal base64" in got["data[tls.crt]"] and got["data[tls.key]"] == "Required value"


def test_configmap_key_chars():
    field, msg = only({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                       "data": {"a/b": "x"}})
    assert field == "data[a/b]" and "valid config key" in msg
