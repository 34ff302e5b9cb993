"""Parsing, validation and defaulting of CronJob, ReplicationController, PodDisruptionBudget,
HorizontalPodAutoscaler (autoscaling/v2, and v1 converted) and PriorityClass, plus the Job
fields the Job controller honours.

Invariants: as in knet.manifests.objects — every problem goes to the cursor's context worded
like the API server (pkg/apis/batch, core, policy, autoscaling, scheduling validation), and
defaults are the API's (autoscaling/v2 behavior defaults, CronJob history limits 3 and 1).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from knet.control import cron
from knet.control.quantity import parse_quantity
from knet.manifests.fields import F, plain
from knet.model.apps import Job
from knet.model.controllers import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    CronJob,
    HorizontalPodAutoscaler,
    HPAScalingPolicy,
    HPAScalingRules,
    MetricSpec,
    MetricTarget,
    ObjectReference,
    PodDisruptionBudget,
    PodFailurePolicyRule,
    PriorityClass,
    ReplicationController,
)
from knet.model.meta import LabelSelector, ObjectMeta

# kinds served in a second version that the API server converts (kind → versions)
ALSO_SERVED = {("autoscaling/v1", "HorizontalPodAutoscaler")}
CRONJOB_NAME_MAX = 52  # 63 - 11 characters of the job-name suffix
HIGHEST_USER_PRIORITY = 1_000_000_000


def _objects() -> Any:
    from knet.manifests import objects

    return objects


def _spec(doc: F) -> F:
    return _objects()._spec(doc)


def _int_or_percent(f: F | None) -> int | str | None:
    if f is None:
        return None
    return _objects()._int_or_percent(f, 0)


def _nonneg(spec: F, key: str) -> int | None:
    v = spec.opt_int(key)
    if v is not None and v < 0:
        (spec.child(key) or spec).invalid("must be greater than or equal to 0")
    return v


# --- Job extras ----------------------------------------------------------------------------------

def job_fields(doc: F, job: Job) -> Job:
    spec = doc.map("spec")
    if spec is None:
        return job
    mode = spec.str("completionMode", "NonIndexed")
    if mode not in ("NonIndexed", "Indexed"):
        spec.child("completionMode").unsupported(["NonIndexed", "Indexed"])  # type: ignore[union-attr]
    if mode == "Indexed" and job.completions is None:
        spec.sub_error("completions", "Required value: when completion mode is Indexed")
    ads = spec.opt_int("activeDeadlineSeconds")
    if ads is not None and ads <= 0:
        (spec.child("activeDeadlineSeconds") or spec).invalid(
            "must be greater than 0")
    ttl = _nonneg(spec, "ttlSecondsAfterFinished")
    rules = []
    pfp = spec.map("podFailurePolicy")
    if pfp is not None:
        restart = ((job.template.get("spec") or {}).get("restartPolicy"))
        if restart != "Never":
            pfp.error(f'Invalid value: "{restart}": only "Never" is supported when '
                      "podFailurePolicy is specified")
        for r in pfp.list("rules"):
            if not r.is_mapping():
                continue
            action = r.str("action", required=True)
            actions = ("Count", "FailIndex", "FailJob", "Ignore")
            if action and action not in actions:
                r.child("action").unsupported(actions)  # type: ignore[union-attr]
            codes = r.map("onExitCodes")
            conds = tuple((c.str("type", required=True), c.str("status", "True"))
                          for c in r.list("onPodConditions") if c.is_mapping())
            if codes is not None:
                op = codes.str("operator", required=True)
                if op and op not in ("In", "NotIn"):
                    codes.child("operator").unsupported(["In", "NotIn"])  # type: ignore[union-attr]
                vals = tuple(int(v.value) for v in codes.list("values")
                             if isinstance(v.value, int))
                if op == "In" and 0 in vals:
                    codes.child("values").invalid(  # type: ignore[union-attr]
                        "must not be 0 for the In operator")
                rules.append(PodFailurePolicyRule(action, codes.str("containerName"), op, vals,
                                                  conds))
            elif conds:
                rules.append(PodFailurePolicyRule(action, on_pod_conditions=conds))
            else:
                r.error("Invalid value: specifying one of onExitCodes and onPodConditions is "
                        "required")
    return replace(job, completion_mode=mode, active_deadline_seconds=ads,
                   ttl_seconds_after_finished=ttl, suspend=spec.bool("suspend"),
                   pod_failure_policy=tuple(rules))


# --- rolling update fields of StatefulSet and DaemonSet -----------------------------------

def statefulset_fields(doc: F, sts: Any) -> Any:
    spec = doc.map("spec")
    us = spec.map("updateStrategy") if spec is not None else None
    ru = us.map("rollingUpdate") if us is not None else None
    if ru is None:
        return sts
    if sts.update_strategy_type == "OnDelete":
        ru.error("Invalid value: only allowed for updateStrategy 'RollingUpdate'")
    partition = ru.int("partition", 0)
    if partition < 0:
        (ru.child("partition") or ru).invalid("must be greater than or equal to 0")
    return replace(sts, partition=partition)


def daemonset_fields(doc: F, ds: Any) -> Any:
    spec = doc.map("spec")
    us = spec.map("updateStrategy") if spec is not None else None
    if us is None:
        return ds
    stype = us.str("type", "RollingUpdate")
    if stype not in ("OnDelete", "RollingUpdate"):
        (us.child("type") or us).unsupported(["OnDelete", "RollingUpdate"])
    ru = us.map("rollingUpdate")
    if ru is None:
        return replace(ds, update_strategy_type=stype)
    if stype == "OnDelete":
        ru.error("Forbidden: may not be specified when strategy `type` is 'OnDelete'")
    max_un = _int_or_percent(ru.child("maxUnavailable"))
    surge = _int_or_percent(ru.child("maxSurge"))
    max_un = 1 if max_un is None else max_un
    surge = 0 if surge is None else surge
    if max_un in (0, "0%") and surge in (0, "0%"):
        (ru.child("maxUnavailable") or ru).invalid("may not be 0 when `maxSurge` is 0")
    return replace(ds, update_strategy_type=stype, max_unavailable=max_un, max_surge=surge)


def deployment_fields(doc: F, d: Any) -> Any:
    spec = doc.map("spec")
    if spec is None or not spec.has("progressDeadlineSeconds"):
        return d
    pds = spec.int("progressDeadlineSeconds", 600)
    if pds <= d.min_ready_seconds:
        (spec.child("progressDeadlineSeconds") or spec).invalid(
            "must be greater than minReadySeconds")
    return replace(d, progress_deadline_seconds=pds)


# --- CronJob -------------------------------------------------------------------------------------

def parse_cronjob(doc: F, meta: ObjectMeta, scope: Any) -> CronJob:
    spec = _spec(doc)
    if len(meta.name) > CRONJOB_NAME_MAX:
        m = doc.map("metadata")
        (m.child("name") if m is not None else doc).invalid(  # type: ignore[union-attr]
            f"must be no more than {CRONJOB_NAME_MAX} characters")
    schedule = spec.str("schedule", required=True)
    if schedule:
        try:
            cron.parse(schedule)
        except cron.CronError as e:
            spec.child("schedule").invalid(str(e))  # type: ignore[union-attr]
    tz = spec.str("timeZone")
    bad = cron.check_zone(tz)
    if bad:
        spec.child("timeZone").invalid(bad)  # type: ignore[union-attr]
    policy = spec.str("concurrencyPolicy", "Allow")
    if policy not in ("Allow", "Forbid", "Replace"):
        spec.child("concurrencyPolicy").unsupported(  # type: ignore[union-attr]
            ["Allow", "Forbid", "Replace"])
    jt = spec.map("jobTemplate")
    template: dict[str, Any] = {}
    if jt is None:
        spec.required("jobTemplate")
    else:
        jt.known(["metadata", "spec"])
        # validate the template's spec as the Job it will become
        objects = _objects()
        probe = ObjectMeta(name=meta.name, namespace=meta.namespace, uid=meta.uid)
        if jt.map("spec") is None:
            jt.required("spec")
        else:
            job_fields(jt, objects.parse_job(jt, probe, scope))
        template = plain(jt.value)
    return CronJob(metadata=meta, schedule=schedule, job_template=template, time_zone=tz,
                   starting_deadline_seconds=_nonneg(spec, "startingDeadlineSeconds"),
                   concurrency_policy=policy, suspend=spec.bool("suspend"),
                   successful_jobs_history_limit=_limit(spec, "successfulJobsHistoryLimit", 3),
                   failed_jobs_history_limit=_limit(spec, "failedJobsHistoryLimit", 1))


def _limit(spec: F, key: str, default: int) -> int:
    v = _nonneg(spec, key)
    return default if v is None else v


# --- ReplicationController -----------------------------------------------------------------------

def parse_replicationcontroller(doc: F, meta: ObjectMeta, scope: Any) -> ReplicationController:
    spec = _spec(doc)
    objects = _objects()
    selector = spec.str_map("selector")
    tf = spec.map("template")
    tlabels = {}
    if tf is not None and tf.map("metadata") is not None:
        tlabels = objects.parse_labels(tf.map("metadata"), "labels")
    if not selector:
        selector = dict(tlabels)  # defaulting: the selector is the template's labels
    sel = LabelSelector(match_labels=selector)
    template = objects._template(spec, "ReplicationController", sel if selector else None,
                                 ("Always",))
    return ReplicationController(metadata=meta, selector=sel, template=template,
                                 replicas=objects._replicas(spec),
                                 min_ready_seconds=spec.int("minReadySeconds", 0))


# --- PodDisruptionBudget -------------------------------------------------------------------------

def parse_pdb(doc: F, meta: ObjectMeta, scope: Any) -> PodDisruptionBudget:
    spec = _spec(doc)
    objects = _objects()
    min_av = _int_or_percent(spec.child("minAvailable"))
    max_un = _int_or_percent(spec.child("maxUnavailable"))
    if min_av is not None and max_un is not None:
        spec.error("Invalid value: minAvailable and maxUnavailable cannot be both set")
    for key, v in (("minAvailable", min_av), ("maxUnavailable", max_un)):
        if isinstance(v, str) and v.endswith("%") and v[:-1].isdigit() and int(v[:-1]) > 100:
            spec.child(key).invalid("must not be greater than 100%")  # type: ignore[union-attr]
    sel = objects.parse_selector(spec.child("selector")) if spec.has("selector") else None
    policy = spec.str("unhealthyPodEvictionPolicy", "IfHealthyBudget")
    if policy not in ("IfHealthyBudget", "AlwaysAllow"):
        spec.child("unhealthyPodEvictionPolicy").unsupported(  # type: ignore[union-attr]
            ["AlwaysAllow", "IfHealthyBudget"])
    return PodDisruptionBudget(metadata=meta, selector=sel, min_available=min_av,
                               max_unavailable=max_un, unhealthy_pod_eviction_policy=policy)


# --- HorizontalPodAutoscaler ---------------------------------------------------------------------

def _quantity(f: F | None) -> float | None:
    if f is None:
        return None
    try:
        return float(parse_quantity(str(f.value)))
    except (ValueError, ArithmeticError):
        f.invalid("quantities must match the regular expression "
                  "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
        return None


def _target(t: F | None, where: F) -> MetricTarget:
    if t is None:
        where.required("target")
        return MetricTarget("Utilization", 80)
    ttype = t.str("type", required=True)
    if ttype and ttype not in ("Utilization", "Value", "AverageValue"):
        t.child("type").unsupported(["AverageValue", "Utilization", "Value"])  # type: ignore[union-attr]
    util = t.opt_int("averageUtilization")
    if util is not None and util <= 0:
        (t.child("averageUtilization") or t).invalid("must be greater than 0")
    return MetricTarget(ttype, util, _quantity(t.child("averageValue")),
                        _quantity(t.child("value")))


def _rules(f: F | None, default: HPAScalingRules) -> HPAScalingRules:
    if f is None:
        return default
    window = f.opt_int("stabilizationWindowSeconds")
    if window is not None and not 0 <= window <= 3600:
        (f.child("stabilizationWindowSeconds") or f).invalid(
            "must be less than or equal to 3600" if window > 3600 else
            "must be greater than or equal to 0")
    select = f.str("selectPolicy", "Max")
    if select not in ("Max", "Min", "Disabled"):
        f.child("selectPolicy").unsupported(["Disabled", "Max", "Min"])  # type: ignore[union-attr]
    policies = []
    for p in f.list("policies"):
        if not p.is_mapping():
            continue
        ptype = p.str("type", required=True)
        if ptype and ptype not in ("Pods", "Percent"):
            p.child("type").unsupported(["Percent", "Pods"])  # type: ignore[union-attr]
        value = p.int("value", required=True)
        period = p.int("periodSeconds", required=True)
        if value <= 0 and p.has("value"):
            p.child("value").invalid("must be greater than zero")  # type: ignore[union-attr]
        if not 0 < period <= 1800 and p.has("periodSeconds"):
            p.child("periodSeconds").invalid(  # type: ignore[union-attr]
                "must be less than or equal to 1800" if period > 1800 else
                "must be greater than zero")
        policies.append(HPAScalingPolicy(ptype, value, period))
    return HPAScalingRules(default.stabilization_window_seconds if window is None else window,
                           select, tuple(policies) or default.policies)


def parse_hpa(doc: F, meta: ObjectMeta, scope: Any) -> HorizontalPodAutoscaler:
    spec = _spec(doc)
    v1 = doc.value.get("apiVersion") == "autoscaling/v1"
    ref = spec.map("scaleTargetRef")
    kind = name = ""
    api = "apps/v1"
    if ref is None:
        spec.required("scaleTargetRef")
    else:
        kind = ref.str("kind", required=True)
        name = ref.str("name", required=True)
        api = ref.str("apiVersion", "")
    mn = spec.int("minReplicas", 1)
    if mn < 1 and spec.has("minReplicas"):
        spec.child("minReplicas").invalid("must be greater than or equal to 1")  # type: ignore[union-attr]
    mx = spec.int("maxReplicas", required=True)
    if spec.has("maxReplicas") and mx < mn:
        spec.child("maxReplicas").invalid(  # type: ignore[union-attr]
            "must be greater than or equal to `minReplicas`")
    metrics: list[MetricSpec] = []
    if v1:
        # autoscaling/v1 → v2 conversion: targetCPUUtilizationPercentage (default 80)
        cpu = spec.opt_int("targetCPUUtilizationPercentage")
        metrics.append(MetricSpec("Resource", "cpu", MetricTarget("Utilization",
                                                                  80 if cpu is None else cpu)))
        up, down = DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN
    else:
        for m in spec.list("metrics"):
            if not m.is_mapping():
                continue
            mtype = m.str("type", required=True)
            types = ("ContainerResource", "External", "Object", "Pods", "Resource")
            if mtype and mtype not in types:
                m.child("type").unsupported(types)  # type: ignore[union-attr]
                continue
            key = {"Resource": "resource", "ContainerResource": "containerResource",
                   "Pods": "pods", "Object": "object", "External": "external"}.get(mtype, "")
            body = m.map(key) if key else None
            if body is None:
                if mtype:
                    m.sub_error(key, "Required value: must populate information for the "
                                     "given metric source")
                continue
            if mtype in ("Resource", "ContainerResource"):
                rname = body.str("name", required=True)
                metrics.append(MetricSpec(mtype, rname, _target(body.map("target"), body),
                                          container=body.str("container")))
            else:
                mf = body.map("metric")
                mname = mf.str("name", required=True) if mf is not None else ""
                described = None
                if mtype == "Object":
                    d = body.map("describedObject")
                    if d is not None:
                        described = ObjectReference(d.str("kind"), meta.namespace,
                                                    d.str("name"), "", d.str("apiVersion"))
                metrics.append(MetricSpec(mtype, mname, _target(body.map("target"), body),
                                          described_object=described))
        if not spec.has("metrics"):
            metrics.append(MetricSpec("Resource", "cpu", MetricTarget("Utilization", 80)))
        beh = spec.map("behavior")
        up = _rules(beh.map("scaleUp") if beh else None, DEFAULT_SCALE_UP)
        down = _rules(beh.map("scaleDown") if beh else None, DEFAULT_SCALE_DOWN)
    return HorizontalPodAutoscaler(metadata=meta, target_kind=kind, target_name=name,
                                   target_api_version=api, min_replicas=mn, max_replicas=mx,
                                   metrics=tuple(metrics), scale_up=up, scale_down=down)


# --- PriorityClass -------------------------------------------------------------------------------

def parse_priorityclass(doc: F, meta: ObjectMeta, scope: Any) -> PriorityClass:
    value = doc.int("value", required=True)
    if value > HIGHEST_USER_PRIORITY and not meta.name.startswith("system-"):
        doc.child("value").invalid(  # type: ignore[union-attr]
            f"must be no greater than {HIGHEST_USER_PRIORITY}")
    policy = doc.str("preemptionPolicy", "PreemptLowerPriority")
    if policy not in ("Never", "PreemptLowerPriority"):
        doc.child("preemptionPolicy").unsupported(  # type: ignore[union-attr]
            ["Never", "PreemptLowerPriority"])
    return PriorityClass(metadata=meta, value=value, global_default=doc.bool("globalDefault"),
                         preemption_policy=policy, description=doc.str("description"))


KINDS = {
    "CronJob": ("batch/v1", True, "dns1123_subdomain"),
    "ReplicationController": ("v1", True, "dns1123_subdomain"),
    "PodDisruptionBudget": ("policy/v1", True, "dns1123_subdomain"),
    "HorizontalPodAutoscaler": ("autoscaling/v2", True, "dns1123_subdomain"),
    "PriorityClass": ("scheduling.k8s.io/v1", False, "dns1123_subdomain"),
}
PARSERS = {
    "CronJob": parse_cronjob, "ReplicationController": parse_replicationcontroller,
    "PodDisruptionBudget": parse_pdb, "HorizontalPodAutoscaler": parse_hpa,
    "PriorityClass": parse_priorityclass,
}
