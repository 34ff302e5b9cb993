"""Manifests (``-o yaml``/``json``, the API's objects) and ``kubectl get`` rows for the
controller kinds: CronJob, ReplicationController, PodDisruptionBudget,
HorizontalPodAutoscaler (autoscaling/v2), PriorityClass, Event; Job and Deployment status.

Invariants: field names and shapes are the API's (camelCase, empty values omitted as the API
server's JSON omits them); table columns are kubectl v1.32's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from knet.model.controllers import (
    CronJob, HorizontalPodAutoscaler, HPAScalingRules, MetricSpec, PodDisruptionBudget,
    PriorityClass, ReplicationController,
)

API_VERSIONS = {
    "CronJob": "batch/v1", "ReplicationController": "v1",
    "PodDisruptionBudget": "policy/v1", "HorizontalPodAutoscaler": "autoscaling/v2",
    "PriorityClass": "scheduling.k8s.io/v1", "Event": "v1",
}


def _drop(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, "", [], {}, ())}


def _cond(c: Any) -> dict[str, Any]:
    out = {"type": c.type, "status": c.status}
    for key, attr in (("lastUpdateTime", "last_update_time"),
                      ("lastTransitionTime", "last_transition_time"),
                      ("reason", "reason"), ("message", "message")):
        v = getattr(c, attr, "")
        if v:
            out[key] = v
    return out


def _ref(r: Any) -> dict[str, Any]:
    return _drop({"apiVersion": r.api_version, "kind": r.kind, "name": r.name,
                  "namespace": r.namespace, "uid": r.uid})


def _quantity(v: float | None, resource: str) -> str | None:
    if v is None:
        return None
    if resource == "cpu":
        return f"{round(v * 1000)}m"
    if v >= 1024 * 1024 and v % (1024 * 1024) == 0:
        return f"{int(v // (1024 * 1024))}Mi"
    return str(int(v)) if float(v).is_integer() else str(v)


def _metric_spec(m: MetricSpec) -> dict[str, Any]:
    target = _drop({"type": m.target.type, "averageUtilization": m.target.average_utilization,
                    "averageValue": _quantity(m.target.average_value, m.name),
                    "value": _quantity(m.target.value, m.name)})
    if m.type in ("Resource", "ContainerResource"):
        key = "resource" if m.type == "Resource" else "containerResource"
        return {"type": m.type, key: _drop({"name": m.name, "container": m.container,
                                            "target": target})}
    body: dict[str, Any] = {"metric": {"name": m.name}, "target": target}
    if m.described_object is not None:
        body["describedObject"] = _drop({"apiVersion": m.described_object.api_version,
                                         "kind": m.described_object.kind,
                                         "name": m.described_object.name})
    return {"type": m.type, m.type[0].lower() + m.type[1:]: body}


def _rules(r: HPAScalingRules) -> dict[str, Any]:
    return {"stabilizationWindowSeconds": r.stabilization_window_seconds,
            "selectPolicy": r.select_policy,
            "policies": [{"type": p.type, "value": p.value, "periodSeconds": p.period_seconds}
                         for p in r.policies]}


def manifest(obj: Any, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of a controller kind, or None for other kinds."""
    kind = obj.kind
    st: Any
    out: dict[str, Any] = {"apiVersion": API_VERSIONS.get(kind, ""), "kind": kind,
                           "metadata": meta}
    if isinstance(obj, CronJob):
        out["spec"] = _drop({
            "schedule": obj.schedule, "timeZone": obj.time_zone,
            "startingDeadlineSeconds": obj.starting_deadline_seconds,
            "concurrencyPolicy": obj.concurrency_policy, "suspend": obj.suspend,
            "successfulJobsHistoryLimit": obj.successful_jobs_history_limit,
            "failedJobsHistoryLimit": obj.failed_jobs_history_limit,
            "jobTemplate": dict(obj.job_template)})
        out["spec"]["suspend"] = obj.suspend
        st = obj.status
        out["status"] = _drop({"active": [_ref(r) for r in st.active],
                               "lastScheduleTime": st.last_schedule_time,
                               "lastSuccessfulTime": st.last_successful_time})
    elif isinstance(obj, ReplicationController):
        out["spec"] = _drop({"replicas": obj.replicas,
                             "selector": dict(obj.selector.match_labels),
                             "minReadySeconds": obj.min_ready_seconds,
                             "template": dict(obj.template)})
        out["spec"]["replicas"] = obj.replicas
        st = obj.status
        out["status"] = {"replicas": st.replicas, "fullyLabeledReplicas": st.replicas,
                         "readyReplicas": st.ready_replicas,
                         "availableReplicas": st.available_replicas, "observedGeneration": 1}
    elif isinstance(obj, PodDisruptionBudget):
        from knet.manifests.render import _selector

        out["spec"] = _drop({"minAvailable": obj.min_available,
                             "maxUnavailable": obj.max_unavailable,
                             "selector": _selector(obj.selector) if obj.selector else None,
                             "unhealthyPodEvictionPolicy": obj.unhealthy_pod_eviction_policy
                             if obj.unhealthy_pod_eviction_policy != "IfHealthyBudget" else ""})
        st = obj.status
        out["status"] = _drop({
            "observedGeneration": st.observed_generation,
            "disruptedPods": dict(st.disrupted_pods),
            "disruptionsAllowed": st.disruptions_allowed, "currentHealthy": st.current_healthy,
            "desiredHealthy": st.desired_healthy, "expectedPods": st.expected_pods,
            "conditions": [{**_cond(c), "observedGeneration": 1} for c in st.conditions]})
        for k in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
            out["status"].setdefault(k, 0)
    elif isinstance(obj, HorizontalPodAutoscaler):
        out["spec"] = {
            "scaleTargetRef": _drop({"apiVersion": obj.target_api_version,
                                     "kind": obj.target_kind, "name": obj.target_name}),
            "minReplicas": obj.min_replicas, "maxReplicas": obj.max_replicas,
            "metrics": [_metric_spec(m) for m in obj.metrics],
            "behavior": {"scaleUp": _rules(obj.scale_up), "scaleDown": _rules(obj.scale_down)}}
        st = obj.status
        metrics = []
        for m in st.current_metrics:
            current = _drop({"averageUtilization": m.average_utilization,
                             "averageValue": _quantity(m.average_value, m.name),
                             "value": _quantity(m.value, m.name)})
            key = {"Resource": "resource", "ContainerResource": "containerResource",
                   "Pods": "pods", "Object": "object"}.get(m.type, "external")
            body: dict[str, Any] = {"current": current}
            if m.type in ("Resource", "ContainerResource"):
                body["name"] = m.name
            else:
                body["metric"] = {"name": m.name}
            metrics.append({"type": m.type, key: body})
        out["status"] = _drop({"currentReplicas": st.current_replicas,
                               "desiredReplicas": st.desired_replicas,
                               "lastScaleTime": st.last_scale_time, "currentMetrics": metrics,
                               "conditions": [_cond(c) for c in st.conditions]})
        out["status"].setdefault("desiredReplicas", st.desired_replicas)
    elif isinstance(obj, PriorityClass):
        out.update(_drop({"value": obj.value, "globalDefault": obj.global_default,
                          "preemptionPolicy": obj.preemption_policy,
                          "description": obj.description}))
        out["value"] = obj.value
    elif kind == "Event":
        out.update(_drop({
            "involvedObject": _ref(obj.involved_object), "reason": obj.reason,
            "message": obj.message, "type": obj.type,
            "source": {"component": obj.source} if obj.source else None,
            "count": obj.count, "firstTimestamp": obj.first_timestamp,
            "lastTimestamp": obj.last_timestamp, "reportingComponent": obj.source}))
    else:
        return None
    return out


def job_status(st: Any) -> dict[str, Any]:
    return _drop({"active": st.active, "ready": st.ready, "succeeded": st.succeeded,
                  "failed": st.failed, "terminating": st.terminating,
                  "startTime": st.start_time, "completionTime": st.completion_time,
                  "completedIndexes": st.completed_indexes,
                  "conditions": [_cond(c) for c in st.conditions]})


def deployment_status(st: Any) -> dict[str, Any]:
    return _drop({"observedGeneration": st.observed_generation, "replicas": st.replicas,
                  "updatedReplicas": st.updated_replicas, "readyReplicas": st.ready_replicas,
                  "availableReplicas": st.available_replicas,
                  "unavailableReplicas": st.unavailable_replicas,
                  "conditions": [_cond(c) for c in st.conditions]})


# --- kubectl get rows -----------------------------------------------------------------------

def _age(cluster: Any, obj: Any) -> str:
    from knet.printers import age

    return age(cluster, obj)


def cronjob_header(wide: bool) -> list[str]:
    h = ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"]
    return h + ["CONTAINERS", "IMAGES", "SELECTOR"] if wide else h


def cronjob_row(cluster: Any, cj: CronJob, wide: bool) -> list[str]:
    from knet.printers import human_duration

    last = "<none>"
    if cj.status.last_schedule_time:
        from knet.control.batch import seconds

        last = human_duration(cluster.now - seconds(cj.status.last_schedule_time))
    row = [cj.metadata.name, cj.schedule, cj.time_zone or "<none>",
           "True" if cj.suspend else "False", str(len(cj.status.active)), last,
           _age(cluster, cj)]
    if wide:
        spec = ((cj.job_template.get("spec") or {}).get("template") or {}).get("spec") or {}
        cs = spec.get("containers") or []
        row += [",".join(c.get("name", "") for c in cs),
                ",".join(c.get("image", "") for c in cs), "<none>"]
    return row


def rc_header(wide: bool) -> list[str]:
    h = ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    return h + ["CONTAINERS", "IMAGES", "SELECTOR"] if wide else h


def rc_row(cluster: Any, rc: ReplicationController, wide: bool) -> list[str]:
    row = [rc.metadata.name, str(rc.replicas), str(rc.status.replicas),
           str(rc.status.ready_replicas), _age(cluster, rc)]
    if wide:
        cs = (rc.template.get("spec") or {}).get("containers") or []
        row += [",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs),
                ",".join(f"{k}={v}" for k, v in sorted(rc.selector.match_labels.items()))]
    return row


def pdb_header(wide: bool) -> list[str]:
    return ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]


def pdb_row(cluster: Any, pdb: PodDisruptionBudget, wide: bool) -> list[str]:
    na = "N/A"
    return [pdb.metadata.name, na if pdb.min_available is None else str(pdb.min_available),
            na if pdb.max_unavailable is None else str(pdb.max_unavailable),
            str(pdb.status.disruptions_allowed), _age(cluster, pdb)]


def hpa_header(wide: bool) -> list[str]:
    return ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]


def hpa_row(cluster: Any, hpa: HorizontalPodAutoscaler, wide: bool) -> list[str]:
    parts = []
    current = {(m.type, m.name): m for m in hpa.status.current_metrics}
    for m in hpa.metrics:
        cur = current.get((m.type, m.name))
        if m.target.type == "Utilization":
            now = f"{cur.average_utilization}%" if cur is not None and \
                cur.average_utilization is not None else "<unknown>"
            parts.append(f"{m.name}: {now}/{m.target.average_utilization}%")
        else:
            want = m.target.average_value if m.target.type == "AverageValue" else m.target.value
            got = None if cur is None else (cur.average_value if m.target.type ==
                                            "AverageValue" else cur.value)
            shown = _quantity(got, m.name) if got is not None else "<unknown>"
            parts.append(f"{m.name}: {shown}/{_quantity(want, m.name)}")
    targets = ", ".join(parts[:2]) + (f" + {len(parts) - 2} more..." if len(parts) > 2 else "")
    return [hpa.metadata.name, f"{hpa.target_kind}/{hpa.target_name}", targets or "<none>",
            str(hpa.min_replicas), str(hpa.max_replicas), str(hpa.status.current_replicas),
            _age(cluster, hpa)]


def pc_header(wide: bool) -> list[str]:
    return ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]


def pc_row(cluster: Any, pc: PriorityClass, wide: bool) -> list[str]:
    return [pc.metadata.name, str(pc.value), "true" if pc.global_default else "false",
            _age(cluster, pc), pc.preemption_policy]


KINDS = {
    "cronjobs": ("cronjob.batch", CronJob, True),
    "replicationcontrollers": ("replicationcontroller", ReplicationController, True),
    "poddisruptionbudgets": ("poddisruptionbudget.policy", PodDisruptionBudget, True),
    "horizontalpodautoscalers": ("horizontalpodautoscaler.autoscaling", HorizontalPodAutoscaler,
                                 True),
    "priorityclasses": ("priorityclass.scheduling.k8s.io", PriorityClass, False),
}
ALIASES = {
    "cj": "cronjobs", "cronjob": "cronjobs", "rc": "replicationcontrollers",
    "replicationcontroller": "replicationcontrollers", "pdb": "poddisruptionbudgets",
    "poddisruptionbudget": "poddisruptionbudgets", "hpa": "horizontalpodautoscalers",
    "horizontalpodautoscaler": "horizontalpodautoscalers", "pc": "priorityclasses",
    "priorityclass": "priorityclasses",
}
PRINTERS: dict[str, tuple[Callable[[bool], list[str]], Callable[..., list[str]]]] = {
    "cronjobs": (cronjob_header, cronjob_row), "replicationcontrollers": (rc_header, rc_row),
    "poddisruptionbudgets": (pdb_header, pdb_row),
    "horizontalpodautoscalers": (hpa_header, hpa_row), "priorityclasses": (pc_header, pc_row),
}
