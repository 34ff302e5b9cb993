"""Pod QoS class, as the API server writes ``status.qosClass`` (pkg/apis/core/helper/qos).

Invariants: only cpu and memory count; init containers count like containers; requests are
already defaulted from limits (API defaulting). BestEffort: no container requests or limits
either; Guaranteed: every container has cpu and memory limits equal to its requests;
otherwise Burstable.
"""

from __future__ import annotations

from knet.control.quantity import amount
from knet.model.core import Pod

_RESOURCES = ("cpu", "memory")


def qos_class(pod: Pod) -> str:
    containers = list(pod.spec.init_containers) + list(pod.spec.containers)
    any_set = False
    guaranteed = True
    for c in containers:
        for r in _RESOURCES:
            req, lim = c.requests.get(r), c.limits.get(r)
            if req is not None or lim is not None:
                any_set = True
            if lim is None or req is None or amount(r, req) != amount(r, lim):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
