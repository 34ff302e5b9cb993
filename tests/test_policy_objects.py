"""Network policy objects: API-server defaulting and validation (messages and field paths as
pkg/apis/networking/validation words them), the cluster-scoped policy CRDs, and the
namespace name label."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from knet.cli import main
from knet.control import Cluster
from knet.errors import ManifestError
from knet.manifests import read_text
from knet.manifests.render import to_manifest


def netpol(spec: dict[str, Any], name: str = "p", ns: str = "x") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def cnp(spec: dict[str, Any], kind: str = "ClusterNetworkPolicy", name: str = "c") -> dict:
    version = "v1alpha2" if kind == "ClusterNetworkPolicy" else "v1alpha1"
    return {"apiVersion": f"policy.networking.k8s.io/{version}", "kind": kind,
            "metadata": {"name": name}, "spec": spec}


def load(*docs: dict[str, Any]) -> list[Any]:
    return read_text("---\n".join(yaml.safe_dump(d) for d in docs), "t.yaml").objects


def messages(*docs: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as e:
        load(*docs)
    return sorted(f"{p.field}: {p.message}" for p in e.value.problems)


@pytest.mark.parametrize("spec, types", [
    ({"podSelector": {}}, ["Ingress"]),
    ({"podSelector": {}, "egress": []}, ["Ingress"]),  # an empty egress list adds nothing
    ({"podSelector": {}, "egress": [{}]}, ["Ingress", "Egress"]),
    ({"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}]}, ["Egress"]),
    ({"podSelector": {}, "policyTypes": []}, ["Ingress"]),
])
def test_policy_types_are_defaulted_like_the_api_server(spec, types) -> None:
    (p,) = load(netpol(spec))
    assert list(p.policy_types) == types
    assert to_manifest(p)["spec"]["policyTypes"] == types


def test_port_protocol_defaults_to_tcp_and_the_defaulted_object_is_shown() -> None:
    (p,) = load(netpol({"podSelector": {"matchLabels": {"app": "web"}},
                        "ingress": [{"ports": [{"port": 80}, {"protocol": "UDP"}]}],
                        "egress": [{"ports": [{"port": "dns", "protocol": "UDP"}]}]}))
    assert [x.protocol for x in p.ingress[0].ports] == ["TCP", "UDP"]
    m = to_manifest(p)
    assert m["apiVersion"] == "networking.k8s.io/v1"
    assert m["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 80},
                                               {"protocol": "UDP"}]}]
    assert m["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_validation_messages_and_paths() -> None:
    got = messages(netpol({
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress", "Foo"],
        "ingress": [{
            "ports": [{"port": "Http_x"}, {"port": 80, "endPort": 70},
                      {"port": "web", "endPort": 90}, {"endPort": 5}, {"protocol": "ICMP"},
                      {"port": 0}],
            "from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8",
                                      "except": ["10.0.0.0/8", "11.0.0.0/16", "bad"]},
                          "podSelector": {}},
                     {"ipBlock": {"cidr": "300.0.0.0/8"}},
                     {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}],
        }]}))
    p = "spec.ingress[0]"
    assert got == sorted([
        'spec.policyTypes: Invalid value: ["Ingress", "Egress", "Foo"]: may not specify more '
        'than two policyTypes',
        f'{p}.ports[0].port: Invalid value: "Http_x": must contain only alpha-numeric '
        'characters (a-z, 0-9), and hyphens (-)',
        f"{p}.ports[1].endPort: Invalid value: 80: must be greater than or equal to `port`",
        f"{p}.ports[2].endPort: Invalid value: 90: may not be specified when `port` is "
        "non-numeric",
        f"{p}.ports[3].endPort: Invalid value: 5: may not be specified when `port` is not "
        "specified",
        f'{p}.ports[4].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", '
        '"SCTP"',
        f"{p}.ports[5].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        f"{p}.from[0]: Required value: must specify a peer",
        f'{p}.from[1].ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be a strict subset '
        "of `cidr`",
        f'{p}.from[1].ipBlock.except[1]: Invalid value: "11.0.0.0/16": must be a strict '
        "subset of `cidr`",
        f'{p}.from[1].ipBlock.except[2]: Invalid value: "bad": must be a valid CIDR',
        f"{p}.from[1]: Forbidden: may not specify both ipBlock and another peer",
        f'{p}.from[2].ipBlock.cidr: Invalid value: "300.0.0.0/8": must be a valid CIDR value, '
        "(e.g. 10.9.8.0/24 or 2001:db8::/64)",
        f'{p}.from[3].ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be a strict subset '
        "of `cidr`",
    ])


def test_policy_type_values_and_selectors_are_validated() -> None:
    got = messages(netpol({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
                           "policyTypes": ["ingress"]}))
    assert got == sorted([
        "spec.podSelector.matchExpressions[0].values: Required value: must be specified when "
        "`operator` is 'In' or 'NotIn'",
        'spec.policyTypes[0]: Unsupported value: "ingress": supported values: "Ingress", '
        '"Egress"',
    ])


def test_nothing_is_applied_when_one_policy_is_invalid_and_errors_are_located(tmp_path,
                                                                              capsys) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump_all([
        netpol({"podSelector": {}}, name="fine"),
        netpol({"podSelector": {}, "ingress": [{"ports": [{"port": 99999}]}]}, name="bad"),
    ]))
    assert main(["get", "netpol", "-A", "-f", str(f)]) == 1
    err = capsys.readouterr().err
    assert (f"{f}:17:13:" in err and "NetworkPolicy x/bad: spec.ingress[0].ports[0].port: "
            "Invalid value: 99999: must be between 1 and 65535, inclusive" in err)
    assert "nothing applied" in err


def test_generate_name_and_kubectl_table(tmp_path, capsys) -> None:
    doc = netpol({"podSelector": {"matchLabels": {"app": "web"}}})
    del doc["metadata"]["name"]
    doc["metadata"]["generateName"] = "allow-"
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(doc))
    assert main(["get", "networkpolicies", "-n", "x", "-f", str(f)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "POD-SELECTOR", "AGE"]
    name, sel, _age = out[1].split()
    assert name.startswith("allow-") and len(name) == len("allow-") + 5 and sel == "app=web"


def test_namespaces_carry_the_immutable_name_label() -> None:
    objs = load({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": "shop",
                              "labels": {"kubernetes.io/metadata.name": "other", "t": "1"}}})
    c = Cluster.from_input(type("I", (), {"objects": objs, "config": _config(),
                                          "warnings": []})())
    labels = {n.metadata.name: dict(n.metadata.labels) for n in c.namespaces()}
    assert labels["shop"] == {"kubernetes.io/metadata.name": "shop", "t": "1"}
    assert labels["default"]["kubernetes.io/metadata.name"] == "default"
    assert labels["kube-system"]["kubernetes.io/metadata.name"] == "kube-system"


def _config() -> Any:
    from knet.model.config import ClusterConfig

    return ClusterConfig()


def test_cluster_network_policy_is_parsed_and_validated() -> None:
    (p,) = load(cnp({"tier": "Admin", "priority": 10, "subject": {"namespaces": {}},
                     "ingress": [{"name": "r", "action": "Deny",
                                  "from": [{"pods": {"namespaceSelector": {},
                                                     "podSelector": {"matchLabels": {"a": "b"}}}}],
                                  "protocols": [{"tcp": {"destinationPort": {"range": {
                                      "start": 80, "end": 81}}}},
                                                {"destinationNamedPort": "web"}]}],
                     "egress": [{"action": "Accept", "to": [{"networks": ["10.0.0.0/8"]},
                                                            {"nodes": {}}]}]}))
    assert (p.tier, p.priority, p.ingress[0].action) == ("Admin", 10, "Deny")
    assert [(x.protocol, x.start, x.end, x.named) for x in p.ingress[0].ports] == [
        ("TCP", 80, 81, ""), ("", 0, 0, "web")]
    assert [x.kind for x in p.egress[0].peers] == ["networks", "nodes"]
    assert p.egress[0].name == "egress[0]"
    got = messages(cnp({"tier": "Middle", "priority": 1001, "subject": {"namespaces": {}},
                        "ingress": [{"action": "Allow", "from": []}]}))
    assert got == sorted([
        'spec.tier: Unsupported value: "Middle": supported values: "Admin", "Baseline"',
        "spec.priority: Invalid value: 1001: spec.priority in body should be less than or "
        "equal to 1000",
        'spec.ingress[0].action: Unsupported value: "Allow": supported values: "Accept", '
        '"Deny", "Pass"',
        "spec.ingress[0].from: Required value",
    ])


def test_v1alpha1_kinds_map_onto_the_same_engine() -> None:
    anp, banp = load(
        cnp({"priority": 5, "subject": {"pods": {"namespaceSelector": {}, "podSelector": {}}},
             "ingress": [{"name": "allow", "action": "Allow", "from": [{"namespaces": {}}],
                          "ports": [{"portNumber": {"protocol": "UDP", "port": 53}},
                                    {"portRange": {"protocol": "TCP", "start": 80, "end": 90}},
                                    {"namedPort": "web"}]}]},
            kind="AdminNetworkPolicy"),
        cnp({"subject": {"namespaces": {}},
             "egress": [{"name": "deny", "action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]}]},
            kind="BaselineAdminNetworkPolicy", name="default"))
    assert (anp.tier, anp.ingress[0].action, banp.tier, banp.egress[0].action) == (
        "Admin", "Accept", "Baseline", "Deny")
    assert [(x.protocol, x.start, x.end, x.named) for x in anp.ingress[0].ports] == [
        ("UDP", 53, 53, ""), ("TCP", 80, 90, ""), ("", 0, 0, "web")]
    got = messages(cnp({"subject": {"namespaces": {}},
                        "ingress": [{"name": "p", "action": "Pass",
                                     "from": [{"namespaces": {}}]}]},
                       kind="BaselineAdminNetworkPolicy", name="mine"))
    assert got == sorted([
        'metadata.name: Invalid value: "mine": Only one baseline admin network policy with '
        'metadata.name="default" can be created in the cluster',
        'spec.ingress[0].action: Unsupported value: "Pass": supported values: "Allow", "Deny"',
    ])


def _values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 70000),
                        st.sampled_from(["", "x", "TCP", "Ingress", "Accept", "10.0.0.0/8",
                                         "bad/99", "serve-80", "Pass", "Admin"]))
    keys = st.sampled_from(["podSelector", "policyTypes", "ingress", "egress", "from", "to",
                            "ports", "port", "endPort", "protocol", "ipBlock", "cidr", "except",
                            "namespaceSelector", "matchLabels", "tier", "priority", "subject",
                            "namespaces", "pods", "networks", "nodes", "action", "name",
                            "protocols", "tcp", "destinationPort", "range", "start", "end",
                            "number", "destinationNamedPort", "portNumber", "portRange"])
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(_values(), st.sampled_from(
    ["NetworkPolicy", "ClusterNetworkPolicy", "AdminNetworkPolicy",
     "BaselineAdminNetworkPolicy"]))
def test_any_spec_is_parsed_or_rejected_with_located_problems(spec, kind) -> None:
    doc = netpol(spec) if kind == "NetworkPolicy" else cnp(spec, kind=kind, name="default")
    try:
        load(doc)
    except ManifestError as e:
        assert e.problems and all(p.line > 0 for p in e.problems)
