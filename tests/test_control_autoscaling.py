"""HorizontalPodAutoscaler: the upstream replica calculation, behaviour and conditions."""

from __future__ import annotations

import pytest

from knet.control import Cluster
from knet.control.autoscaling import (
    PodSample, PodUsage, StaticMetrics, _Memory, limit_rate, object_replicas, plain_replicas,
    resource_replicas, stabilize,
)
from knet.control.recorder import events_for
from knet.manifests import read_text
from knet.model.controllers import DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP

NOW = 10_000.0


def pods(*usage: float | None, request: float = 1.0, unready: int = 0, pending: int = 0,
         failed: int = 0) -> list[PodSample]:
    out = [PodSample(f"p{i}", value=u, metric_time=NOW, request=request)
           for i, u in enumerate(usage)]
    out += [PodSample(f"u{i}", ready=False, value=0.9, metric_time=NOW, request=request,
                      ready_changed=NOW - 100, started=NOW - 100) for i in range(unready)]
    out += [PodSample(f"w{i}", phase="Pending", request=request) for i in range(pending)]
    out += [PodSample(f"f{i}", phase="Failed", request=request) for i in range(failed)]
    return out


# (current, pod usages in cores with 1-core requests, target %) → replicas, utilization
@pytest.mark.parametrize("current,samples,target,expected,util", [
    (3, pods(0.5, 0.5, 0.5), 50, 3, 50),           # on target
    (3, pods(0.54, 0.54, 0.54), 50, 3, 54),        # 1.08: inside the 0.1 tolerance
    (3, pods(0.56, 0.56, 0.56), 50, 4, 56),        # 1.12: ceil(1.12 × 3)
    (3, pods(1.0, 1.0, 1.0), 50, 6, 100),          # double
    (4, pods(0.1, 0.1, 0.1, 0.1), 50, 1, 10),      # ceil(0.2 × 4)
    (2, pods(0.9, 0.1), 50, 2, 50),                # the average counts
    (3, pods(1.0, 1.0, None), 50, 4, 100),         # missing pod at 0 %: 0.67 → 1.33 → 4
    (3, pods(0.1, 0.1, None), 50, 3, 10),          # missing pod at 100 %: 0.4 → 0.8 → 3: kept
    (4, pods(0.1, 0.1, 0.1, None), 50, 3, 10),     # (0.3 + 1) / 4 → 0.65 → ceil(2.6)
    (3, pods(1.0, 1.0, unready=1), 50, 4, 100),    # unready at 0 %: 2/3 = 1.33 → ceil(4.0)
    (3, pods(0.2, 0.2, unready=1), 50, 1, 20),     # scale down ignores unready pods
    (3, pods(0.5, 0.5, pending=1), 50, 3, 50),     # pending counts as unready
    (3, pods(1.0, 1.0, failed=2), 50, 4, 100),     # failed pods are ignored
])
def test_resource_replicas(current, samples, target, expected, util) -> None:
    n, got_util, _ = resource_replicas(current, samples, "cpu", target, None, NOW)
    assert (n, got_util) == (expected, util)


def test_missing_request_is_an_error() -> None:
    from knet.control.autoscaling import MetricError

    with pytest.raises(MetricError, match="missing request for cpu"):
        resource_replicas(1, [PodSample("a", value=0.1, request=None)], "cpu", 50, None, NOW)


@pytest.mark.parametrize("current,values,target,expected", [
    (2, {"a": 100.0, "b": 100.0}, 50.0, 4),
    (2, {"a": 52.0, "b": 52.0}, 50.0, 2),
    (4, {"a": 10.0, "b": 10.0, "c": 10.0, "d": 10.0}, 20.0, 2),
])
def test_plain_replicas(current, values, target, expected) -> None:
    assert plain_replicas(current, values, set(), set(), target)[0] == expected


@pytest.mark.parametrize("current,ready,value,tv,ta,expected", [
    (2, 2, 300.0, 100.0, None, 6),      # Value: ratio 3 × ready pods
    (2, 2, 105.0, 100.0, None, 2),      # within tolerance
    (3, 3, 300.0, None, 50.0, 6),       # AverageValue: ceil(300 / 50)
    (6, 6, 300.0, None, 50.0, 6),
])
def test_object_replicas(current, ready, value, tv, ta, expected) -> None:
    assert object_replicas(current, ready, value, tv, ta) == expected


def test_scale_down_stabilization_window_keeps_the_highest_recent() -> None:
    m = _Memory()
    assert stabilize(m, 0, 5, 8, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)[0] == 8
    assert stabilize(m, 15, 8, 2, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)[:2] == (
        8, "ScaleDownStabilized")
    assert stabilize(m, 299, 8, 2, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)[0] == 8
    assert stabilize(m, 301, 8, 2, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)[0] == 2  # t=0's 8 aged out


@pytest.mark.parametrize("current,desired,expected,reason", [
    (1, 10, 5, "ScaleUpLimit"),        # max(1 + 4 pods, 1 × 200 %) = 5
    (4, 10, 8, "ScaleUpLimit"),        # max(8, 8)
    (10, 30, 20, "TooManyReplicas"),   # the rate would allow 20; maxReplicas 20
    (10, 1, 2, "TooFewReplicas"),      # 100 % down allowed, minReplicas 2
    (5, 5, 5, "DesiredWithinRange"),
])
def test_rate_limits_with_default_behaviour(current, desired, expected, reason) -> None:
    got = limit_rate(_Memory(), NOW, current, desired, 2, 20, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)
    assert got[:2] == (expected, reason)


def test_rate_limit_counts_recent_scale_events() -> None:
    from knet.control.autoscaling import record_scale

    m = _Memory()
    record_scale(m, NOW - 10, 1, 5, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)
    # within the 15 s period the period started at 1 replica: 1 + 4 = 5, 1 × 2 = 2 → 5
    assert limit_rate(m, NOW, 5, 20, 1, 50, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)[0] == 5
    assert limit_rate(m, NOW + 6, 5, 20, 1, 50, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)[0] == 10


HPA = """
apiVersion: v1
kind: Node
metadata: {name: w}
status: {capacity: {cpu: "8", memory: 16Gi, pods: "110"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: knet/echo
        resources: {requests: {cpu: 100m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"""


def set_cpu(c: Cluster, cores: float, at: float) -> None:
    # a metrics-server sample taken at ``at`` (cpu samples older than readiness + 15 s are
    # ignored during the first 5 minutes of a pod)
    c.metrics = StaticMetrics({p.key: PodUsage(cores, 10e6, at) for p in c.pods("default")})


def test_hpa_scales_out_on_the_sync_period_and_in_after_the_window() -> None:
    c = Cluster.from_input(read_text(HPA, "h.yaml"), seed=0, system_objects=False)
    hpa = c.get("HorizontalPodAutoscaler", "default/web")
    active = hpa.status.condition("ScalingActive")
    assert (active.status, active.reason) == ("False", "FailedGetResourceMetric")
    set_cpu(c, 0.1, 15)  # 100 % of the 100m request, target 50 %
    c.sync(15)
    assert c.get("Deployment", "default/web").replicas == 4
    hpa = c.get("HorizontalPodAutoscaler", "default/web")
    assert hpa.status.current_metrics[0].average_utilization == 100
    assert [(x.type, x.status, x.reason) for x in hpa.status.conditions] == [
        ("AbleToScale", "True", "SucceededRescale"),
        ("ScalingActive", "True", "ValidMetricFound"),
        ("ScalingLimited", "False", "DesiredWithinRange")]
    assert [(e.reason, e.message) for e in events_for(c, hpa)][-1] == (
        "SuccessfulRescale",
        "New size: 4; reason: cpu resource utilization (percentage of request) above target")
    set_cpu(c, 0.1, 30)
    c.sync(30)  # 4 pods at 100 % → 8 wanted, maxReplicas 5
    hpa = c.get("HorizontalPodAutoscaler", "default/web")
    assert c.get("Deployment", "default/web").replicas == 5
    lim = hpa.status.condition("ScalingLimited")
    assert (lim.status, lim.reason) == ("True", "TooManyReplicas")
    for t in range(45, 330, 15):
        set_cpu(c, 0.01, t)  # load gone
        c.sync(t)
        assert c.get("Deployment", "default/web").replicas == 5, t  # the 300 s window holds
        assert c.get("HorizontalPodAutoscaler", "default/web").status.condition(
            "AbleToScale").reason == "ScaleDownStabilized"
    set_cpu(c, 0.01, 345)
    c.sync(345)
    assert c.get("Deployment", "default/web").replicas == 1
    assert events_for(c, hpa)[-1].message == "New size: 1; reason: All metrics below target"


def test_hpa_v1_is_converted_and_min_replicas_applies() -> None:
    text = HPA.replace("autoscaling/v2", "autoscaling/v1").split("  metrics:")[0] + \
        "  targetCPUUtilizationPercentage: 60\n"
    text = text.replace("minReplicas: 1", "minReplicas: 3")
    c = Cluster.from_input(read_text(text, "h.yaml"), seed=0, system_objects=False)
    hpa = c.get("HorizontalPodAutoscaler", "default/web")
    assert hpa.metrics[0].target.average_utilization == 60
    assert c.get("Deployment", "default/web").replicas == 3  # below minReplicas: raised at once
    assert events_for(c, hpa)[-1].message == (
        "New size: 3; reason: Current number of replicas below Spec.MinReplicas")


def test_hpa_validation() -> None:
    from knet.errors import ManifestError

    with pytest.raises(ManifestError, match="must be greater than or equal to `minReplicas`"):
        read_text(HPA.replace("maxReplicas: 5", "maxReplicas: 0"), "h.yaml")
