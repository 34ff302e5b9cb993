"""The real kubectl (and the Python ``kubernetes`` client) against ``knet up``'s API.

One ``knet up`` per module (a subprocess, booted on virtual time); every test runs kubectl with
the kubeconfig it wrote and a fresh HOME (kubectl caches discovery for 6 hours). Tests use
their own objects so that their order does not matter."""

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_up_e2e import Up

ROOT = Path(__file__).resolve().parents[1]
TOPO = str(ROOT / "topologies" / "runtime-basic.yaml")

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None,
                                reason="kubectl is not installed (.ci/run installs it)")


class Kubectl:
    def __init__(self, up: Up, kubeconfig: str, home: Path) -> None:
        self.up = up
        self.env = {**os.environ, "KUBECONFIG": kubeconfig, "HOME": str(home)}
        self.kubeconfig = kubeconfig

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} → {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def __call__(self, *args: str, **kw: Any) -> str:
        return self.run(*args, **kw).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    d = tmp_path_factory.mktemp("api")
    up = Up(["-f", TOPO, "--no-control", "--seed", "3"], d)
    path = ""
    try:
        up.wait_up()
        path = next(x for x in up.out if x.startswith("export KUBECONFIG=")).split("=", 1)[1]
        yield Kubectl(up, path, d / "home")
    finally:
        assert up.stop() == 0
        assert not path or not Path(path).exists()  # the kubeconfig goes with the cluster


def test_up_prints_api_and_kubeconfig(kubectl: Kubectl) -> None:
    api = next(x for x in kubectl.up.out if x.startswith("API "))
    assert "https Kubernetes API (kubectl)" in api
    text = Path(kubectl.kubeconfig).read_text()
    assert "current-context: knet-knet" in text and "client-certificate-data" in text
    assert oct(Path(kubectl.kubeconfig).stat().st_mode & 0o777) == "0o600"
    env = {**os.environ, **{"XDG_RUNTIME_DIR": kubectl.up.env["XDG_RUNTIME_DIR"]}}
    p = subprocess.run([str(Path(sys.executable).with_name("knet")), "kubeconfig"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout == text


def test_get_tables_and_outputs(kubectl: Kubectl) -> None:
    out = kubectl("get", "pods", "-A", "-o", "wide")
    header = out.splitlines()[0].split()
    assert header[:6] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "NOMINATED" in header and "GATES" in header
    assert any(line.split()[0] == "kube-system" and "coredns-" in line for line in out.splitlines())
    nodes = kubectl("get", "nodes").splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:3] == ["knet-control-plane", "Ready", "control-plane"]
    svc = kubectl("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}")
    assert svc == "10.96.0.1"
    d = kubectl.json("get", "deploy", "echo")
    assert d["kind"] == "Deployment" and d["status"]["readyReplicas"] == 3
    y = kubectl("get", "cm", "-n", "kube-system", "coredns", "-o", "yaml")
    assert "Corefile" in y
    err = kubectl.run("get", "pods", "-n", "empty-ns")
    assert err.stdout == "" and "No resources found in empty-ns namespace." in err.stderr
    nf = kubectl.run("get", "deploy", "nope", check=False)
    assert nf.returncode == 1
    assert nf.stderr.strip() == 'Error from server (NotFound): deployments.apps "nope" not found'
    sel = kubectl("get", "pods", "-l", "app=echo", "--field-selector", "status.phase=Running",
                  "-o", "name").split()
    assert len(sel) == 3 and all(s.startswith("pod/echo-") for s in sel)


def test_apply_twice_server_side_create_replace(kubectl: Kubectl, tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t-apply\ndata:\n  a: '1'\n")
    assert kubectl("apply", "-f", str(f)) == "configmap/t-apply created\n"
    assert kubectl("apply", "-f", str(f)) == "configmap/t-apply unchanged\n"
    f.write_text(f.read_text().replace("'1'", "'2'"))
    assert kubectl("apply", "-f", str(f)) == "configmap/t-apply configured\n"
    assert kubectl("get", "cm", "t-apply", "-o", "jsonpath={.data.a}") == "2"
    g = tmp_path / "ss.yaml"
    g.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t-ssa\ndata:\n  k: v\n")
    assert kubectl("apply", "--server-side", "-f", str(g)) == "configmap/t-ssa serverside-applied\n"
    h = tmp_path / "c.yaml"
    h.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t-create\ndata:\n  k: v\n")
    assert kubectl("create", "-f", str(h)) == "configmap/t-create created\n"
    dup = kubectl.run("create", "-f", str(h), check=False)
    assert dup.returncode == 1 and 'configmaps "t-create" already exists' in dup.stderr
    h.write_text(h.read_text().replace("k: v", "k: w"))
    assert kubectl("replace", "-f", str(h)) == "configmap/t-create replaced\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t-bad\nbogus: 1\n")
    r = kubectl.run("apply", "-f", str(bad), check=False)
    assert r.returncode == 1 and 'unknown field "bogus"' in r.stderr


def test_patch_three_types_and_label(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "t-patch", "--from-literal=a=1")
    assert kubectl("patch", "cm", "t-patch", "--type", "merge", "-p", '{"data":{"b":"2"}}') == \
        "configmap/t-patch patched\n"
    kubectl("patch", "cm", "t-patch", "--type", "json",
            "-p", '[{"op":"remove","path":"/data/a"}]')
    kubectl("patch", "cm", "t-patch", "-p", '{"metadata":{"labels":{"x":"y"}}}')
    cm = kubectl.json("get", "cm", "t-patch")
    assert cm["data"] == {"b": "2"} and cm["metadata"]["labels"] == {"x": "y"}
    assert kubectl("label", "cm", "t-patch", "tier=fe") == "configmap/t-patch labeled\n"
    assert kubectl("get", "cm", "-l", "tier=fe", "-o", "name") == "configmap/t-patch\n"


def test_deployment_lifecycle(kubectl: Kubectl) -> None:
    kubectl("create", "deployment", "t-web", "--image=knet/echo:1", "--replicas=2")
    kubectl("rollout", "status", "deployment/t-web", "--timeout=30s")
    assert kubectl("scale", "deploy/t-web", "--replicas=3") == "deployment.apps/t-web scaled\n"
    out = kubectl("rollout", "status", "deploy/t-web", "--timeout=30s")
    assert out.strip().endswith('deployment "t-web" successfully rolled out')
    pods = kubectl("get", "pods", "-l", "app=t-web", "-o", "name").split()
    assert len(pods) == 3
    assert kubectl("set", "image", "deploy/t-web", "echo=knet/echo:2") == \
        "deployment.apps/t-web image updated\n"
    kubectl("rollout", "status", "deploy/t-web", "--timeout=30s")
    images = kubectl("get", "pods", "-l", "app=t-web",
                     "-o", "jsonpath={.items[*].spec.containers[0].image}").split()
    assert images and set(images) == {"knet/echo:2"}
    first = kubectl("get", "pods", "-l", "app=t-web", "-o", "name").split()[0]
    assert kubectl("wait", "--for=condition=Ready", first, "--timeout=30s") == \
        f"{first} condition met\n"
    # the Deployment's pods are endpoints of a Service: flows into EndpointSlices
    kubectl("expose", "deploy/t-web", "--port=80", "--target-port=8080")
    eps = kubectl.json("get", "endpointslices", "-l", "kubernetes.io/service-name=t-web")
    addrs = [a for s in eps["items"] for e in s.get("endpoints", []) for a in e["addresses"]]
    assert len(addrs) == 3
    r = kubectl("delete", "deploy", "t-web")
    assert r == 'deployment.apps "t-web" deleted\n'


def test_exec_logs_describe_and_watch(kubectl: Kubectl) -> None:
    pod = kubectl("get", "pods", "-l", "app=echo", "-o", "name").split()[0]
    r = kubectl.run("exec", pod, "--", "sh", "-c", "echo hi; exit 3", check=False)
    assert (r.returncode, r.stdout) == (3, "hi\n")
    assert "command terminated with exit code 3" in r.stderr
    assert kubectl("exec", pod, "--", "hostname") == pod.split("/", 1)[1] + "\n"
    assert kubectl("exec", "-i", pod, "--", "cat", input="from stdin\n") == "from stdin\n"
    r = kubectl.run("exec", pod, "--", "no-such-binary", check=False)
    assert r.returncode == 126 and "executable file not found" in r.stderr
    assert kubectl.run("logs", pod).returncode == 0
    d = kubectl("describe", pod)
    assert "Status:" in d and "Running" in d and "IP:" in d
    kubectl("create", "configmap", "t-watch-pre")  # so that the list part prints a header
    p = subprocess.Popen(["kubectl", "get", "cm", "-w", "--request-timeout=60s"], env=kubectl.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in p.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        header = lines.get(timeout=30)  # the list is printed: the watch follows
        assert header.split() == ["NAME", "DATA", "AGE"]
        kubectl("create", "configmap", "t-watched")
        deadline = time.monotonic() + 30
        while not lines.get(timeout=max(0.1, deadline - time.monotonic())).startswith("t-watched "):
            pass
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=10)


def test_port_forward_reaches_the_pod_through_the_fabric(kubectl: Kubectl) -> None:
    import socket

    pod = kubectl("get", "pods", "-l", "app=echo", "-o", "name").split()[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(["kubectl", "port-forward", pod, f"{port}:8080"], env=kubectl.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == f"Forwarding from 127.0.0.1:{port} -> 8080"
        for path in ("/one", "/two"):  # two connections, one SPDY session
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                body = json.loads(r.read())
            assert body["pod"] == pod.split("/", 1)[1] and body["path"] == path
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=10)


def test_delete_pod_goes_terminating(kubectl: Kubectl) -> None:
    kubectl("run", "t-solo", "--image=knet/echo:1")
    kubectl("wait", "--for=condition=Ready", "pod/t-solo", "--timeout=30s")
    r = kubectl("delete", "pod", "t-solo", "--wait=false")
    assert r == 'pod "t-solo" deleted\n'
    row = kubectl("get", "pod", "t-solo", "--no-headers", check=False)
    assert row == "" or "Terminating" in row


PY_CLIENT = r"""
import json, sys
from kubernetes import client, config, watch
from kubernetes.stream import portforward

api_client = config.new_client_from_config(config_file=sys.argv[1])
v1 = client.CoreV1Api(api_client)
out = {}
pods = v1.list_namespaced_pod("default", label_selector="app=echo")
out["pods"] = sorted(p.status.phase for p in pods.items)
cm = v1.create_namespaced_config_map("default", client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="t-py"), data={"a": "1"}))
out["rv"] = bool(cm.metadata.resource_version)
v1.patch_namespaced_config_map("t-py", "default", {"data": {"b": "2"}})
out["data"] = v1.read_namespaced_config_map("t-py", "default").data
w = watch.Watch()
out["watch"] = []
for ev in w.stream(v1.list_namespaced_config_map, "default", timeout_seconds=2,
                   field_selector="metadata.name=t-py"):
    out["watch"].append([ev["type"], ev["object"].metadata.name])
    w.stop()
pf = portforward(v1.connect_get_namespaced_pod_portforward, pods.items[0].metadata.name,
                 "default", ports="8080")
sock = pf.socket(8080)
sock.sendall(b"GET /py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
reply = b""
while chunk := sock.recv(4096):
    reply += chunk
out["portforward"] = reply.split(b"\r\n", 1)[0].decode() + (" /py" if b'"path": "/py"' in reply else "")
try:
    v1.read_namespaced_config_map("nope", "default")
except client.ApiException as e:
    out["missing"] = e.status
print(json.dumps(out))
"""


def test_python_client_list_watch_create_patch_portforward(kubectl: Kubectl) -> None:
    # a subprocess: the client's helper threads leave TLS sockets to the garbage collector
    pytest.importorskip("kubernetes")
    p = subprocess.run([sys.executable, "-c", PY_CLIENT, kubectl.kubeconfig],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {
        "pods": ["Running"] * 3, "rv": True, "data": {"a": "1", "b": "2"},
        "watch": [["ADDED", "t-py"]], "portforward": "HTTP/1.1 200 OK /py", "missing": 404}


def test_rbac_with_kubectl_auth_can_i_and_as(kubectl: Kubectl) -> None:
    assert kubectl("auth", "can-i", "list", "pods") == "yes\n"
    r = kubectl.run("auth", "can-i", "list", "pods", "--as", "alice", check=False)
    assert (r.returncode, r.stdout) == (1, "no\n")
    r = kubectl.run("get", "pods", "--as", "alice", check=False)
    assert r.returncode == 1 and r.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource '
        '"pods" in API group "" in the namespace "default"')
    assert kubectl("create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice") == \
        "rolebinding.rbac.authorization.k8s.io/alice-view created\n"
    assert kubectl("auth", "can-i", "list", "pods", "--as", "alice") == "yes\n"
    r = kubectl.run("auth", "can-i", "get", "secrets", "--as", "alice", check=False)
    assert r.stdout == "no\n"
    assert kubectl("get", "pods", "--as", "alice", "-o", "name").startswith("pod/")
    assert "view" in kubectl("get", "clusterroles", "-o", "name")
    assert kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}") == \
        "kubernetes-admin"


def test_drain_evicts_through_the_eviction_api(kubectl: Kubectl) -> None:
    out = kubectl.run("drain", "knet-worker2", "--ignore-daemonsets", "--force",
                      "--grace-period=1", "--timeout=60s")
    assert "node/knet-worker2 cordoned" in out.stdout and "node/knet-worker2 drained" in out.stdout
    assert "evicting pod" in out.stderr + out.stdout
    assert "SchedulingDisabled" in kubectl("get", "node", "knet-worker2")
    left = kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=knet-worker2",
                   "-o", "jsonpath={.items[*].metadata.name}").split()
    assert left and all(n.startswith(("kindnet-", "kube-proxy-")) for n in left)
    assert kubectl("uncordon", "knet-worker2") == "node/knet-worker2 uncordoned\n"
