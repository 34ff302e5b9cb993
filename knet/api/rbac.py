"""RBAC authorization (kubernetes ``plugin/pkg/auth/authorizer/rbac``, reference §3.3–3.6).

Pure over the store: ClusterRoleBindings, then the request namespace's RoleBindings; first
allowing rule wins; no deny rules. ``system:masters`` is allowed everything before RBAC (the
privileged-group authorizer). Aggregated ClusterRoles are resolved from their selectors.
Escalation prevention: a role may only grant what its author holds (or ``escalate``), a
binding only a role whose rules the author holds (or ``bind``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable

from knet.api.generic import RBAC, GenericObject

BOOTSTRAP = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}


@dataclass(frozen=True, slots=True)
class Attributes:
    user: str
    groups: tuple[str, ...]
    verb: str
    namespace: str = ""
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""  # non-resource requests

    @property
    def resource_request(self) -> bool:
        return not self.path


def _rule(verbs: Iterable[str], groups: Iterable[str] = ("",), resources: Iterable[str] = (),
          urls: Iterable[str] = ()) -> dict[str, Any]:
    if urls:
        return {"verbs": list(verbs), "nonResourceURLs": list(urls)}
    return {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}


_RW = ("create", "delete", "deletecollection", "patch", "update")
_RO = ("get", "list", "watch")
_VIEW_CORE = ("configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
              "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
              "services", "services/status", "bindings", "events", "limitranges",
              "namespaces/status", "pods/log", "pods/status", "replicationcontrollers/status",
              "resourcequotas", "resourcequotas/status", "namespaces")
_APPS = ("controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
         "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
         "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status")


def default_cluster_roles() -> list[tuple[str, dict[str, Any]]]:
    """(name, body) of the bootstrap ClusterRoles knet serves (bootstrappolicy/policy.go)."""
    agg = "rbac.authorization.k8s.io/aggregate-to-"
    roles: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("cluster-admin", {"rules": [_rule(["*"], ["*"], ["*"]), _rule(["*"], urls=["*"])]}, {}),
        ("admin", {"aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {agg + "admin": "true"}}]}, "rules": []}, {}),
        ("edit", {"aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {agg + "edit": "true"}}]}, "rules": []},
         {agg + "admin": "true"}),
        ("view", {"aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {agg + "view": "true"}}]}, "rules": []},
         {agg + "admin": "true", agg + "edit": "true"}),
        ("system:aggregate-to-admin", {"rules": [
            _rule(_RO + _RW, [RBAC], ["rolebindings", "roles"]),
            _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"])]},
         {agg + "admin": "true"}),
        ("system:aggregate-to-edit", {"rules": [
            _rule(_RW, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy",
                              "configmaps", "endpoints", "persistentvolumeclaims",
                              "replicationcontrollers", "replicationcontrollers/scale", "secrets",
                              "serviceaccounts", "services", "services/proxy"]),
            _rule(["create"], [""], ["pods/eviction", "serviceaccounts/token"]),
            _rule(_RO, [""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy",
                              "secrets", "services/proxy"]),
            _rule(["impersonate"], [""], ["serviceaccounts"]),
            _rule(_RW, ["apps"], ["daemonsets", "deployments", "deployments/rollback",
                                  "deployments/scale", "replicasets", "replicasets/scale",
                                  "statefulsets", "statefulsets/scale"]),
            _rule(_RW, ["autoscaling"], ["horizontalpodautoscalers"]),
            _rule(_RW, ["batch"], ["cronjobs", "jobs"]),
            _rule(_RW, ["policy"], ["poddisruptionbudgets"]),
            _rule(_RW, ["networking.k8s.io"], ["ingresses", "networkpolicies"])]},
         {agg + "admin": "true", agg + "edit": "true"}),
        ("system:aggregate-to-view", {"rules": [
            _rule(_RO, [""], _VIEW_CORE),
            _rule(_RO, ["apps"], _APPS),
            _rule(_RO, ["autoscaling"], ["horizontalpodautoscalers",
                                         "horizontalpodautoscalers/status"]),
            _rule(_RO, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
            _rule(_RO, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
            _rule(_RO, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
            _rule(_RO, ["discovery.k8s.io"], ["endpointslices"]),
            _rule(_RO, ["events.k8s.io"], ["events"])]},
         {agg + "admin": "true", agg + "edit": "true", agg + "view": "true"}),
        ("system:discovery", {"rules": [_rule(["get"], urls=[
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
            "/readyz", "/version", "/version/"])]}, {}),
        ("system:public-info-viewer", {"rules": [_rule(["get"], urls=[
            "/healthz", "/livez", "/readyz", "/version", "/version/"])]}, {}),
        ("system:basic-user", {"rules": [
            _rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews",
                                                         "selfsubjectrulesreviews"]),
            _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"])]}, {}),
    ]
    out = []
    for name, body, labels in roles:
        out.append((name, {**body, "_labels": {**BOOTSTRAP, **labels}}))
    return out


DEFAULT_BINDINGS = (("cluster-admin", "cluster-admin", "system:masters"),
                    ("system:discovery", "system:discovery", "system:authenticated"),
                    ("system:basic-user", "system:basic-user", "system:authenticated"),
                    ("system:public-info-viewer", "system:public-info-viewer",
                     "system:authenticated"),
                    ("system:public-info-viewer", "system:public-info-viewer",
                     "system:unauthenticated"))


def default_bindings() -> list[tuple[str, dict[str, Any]]]:
    subjects: dict[str, list[dict[str, Any]]] = {}
    refs: dict[str, str] = {}
    for name, role, group in DEFAULT_BINDINGS:
        subjects.setdefault(name, []).append(
            {"apiGroup": RBAC, "kind": "Group", "name": group})
        refs[name] = role
    return [(n, {"roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": refs[n]},
                 "subjects": s}) for n, s in subjects.items()]


# --- evaluation -----------------------------------------------------------------------------

def _selector_matches(sel: Any, labels: dict[str, str] | Any) -> bool:
    if not isinstance(sel, dict):
        return False
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and key in labels and labels[key] in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def aggregated_rules(store: Any, role: GenericObject) -> list[dict[str, Any]]:
    agg = role.body.get("aggregationRule")
    if not isinstance(agg, dict):
        return list(role.body.get("rules") or [])
    out: list[dict[str, Any]] = []
    for other in sorted(store.list("ClusterRole"), key=lambda o: o.metadata.name):
        if other.metadata.name == role.metadata.name:
            continue
        if any(_selector_matches(s, other.metadata.labels)
               for s in agg.get("clusterRoleSelectors") or []):
            for r in other.body.get("rules") or []:
                if r not in out:
                    out.append(r)
    return out


def _role_rules(store: Any, ref: Any, namespace: str) -> tuple[str, list[dict[str, Any]]] | None:
    if not isinstance(ref, dict):
        return None
    kind, name = ref.get("kind"), ref.get("name", "")
    if kind == "ClusterRole":
        role = store.get("ClusterRole", "", name)
        return None if role is None else (f'ClusterRole "{name}"', aggregated_rules(store, role))
    if kind == "Role" and namespace:
        role = store.get("Role", namespace, name)
        return None if role is None else (f'Role "{name}"', list(role.body.get("rules") or []))
    return None


def _applies(subject: Any, user: str, groups: tuple[str, ...], binding_ns: str) -> str | None:
    if not isinstance(subject, dict):
        return None
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User" and name == user:
        return f'User "{user}"'
    if kind == "Group" and name in groups:
        return f'Group "{name}"'
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        if user == f"system:serviceaccount:{ns}:{name}":
            return f'ServiceAccount "{name}/{ns}"' if ns else f'ServiceAccount "{name}"'
    return None


def _has(items: Any, want: str) -> bool:
    return isinstance(items, list) and (want in items or "*" in items)


def rule_allows(rule: dict[str, Any], a: Attributes) -> bool:
    if not _has(rule.get("verbs"), a.verb):
        return False
    if not a.resource_request:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == a.path or (url.endswith("*") and a.path.startswith(url[:-1])):
                return True
        return False
    if not _has(rule.get("apiGroups"), a.group):
        return False
    combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    resources = rule.get("resources") or []
    if not ("*" in resources or combined in resources
            or (a.subresource and f"*/{a.subresource}" in resources)):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def bindings_for(store: Any, a: Attributes) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    """(description, rules) for every binding that applies to the user, in RBAC's order."""
    for b in sorted(store.list("ClusterRoleBinding"), key=lambda o: o.metadata.name):
        for s in b.body.get("subjects") or []:
            who = _applies(s, a.user, a.groups, "")
            if who:
                rr = _role_rules(store, b.body.get("roleRef"), "")
                if rr is not None:
                    yield (f'ClusterRoleBinding "{b.metadata.name}" of {rr[0]} to {who}', rr[1])
                break
    if a.namespace:
        for b in sorted(store.list("RoleBinding", a.namespace), key=lambda o: o.metadata.name):
            for s in b.body.get("subjects") or []:
                who = _applies(s, a.user, a.groups, a.namespace)
                if who:
                    rr = _role_rules(store, b.body.get("roleRef"), a.namespace)
                    if rr is not None:
                        yield (f'RoleBinding "{b.metadata.name}/{a.namespace}" of {rr[0]} to {who}',
                               [r for r in rr[1] if not r.get("nonResourceURLs")])
                    break


def authorize(store: Any, a: Attributes) -> tuple[bool, str]:
    if "system:masters" in a.groups:
        return True, ""
    for desc, rules in bindings_for(store, a):
        for r in rules:
            if rule_allows(r, a):
                return True, f"RBAC: allowed by {desc}"
    return False, ""


def deny_text(a: Attributes) -> str:
    if not a.resource_request:
        return f'User "{a.user}" cannot {a.verb} path "{a.path}"'
    res = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return f'User "{a.user}" cannot {a.verb} resource "{res}" in API group "{a.group}" {where}'


def rules_for(store: Any, user: str, groups: tuple[str, ...], namespace: str) -> list[dict[str, Any]]:
    a = Attributes(user, groups, "", namespace)
    out: list[dict[str, Any]] = []
    if "system:masters" in groups:
        out += [_rule(["*"], ["*"], ["*"]), _rule(["*"], urls=["*"])]
    for _, rules in bindings_for(store, a):
        out += [r for r in rules if r not in out]
    return out


def _breakdown(rule: dict[str, Any]) -> list[Attributes]:
    out = []
    if rule.get("nonResourceURLs"):
        for v in rule.get("verbs") or []:
            for u in rule["nonResourceURLs"]:
                out.append(Attributes("", (), v, path=u))
        return out
    names = rule.get("resourceNames") or [""]
    for g in rule.get("apiGroups") or []:
        for r in rule.get("resources") or []:
            res, _, sub = r.partition("/")
            for v in rule.get("verbs") or []:
                for n in names:
                    out.append(Attributes("", (), v, "", g, res, sub, n))
    return out


def _covers(held: dict[str, Any], want: Attributes) -> bool:
    if not _has(held.get("verbs"), want.verb):
        return False
    if not want.resource_request:
        for u in held.get("nonResourceURLs") or []:
            if u == "*" or u == want.path or (u.endswith("*") and want.path.startswith(u[:-1])):
                return True
        return False
    if not _has(held.get("apiGroups"), want.group):
        return False
    combined = f"{want.resource}/{want.subresource}" if want.subresource else want.resource
    res = held.get("resources") or []
    if not ("*" in res or combined in res or (want.subresource and f"*/{want.subresource}" in res)):
        return False
    names = held.get("resourceNames") or []
    return not names or (bool(want.name) and want.name in names)


def not_covered(held: list[dict[str, Any]], granted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules of ``granted`` that ``held`` does not cover (ConfirmNoEscalation)."""
    missing = []
    for rule in granted:
        for piece in _breakdown(rule):
            if not any(_covers(h, piece) for h in held):
                missing.append(rule)
                break
    return missing


def compact(rule: dict[str, Any]) -> str:
    """policy_comparator's CompactString: ``{APIGroups:["apps"], Resources:["deployments"], Verbs:["create"]}``."""
    parts = []
    for key, field_ in (("APIGroups", "apiGroups"), ("Resources", "resources"),
                        ("ResourceNames", "resourceNames"), ("NonResourceURLs", "nonResourceURLs"),
                        ("Verbs", "verbs")):
        vals = rule.get(field_)
        if vals:
            parts.append(f"{key}:[" + " ".join(f'"{v}"' for v in vals) + "]")
    return "{" + ", ".join(parts) + "}"
