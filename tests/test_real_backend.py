"""The kubeconfig backend and ``knet diff`` against a Kubernetes API: here ``knet up``'s own
(these machines cannot run a real cluster; it speaks the same protocol, and kr8s, the client
the backend uses, talks to it as to any cluster)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from knetup import KnetUp as Up

from knet.cli import main
from knet.errors import NotOnRealCluster

pytest.importorskip("kr8s", reason="the kubeconfig backend needs kr8s (pip install knet[real])")

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "topologies" / "demo.yaml")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    up = Up(["-f", DEMO], tmp_path_factory.mktemp("real-xdg"))
    try:
        yield up.kubeconfig()
    finally:
        up.stop()


def test_handles_run_inside_the_pods_of_a_fresh_namespace(kubeconfig: str) -> None:
    from knet.real import connect

    async def scenario() -> str:
        async with connect([DEMO], kubeconfig=kubeconfig, label="handles") as c:
            ns = c.namespace
            assert ns.startswith("knet-handles-")
            client = c.pod("default/client")  # the test's names; the pod lives in ns
            assert client.ready and client.ip.startswith("10.244.")
            assert sorted(p.key for p in c.pods({"app": "web"})) == \
                sorted(f"default/{p.name}" for p in c.state.pods(ns) if p.metadata.labels.get("app") == "web")
            r = await client.http.get("http://web/hello?x=1")
            body = await r.json()
            assert r.status == 200 and body["path"] == "/hello" and body["namespace"] == ns
            assert body["clientIP"] == client.ip  # the request left from the client pod
            svc = c.state.service("default/web")
            assert await client.resolve("web") == [str(svc.spec.cluster_ip)]
            assert (await client.probe_tcp("web", 80, 2))[0]
            assert not (await client.probe_tcp("web", 81, 1))[0]
            res = await client.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
            assert (int(res), res.stdout, res.stderr) == (3, "out\n", "err\n")
            with pytest.raises(NotOnRealCluster, match="virtual time"):
                await c.advance(10)
            with pytest.raises(NotOnRealCluster, match="partition"):
                c.partition("a", "b")
            return ns

    ns = asyncio.run(scenario())

    async def gone() -> bool:
        import kr8s.asyncio

        from knet.real.state import close_api

        api = await kr8s.asyncio.api(kubeconfig=kubeconfig)
        try:
            for _ in range(50):
                names = [n.name async for n in api.get("namespaces")]
                if ns not in names:
                    return True
                await asyncio.sleep(0.2)
            return False
        finally:
            await close_api(api)

    assert asyncio.run(gone()), f"namespace {ns} was not deleted"


def test_examples_run_through_the_kubeconfig_backend(kubeconfig: str, tmp_path: Path) -> None:
    """The example suites, unchanged, against the API: each passes or is skipped for a
    stated reason (what needs the emulator)."""
    examples = ["examples/test_dns.py", "examples/test_load_balancing.py",
                "examples/test_ingress_routing.py", "examples/test_fault_injection.py",
                "examples/test_pcap_on_failure.py"]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                        "--knet-kubeconfig", kubeconfig, *examples],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    tail = r.stdout[-3000:]
    assert r.returncode == 0, tail
    assert " failed" not in tail and " error" not in tail, tail
    skipped = [line for line in r.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skipped and all("needs the emulator" in line for line in skipped), skipped
    assert "passed" in tail


def test_knet_diff_agrees_with_the_cluster_it_describes(kubeconfig: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["diff", "-f", DEMO, "--kubeconfig", kubeconfig, "-o", "json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    import json

    data = json.loads(out)
    checks = {row["check"] for row in data["rows"]}
    assert checks == {"object", "scheduling", "endpoints", "dns"}
    assert data["differences"] == [] and data["agreements"] == len(data["rows"])


def test_knet_diff_names_exactly_the_differences(kubeconfig: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    changed = tmp_path / "changed.yaml"
    text = Path(DEMO).read_text()
    # web's Service selects app-a's pods instead, and a policy the cluster never got
    changed.write_text(text.replace("  name: web\nspec:\n  selector: {app: web}",
                                    "  name: web\nspec:\n  selector: {app: app-a}") + """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all}
spec:
  podSelector: {}
""")
    assert "selector: {app: app-a}" in changed.read_text()
    rc = main(["diff", "-f", str(changed), "--kubeconfig", kubeconfig])
    out = capsys.readouterr().out
    assert rc == 1
    rows = [line.split() for line in out.splitlines() if line.endswith("DIFFER")]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("object", "NetworkPolicy", "default/deny-all"),
        ("endpoints", "Service", "default/web")], out


def test_rules_from_a_node_dump(kubeconfig: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """A node's iptables-save (here knet's own, as a real node's would be given) against
    knet's kube-proxy over the live Services and endpoints."""
    dump = tmp_path / "worker.rules"
    assert main(["rules", "-f", DEMO, "--node", "knet-worker", "--format", "iptables-save"]) == 0
    dump.write_text(capsys.readouterr().out)
    rc = main(["diff", "-f", DEMO, "--kubeconfig", kubeconfig, "--rules-from",
               f"knet-worker={dump}", "-o", "json"])
    import json

    data = json.loads(capsys.readouterr().out)
    rules = [r for r in data["rows"] if r["check"] == "rules"]
    assert len(rules) > 10
    # the static dump has no ingress-nginx (knet up adds the controller); everything else agrees
    differ = [r for r in rules if r["knet"] != r["cluster"]]
    assert differ and all("ingress-nginx/" in r["object"] and r["cluster"] == "missing"
                          for r in differ), differ
    assert all(r["knet"] == r["cluster"] for r in rules if "default/" in r["object"])
    assert rc == 1


NETPOL = str(ROOT / "topologies" / "netpol-model.yaml")
DENY_X = str(ROOT / "topologies" / "policies" / "deny-ingress-x.yaml")
ALLOW_Y = str(ROOT / "topologies" / "policies" / "allow-from-y.yaml")


@pytest.fixture(scope="module")
def netpol_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    up = Up(["-f", NETPOL, "-f", DENY_X], tmp_path_factory.mktemp("netpol-xdg"))
    try:
        yield up.kubeconfig()
    finally:
        up.stop()


def test_knet_diff_reachability_cells(netpol_kubeconfig: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """knet's table for the files, against nc from every pod: the same files agree cell by
    cell; a policy the cluster never got differs in exactly the cells it changes."""
    import json

    import knet
    from knet.policy.reach import reachability

    def reach_rows(files: list[str]) -> tuple[int, list[dict[str, str]]]:
        args = ["diff", "--kubeconfig", netpol_kubeconfig, "--reach-port", "80", "-o", "json"]
        rc = main([*args, *sum((["-f", f] for f in files), [])])
        rows = json.loads(capsys.readouterr().out)["rows"]
        return rc, [r for r in rows if r["check"] == "reach"]

    rc, rows = reach_rows([NETPOL, DENY_X])
    assert len(rows) == 9 * 8 and all(r["knet"] == r["cluster"] for r in rows)
    assert any(r["knet"] == "X" for r in rows) and any(r["knet"] == "." for r in rows)

    rc, rows = reach_rows([NETPOL, DENY_X, ALLOW_Y])
    assert rc == 1
    before = reachability(knet.load([NETPOL, DENY_X]), namespaces=["x", "y", "z"], via="pod")
    after = reachability(knet.load([NETPOL, DENY_X, ALLOW_Y]), namespaces=["x", "y", "z"],
                         via="pod")
    changed = {f"TCP/80 {f} → {t}" for f in before.probes[0].pods for t in before.probes[0].pods
               if f != t and before.probes[0].matrix[f][t] != after.probes[0].matrix[f][t]}
    assert changed
    assert {r["object"] for r in rows if r["knet"] != r["cluster"]} == changed
