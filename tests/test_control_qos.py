"""status.qosClass as the API server computes it."""

from __future__ import annotations

import pytest

from knet.control import Cluster
from knet.manifests import read_text


def pod(resources: str, init: str = "") -> str:
    extra = f"  initContainers: [{{name: i, image: busybox, resources: {init}}}]\n" if init else ""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
{extra}  containers:
  - name: a
    image: knet/echo
    resources: {resources}
"""


@pytest.mark.parametrize("resources,init,expected", [
    ("{}", "", "BestEffort"),
    ("{requests: {cpu: 100m}}", "", "Burstable"),
    ("{limits: {cpu: 100m, memory: 64Mi}}", "", "Guaranteed"),  # requests default to limits
    ("{requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 100m, memory: 64Mi}}", "",
     "Guaranteed"),
    ("{requests: {cpu: 50m, memory: 64Mi}, limits: {cpu: 100m, memory: 64Mi}}", "",
     "Burstable"),
    ("{limits: {cpu: 100m}}", "", "Burstable"),  # no memory limit
    ("{limits: {cpu: 100m, memory: 64Mi}}", "{}", "Burstable"),  # the init container has none
    ("{}", "{requests: {memory: 10Mi}}", "Burstable"),
    ("{requests: {ephemeral-storage: 1Gi}}", "", "BestEffort"),  # only cpu and memory count
])
def test_qos_class(resources: str, init: str, expected: str) -> None:
    c = Cluster.from_input(read_text(pod(resources, init), "p.yaml"), seed=0)
    assert c.pod("default/p").status.qos_class == expected
