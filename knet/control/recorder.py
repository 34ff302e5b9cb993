"""core/v1 Events, as client-go's event recorder writes them.

Invariants: an Event is stored like any object (kind ``Event``, in the involved object's
namespace) so watchers and ``kubectl get events`` see it; the same (object, type, reason,
message) seen again bumps ``count`` and ``lastTimestamp`` (the recorder's aggregation) instead
of adding an object; names are ``<object name>.<16 hex digits>`` like the recorder's, derived
from a counter so a run is deterministic.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from knet.control.store import evolve
from knet.model.controllers import CoreEvent, ObjectReference
from knet.model.meta import ObjectMeta

if TYPE_CHECKING:
    from knet.control.cluster import Cluster

API_VERSIONS = {
    "Pod": "v1", "Node": "v1", "Service": "v1", "ReplicationController": "v1",
    "Deployment": "apps/v1", "ReplicaSet": "apps/v1", "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2", "PodDisruptionBudget": "policy/v1",
}


def reference(obj: Any) -> ObjectReference:
    m = obj.metadata
    return ObjectReference(obj.kind, m.namespace, m.name, m.uid, API_VERSIONS.get(obj.kind, ""))


EVENT_TTL = 3600.0


def _expire(c: Cluster, index: dict[tuple[str, ...], str]) -> None:
    from collections import deque

    from knet.control.batch import seconds

    queue: deque[tuple[float, tuple[str, ...], str, str]] = c.__dict__.setdefault(
        "_event_queue", deque())
    while queue and queue[0][0] + EVENT_TTL <= c.now:
        _, key, ns, name = queue.popleft()
        ev = c.store.get("Event", ns, name)
        if ev is None:
            continue
        last = seconds(ev.last_timestamp)
        if last + EVENT_TTL > c.now:
            queue.append((last, key, ns, name))  # seen again since: lives on
            continue
        c.store.delete("Event", ns, name)
        if index.get(key) == name:
            del index[key]


def record(c: Cluster, obj: Any, type: str, reason: str, message: str,
           source: str) -> CoreEvent:
    from knet.control.cluster import timestamp

    ref = reference(obj)
    ns = ref.namespace or "default"
    key = (ref.kind, ref.namespace, ref.name, ref.uid, type, reason, message)
    index: dict[tuple[str, ...], str] = c.__dict__.setdefault("_event_names", {})
    _expire(c, index)
    now = timestamp(c.now)
    name = index.get(key)
    if name is not None:
        prev = c.store.get("Event", ns, name)
        if prev is not None:
            ev = evolve(prev, count=prev.count + 1, last_timestamp=now)
            c.create(ev)
            return ev
    seq = c.__dict__["_event_seq"] = c.__dict__.get("_event_seq", 0) + 1
    digest = hashlib.sha256(f"{c.seed}/{seq}".encode()).hexdigest()[:16]
    name = index[key] = f"{ref.name}.{digest}"
    ev = CoreEvent(ObjectMeta(name, ns), ref, reason, message, type, source, 1, now, now)
    c.create(ev)
    c.__dict__["_event_queue"].append((c.now, key, ns, name))
    return ev


def events_for(c: Cluster, obj: Any) -> list[CoreEvent]:
    """The object's events, oldest first (``kubectl describe``'s Events section)."""
    uid = obj.metadata.uid
    out = [e for e in c.store.list("Event", obj.metadata.namespace or "default")
           if e.involved_object.uid == uid and e.involved_object.kind == obj.kind]
    return sorted(out, key=lambda e: (e.first_timestamp, e.metadata.creation_index))
