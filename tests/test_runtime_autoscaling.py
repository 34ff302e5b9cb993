"""The HPA on emulated load, end to end on the virtual clock: requests cost CPU, the
metrics-server reports it, the HPA scales out, the new pods become endpoints and share the
load, and the Deployment scales back in after the 300 s window. CPU limits throttle."""

from __future__ import annotations

from pathlib import Path

from knet.control.recorder import events_for
from knet.fabric import virtual_time
from knet.runtime import run
from knet.runtime.work import format_top
from knet.testing import load

ROOT = Path(__file__).resolve().parent.parent
HPA = str(ROOT / "topologies" / "hpa.yaml")
THROTTLE = str(ROOT / "tests" / "data" / "controllers" / "throttle.yaml")


@virtual_time
async def test_load_scales_out_spreads_and_scales_in() -> None:
    async with run(HPA) as c:
        client = c.pod("default/client")

        def replicas() -> int:
            return c.state.get("Deployment", "default/web").replicas

        assert replicas() == 1
        # 20 rps × 5 ms = 0.1 cores against a 50m request: 200 % of the 50 % target
        first = await load(client, "http://web/", rps=20, seconds=60)
        assert first.ok == first.sent == 1200
        assert replicas() == 4  # 1 → 3 → 4 (the new pods' first samples are ignored)
        hpa = c.state.get("HorizontalPodAutoscaler", "default/web")
        rescales = [e.message for e in events_for(c.state, hpa) if e.reason == "SuccessfulRescale"]
        assert rescales[0].startswith("New size: 3; reason: cpu resource utilization")
        # every pod is an endpoint now, and the load spreads over them
        eps = {e.target_ref.name for s in c.state.endpoint_slices("default/web")
               for e in s.endpoints if e.conditions.ready}
        assert len(eps) == 4
        second = await load(client, "http://web/", rps=20, seconds=60)
        assert set(second.by_pod) == eps
        assert min(second.by_pod.values()) > 200  # about 300 each
        util = c.state.get("HorizontalPodAutoscaler", "default/web").status.current_metrics[0]
        assert 40 <= util.average_utilization <= 60
        # knet top: what metrics.k8s.io serves
        rows = c.work.top(c.state.pods("default"))
        text = format_top(rows)
        assert text.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
        assert any(line.startswith("web-") and " 26m " in line + " " for line in
                   text.splitlines())
        # load stops: nothing happens for 300 s, then back to minReplicas
        t0 = c.now()
        await c.advance(290)
        assert replicas() == 4
        await c.advance(120)
        assert replicas() == 1
        last = [e for e in events_for(c.state, hpa) if e.reason == "SuccessfulRescale"][-1]
        assert last.message == "New size: 1; reason: All metrics below target"
        assert c.now() - t0 < 420


@virtual_time
async def test_cpu_limit_throttles_the_app() -> None:
    # a Guaranteed pod limited to 20m; 5 rps × 5 ms wants 25m: the CFS quota queues requests
    async with run(THROTTLE) as c:
        client = c.pod("default/client")
        slow = await load(client, "http://web/", rps=5, seconds=20)
        assert slow.ok == slow.sent == 100
        (pod,) = [p for p in c.state.pods("default") if p.name.startswith("web-")]
        w = c.work.pods[pod.key]
        assert w.throttled_seconds > 5
        assert slow.percentile(90) > 1.0  # queued behind the quota
        assert slow.percentile(0) < 0.5  # the first ones waited a few CFS periods at most
        usage = c.work.pod_usage(pod.key)  # the last full scrape window was under load
        assert usage is not None and 0.02 <= usage.cpu <= 0.0211  # capped at the limit (+ idle)
