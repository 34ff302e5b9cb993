"""Pods from workload pod templates, through the same validation/defaulting as Pod manifests.

Invariant: ``pod_from_template(t, …).spec`` equals the spec ``read`` gives a Pod manifest
whose ``spec`` is ``t["spec"]``; labels/annotations are the template's, updated with the
controller's (``pod-template-hash``, ``statefulset.kubernetes.io/pod-name`` …).
"""

from __future__ import annotations

from typing import Any
from collections.abc import Mapping

from knet.errors import ManifestError
from knet.manifests.fields import Ctx, F
from knet.manifests.objects import parse_annotations, parse_labels
from knet.manifests.pods import parse_pod_spec
from knet.model.core import Pod, PodStatus
from knet.model.meta import ObjectMeta, OwnerReference, Source


def pod_from_template(template: Mapping[str, Any], namespace: str, name: str, *,
                      labels: Mapping[str, str] | None = None,
                      annotations: Mapping[str, str] | None = None,
                      owner: OwnerReference | None = None, node_name: str = "",
                      hostname: str = "", subdomain: str = "", generate_name: str = "",
                      uid: str = "", creation_index: int = 0, creation_timestamp: str = "",
                      source: Source | None = None) -> Pod:
    """Build a defaulted Pod; raise ``ManifestError`` if the template is invalid."""
    ctx = Ctx(source.file if source else "<template>", "Pod", f"{namespace}/{name}")
    loc = (source.line, source.col) if source else (0, 0)
    root = F(template, "template", loc, ctx)
    meta_f = root.map("metadata")
    all_labels = parse_labels(meta_f, "labels") if meta_f is not None else {}
    all_annotations = parse_annotations(meta_f, "annotations") if meta_f is not None else {}
    all_labels.update(labels or {})
    all_annotations.update(annotations or {})
    spec_f = root.map("spec")
    if spec_f is None:
        root.required("spec")
        spec_f = F({}, "template.spec", loc, ctx)
    spec = parse_pod_spec(spec_f)
    if ctx.problems:
        raise ManifestError(ctx.problems)
    overrides: dict[str, Any] = {}
    if node_name:
        overrides["node_name"] = node_name
    if hostname:
        overrides["hostname"] = hostname
    if subdomain:
        overrides["subdomain"] = subdomain
    if overrides:
        from dataclasses import replace

        spec = replace(spec, **overrides)
    meta = ObjectMeta(name=name, namespace=namespace, labels=all_labels,
                      annotations=all_annotations, uid=uid, generate_name=generate_name,
                      creation_timestamp=creation_timestamp, creation_index=creation_index,
                      owner_references=(owner,) if owner else (), source=source)
    return Pod(metadata=meta, spec=spec, status=PodStatus())
