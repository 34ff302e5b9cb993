"""Issue 12 item 15: runtime messages that say what to do, and kubectl's exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from knet.cli import main
from knet.printers import _job_duration
from knet.model.controllers import JobStatus

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "topologies" / "demo.yaml")
ECHO = str(ROOT / "topologies" / "echo.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_missing_pod_says_keys_are_namespace_name_and_suggests(capsys) -> None:
    rc, _, err = run(capsys, "dig", "-f", DEMO, "web", "--from", "client")
    assert rc == 1 and err == ("error: Pod client not found (keys are namespace/name); "
                               "did you mean default/client?\n")
    rc, _, err = run(capsys, "dig", "-f", DEMO, "web", "--from", "default/clinet")
    assert err == "error: Pod default/clinet not found; did you mean default/client?\n"


def test_get_without_input_mentions_f_and_knet_up(capsys) -> None:
    rc, _, err = run(capsys, "get", "pods")
    assert rc == 2 and "give -f PATH" in err and "knet up -f PATH" in err


def test_no_resources_found_is_stderr_and_exit_0_like_kubectl(capsys) -> None:
    rc, out, err = run(capsys, "get", "jobs", "-f", ECHO)
    assert (rc, out, err) == (0, "", "No resources found in default namespace.\n")
    rc, out, err = run(capsys, "get", "pods", "-n", "nowhere", "-f", ECHO)
    assert (rc, out, err) == (0, "", "No resources found in nowhere namespace.\n")


def test_get_several_kinds_like_kubectl(capsys) -> None:
    rc, out, _ = run(capsys, "get", "pods,svc", "-f", ECHO)
    tables = out.split("\n\n")
    assert rc == 0 and len(tables) == 2
    assert tables[0].splitlines()[1].startswith("pod/client ")
    assert "service/echo " in tables[1] and tables[1].startswith("NAME ")
    rc, out2, _ = run(capsys, "get", "po,services", "-f", ECHO)
    assert out2 == out
    assert run(capsys, "get", "pods,frobs", "-f", ECHO)[0] == 2


POD_STATUS = """apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  initContainers:
  - {name: init, image: busybox}
  - {name: side, image: busybox, restartPolicy: Always}
  containers: [{name: app, image: nginx}]
status:
  phase: PHASE
  initContainerStatuses:
  - {name: init, restartCount: 4, ready: false, state: INIT}
  - {name: side, restartCount: 2, ready: true, started: true, state: {running: {}}}
  containerStatuses:
  - {name: app, restartCount: APP, ready: READY, state: STATE}
"""


def test_restarts_count_init_containers_as_kubectl(capsys, tmp_path) -> None:
    f = tmp_path / "p.yaml"
    init = POD_STATUS.replace("NAME", "init").replace("PHASE", "Pending").replace(
        "INIT", "{waiting: {reason: CrashLoopBackOff}}").replace("APP", "0").replace(
        "READY", "false").replace("STATE", "{waiting: {reason: PodInitializing}}")
    running = POD_STATUS.replace("NAME", "run").replace("PHASE", "Running").replace(
        "INIT", "{terminated: {exitCode: 0, reason: Completed}}").replace("APP", "1").replace(
        "READY", "true").replace("STATE", "{running: {}}")
    f.write_text(init + "---\n" + running)
    rc, out, _ = run(capsys, "get", "pods", "-f", str(f))
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines()[1:]}
    # initialising: the init containers' restarts (4 + 2); after: sidecar 2 + app 1
    assert rows["init"][2:4] == ["Init:CrashLoopBackOff", "6"]
    assert rows["run"][1:4] == ["2/2", "Running", "3"]  # the sidecar counts as a container


def test_job_duration_as_kubectl(capsys, tmp_path) -> None:
    class Clock:
        now = 100.0

    assert _job_duration(Clock, None) == ""
    assert _job_duration(Clock, JobStatus(start_time="1970-01-01T00:00:10Z")) == "90s"
    assert _job_duration(Clock, JobStatus(start_time="1970-01-01T00:00:10Z",
                                          completion_time="1970-01-01T00:00:40Z")) == "30s"
    f = tmp_path / "job.yaml"
    f.write_text("apiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  template:\n"
                 "    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: "
                 "busybox}]\n")
    rc, out, _ = run(capsys, "get", "jobs", "-f", str(f))
    assert rc == 0 and "<unknown>" not in out


def test_demo_on_another_topology_says_what_it_needs(capsys) -> None:
    rc, out, err = run(capsys, "demo", "-f", ECHO)
    assert rc == 2 and out == ""
    assert err == (f"error: knet demo needs a Service default/web (HTTP on port 80), as "
                   f"topologies/demo.yaml has; {ECHO} does not. For another topology use knet "
                   "get, trace, dig, route or up\n")


def test_version(capsys) -> None:
    from knet import __version__

    assert run(capsys, "--version") == (0, f"knet {__version__}\n", "")


def test_up_refuses_ingress_without_an_ingress_controller(capsys) -> None:
    rc, _, err = run(capsys, "up", "-f", ECHO, "--ingress", "127.0.0.1:0", "--no-control")
    assert rc == 2 and err.strip().splitlines()[-1] == (
        "error: --ingress: the topology has no ingress controller (no Ingress and no "
        "ingress-nginx controller): nothing would answer")
