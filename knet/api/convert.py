"""Request bodies ↔ model objects.

- ``parse``: an API object (a JSON mapping) → a validated, defaulted model object through the
  very parsers ``knet validate`` uses (knet.manifests.objects), so a write through the API is
  accepted or refused with the same messages as a manifest; unknown-field problems are
  separated out (``fieldValidation`` decides what they become).
- ``render``: a model object → its API JSON: ``to_manifest`` plus what the API server adds
  (``generation``, workload ``status`` computed from the store the way the controllers report
  it). Pure over the store.
"""

from __future__ import annotations

from typing import Any

from knet.errors import Problem
from knet.manifests.fields import Ctx, F
from knet.manifests.objects import KINDS, PARSERS, Scope, parse_meta
from knet.manifests.render import to_manifest
from knet.model.config import ClusterConfig

UNKNOWN_FIELD = 'unknown field "'
_TOP = {"ConfigMap": ("data", "binaryData", "immutable"),
        "Secret": ("data", "stringData", "type", "immutable"),
        "EndpointSlice": ("addressType", "endpoints", "ports")}


def parse(doc: dict[str, Any], config: ClusterConfig) -> tuple[Any | None, list[Problem], list[str]]:
    """(object or None, validation problems, unknown fields)."""
    kind = str(doc.get("kind", ""))
    ctx = Ctx("<request>", kind)
    cur = F(doc, "", (0, 0), ctx)
    scope = Scope(config)
    cur.known(("apiVersion", "kind", "metadata", *_TOP.get(kind, ("spec", "status"))))
    meta = parse_meta(cur, kind, scope, 0, None)  # type: ignore[arg-type]  # no source file
    obj = PARSERS[kind](cur, meta, scope)
    problems, unknown = [], []
    for p in ctx.problems:
        if p.message.startswith(UNKNOWN_FIELD):
            unknown.append(p.field)
        elif p.field != "apiVersion" and p.field != "kind":
            problems.append(p)
    return obj, problems, unknown


def served(kind: str) -> bool:
    return kind in KINDS and kind in PARSERS


# --- workload status (what the controllers write to .status) -------------------------------

def _active(p: Any) -> bool:
    return not p.terminating and p.status.phase not in ("Succeeded", "Failed")


def _owned(store: Any, obj: Any, kind: str) -> list[Any]:
    return [o for o in store.owned_by(obj.metadata.uid) if o.kind == kind]


def workload_status(store: Any, obj: Any, generation: int) -> dict[str, Any] | None:
    kind = obj.kind
    if kind == "Deployment":
        rss = _owned(store, obj, "ReplicaSet")
        newest = max(rss, key=lambda r: int(r.metadata.annotations.get(
            "deployment.kubernetes.io/revision", "0") or 0), default=None)
        pods: list[Any] = []
        updated = 0
        for rs in rss:
            ps = [p for p in _owned(store, rs, "Pod") if _active(p)]
            pods += ps
            if rs is newest:
                updated = len(ps)
        ready = sum(1 for p in pods if p.status.ready)
        st: dict[str, Any] = {"observedGeneration": generation}
        if pods:
            st["replicas"] = len(pods)
            st["updatedReplicas"] = updated
        if ready:
            st["readyReplicas"] = ready
            st["availableReplicas"] = ready
        if len(pods) - ready:
            st["unavailableReplicas"] = len(pods) - ready
        avail = ready >= obj.replicas - _max_unavailable(obj)
        conds = [{"type": "Available", "status": "True" if avail else "False",
                  "reason": "MinimumReplicasAvailable" if avail else "MinimumReplicasUnavailable",
                  "message": "Deployment has minimum availability." if avail else
                  "Deployment does not have minimum availability."}]
        done = updated == obj.replicas == len(pods) and ready >= obj.replicas
        rsname = newest.metadata.name if newest is not None else obj.metadata.name
        conds.append({"type": "Progressing", "status": "True",
                      "reason": "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                      "message": f'ReplicaSet "{rsname}" has successfully progressed.' if done
                      else f'ReplicaSet "{rsname}" is progressing.'})
        st["conditions"] = conds
        return st
    if kind in ("ReplicaSet", "StatefulSet"):
        pods = [p for p in _owned(store, obj, "Pod") if _active(p)]
        ready = sum(1 for p in pods if p.status.ready)
        st = {"replicas": len(pods), "observedGeneration": generation}
        if kind == "ReplicaSet":
            st["fullyLabeledReplicas"] = len(pods)
        else:
            st["currentReplicas"] = len(pods)
            st["updatedReplicas"] = len(pods)
        if ready:
            st["readyReplicas"] = ready
            st["availableReplicas"] = ready
        return st
    if kind == "DaemonSet":
        pods = [p for p in _owned(store, obj, "Pod") if _active(p)]
        ready = sum(1 for p in pods if p.status.ready)
        return {"currentNumberScheduled": len(pods), "desiredNumberScheduled": len(pods),
                "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
                "updatedNumberScheduled": len(pods), "observedGeneration": generation}
    if kind == "Job":
        pods = _owned(store, obj, "Pod")
        st = {}
        active = sum(1 for p in pods if _active(p))
        ok = sum(1 for p in pods if p.status.phase == "Succeeded")
        bad = sum(1 for p in pods if p.status.phase == "Failed")
        if active:
            st["active"] = active
        if ok:
            st["succeeded"] = ok
        if bad:
            st["failed"] = bad
        want = obj.completions if obj.completions is not None else 1
        if ok >= want:
            st["conditions"] = [{"type": "Complete", "status": "True"}]
        return st
    return None


def _max_unavailable(d: Any) -> int:
    from knet.control.workloads import resolve_int_or_percent

    if d.strategy_type != "RollingUpdate":
        return 0
    return resolve_int_or_percent(d.max_unavailable, d.replicas, False)


def render(obj: Any, store: Any, generation: int = 1) -> dict[str, Any]:
    out = to_manifest(obj)
    meta = out["metadata"]
    if obj.kind not in ("Namespace", "ConfigMap", "Secret", "EndpointSlice", "Node", "Service"):
        meta["generation"] = generation
    st = workload_status(store, obj, generation)
    if st is not None:
        out["status"] = st
    if obj.kind == "Pod":
        # kubelet always reports imageID (clients such as the Python client require it)
        for key in ("containerStatuses", "initContainerStatuses"):
            for cs in out.get("status", {}).get(key, ()):
                cs.setdefault("imageID", "")
    return out
