"""Objects the API stores that knet's networking does not model (ServiceAccounts, RBAC roles and
bindings, LimitRanges, ResourceQuotas): a frozen ``GenericObject`` in the same control-plane
store, validated for what the API server checks about them (names, required fields, the
immutable ``roleRef``) and rendered back as the JSON it came in."""

from __future__ import annotations

import copy
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Mapping

from knet.manifests import names
from knet.manifests.render import _meta
from knet.model.meta import Named, ObjectMeta

RBAC = "rbac.authorization.k8s.io"
KINDS: dict[str, tuple[str, bool]] = {  # kind → (apiVersion, namespaced)
    "ServiceAccount": ("v1", True), "LimitRange": ("v1", True), "ResourceQuota": ("v1", True),
    "Role": (f"{RBAC}/v1", True), "ClusterRole": (f"{RBAC}/v1", False),
    "RoleBinding": (f"{RBAC}/v1", True), "ClusterRoleBinding": (f"{RBAC}/v1", False),
}
_SERVER_META = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields",
                "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")


@dataclass(frozen=True, slots=True)
class GenericObject(Named):
    kind: str  # an instance field here, a class constant on model kinds
    metadata: ObjectMeta
    body: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.metadata.key}>"


def uid(kind: str, namespace: str, name: str, salt: str = "") -> str:
    h = hashlib.sha256(f"{kind}/{namespace}/{name}/{salt}".encode()).digest()
    return str(uuid.UUID(bytes=h[:16], version=4))


def render(obj: GenericObject) -> dict[str, Any]:
    return {"apiVersion": KINDS[obj.kind][0], "kind": obj.kind, "metadata": _meta(obj.metadata),
            **copy.deepcopy(dict(obj.body))}


def parse(doc: Mapping[str, Any], kind: str) -> tuple[GenericObject | None, list[tuple[str, str]]]:
    """(object, [(field, message)]) — the API server's validation of these kinds."""
    errs: list[tuple[str, str]] = []
    meta = doc.get("metadata") or {}
    if not isinstance(meta, dict):
        return None, [("metadata", "Invalid value: expected an object")]
    name = meta.get("name") or ""
    if not isinstance(name, str):
        return None, [("metadata.name", f"Invalid value: {name!r}: expected a string")]
    if not name:
        errs.append(("metadata.name", "Required value: name or generateName is required"))
    else:
        check: Callable[[str], list[str]] = names.dns1123_subdomain
        if kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
            check = _path_segment
        for m in check(name):
            errs.append(("metadata.name", f'Invalid value: "{name}": {m}'))
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if not isinstance(labels, dict) or not isinstance(annotations, dict):
        errs.append(("metadata.labels", "Invalid value: expected a map of strings"))
        labels, annotations = {}, {}
    body = {k: copy.deepcopy(v) for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    if kind in ("Role", "ClusterRole"):
        for i, r in enumerate(body.get("rules") or []):
            if not isinstance(r, dict):
                errs.append((f"rules[{i}]", "Invalid value: expected an object"))
                continue
            if not r.get("verbs"):
                errs.append((f"rules[{i}].verbs", "Required value: verbs must contain at least one value"))
            if r.get("nonResourceURLs") and kind == "Role":
                errs.append((f"rules[{i}].nonResourceURLs",
                             "Invalid value: namespaced rules cannot apply to non-resource URLs"))
            if not r.get("nonResourceURLs") and not r.get("apiGroups") and r.get("verbs"):
                errs.append((f"rules[{i}].apiGroups",
                             "Required value: resource rules must supply at least one api group"))
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        ref = body.get("roleRef")
        if not isinstance(ref, dict):
            errs.append(("roleRef", "Required value"))
        else:
            if ref.get("apiGroup") != RBAC:
                errs.append(("roleRef.apiGroup", f'Unsupported value: "{ref.get("apiGroup", "")}": '
                                                 f'supported values: "{RBAC}"'))
            allowed = ("ClusterRole",) if kind == "ClusterRoleBinding" else ("ClusterRole", "Role")
            if ref.get("kind") not in allowed:
                sup = ", ".join(f'"{a}"' for a in allowed)
                errs.append(("roleRef.kind", f'Unsupported value: "{ref.get("kind", "")}": '
                                             f"supported values: {sup}"))
            if not ref.get("name"):
                errs.append(("roleRef.name", "Required value"))
        for i, s in enumerate(body.get("subjects") or []):
            if not isinstance(s, dict) or s.get("kind") not in ("User", "Group", "ServiceAccount"):
                errs.append((f"subjects[{i}].kind", 'Unsupported value: "'
                             f'{(s or {}).get("kind", "") if isinstance(s, dict) else ""}": supported '
                             'values: "ServiceAccount", "User", "Group"'))
            elif not s.get("name"):
                errs.append((f"subjects[{i}].name", "Required value"))
    if errs:
        return None, errs
    om = ObjectMeta(name=name, namespace=str(meta.get("namespace") or ""),
                    labels={str(k): str(v) for k, v in labels.items()},
                    annotations={str(k): str(v) for k, v in annotations.items()},
                    generate_name=str(meta.get("generateName") or ""))
    return GenericObject(kind, om, body), []


def _path_segment(name: str) -> list[str]:
    # RBAC names: ValidatePathSegmentName (no "/" or "%", not "." or "..")
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]
