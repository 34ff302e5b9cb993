"""When pods never get Ready, ``wait_ready`` (and so ``knet up``) names the cause: each
container's state, restarts and last log line, where a crashed app's exception lands."""

from __future__ import annotations

from pathlib import Path

import pytest

from knet.errors import NetworkError
from knet.fabric import virtual_time
from knet.runtime import PodContext, run

BASIC = str(Path(__file__).resolve().parent.parent / "topologies" / "runtime-basic.yaml")

BROKEN = """
apiVersion: v1
kind: Pod
metadata:
  name: broken
  annotations: {knet.dev/app: "test_runtime_not_ready:broken_app"}
spec:
  containers:
    - name: app
      image: example.com/broken:1
      readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"""

MISSING = """
apiVersion: v1
kind: Pod
metadata:
  name: missing
  annotations: {knet.dev/app: "knet_no_such_module:app"}
spec:
  containers:
    - name: app
      image: example.com/missing:1
      readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"""


async def broken_app(ctx: PodContext) -> None:
    import knet_no_such_dependency  # noqa: F401 - the crash under test


@virtual_time
async def test_a_crashing_app_shows_its_exception() -> None:
    async with run(BASIC) as c:
        c.apply(BROKEN)
        with pytest.raises(NetworkError) as e:
            await c.wait_ready(timeout=60)
    text = str(e.value)
    assert text.startswith("pods not ready: default/broken (app: ")
    assert "CrashLoopBackOff" in text and "restarts" in text
    assert "last log: ModuleNotFoundError: No module named 'knet_no_such_dependency'" in text


@virtual_time
async def test_an_unloadable_app_module_shows_the_import_error() -> None:
    async with run(BASIC) as c:
        c.apply(MISSING)
        with pytest.raises(NetworkError) as e:
            await c.wait_ready(timeout=60)
    assert "default/missing (app: waiting CrashLoopBackOff" in str(e.value)
    assert "No module named 'knet_no_such_module'" in str(e.value)
