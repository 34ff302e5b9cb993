"""The command line as users and scripts call it: exit codes, stdout data, stderr messages."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from knet.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "topologies" / "demo.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_get_pods_wide_spreads_pods_with_ips_from_node_cidrs(capsys) -> None:
    rc, out, _ = run(capsys, "get", "pods", "-o", "wide", "-f", DEMO)
    assert rc == 0
    header, *rows = out.splitlines()
    assert header.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "IP" in header and "NODE" in header
    rc, nodes_json, _ = run(capsys, "get", "nodes", "-o", "json", "-f", DEMO)
    cidr = {n["metadata"]["name"]: ipaddress.ip_network(n["spec"]["podCIDR"])
            for n in json.loads(nodes_json)["items"]}
    used_nodes = set()
    for row in rows:
        cells = row.split()
        ip, node = ipaddress.ip_address(cells[5]), cells[6]
        assert ip in cidr[node], row
        used_nodes.add(node)
    assert {"knet-worker", "knet-worker2"} <= used_nodes
    assert "knet-control-plane" not in used_nodes  # tainted NoSchedule


def test_get_json_list_shape_and_single_object(capsys) -> None:
    rc, out, _ = run(capsys, "get", "svc", "-o", "json", "-f", DEMO)
    data = json.loads(out)
    assert rc == 0 and data["kind"] == "List" and data["apiVersion"] == "v1"
    assert {i["metadata"]["name"] for i in data["items"]} >= {"web", "kubernetes"}
    rc, out, _ = run(capsys, "get", "svc", "kubernetes", "-o", "json", "-f", DEMO)
    one = json.loads(out)
    assert one["kind"] == "Service" and one["spec"]["clusterIP"] == "10.96.0.1"


def test_get_yaml_output_loads_again(capsys, tmp_path) -> None:
    rc, out, _ = run(capsys, "get", "all", "-A", "-o", "yaml", "-f", DEMO)
    assert rc == 0
    f = tmp_path / "snapshot.yaml"
    f.write_text(out)
    rc, _, err = run(capsys, "validate", "-f", str(f))
    assert rc == 0, err


def test_validate_reports_every_problem_located_and_exits_1(capsys) -> None:
    bad = ROOT / "tests" / "data" / "cli" / "bad.yaml"
    rc, out, err = run(capsys, "validate", "-f", str(bad))
    assert rc == 1 and out == ""
    lines = [ln for ln in err.splitlines() if ln.startswith(str(bad))]
    assert len(lines) >= 2
    assert any(":5:" in ln and "spec.ports[0].port" in ln for ln in lines)
    assert "Traceback" not in err


def test_usage_errors_exit_2(capsys, monkeypatch, tmp_path) -> None:
    # no running knet up of this machine (another test or user) may answer "get pods"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("KNET_SERVER", raising=False)
    assert run(capsys, "get")[0] == 2
    assert run(capsys, "get", "pods")[0] == 2  # no -f
    assert run(capsys, "get", "frobs", "-f", DEMO)[0] == 2


def test_rules_prints_restore_input_with_kube_chains(capsys) -> None:
    rc, out, _ = run(capsys, "rules", "-f", DEMO, "--node", "knet-worker")
    assert rc == 0
    assert out.startswith("*filter\n") and "*nat\n" in out and out.rstrip().endswith("COMMIT")
    assert ':KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]' in out  # default/kubernetes:https
    rc, nat, _ = run(capsys, "rules", "-f", DEMO, "--node", "knet-worker", "--table", "nat")
    assert nat.startswith("*nat\n") and "*filter" not in nat


def test_trace_all_lists_every_web_endpoint(capsys) -> None:
    _, svc, _ = run(capsys, "get", "svc", "web", "-o", "json", "-f", DEMO)
    cip = json.loads(svc)["spec"]["clusterIP"]
    _, eps, _ = run(capsys, "get", "endpointslices", "-o", "json", "-f", DEMO)
    want = sorted(f"{e['addresses'][0]}:8080" for s in json.loads(eps)["items"]
                  if s["metadata"]["labels"]["kubernetes.io/service-name"] == "web"
                  for e in s["endpoints"])
    rc, out, _ = run(capsys, "trace", "-f", DEMO, "--from", "default/client",
                     "--to", f"{cip}:80", "--all", "-o", "json")
    data = json.loads(out)
    assert rc == 0 and sorted(data["outcomes"]) == want and data["masquerade"] is False


def test_trace_story_names_the_rules(capsys) -> None:
    _, svc, _ = run(capsys, "get", "svc", "web", "-o", "json", "-f", DEMO)
    cip = json.loads(svc)["spec"]["clusterIP"]
    rc, out, _ = run(capsys, "trace", "-f", DEMO, "--from", "default/client", "--to", f"{cip}:80")
    assert rc == 0
    assert '"default/web:http cluster IP" → KUBE-SVC-' in out
    assert "DNAT to 10.244." in out and "delivered to pod default/web-" in out


def test_route_json(capsys) -> None:
    rc, out, _ = run(capsys, "route", "-f", DEMO, "--host", "b.example.com", "--path", "/x?q=1",
                     "-o", "json")
    d = json.loads(out)
    assert rc == 0 and d["status"] == 200 and d["service"] == "default/app-b:80"
    assert d["ingress"] == "default/fanout" and d["upstream_path"] == "/x?q=1"
    rc, out, _ = run(capsys, "route", "-f", DEMO, "--host", "nope.example.com", "--path", "/",
                     "-o", "json")
    assert json.loads(out)["status"] == 404


def test_dig_from_pod_applies_search_path(capsys) -> None:
    _, svc, _ = run(capsys, "get", "svc", "web", "-o", "json", "-f", DEMO)
    cip = json.loads(svc)["spec"]["clusterIP"]
    rc, out, _ = run(capsys, "dig", "-f", DEMO, "web", "--from", "default/client", "-o", "json")
    d = json.loads(out)
    assert rc == 0 and d["rcode"] == "NOERROR"
    assert d["answer"] == [f"web.default.svc.cluster.local. 30 IN A {cip}"]
    assert d["queries"][0]["name"] == "web.default.svc.cluster.local."
    rc, out, _ = run(capsys, "dig", "-f", DEMO, "nothere", "--from", "default/client", "-o", "json")
    d = json.loads(out)
    # ndots:5 → every search domain is tried, then the name as given
    assert [q["name"] for q in d["queries"]] == [
        "nothere.default.svc.cluster.local.", "nothere.svc.cluster.local.",
        "nothere.cluster.local.", "nothere."]
    assert d["rcode"] != "NOERROR"


def test_dig_text_looks_like_dig(capsys) -> None:
    rc, out, _ = run(capsys, "dig", "-f", DEMO, "kubernetes.default.svc.cluster.local")
    assert rc == 0
    assert ";; ->>HEADER<<- opcode: QUERY, status: NOERROR" in out
    answer = out.split(";; ANSWER SECTION:\n")[1].splitlines()[0]
    assert answer.split() == ["kubernetes.default.svc.cluster.local.", "30", "IN", "A", "10.96.0.1"]


def test_live_trace_tells_the_story_and_writes_pcap(capsys, tmp_path) -> None:
    pcap = tmp_path / "web.pcapng"
    rc, out, _ = run(capsys, "trace", "-f", DEMO, "--from", "default/client",
                     "--url", "http://web/", "--pcap", str(pcap), "-o", "json")
    d = json.loads(out)
    assert rc == 0 and d["http"]["status"] == 200
    backend = json.loads(d["http"]["body"])["pod"]
    story = d["story"]
    assert "10.96.0.10:53" in story  # the DNS query to kube-dns, first
    assert "\"default/web:http cluster IP\"" in story and " DNAT " in story
    assert f"default/{backend}" in story
    assert pcap.stat().st_size > 0 and d["pcap"]["packets"] > 0


def test_compare_modes_reports_the_unused_port_difference(capsys) -> None:
    rc, out, _ = run(capsys, "compare-modes", "-f", DEMO, "-o", "json")
    d = json.loads(out)
    assert rc == 0 and d["modes"] == ["iptables", "ipvs", "nftables"]
    unused = [f for f in d["differences"] if f["kind"] == "ClusterIP-unused-port"]
    assert unused and all(f["modes"]["iptables"]["outcomes"] == [] and
                          f["modes"]["nftables"]["outcomes"] == ["REJECT"] for f in unused)
    same = [f for f in d["all"] if f["kind"] == "ClusterIP" and not f["differs"]]
    assert same  # real service ports route alike in all three modes
    assert d["cost"]["iptables"]["rules_walked_mean"] > d["cost"]["nftables"]["rules_walked_mean"]


def test_get_configmaps_namespaces_and_yaml_quoting(capsys) -> None:
    rc, out, _ = run(capsys, "get", "ns", "-f", DEMO)
    assert rc == 0 and out.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    assert {ln.split()[0] for ln in out.splitlines()[1:]} >= {"default", "kube-system"}
    rc, out, _ = run(capsys, "get", "cm", "coredns", "-n", "kube-system", "-o", "yaml", "-f", DEMO)
    assert rc == 0 and "  Corefile: |\n    .:53 {\n" in out  # a literal block, as kubectl
    assert 'resourceVersion: "' in out                   # strings that look numeric: quoted
