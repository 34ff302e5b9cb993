"""``knet up`` end to end: the real CLI as a subprocess, real dig/curl against its loopback
listeners, SIGINT for a clean stop. Each cluster boots on virtual time (about a second)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
KNET = str(Path(sys.executable).with_name("knet"))
DEMO = str(ROOT / "topologies" / "demo.yaml")
NODEPORT = str(ROOT / "topologies" / "nodeport-local.yaml")

needs = pytest.mark.skipif(not (shutil.which("dig") and shutil.which("curl")),
                           reason="dig and curl are needed")


class Up:
    """A running ``knet up``: its stdout lines, the address table, a clean stop."""

    def __init__(self, args: list[str], env_dir: Path, name: str = "knet") -> None:
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(env_dir)}
        self.state_file = env_dir / "knet" / f"{name}.json"
        self.proc = subprocess.Popen([KNET, "up", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=self.env, cwd=ROOT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._drain_err, daemon=True)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: Any, q: queue.Queue[str]) -> None:
        for line in stream:
            q.put(line.rstrip("\n"))

    def _drain_err(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.err.append(line.rstrip("\n"))

    def wait_line(self, pred: Any, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; stdout={self.out} stderr={self.err}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"knet up exited {self.proc.returncode}: {self.err}") from None
                continue
            self.out.append(line)
            if pred(line):
                return line

    def wait_up(self) -> Up:
        self.wait_line(lambda s: s.startswith("up;"))
        return self

    def address(self, name: str) -> tuple[str, int]:
        for line in self.out:
            parts = line.split()
            if parts and parts[0] == name:
                host, _, port = parts[1].rpartition(":")
                return host, int(port)
        raise AssertionError(f"no {name} in {self.out}")

    @property
    def control(self) -> str:
        h, p = self.address("CONTROL")
        return f"http://{h}:{p}"

    def node_lo(self, index: int) -> str:
        """The loopback address of node ``index`` in this cluster's slot (another knet up on
        the host, another test run, takes another slot)."""
        from knet.expose.plan import node_loopback

        return str(node_loopback(index, json.loads(self.state_file.read_text())["slot"]))

    def lb_lo(self, index: int) -> str:
        from knet.expose.plan import lb_loopback

        return str(lb_loopback(index, json.loads(self.state_file.read_text())["slot"]))

    @property
    def token(self) -> str:
        return str(json.loads(self.state_file.read_text())["control"]["token"])

    def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.control + path, data=data,
                                     method="POST" if data else "GET",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=20) as r:
            return json.loads(r.read())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._readers_done()

    def _readers_done(self) -> None:
        for t in self._threads:
            t.join(timeout=5)
        for s in (self.proc.stdout, self.proc.stderr):
            if s is not None:
                s.close()


def curl(*args: str, timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "-m", str(timeout), *args], capture_output=True,
                          text=True, timeout=timeout + 5)


def dig(port: int, *args: str) -> str:
    r = subprocess.run(["dig", "+time=2", "+tries=1", "@127.0.0.1", "-p", str(port), *args],
                       capture_output=True, text=True, timeout=15)
    return r.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    up = Up(["-f", DEMO, "--dns", "127.0.0.1:0", "--ingress", "127.0.0.1:0",
             "--ingress-tls", "127.0.0.1:0"],
            tmp_path_factory.mktemp("demo-xdg"))
    try:
        yield up.wait_up()
    finally:
        up.stop()


@pytest.fixture(scope="module")
def nodeport(tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("nodeport")
    topo = work / "topology.yaml"
    topo.write_text(Path(NODEPORT).read_text())
    cap = work / "up.pcapng"
    up = Up(["-f", str(topo), "--watch", "--capture", str(cap)], work)
    up.topology = topo  # type: ignore[attr-defined]
    up.pcap = cap  # type: ignore[attr-defined]
    try:
        yield up.wait_up()
    finally:
        up.stop()


# --- DNS ------------------------------------------------------------------------------------------

@needs
def test_dig_answers_from_the_live_cluster(demo: Up) -> None:
    _, port = demo.address("DNS")
    svc = demo.api("/v1/get/services/web?output=json")
    cluster_ip = svc["spec"]["clusterIP"]
    assert dig(port, "web.default.svc.cluster.local", "+short").split() == [cluster_ip]
    assert dig(port, "+tcp", "web.default.svc.cluster.local", "+short").split() == [cluster_ip]
    full = dig(port, "nope.default.svc.cluster.local")
    assert "status: NXDOMAIN" in full and "flags: qr aa rd" in full
    srv = dig(port, "_http._tcp.web.default.svc.cluster.local", "SRV", "+short")
    assert srv.split() == ["0", "100", "80", "web.default.svc.cluster.local."]


# --- ingress --------------------------------------------------------------------------------------

@needs
def test_curl_through_ingress_routes_two_hosts(demo: Up) -> None:
    host, port = demo.address("INGRESS")
    a = curl("-H", "Host: a.example.com", f"http://{host}:{port}/")
    b = curl("-H", "Host: b.example.com", f"http://{host}:{port}/")
    assert a.stdout.strip() == "hello from a", a
    assert b.stdout.strip() == "hello from b", b
    nohost = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: c.example.com",
                  f"http://{host}:{port}/")
    assert nohost.stdout == "404"


@needs
def test_curl_https_through_ingress_tls(demo: Up) -> None:
    _, port = demo.address("INGRESS-TLS")
    r = curl("-k", "--resolve", f"a.example.com:{port}:127.0.0.1",
             f"https://a.example.com:{port}/")
    assert r.stdout.strip() == "hello from a", r


@needs
def test_loadbalancer_ip_is_mapped_to_loopback(demo: Up) -> None:
    table = demo.api("/v1/status")
    [lb] = [x for x in table["loadBalancers"]
            if "ingress-nginx/ingress-nginx-controller" in x["services"]]
    assert lb["loopback"] == demo.lb_lo(0) and "80/TCP" in lb["ports"]
    assert lb["announcedBy"] in {n["name"] for n in table["nodes"]}
    r = curl("-H", "Host: b.example.com", f"http://{lb['loopback']}/")
    assert r.stdout.strip() == "hello from b", r


def test_control_get_nodes_wide(demo: Up, monkeypatch: pytest.MonkeyPatch) -> None:
    text = demo.api("/v1/get/nodes?output=wide")["text"]
    assert text.splitlines()[0].split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION",
                                                "INTERNAL-IP"]
    assert {ln.split()[0] for ln in text.splitlines()[1:]} == {
        "knet-control-plane", "knet-worker", "knet-worker2"}
    # the loopback address real clients use for each node's NodePorts, as a last column
    assert text.splitlines()[0].split()[-1] == "LOOPBACK"
    loopbacks = {ln.split()[0]: ln.split()[-1] for ln in text.splitlines()[1:]}
    assert loopbacks == {"knet-control-plane": demo.node_lo(0), "knet-worker": demo.node_lo(1),
                         "knet-worker2": demo.node_lo(2)}
    from knet.cli.commands import remote_get

    monkeypatch.setenv("XDG_RUNTIME_DIR", demo.env["XDG_RUNTIME_DIR"])  # its token
    assert remote_get(demo.control, "nodes", None, None, False, "wide") == text
    state = json.loads(demo.state_file.read_text())
    assert state["control"]["url"] == demo.control and state["pid"] == demo.proc.pid


def test_control_trace_from_a_pod(demo: Up) -> None:
    res = demo.api("/v1/trace", {"from": "default/client", "url": "http://web/"})
    assert res["http"]["status"] == 200
    assert json.loads(res["http"]["body"])["namespace"] == "default"
    assert "KUBE-SVC-" in res["story"] and "default/web" in res["story"]


# --- NodePorts, masquerade, faults, watch, capture -----------------------------------------------

def _node_loopbacks(up: Up) -> dict[str, str]:
    return {n["name"]: n["loopback"] for n in up.api("/v1/status")["nodes"]}


def _echo_node(up: Up) -> str:
    pods = up.api("/v1/get/pods?output=json")["items"]
    [pod] = [p for p in pods if p["metadata"]["name"].startswith("echo-")]
    return str(pod["spec"]["nodeName"])


@needs
def test_nodeport_local_keeps_the_client_address(nodeport: Up) -> None:
    lo = _node_loopbacks(nodeport)
    assert sorted(lo.values()) == [nodeport.node_lo(i) for i in range(4)]
    assert lo["knet-control-plane"] == nodeport.node_lo(0)  # name order
    node = _echo_node(nodeport)
    r = curl(f"http://{lo[node]}:30080/")
    body = json.loads(r.stdout)
    assert body["node"] == node and body["clientIP"] == "203.0.113.1"
    # another loopback source is another outside client
    r = curl("--interface", "127.0.0.7", f"http://{lo[node]}:30080/")
    assert json.loads(r.stdout)["clientIP"] == "203.0.113.7"
    # a node without a local endpoint drops (kube-proxy: "has no local endpoints")
    other = next(n for n in lo if n != node)
    r = curl(f"http://{lo[other]}:30080/", timeout=1.5)
    assert r.returncode != 0 and r.stdout == ""


@needs
def test_nodeport_cluster_policy_masquerades(nodeport: Up) -> None:
    lo = _node_loopbacks(nodeport)
    nodes = {n["name"]: n["internalIP"] for n in nodeport.api("/v1/status")["nodes"]}
    node = _echo_node(nodeport)
    other = next(n for n in sorted(lo) if n != node)
    body = json.loads(curl(f"http://{lo[other]}:30081/").stdout)
    assert body["node"] == node
    assert body["clientIP"] == nodes[other]  # SNAT to the entry node (KUBE-MARK-MASQ)


@needs
def test_watch_applies_a_change(nodeport: Up) -> None:
    topo: Path = nodeport.topology  # type: ignore[attr-defined]
    topo.write_text(topo.read_text() + """---
apiVersion: v1
kind: Service
metadata: {name: echo-new}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: http, nodePort: 30090}]
""")
    line = nodeport.wait_line(lambda s: s.startswith("watch:"), timeout=30)
    assert "applied 1, deleted 0 (Service default/echo-new)" in line and "converged in" in line
    deadline = time.monotonic() + 10
    while True:
        r = curl(f"http://{nodeport.node_lo(1)}:30090/", timeout=2)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert json.loads(r.stdout)["pod"].startswith("echo-")


def test_control_faults_scale(nodeport: Up) -> None:
    res = nodeport.api("/v1/faults", {"action": "scale", "name": "default/echo", "replicas": 2})
    assert res["ok"] is True
    deadline = time.monotonic() + 15
    while True:
        pods = [p for p in nodeport.api("/v1/get/pods?output=json")["items"]
                if p["metadata"]["name"].startswith("echo-")]
        if len(pods) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(pods) == 2
    with pytest.raises(urllib.error.HTTPError) as e:
        nodeport.api("/v1/faults", {"action": "explode"})
    assert e.value.code == 400
    e.value.close()


def test_sigint_exits_zero_and_writes_the_capture(nodeport: Up) -> None:
    r = curl(f"http://{nodeport.node_lo(0)}:30081/")  # Cluster policy: any node answers
    assert json.loads(r.stdout)["pod"].startswith("echo-")
    assert nodeport.state_file.exists()
    assert nodeport.stop() == 0
    assert not nodeport.state_file.exists()
    data = nodeport.pcap.read_bytes()  # type: ignore[attr-defined]
    assert data[:4] == b"\x0a\x0d\x0d\x0a"  # pcapng section header block
    assert bytes([203, 0, 113, 1]) in data  # the real client, as the outside host


# --- refusals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value", [("--dns", "0.0.0.0:5353"), ("--ingress", "192.0.2.1:80"),
                                        ("--control", "[::]:0"), ("--ingress-tls", "example.com:1")])
def test_non_loopback_bind_is_refused(flag: str, value: str, tmp_path: Path) -> None:
    r = subprocess.run([KNET, "up", "-f", DEMO, flag, value], capture_output=True, text=True,
                       timeout=30, env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)})
    assert r.returncode == 2
    assert flag in r.stderr and "loopback" in r.stderr and "Traceback" not in r.stderr
