"""Pod template mapping → Pod, for the workload controllers.

knet.manifests owns the real conversion (``pod_from_template``, with validation and API
defaulting); this module calls it when it exists and otherwise falls back to a small local
conversion of the fields the control plane reads, so the controllers work either way.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Mapping

from knet.model.core import (
    Container, ContainerPort, NodeSelectorTerm, Pod, PodSpec, PreferredSchedulingTerm, Protocol,
    Toleration,
)
from knet.model.meta import LabelSelectorRequirement, ObjectMeta


def pod_from_template(template: Mapping[str, Any], namespace: str, name: str) -> Pod:
    try:
        from knet.manifests import pod_from_template as real
    except ImportError:
        return _fallback(template, namespace, name)
    return real(template, namespace, name)


def _req(e: Mapping[str, Any]) -> LabelSelectorRequirement:
    return LabelSelectorRequirement(str(e.get("key", "")), str(e.get("operator", "")),
                                    tuple(str(v) for v in e.get("values") or ()))


def _term(t: Mapping[str, Any]) -> NodeSelectorTerm:
    return NodeSelectorTerm(tuple(_req(e) for e in t.get("matchExpressions") or ()),
                            tuple(_req(e) for e in t.get("matchFields") or ()))


def _container(c: Mapping[str, Any]) -> Container:
    ports = tuple(ContainerPort(int(p["containerPort"]), str(p.get("name", "")),
                                Protocol(p.get("protocol", "TCP")), int(p.get("hostPort", 0)))
                  for p in c.get("ports") or ())
    res = c.get("resources") or {}
    return Container(name=str(c.get("name", "")), image=str(c.get("image", "")),
                     ports=ports,
                     requests={k: str(v) for k, v in (res.get("requests") or {}).items()},
                     limits={k: str(v) for k, v in (res.get("limits") or {}).items()})


def _fallback(template: Mapping[str, Any], namespace: str, name: str) -> Pod:
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    affinity = spec.get("affinity") or {}
    node_aff = affinity.get("nodeAffinity") or {}
    required = (node_aff.get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    preferred = node_aff.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
    tolerations = tuple(
        Toleration(key=str(t.get("key", "")), operator=str(t.get("operator", "Equal")),
                   value=str(t.get("value", "")), effect=str(t.get("effect", "")),
                   toleration_seconds=t.get("tolerationSeconds"))
        for t in spec.get("tolerations") or ())
    pod_spec = PodSpec(
        containers=tuple(_container(c) for c in spec.get("containers") or ()),
        init_containers=tuple(_container(c) for c in spec.get("initContainers") or ()),
        node_name=str(spec.get("nodeName", "")),
        node_selector=dict(spec.get("nodeSelector") or {}),
        required_node_affinity=tuple(_term(t) for t in required.get("nodeSelectorTerms") or ()),
        preferred_node_affinity=tuple(
            PreferredSchedulingTerm(int(p.get("weight", 1)), _term(p.get("preference") or {}))
            for p in preferred),
        pod_affinity=affinity.get("podAffinity"),
        pod_anti_affinity=affinity.get("podAntiAffinity"),
        tolerations=tolerations,
        hostname=str(spec.get("hostname", "")),
        subdomain=str(spec.get("subdomain", "")),
        host_network=bool(spec.get("hostNetwork", False)),
        restart_policy=str(spec.get("restartPolicy", "Always")),
        termination_grace_period_seconds=int(spec.get("terminationGracePeriodSeconds", 30)),
        dns_policy=str(spec.get("dnsPolicy", "ClusterFirst")),
        priority=int(spec.get("priority", 0)),
    )
    return Pod(ObjectMeta(name=name, namespace=namespace,
                          labels=dict(meta.get("labels") or {}),
                          annotations=dict(meta.get("annotations") or {})), pod_spec)
