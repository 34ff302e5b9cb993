"""knet exec (kubectl exec for knet) and the static view's predicted pod statuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from knet.cli import main
from knet.control import Cluster
from knet.control.podstatus import predict, script_end
from knet.manifests import read_texts

ROOT = Path(__file__).resolve().parent.parent
BASIC = str(ROOT / "topologies" / "runtime-basic.yaml")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_knet_exec_boots_the_topology_and_runs_the_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "exec", "-f", BASIC, "client", "--", "sh", "-c",
                       "nslookup echo >/dev/null && echo resolved; exit 4")
    assert (rc, out) == (4, "resolved\n")
    assert err == "command terminated with exit code 4\n"
    rc, out, _ = run(capsys, "exec", "-f", BASIC, "default/client", "--", "cat", "/etc/hostname")
    assert (rc, out) == (0, "client\n")


SCRIPTS = [
    ("while true; do sleep 1; done", "forever"),
    ("echo hi; sleep 3600", "forever"),
    ("trap 'exit 0' TERM; sleep infinity & wait", 0),
    ("echo done", 0),
    ("echo starting; exit 3", 3),
    ("until false; do date; sleep 5; done", "forever"),
    ("i=0; while [ $i -lt 3 ]; do i=$((i+1)); done", 0),
    ("tail -f /dev/null", "forever"),
    ("sleep 5", 0),
]


@pytest.mark.parametrize(("script", "end"), SCRIPTS)
def test_script_end(script: str, end: object) -> None:
    assert script_end(script) == end


PODS = """
apiVersion: v1
kind: Pod
metadata: {name: loops}
spec: {containers: [{name: c, image: busybox, command: [sh, -c, "while true; do sleep 1; done"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: once}
spec: {containers: [{name: c, image: busybox, command: [sh, -c, "echo hi"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: once-never}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: [sh, -c, "echo hi"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: fails-never}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: [sh, -c, "exit 1"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: bare-busybox}
spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: no-cm}
spec:
  containers:
    - name: c
      image: nginx
      env: [{name: X, valueFrom: {configMapKeyRef: {name: missing, key: x}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: no-secret-vol}
spec:
  containers: [{name: c, image: nginx}]
  volumes: [{name: s, secret: {secretName: missing}}]
---
apiVersion: v1
kind: Pod
metadata: {name: pg}
spec: {containers: [{name: c, image: postgres:17}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec: {containers: [{name: c, image: nginx}]}
"""


def test_static_view_predicts_what_the_runtime_shows(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    c = Cluster.from_input(read_texts([("pods.yaml", PODS)]), seed=1)
    got = {p.name: predict(c, p) for p in c.pods("default")}
    assert got == {"loops": None, "once": ("CrashLoopBackOff", 0),
                   "once-never": ("Completed", 0), "fails-never": ("Error", 0),
                   "bare-busybox": ("CrashLoopBackOff", 0),
                   "no-cm": ("CreateContainerConfigError", 0),
                   "no-secret-vol": ("ContainerCreating", 0), "pg": ("CrashLoopBackOff", 0),
                   "web": None}
    f = tmp_path / "pods.yaml"
    f.write_text(PODS)
    rc, out, _ = run(capsys, "get", "pods", "-f", str(f))
    rows = {ln.split()[0]: ln.split()[1:3] for ln in out.splitlines()[1:]}
    assert rows["once-never"] == ["0/1", "Completed"]
    assert rows["no-cm"] == ["0/1", "CreateContainerConfigError"]
    assert rows["loops"] == ["1/1", "Running"]
