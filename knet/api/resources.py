"""The resources the API serves: what discovery lists and what the URL router resolves.

Only kinds knet models are served (their objects live in the control-plane store); each
entry carries the discovery facts kubectl relies on (verbs, short names, categories, scope,
subresources) as kube-apiserver v1.32 lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

_RBAC = "rbac.authorization.k8s.io"
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str | None = None  # when the subresource's kind lives in another group
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    name: str  # plural, e.g. "deployments"
    singular: str
    kind: str
    group: str  # "" = core
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def group_resource(self) -> str:
        return f"{self.name}.{self.group}" if self.group else self.name

    def sub(self, name: str) -> Subresource | None:
        for s in self.subresources:
            if s.name == name:
                return s
        return None


_GPU = ("get", "patch", "update")


def _status(kind: str) -> Subresource:
    return Subresource("status", kind, _GPU)


def _scale() -> Subresource:
    return Subresource("scale", "Scale", _GPU, "autoscaling", "v1")


RESOURCES: tuple[Resource, ...] = (
    Resource("namespaces", "namespace", "Namespace", "", "v1", False, ("ns",),
             verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
             subresources=(_status("Namespace"),)),
    Resource("nodes", "node", "Node", "", "v1", False, ("no",), subresources=(_status("Node"),)),
    Resource("pods", "pod", "Pod", "", "v1", True, ("po",), ("all",), subresources=(
        Subresource("binding", "Binding", ("create",)),
        Subresource("eviction", "Eviction", ("create",), "policy", "v1"),
        Subresource("exec", "PodExecOptions", ("create", "get")),
        Subresource("log", "Pod", ("get",)),
        Subresource("portforward", "PodPortForwardOptions", ("create", "get")),
        _status("Pod"))),
    Resource("services", "service", "Service", "", "v1", True, ("svc",), ("all",),
             subresources=(_status("Service"),)),
    Resource("configmaps", "configmap", "ConfigMap", "", "v1", True, ("cm",)),
    Resource("secrets", "secret", "Secret", "", "v1", True),
    Resource("events", "event", "Event", "", "v1", True, ("ev",)),
    Resource("endpointslices", "endpointslice", "EndpointSlice", "discovery.k8s.io", "v1", True),
    Resource("deployments", "deployment", "Deployment", "apps", "v1", True, ("deploy",), ("all",),
             subresources=(_scale(), _status("Deployment"))),
    Resource("replicasets", "replicaset", "ReplicaSet", "apps", "v1", True, ("rs",), ("all",),
             subresources=(_scale(), _status("ReplicaSet"))),
    Resource("statefulsets", "statefulset", "StatefulSet", "apps", "v1", True, ("sts",), ("all",),
             subresources=(_scale(), _status("StatefulSet"))),
    Resource("daemonsets", "daemonset", "DaemonSet", "apps", "v1", True, ("ds",), ("all",),
             subresources=(_status("DaemonSet"),)),
    Resource("jobs", "job", "Job", "batch", "v1", True, (), ("all",),
             subresources=(_status("Job"),)),
    Resource("ingresses", "ingress", "Ingress", "networking.k8s.io", "v1", True, ("ing",),
             subresources=(_status("Ingress"),)),
    Resource("ingressclasses", "ingressclass", "IngressClass", "networking.k8s.io", "v1", False),
    Resource("events", "event", "Event", "events.k8s.io", "v1", True, ("ev",)),
    Resource("serviceaccounts", "serviceaccount", "ServiceAccount", "", "v1", True, ("sa",)),
    Resource("limitranges", "limitrange", "LimitRange", "", "v1", True, ("limits",)),
    Resource("resourcequotas", "resourcequota", "ResourceQuota", "", "v1", True, ("quota",)),
    Resource("clusterroles", "clusterrole", "ClusterRole", _RBAC, "v1", False),
    Resource("clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", _RBAC, "v1", False),
    Resource("roles", "role", "Role", _RBAC, "v1", True),
    Resource("rolebindings", "rolebinding", "RoleBinding", _RBAC, "v1", True),
    Resource("selfsubjectaccessreviews", "selfsubjectaccessreview", "SelfSubjectAccessReview",
             "authorization.k8s.io", "v1", False, verbs=("create",)),
    Resource("selfsubjectrulesreviews", "selfsubjectrulesreview", "SelfSubjectRulesReview",
             "authorization.k8s.io", "v1", False, verbs=("create",)),
    Resource("subjectaccessreviews", "subjectaccessreview", "SubjectAccessReview",
             "authorization.k8s.io", "v1", False, verbs=("create",)),
    Resource("localsubjectaccessreviews", "localsubjectaccessreview", "LocalSubjectAccessReview",
             "authorization.k8s.io", "v1", True, verbs=("create",)),
    Resource("selfsubjectreviews", "selfsubjectreview", "SelfSubjectReview",
             "authentication.k8s.io", "v1", False, verbs=("create",)),
)
REVIEWS = ("SelfSubjectAccessReview", "SelfSubjectRulesReview", "SubjectAccessReview",
           "LocalSubjectAccessReview", "SelfSubjectReview")

# group → versions (preferred first), in the order kube-apiserver lists groups
GROUPS: dict[str, list[str]] = {}
for _r in RESOURCES:
    GROUPS.setdefault(_r.group, [])
    if _r.version not in GROUPS[_r.group]:
        GROUPS[_r.group].append(_r.version)

BY_PATH: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.name): r for r in RESOURCES}
BY_KIND: dict[str, Resource] = {}
for _r in RESOURCES:
    BY_KIND.setdefault(_r.kind, _r)


def lookup(group: str, version: str, name: str) -> Resource | None:
    return BY_PATH.get((group, version, name))


def in_group_version(group: str, version: str) -> list[Resource]:
    return [r for r in RESOURCES if r.group == group and r.version == version]
