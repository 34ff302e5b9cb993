"""Every shipped topology loads, and shows the behaviour it exists to teach."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import knet
from knet.cli import main

TOPO = Path(__file__).resolve().parents[1] / "topologies"


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    rc = main([*argv, "-o", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


@pytest.mark.parametrize("path", sorted(TOPO.glob("*.yaml")), ids=lambda p: p.stem)
def test_topology_loads_and_schedules_its_pods(path: Path) -> None:
    cluster = knet.load(str(path))
    pending = [p.key for p in cluster.pods() if p.status.phase == "Pending"
               and p.metadata.name != "unschedulable"]
    assert not pending
    assert any(s.metadata.name == "kube-dns" for s in cluster.services("kube-system"))


def test_statefulset_headless_names_and_srv(capsys) -> None:
    f = str(TOPO / "statefulset-headless.yaml")
    cluster = knet.load(f)
    d = cli_json(capsys, "dig", "-f", f, "db-0.db.default.svc.cluster.local")
    assert d["answer"] == [f"db-0.db.default.svc.cluster.local. 30 IN A {cluster.pod('default/db-0').ip}"]
    srv = cli_json(capsys, "dig", "-f", f, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    targets = sorted(rr.split()[-1] for rr in srv["answer"])
    assert targets == [f"db-{i}.db.default.svc.cluster.local." for i in range(3)]
    assert all(" 5432 " in rr for rr in srv["answer"])


def test_loadbalancer_source_ranges(capsys) -> None:
    f = str(TOPO / "loadbalancer-source-ranges.yaml")
    cluster = knet.load(f)
    svc = cluster.service("default/shop")
    lb = svc.load_balancer_ingress[0].ip
    assert lb == "192.0.2.10"  # first address of the MetalLB pool
    eps = sorted(f"{e.addresses[0]}:8080" for s in cluster.endpoint_slices("default/shop")
                 for e in s.endpoints)
    ok = cli_json(capsys, "trace", "-f", f, "--from", "198.51.100.7", "--to", f"{lb}:80",
                  "--node", "knet-worker", "--all")
    assert sorted(ok["outcomes"]) == eps and ok["masquerade"] is True
    no = cli_json(capsys, "trace", "-f", f, "--from", "203.0.113.9", "--to", f"{lb}:80",
                  "--node", "knet-worker", "--all")
    assert no["outcomes"] == ["DROP"]


def test_scheduling_taints_affinity_daemonset() -> None:
    cluster = knet.load(str(TOPO / "scheduling.yaml"))
    on = {p.metadata.name: p.spec.node_name for p in cluster.pods("default")}
    assert all(n == "gpu-1" for name, n in on.items() if name.startswith("trainer-"))
    agents = sorted(n for name, n in on.items() if name.startswith("node-agent-"))
    assert agents == ["knet-control-plane", "knet-worker", "knet-worker2"]  # not the tainted gpu-1
    stuck = cluster.pod("default/unschedulable")
    cond = stuck.status.condition("PodScheduled")
    assert stuck.status.phase == "Pending" and cond is not None and cond.reason == "Unschedulable"
    assert cond.message.startswith("0/4 nodes are available: ")


@pytest.mark.parametrize("mode", ["ipvs", "nftables"])
def test_mode_variants_route_like_iptables(capsys, mode: str) -> None:
    f = str(TOPO / f"{mode}.yaml")
    cluster = knet.load(f)
    assert cluster.config.kube_proxy.mode == mode
    cip = cluster.service("default/web").spec.cluster_ip
    d = cli_json(capsys, "trace", "-f", f, "--from", "default/client", "--to", f"{cip}:80",
                 "--all")
    base = cli_json(capsys, "trace", "-f", f, "--mode", "iptables", "--from", "default/client",
                    "--to", f"{cip}:80", "--all")
    assert sorted(d["outcomes"]) == sorted(base["outcomes"]) and len(d["outcomes"]) == 3


def test_dual_stack(capsys) -> None:
    f = str(TOPO / "dual-stack.yaml")
    cluster = knet.load(f)
    client = cluster.pod("default/client")
    assert sorted(ip.version for ip in client.status.pod_ips) == [4, 6]
    svc = cluster.service("default/web-dual")
    assert [ip.count(":") > 0 for ip in svc.spec.cluster_ips] == [True, False]
    aaaa = cli_json(capsys, "dig", "-f", f, "web-dual.default.svc.cluster.local", "AAAA")
    assert aaaa["answer"][0].split()[-1] == svc.spec.cluster_ips[0]
    rc = main(["rules", "-f", f, "--node", "knet-worker", "--family", "6"])
    out = capsys.readouterr().out
    assert rc == 0 and f"-d {svc.spec.cluster_ips[0]}" in out
