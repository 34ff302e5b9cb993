"""`knet get` for the controller kinds: kubectl's columns and the API's yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from knet.cli import main

ROOT = Path(__file__).resolve().parents[1]
ALL = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: hello}
spec:
  schedule: "*/5 * * * *"
  timeZone: Europe/Paris
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: hello, image: busybox}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: legacy}}
    spec: {containers: [{name: c, image: knet/echo}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: legacy}
spec: {maxUnavailable: 50%, selector: {matchLabels: {app: legacy}}}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
"""


def get(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["get", *argv]) == 0
    return capsys.readouterr().out


@pytest.fixture
def manifest(tmp_path: Path) -> str:
    p = tmp_path / "all.yaml"
    p.write_text(ALL)
    return str(p)


def test_tables(capsys: pytest.CaptureFixture[str], manifest: str) -> None:
    assert get(capsys, "cj", "-f", manifest).splitlines() == [
        "NAME    SCHEDULE      TIMEZONE       SUSPEND   ACTIVE   LAST SCHEDULE   AGE",
        "hello   */5 * * * *   Europe/Paris   False     0        <none>          0s"]
    assert get(capsys, "rc", "-f", manifest).splitlines() == [
        "NAME     DESIRED   CURRENT   READY   AGE", "legacy   2         2         2       0s"]
    assert get(capsys, "pdb", "-f", manifest).splitlines() == [
        "NAME     MIN AVAILABLE   MAX UNAVAILABLE   ALLOWED DISRUPTIONS   AGE",
        "legacy   N/A             50%               1                     0s"]
    assert get(capsys, "pc", "-f", manifest).splitlines()[1].split() == [
        "high", "1000", "false", "0s", "PreemptLowerPriority"]
    assert get(capsys, "hpa", "-f", str(ROOT / "topologies" / "hpa.yaml")).splitlines()[1] \
        .split() == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "1", "4", "1", "0s"]


def test_yaml(capsys: pytest.CaptureFixture[str], manifest: str) -> None:
    pdb = yaml.safe_load(get(capsys, "pdb", "legacy", "-o", "yaml", "-f", manifest))
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "legacy"}}}
    assert {k: pdb["status"][k] for k in ("currentHealthy", "desiredHealthy",
                                          "disruptionsAllowed", "expectedPods")} == {
        "currentHealthy": 2, "desiredHealthy": 1, "disruptionsAllowed": 1, "expectedPods": 2}
    hpa = yaml.safe_load(get(capsys, "hpa", "web", "-o", "yaml", "-f",
                             str(ROOT / "topologies" / "hpa.yaml")))
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
