"""HorizontalPodAutoscaler controller (pkg/controller/podautoscaler: horizontal.go,
replica_calculator.go), autoscaling/v2.

Invariants:
- Pure: metrics come from ``c.metrics`` (a ``MetricsSource``: the runtime's metrics-server
  emulation, or a test's table); time is ``c.now``. No metrics source → ScalingActive False.
- One reconcile per 15 s sync period per HPA (``--horizontal-pod-autoscaler-sync-period``),
  asked for with ``requeue_at``; the HPA's own status writes do not recompute.
- The replica calculation is the upstream one: usage ratio with the 0.1 tolerance; pods that
  are not Ready (or still initialising, for cpu) and pods without metrics are left out, then
  assumed at 0 % (scale up) or 100 % (scale down) of their request to damp the proposal; a
  proposal that flips direction is dropped. Several metrics → the largest proposal.
- Behaviour: stabilisation windows over past recommendations (default 0 s up, 300 s down),
  then the rate policies over the scale events of each policy's period (default up: max of
  4 pods or 100 % per 15 s; down: 100 % per 15 s), min/max replicas; the conditions
  AbleToScale / ScalingActive / ScalingLimited and the SuccessfulRescale event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from knet.control.quantity import amount
from knet.control.recorder import record
from knet.control.store import evolve
from knet.model.controllers import (
    HorizontalPodAutoscaler, HPACondition, HPAScalingRules, HPAStatus, MetricSpec, MetricStatus,
)
from knet.model.core import Pod

if TYPE_CHECKING:
    from knet.control.cluster import Cluster

SYNC_PERIOD = 15.0
TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0
SOURCE = "horizontal-pod-autoscaler"


@dataclass(frozen=True, slots=True)
class PodUsage:
    """One pod's usage as metrics.k8s.io PodMetrics reports it (summed over containers)."""

    cpu: float  # cores
    memory: float  # bytes
    timestamp: float
    window: float = 15.0
    custom: dict[str, float] = field(default_factory=dict)  # pods metrics by name


class MetricsSource(Protocol):
    def pod_usage(self, key: str) -> PodUsage | None: ...

    def object_metric(self, kind: str, namespace: str, name: str, metric: str
                      ) -> float | None: ...


class MetricError(Exception):
    pass


# --- the replica calculator (pure functions) ----------------------------------------------------

@dataclass(frozen=True, slots=True)
class PodSample:
    """What the calculator knows of one pod of the target."""

    name: str
    phase: str = "Running"
    ready: bool = True
    deleting: bool = False
    started: float = -1e9  # pod start time
    ready_changed: float = -1e9  # Ready condition's last transition
    value: float | None = None  # the metric (cores, bytes, or a custom value); None = missing
    metric_time: float = 0.0
    window: float = 15.0
    request: float | None = None  # sum of container requests of the resource


def group_pods(pods: list[PodSample], resource: str, now: float
               ) -> tuple[dict[str, float], set[str], set[str], set[str]]:
    """groupPods: (metrics of ready pods, unready, missing, ignored)."""
    ready: dict[str, float] = {}
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for p in pods:
        if p.deleting or p.phase == "Failed":
            ignored.add(p.name)
            continue
        if p.phase == "Pending":
            unready.add(p.name)
            continue
        if p.value is None:
            missing.add(p.name)
            continue
        if resource == "cpu":
            if p.started + CPU_INITIALIZATION_PERIOD > now:
                # still initialising: unready if not ready, or the sample predates readiness
                bad = not p.ready or p.metric_time < p.ready_changed + p.window
            else:
                bad = not p.ready and p.ready_changed < p.started + INITIAL_READINESS_DELAY
            if bad:
                unready.add(p.name)
                continue
        ready[p.name] = p.value
    return ready, unready, missing, ignored


def _utilization(metrics: dict[str, float], requests: dict[str, float], target: int
                 ) -> tuple[float, int, float]:
    """GetResourceUtilizationRatio: (ratio, utilization %, raw average value)."""
    total = sum(metrics.values())
    req = sum(requests[n] for n in metrics if n in requests)
    if req == 0:
        raise MetricError("no metrics returned matched known pods")
    util = int(total * 100 / req)
    return util / target, util, total / len(metrics)


def resource_replicas(current: int, pods: list[PodSample], resource: str,
                      target_utilization: int | None, target_average: float | None,
                      now: float) -> tuple[int, int | None, float]:
    """GetResourceReplicas / GetRawResourceReplicas → (replicas, utilization %, average)."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    metrics, unready, missing, ignored = group_pods(pods, resource, now)
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    requests = {p.name: p.request for p in pods if p.request is not None}
    if target_utilization is not None:
        for p in pods:
            if p.request is None and p.name not in ignored:
                raise MetricError(f"missing request for {resource} in container of Pod {p.name}")
        ratio, util, avg = _utilization(metrics, requests, target_utilization)
        ready_count = len(metrics)
        up_with_unready = bool(unready) and ratio > 1.0
        if not up_with_unready and not missing:
            if abs(1.0 - ratio) <= TOLERANCE:
                return current, util, avg
            return math.ceil(ratio * ready_count), util, avg
        filled = dict(metrics)
        if missing:
            for n in missing:
                filled[n] = requests.get(n, 0.0) if ratio < 1.0 else 0.0
        if up_with_unready:
            for n in unready:
                filled[n] = 0.0
        new_ratio, _, _ = _utilization(filled, requests, target_utilization)
        if abs(1.0 - new_ratio) <= TOLERANCE or (ratio < 1.0 and new_ratio > 1.0) or (
                ratio > 1.0 and new_ratio < 1.0):
            return current, util, avg
        replicas = math.ceil(new_ratio * len(filled))
        if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
            return current, util, avg
        return replicas, util, avg
    assert target_average is not None
    replicas, avg = plain_replicas(current, metrics, unready, missing, target_average)
    return replicas, None, avg


def plain_replicas(current: int, metrics: dict[str, float], unready: set[str],
                   missing: set[str], target: float) -> tuple[int, float]:
    """calcPlainMetricReplicas (AverageValue targets, pods metrics) → (replicas, average)."""
    avg = sum(metrics.values()) / len(metrics)
    ratio = avg / target
    up_with_unready = bool(unready) and ratio > 1.0
    if not up_with_unready and not missing:
        if abs(1.0 - ratio) <= TOLERANCE:
            return current, avg
        return math.ceil(ratio * len(metrics)), avg
    filled = dict(metrics)
    if missing:
        for n in missing:
            filled[n] = target if ratio < 1.0 else 0.0
    if up_with_unready:
        for n in unready:
            filled[n] = 0.0
    new_ratio = sum(filled.values()) / len(filled) / target
    if abs(1.0 - new_ratio) <= TOLERANCE or (ratio < 1.0 and new_ratio > 1.0) or (
            ratio > 1.0 and new_ratio < 1.0):
        return current, avg
    replicas = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current, avg
    return replicas, avg


def object_replicas(current: int, ready_pods: int, value: float, target_value: float | None,
                    target_average: float | None) -> int:
    """GetObjectMetricReplicas (Value) / GetObjectPerPodMetricReplicas (AverageValue)."""
    if target_value is not None:
        ratio = value / target_value
        if current == 0 or abs(1.0 - ratio) <= TOLERANCE:
            return current
        return math.ceil(ratio * ready_pods)
    assert target_average is not None
    replicas = current
    ratio = value / (target_average * current) if current else 0.0
    if abs(1.0 - ratio) > TOLERANCE:
        replicas = math.ceil(value / target_average)
    return replicas


# --- behaviour ------------------------------------------------------------------------------

@dataclass
class _Memory:
    """The controller's in-memory state per HPA: recommendations and scale events."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)
    next_sync: float = 0.0
    spec: Any = None


def stabilize(mem: _Memory, now: float, current: int, desired: int, up: HPAScalingRules,
              down: HPAScalingRules) -> tuple[int, str, str]:
    """stabilizeRecommendationWithBehaviors."""
    up_rec = down_rec = desired
    up_cut, down_cut = now - up.stabilization_window_seconds, now - down.stabilization_window_seconds
    for t, r in mem.recommendations:
        if t > up_cut:
            up_rec = min(r, up_rec)
        if t > down_cut:
            down_rec = max(r, down_rec)
    rec = current
    if rec < up_rec:
        rec = up_rec
    if rec > down_rec:
        rec = down_rec
    longest = max(up.stabilization_window_seconds, down.stabilization_window_seconds)
    mem.recommendations = [(t, r) for t, r in mem.recommendations if t > now - longest]
    mem.recommendations.append((now, desired))
    if rec == desired:
        return rec, "ReadyForNewScale", "recommended size matches current size"
    if rec < desired:
        return rec, "ScaleUpStabilized", ("recent recommendations were lower than current "
                                           "one, applying the lowest recent recommendation")
    return rec, "ScaleDownStabilized", ("recent recommendations were higher than current one, "
                                        "applying the highest recent recommendation")


def _changed(period: int, events: list[tuple[float, int]], now: float) -> int:
    return sum(n for t, n in events if t > now - period)


def scale_up_limit(current: int, mem: _Memory, rules: HPAScalingRules, now: float) -> int:
    if rules.select_policy == "Disabled":
        return current
    result = math.inf if rules.select_policy == "Min" else -math.inf
    for p in rules.policies:
        start = current - _changed(p.period_seconds, mem.up_events, now) + _changed(
            p.period_seconds, mem.down_events, now)
        proposed = start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100))
        result = min(result, proposed) if rules.select_policy == "Min" else max(result, proposed)
    return int(result)


def scale_down_limit(current: int, mem: _Memory, rules: HPAScalingRules, now: float) -> int:
    if rules.select_policy == "Disabled":
        return current
    result = -math.inf if rules.select_policy == "Min" else math.inf
    for p in rules.policies:
        start = current - _changed(p.period_seconds, mem.up_events, now) + _changed(
            p.period_seconds, mem.down_events, now)
        proposed = start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100))
        result = max(result, proposed) if rules.select_policy == "Min" else min(result, proposed)
    return int(result)


def limit_rate(mem: _Memory, now: float, current: int, desired: int, lo: int, hi: int,
               up: HPAScalingRules, down: HPAScalingRules) -> tuple[int, str, str]:
    """convertDesiredReplicasWithBehaviorRate."""
    if desired > current:
        limit = max(scale_up_limit(current, mem, up, now), current)
        if hi > limit:
            allowed, reason, msg = limit, "ScaleUpLimit", (
                "the desired replica count is increasing faster than the maximum scale rate")
        else:
            allowed, reason, msg = hi, "TooManyReplicas", (
                "the desired replica count is more than the maximum replica count")
        if desired > allowed:
            return allowed, reason, msg
    elif desired < current:
        limit = min(scale_down_limit(current, mem, down, now), current)
        if lo < limit:
            allowed, reason, msg = limit, "ScaleDownLimit", (
                "the desired replica count is decreasing faster than the maximum scale rate")
        else:
            allowed, reason, msg = lo, "TooFewReplicas", (
                "the desired replica count is less than the minimum replica count")
        if desired < allowed:
            return allowed, reason, msg
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def record_scale(mem: _Memory, now: float, prev: int, new: int, up: HPAScalingRules,
                 down: HPAScalingRules) -> None:
    longest_up = max((p.period_seconds for p in up.policies), default=0)
    longest_down = max((p.period_seconds for p in down.policies), default=0)
    mem.up_events = [(t, n) for t, n in mem.up_events if t > now - longest_up]
    mem.down_events = [(t, n) for t, n in mem.down_events if t > now - longest_down]
    if new > prev:
        mem.up_events.append((now, new - prev))
    elif new < prev:
        mem.down_events.append((now, prev - new))


# --- the controller -----------------------------------------------------------------------------

def _memory(c: Cluster, hpa: HorizontalPodAutoscaler) -> _Memory:
    table: dict[str, _Memory] = c.__dict__.setdefault("_hpa_memory", {})
    m = table.get(hpa.metadata.uid)
    if m is None:
        m = table[hpa.metadata.uid] = _Memory()
    return m


def metric_name(m: MetricSpec) -> str:
    if m.type in ("Resource", "ContainerResource"):
        what = f"{m.name} container resource" if m.type == "ContainerResource" else \
            f"{m.name} resource"
        if m.target.type == "Utilization":
            return f"{what} utilization (percentage of request)"
        return what
    if m.type == "Pods":
        return f"pods metric {m.name}"
    if m.type == "Object" and m.described_object is not None:
        return f"{m.described_object.kind} metric {m.name}"
    return f"external metric {m.name}"


def _target(c: Cluster, hpa: HorizontalPodAutoscaler) -> Any:
    kind = hpa.target_kind
    if kind not in ("Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"):
        return None
    return c.store.get(kind, hpa.metadata.namespace, hpa.target_name)


def _samples(c: Cluster, target: Any, resource: str) -> tuple[list[Pod], list[PodSample]]:
    from knet.control.batch import seconds

    sel = target.selector
    ns = target.metadata.namespace
    if not sel.match_expressions:
        pods = list(c.store.pods_matching(ns, dict(sel.match_labels)))
    else:
        pods = [p for p in c.store.list("Pod", ns) if sel.matches(p.metadata.labels)]
    pods.sort(key=lambda p: p.name)
    out = []
    metrics = getattr(c, "metrics", None)
    for p in pods:
        usage = metrics.pod_usage(p.key) if metrics is not None else None
        value = None
        if usage is not None:
            value = (usage.cpu if resource == "cpu" else usage.memory if resource == "memory"
                     else usage.custom.get(resource))
        req = 0
        ok = True
        for ct in p.spec.containers:
            r = ct.requests.get(resource)
            if r is None:
                ok = False
                break
            req += amount(resource, r)
        request = (req / 1000 if resource == "cpu" else float(req)) if ok else None
        ready = p.status.condition("Ready")
        out.append(PodSample(
            p.name, p.status.phase, p.status.ready, p.terminating,
            seconds(p.status.start_time) if p.status.start_time else c.now,
            seconds(ready.last_transition_time) if ready is not None and
            ready.last_transition_time else -1e9,
            value, usage.timestamp if usage is not None else 0.0,
            usage.window if usage is not None else 15.0, request))
    return pods, out


def _compute(c: Cluster, hpa: HorizontalPodAutoscaler, target: Any, current: int
             ) -> tuple[int, str, list[MetricStatus], str]:
    """computeReplicasForMetrics → (proposal, metric name, statuses, error)."""
    proposals: list[tuple[int, str]] = []
    statuses: list[MetricStatus] = []
    errors: list[str] = []
    for m in hpa.metrics:
        try:
            if m.type in ("Resource", "ContainerResource", "Pods"):
                resource = m.name
                pods, samples = _samples(c, target, resource)
                if m.type == "Pods":
                    metrics, unready, missing, _ = group_pods(samples, resource, c.now)
                    if not metrics:
                        raise MetricError(f"unable to get metric {m.name}: no metrics returned "
                                          "from custom metrics API")
                    avg_target = m.target.average_value or 0.0
                    n, avg = plain_replicas(current, metrics, unready, missing, avg_target)
                    statuses.append(MetricStatus("Pods", m.name, average_value=avg))
                else:
                    n, util, avg = resource_replicas(
                        current, samples, resource,
                        m.target.average_utilization if m.target.type == "Utilization" else None,
                        m.target.average_value, c.now)
                    statuses.append(MetricStatus(m.type, resource, util, avg))
            elif m.type == "Object" and m.described_object is not None:
                metrics_src = getattr(c, "metrics", None)
                d = m.described_object
                value = metrics_src.object_metric(d.kind, hpa.metadata.namespace, d.name,
                                                  m.name) if metrics_src is not None else None
                if value is None:
                    raise MetricError(f"unable to get metric {m.name}: {d.kind} on "
                                      f"{hpa.metadata.namespace} {d.name}/unable to fetch "
                                      "metrics from custom metrics API")
                _, samples = _samples(c, target, "cpu")
                ready = sum(1 for s in samples if s.ready and not s.deleting)
                n = object_replicas(current, ready, value, m.target.value, m.target.average_value)
                statuses.append(MetricStatus("Object", m.name, value=value))
            else:
                raise MetricError(f"unable to get external metric {m.name}: no external "
                                  "metrics API")
            proposals.append((n, metric_name(m)))
        except MetricError as e:
            errors.append(_failed_message(m, str(e)))
    if not proposals or (errors and max(n for n, _ in proposals) < current):
        first = errors[0] if errors else "no metrics"
        if len(hpa.metrics) > 1:
            first = f"invalid metrics ({len(errors)} invalid out of {len(hpa.metrics)}), " \
                    f"first error is: {first}"
        return 0, "", statuses, first
    n, name = max(proposals, key=lambda x: x[0])
    return n, name, statuses, ""


def _failed_message(m: MetricSpec, err: str) -> str:
    if m.type in ("Resource", "ContainerResource"):
        what = "utilization" if m.target.type == "Utilization" else "usage"
        return f"failed to get {m.name} {what}: {err}"
    return err


def _cond(prev: HPAStatus, now: str, type: str, status: str, reason: str,
          message: str) -> HPACondition:
    old = prev.condition(type)
    t = old.last_transition_time if old is not None and old.status == status else now
    return HPACondition(type, status, reason, message, t)


def sync_hpa(c: Cluster, hpa: HorizontalPodAutoscaler) -> None:
    from knet.control.cluster import timestamp

    mem = _memory(c, hpa)
    spec = (hpa.target_kind, hpa.target_name, hpa.min_replicas, hpa.max_replicas, hpa.metrics,
            hpa.scale_up, hpa.scale_down)
    if c.now < mem.next_sync and spec == mem.spec:
        c.requeue_at(hpa, mem.next_sync)
        return  # its own status write, or a change it does not watch: wait for the period
    mem.spec = spec
    mem.next_sync = c.now + SYNC_PERIOD
    c.requeue_at(hpa, mem.next_sync)
    now_ts = timestamp(c.now)
    prev = hpa.status
    target = _target(c, hpa)
    if target is None:
        msg = (f"the HPA controller was unable to get the target's current scale: "
               f'{hpa.target_kind.lower()}s.{_group(hpa.target_api_version)} '
               f'"{hpa.target_name}" not found')
        st = evolve(prev, conditions=(_cond(prev, now_ts, "AbleToScale", "False",
                                            "FailedGetScale", msg),))
        if prev.condition("AbleToScale") is None or \
                prev.condition("AbleToScale").reason != "FailedGetScale":  # type: ignore[union-attr]
            record(c, hpa, "Warning", "FailedGetScale", msg, SOURCE)
        _write(c, hpa, st)
        return
    current = target.replicas
    conds: list[HPACondition] = []
    statuses: list[MetricStatus] = list(prev.current_metrics)
    reason = ""
    rescale = False
    desired = current
    if current == 0 and hpa.min_replicas != 0:
        conds.append(_cond(prev, now_ts, "AbleToScale", "True", "SucceededGetScale",
                           "the HPA controller was able to get the target's current scale"))
        conds.append(_cond(prev, now_ts, "ScalingActive", "False", "ScalingDisabled",
                           "scaling is disabled since the replica count of the target is zero"))
        st = evolve(prev, current_replicas=0, desired_replicas=0, conditions=tuple(conds))
        _write(c, hpa, st)
        return
    if current > hpa.max_replicas:
        desired, reason = hpa.max_replicas, "Current number of replicas above Spec.MaxReplicas"
        conds.append(_cond(prev, now_ts, "ScalingActive", "True", "ValidMetricFound", ""))
    elif current < hpa.min_replicas:
        desired, reason = hpa.min_replicas, "Current number of replicas below Spec.MinReplicas"
        conds.append(_cond(prev, now_ts, "ScalingActive", "True", "ValidMetricFound", ""))
    else:
        proposal, metric, statuses, error = _compute(c, hpa, target, current)
        if error:
            why = "FailedGetResourceMetric" if hpa.metrics and hpa.metrics[0].type in (
                "Resource", "ContainerResource") else "FailedGetPodsMetric" if hpa.metrics and \
                hpa.metrics[0].type == "Pods" else "FailedGetObjectMetric"
            if len(hpa.metrics) > 1:
                why = "FailedComputeMetricsReplicas"
            old = prev.condition("ScalingActive")
            if old is None or old.message != error:
                record(c, hpa, "Warning", why, error, SOURCE)
            conds = [_cond(prev, now_ts, "AbleToScale", "True", "SucceededGetScale",
                           "the HPA controller was able to get the target's current scale"),
                     _cond(prev, now_ts, "ScalingActive", "False", why, error)]
            _write(c, hpa, evolve(prev, current_replicas=current, conditions=tuple(conds)))
            return
        conds.append(_cond(prev, now_ts, "ScalingActive", "True", "ValidMetricFound",
                           "the HPA was able to successfully calculate a replica count from "
                           f"{metric}"))
        stab, able_reason, able_msg = stabilize(mem, c.now, current, proposal, hpa.scale_up,
                                                hpa.scale_down)
        desired, lim_reason, lim_msg = limit_rate(mem, c.now, current, stab, hpa.min_replicas,
                                                  hpa.max_replicas, hpa.scale_up,
                                                  hpa.scale_down)
        conds.insert(0, _cond(prev, now_ts, "AbleToScale", "True", able_reason, able_msg))
        conds.append(_cond(prev, now_ts, "ScalingLimited",
                           "False" if lim_reason == "DesiredWithinRange" else "True",
                           lim_reason, lim_msg))
        reason = f"{metric} above target" if desired > current else "All metrics below target"
    rescale = desired != current
    st = evolve(prev, current_replicas=current, desired_replicas=desired,
                current_metrics=tuple(statuses))
    if rescale:
        c.scale_object(target, desired)
        record_scale(mem, c.now, current, desired, hpa.scale_up, hpa.scale_down)
        record(c, hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}",
               SOURCE)
        conds = [x for x in conds if x.type != "AbleToScale"]
        conds.insert(0, _cond(prev, now_ts, "AbleToScale", "True", "SucceededRescale",
                              f"the HPA controller was able to update the target scale to "
                              f"{desired}"))
        st = evolve(st, last_scale_time=now_ts)
    if not any(x.type == "AbleToScale" for x in conds):
        conds.insert(0, _cond(prev, now_ts, "AbleToScale", "True", "ReadyForNewScale",
                              "recommended size matches current size"))
    if not any(x.type == "ScalingLimited" for x in conds):
        conds.append(_cond(prev, now_ts, "ScalingLimited", "True" if reason else "False",
                           "TooManyReplicas" if desired == hpa.max_replicas and reason
                           else "TooFewReplicas" if reason else "DesiredWithinRange",
                           "the desired replica count is more than the maximum replica count"
                           if desired == hpa.max_replicas and reason else
                           "the desired replica count is less than the minimum replica count"
                           if reason else "the desired count is within the acceptable range"))
    _write(c, hpa, evolve(st, conditions=tuple(conds)))


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def _write(c: Cluster, hpa: HorizontalPodAutoscaler, st: HPAStatus) -> None:
    if st != hpa.status:
        cur = c.store.get("HorizontalPodAutoscaler", hpa.metadata.namespace, hpa.metadata.name)
        if cur is not None:
            c.create(evolve(cur, status=st))


@dataclass
class StaticMetrics:
    """A MetricsSource from a table (tests, or a frozen snapshot of the metrics server)."""

    pods: dict[str, PodUsage] = field(default_factory=dict)
    objects: dict[tuple[str, str, str, str], float] = field(default_factory=dict)

    def pod_usage(self, key: str) -> PodUsage | None:
        return self.pods.get(key)

    def object_metric(self, kind: str, namespace: str, name: str, metric: str
                      ) -> float | None:
        return self.objects.get((kind, namespace, name, metric))
