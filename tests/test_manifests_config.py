"""Cluster configuration kinds → ClusterConfig, and kind-style nodes."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest

from knet.errors import ManifestError
from knet.manifests import default_nodes, parse_duration, read, read_text
from knet.model.config import ClusterConfig
from knet.model.core import Node

DATA = Path(__file__).parent / "data" / "manifests"


def nodes(objects: list) -> list[Node]:
    return [o for o in objects if isinstance(o, Node)]


def test_no_config_gives_model_defaults():
    inp = read_text("")
    assert inp.config == ClusterConfig() and inp.objects == []


def test_kind_cluster_dual_stack():
    inp = read([str(DATA / "kind-dual.yaml")])
    c = inp.config
    assert c.name == "lab" and c.ip_family == "dual" and c.families == (4, 6)
    assert c.pod_subnets == (ip_network("10.244.0.0/16"), ip_network("fd00:10:244::/56"))
    assert c.service_subnets == (ip_network("10.96.0.0/16"), ip_network("fd00:10:96::/112"))
    assert c.kube_proxy.mode == "ipvs" and c.nodes_declared
    assert c.dns_domain == "lab.local"  # from kubeadmConfigPatches
    assert any("disableDefaultCNI" in w for w in inp.warnings)
    ns = nodes(inp.objects)
    assert [n.name for n in ns] == ["lab-control-plane", "lab-worker", "lab-worker2"]
    cp, w1, w2 = ns
    assert cp.labels["node-role.kubernetes.io/control-plane"] == ""
    assert [(t.key, t.effect) for t in cp.taints] == [
        ("node-role.kubernetes.io/control-plane", "NoSchedule")]
    assert w1.labels["topology.kubernetes.io/zone"] == "zone-a" and w2.zone == "zone-b"
    assert w1.labels["kubernetes.io/hostname"] == "lab-worker"
    assert w1.labels["kubernetes.io/os"] == "linux" and w1.labels["kubernetes.io/arch"] == "amd64"
    assert "node-role.kubernetes.io/control-plane" not in w1.labels and not w1.taints
    assert cp.metadata.source is not None and cp.metadata.source.line == 9


def test_kind_without_nodes_is_one_untainted_control_plane():
    inp = read_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")
    (n,) = nodes(inp.objects)
    assert n.name == "knet-control-plane" and n.taints == ()
    assert inp.config.service_subnets == (ip_network("10.96.0.0/16"),)


def test_kind_multiple_control_planes_naming():
    text = ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
            "- role: control-plane\n- role: worker\n")
    assert [n.name for n in nodes(read_text(text).objects)] == [
        "knet-control-plane", "knet-control-plane2", "knet-worker"]


def test_kind_bad_role_and_family():
    with pytest.raises(ManifestError) as e:
        read_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n"
                  "  ipFamily: dualstack\nnodes:\n- role: master\n")
    assert [p.field for p in e.value.problems] == ["networking.ipFamily", "nodes[0].role"]


def test_default_nodes():
    ns = default_nodes(ClusterConfig())
    assert [n.name for n in ns] == ["knet-control-plane", "knet-worker", "knet-worker2"]
    assert ns[0].taints and not ns[1].taints
    assert ns[1].capacity["pods"] == "110"


def test_kubeadm_v1beta3():
    c = read([str(DATA / "kubeadm-v1beta3.yaml")]).config
    assert c.pod_subnets == (ip_network("192.168.0.0/16"),)
    assert c.service_subnets == (ip_network("10.100.0.0/16"),)
    assert c.dns_domain == "corp.local" and c.node_port_range == (20000, 22767)
    assert c.node_cidr_mask_v4 == 25 and c.ip_family == "ipv4" and not c.nodes_declared


def test_kubeadm_v1beta4_list_extra_args_and_dual_stack():
    c = read([str(DATA / "kubeadm-v1beta4.yaml")]).config
    assert c.node_port_range == (31000, 31999) and c.ip_family == "dual"
    assert len(c.pod_subnets) == 2


def test_kubeadm_extra_args_shape_per_version():
    with pytest.raises(ManifestError) as e:
        read_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n"
                  "  extraArgs:\n    service-node-port-range: 30000-32767\n")
    assert "v1beta4" in e.value.problems[0].message


def test_service_subnet_too_large():
    with pytest.raises(ManifestError) as e:
        read_text("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n"
                  "  serviceSubnet: 10.0.0.0/8\n")
    assert "mask must be >= 12" in e.value.problems[0].message


def test_node_port_range_applies_to_validation():
    svc = ("---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: NodePort\n"
           "  ports: [{port: 80, nodePort: 30080}]\n")
    with pytest.raises(ManifestError) as e:
        read([str(DATA / "kubeadm-v1beta3.yaml")]) and read_text(
            (DATA / "kubeadm-v1beta3.yaml").read_text() + svc)
    assert "20000-22767" in e.value.problems[0].message


def test_kube_proxy_configuration():
    kp = read([str(DATA / "kube-proxy.yaml")]).config.kube_proxy
    assert kp.mode == "ipvs" and kp.cluster_cidr == (ip_network("10.244.0.0/16"),)
    assert kp.detect_local_mode == "NodeCIDR" and kp.node_port_addresses == ("primary",)
    assert kp.masquerade_bit == 15 and kp.masquerade_mark == 0x8000 and kp.masquerade_all
    assert not kp.localhost_nodeports
    assert kp.ipvs_scheduler == "lc" and kp.ipvs_strict_arp
    assert (kp.min_sync_period, kp.sync_period) == (0.5, 90.0)  # the ipvs section, mode ipvs
    assert (kp.ipvs_tcp_timeout, kp.ipvs_tcp_fin_timeout, kp.ipvs_udp_timeout) == (900, 120, 300)


def test_kube_proxy_bad_mode_and_scheduler():
    with pytest.raises(ManifestError) as e:
        read_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                  "mode: userspace\nipvs: {scheduler: fastest}\n")
    assert [p.field for p in e.value.problems] == ["mode", "ipvs.scheduler"]


def test_metallb_pools_and_service_cidr():
    inp = read([str(DATA / "metallb-servicecidr.yaml")])
    pools = inp.config.address_pools
    assert [(p.name, p.addresses, p.auto_assign) for p in pools] == [
        ("public", ("172.18.255.200-172.18.255.250", "172.19.0.0/24"), True),
        ("reserved", ("172.20.0.0/28",), False)]
    assert inp.config.service_subnets == (ip_network("10.96.0.0/12"), ip_network("10.200.0.0/24"))
    (svc,) = inp.objects
    assert svc.spec.cluster_ip == "10.200.0.10"


def test_bad_pool_address():
    with pytest.raises(ManifestError) as e:
        read_text("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n"
                  "spec: {addresses: [10.0.0.9-10.0.0.1]}\n")
    assert e.value.problems[0].field == "spec.addresses[0]"


def test_topology_document():
    c = read_text("apiVersion: knet.dev/v1alpha1\nkind: Topology\nname: demo\nseed: 42\n"
                  "externalHosts:\n  db.example.com: 192.0.2.10\n").config
    assert (c.name, c.seed, c.external_hosts) == ("demo", 42, (("db.example.com", "192.0.2.10"),))


def test_topology_bad_external_host_ip_and_duplicate_singleton():
    with pytest.raises(ManifestError) as e:
        read_text("apiVersion: knet.dev/v1alpha1\nkind: Topology\nexternalHosts:\n"
                  "  db.example.com: 300.1.1.1\n---\napiVersion: knet.dev/v1alpha1\n"
                  "kind: Topology\n")
    msgs = [p.message for p in e.value.problems]
    assert "valid IP" in msgs[0] and msgs[1].startswith("only one Topology")


def test_parse_duration():
    assert parse_duration("1m30s") == 90 and parse_duration("250ms") == 0.25
    assert parse_duration("0") == 0 and parse_duration("1x") is None


def test_docs_topology_snippets_parse():
    doc = (Path(__file__).parents[1] / "docs" / "topology.md").read_text()
    blocks = doc.split("```yaml\n")[1:]
    assert blocks
    for block in blocks:
        c = read_text(block.split("```")[0]).config
        assert c.seed == 7 and c.external_hosts == (("db.example.com", "192.0.2.10"),)
