"""The few protobuf request bodies kubectl 1.32 sends (reference §5.2): the ``k8s\\0`` envelope
(``runtime.Unknown``) around SelfSubjectAccessReview, SubjectAccessReview, Eviction and
DeleteOptions. Decoded into the same dicts their JSON form gives; anything else is a 415."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from knet.api.status import ApiError, bad_request, unsupported_media

MAGIC = b"k8s\x00"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = n = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise bad_request("malformed protobuf body")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
            out.append((num, v))
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise bad_request("malformed protobuf body")
            out.append((num, buf[i:i + n]))
            i += n
        elif wt == 1:
            out.append((num, buf[i:i + 8]))
            i += 8
        elif wt == 5:
            out.append((num, buf[i:i + 4]))
            i += 4
        else:
            raise bad_request("malformed protobuf body")
    return out


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _map_entry(v: bytes) -> tuple[str, str]:
    k = val = ""
    for n, x in fields(v):
        if n == 1:
            k = _s(x)
        elif n == 2:
            val = _s(x)
    return k, val


def object_meta(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    for n, v in fields(buf):
        if n in names:
            out[names[n]] = _s(v)
        elif n == 11:
            k, val = _map_entry(v)
            out.setdefault("labels", {})[k] = val
        elif n == 12:
            k, val = _map_entry(v)
            out.setdefault("annotations", {})[k] = val
    return out


def delete_options(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, v in fields(buf):
        if n == 1:
            g = v if v < (1 << 63) else v - (1 << 64)
            out["gracePeriodSeconds"] = g
        elif n == 2:
            pre = {}
            for m, x in fields(v):
                pre["uid" if m == 1 else "resourceVersion"] = _s(x)
            out["preconditions"] = pre
        elif n == 3:
            out["orphanDependents"] = bool(v)
        elif n == 4:
            out["propagationPolicy"] = _s(v)
        elif n == 5:
            out.setdefault("dryRun", []).append(_s(v))
    return out


def _attrs(buf: bytes, names: dict[int, str]) -> dict[str, Any]:
    return {names[n]: _s(v) for n, v in fields(buf) if n in names}


_RES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource",
        7: "name"}
_NONRES = {1: "path", 2: "verb"}


def access_review_spec(buf: bytes, self_review: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, v in fields(buf):
        if n == 1:
            out["resourceAttributes"] = _attrs(v, _RES)
        elif n == 2:
            out["nonResourceAttributes"] = _attrs(v, _NONRES)
        elif not self_review and n == 3:
            out["user"] = _s(v)
        elif not self_review and n == 4:
            out.setdefault("groups", []).append(_s(v))
        elif not self_review and n == 6:
            out["uid"] = _s(v)
    return out


def _review(self_review: bool) -> Callable[[bytes], dict[str, Any]]:
    def fn(buf: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n, v in fields(buf):
            if n == 1:
                out["metadata"] = object_meta(v)
            elif n == 2:
                out["spec"] = access_review_spec(v, self_review)
        return out
    return fn


def _eviction(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, v in fields(buf):
        if n == 1:
            out["metadata"] = object_meta(v)
        elif n == 2:
            out["deleteOptions"] = delete_options(v)
    return out


DECODERS: dict[str, Callable[[bytes], dict[str, Any]]] = {
    "SelfSubjectAccessReview": _review(True),
    "SubjectAccessReview": _review(False),
    "LocalSubjectAccessReview": _review(False),
    "Eviction": _eviction,
    "DeleteOptions": delete_options,
}


def decode(body: bytes) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise bad_request("protobuf body without the k8s envelope")
    api_version = kind = ""
    raw = b""
    for n, v in fields(body[4:]):
        if n == 1:
            for m, x in fields(v):
                if m == 1:
                    api_version = _s(x)
                elif m == 2:
                    kind = _s(x)
        elif n == 2:
            raw = v
    fn = DECODERS.get(kind)
    if fn is None:
        raise unsupported_media(["application/json", "application/yaml"])
    try:
        doc = fn(raw)
    except ApiError:
        raise
    except (ValueError, IndexError) as e:
        raise bad_request(f"malformed protobuf body: {e}") from None
    return {"apiVersion": api_version, "kind": kind, **doc}


# --- built-in objects (kubectl's typed clients: create deployment|configmap|secret|namespace,
# run, expose, create job/service): field numbers from k8s.io/api v0.32 generated.proto ------

T = tuple  # (json name, type, repeated)
_META: dict[int, T] = {1: ("name", "string", False), 2: ("generateName", "string", False),
                       3: ("namespace", "string", False), 5: ("uid", "string", False),
                       6: ("resourceVersion", "string", False),
                       11: ("labels", "map", False), 12: ("annotations", "map", False),
                       13: ("ownerReferences", "OwnerReference", True),
                       14: ("finalizers", "string", True)}
SCHEMAS: dict[str, dict[int, T]] = {
    "ObjectMeta": _META,
    "OwnerReference": {1: ("kind", "string", False), 3: ("name", "string", False),
                       4: ("uid", "string", False), 5: ("apiVersion", "string", False),
                       6: ("controller", "bool", False), 7: ("blockOwnerDeletion", "bool", False)},
    "ConfigMap": {1: ("metadata", "ObjectMeta", False), 2: ("data", "map", False),
                  3: ("binaryData", "mapbytes", False), 4: ("immutable", "bool", False)},
    "Secret": {1: ("metadata", "ObjectMeta", False), 2: ("data", "mapbytes", False),
               3: ("type", "string", False), 4: ("stringData", "map", False),
               5: ("immutable", "bool", False)},
    "Namespace": {1: ("metadata", "ObjectMeta", False)},
    "LabelSelector": {1: ("matchLabels", "map", False),
                      2: ("matchExpressions", "LabelSelectorRequirement", True)},
    "LabelSelectorRequirement": {1: ("key", "string", False), 2: ("operator", "string", False),
                                 3: ("values", "string", True)},
    "Deployment": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "DeploymentSpec", False)},
    "DeploymentSpec": {1: ("replicas", "int", False), 2: ("selector", "LabelSelector", False),
                       3: ("template", "PodTemplateSpec", False),
                       4: ("strategy", "DeploymentStrategy", False),
                       5: ("minReadySeconds", "int", False),
                       6: ("revisionHistoryLimit", "int", False), 7: ("paused", "bool", False),
                       9: ("progressDeadlineSeconds", "int", False)},
    "DeploymentStrategy": {1: ("type", "string", False),
                           2: ("rollingUpdate", "RollingUpdateDeployment", False)},
    "RollingUpdateDeployment": {1: ("maxUnavailable", "intorstr", False),
                                2: ("maxSurge", "intorstr", False)},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "PodSpec", False)},
    "PodSpec": {2: ("containers", "Container", True), 3: ("restartPolicy", "string", False),
                4: ("terminationGracePeriodSeconds", "int", False),
                5: ("activeDeadlineSeconds", "int", False), 6: ("dnsPolicy", "string", False),
                7: ("nodeSelector", "map", False), 8: ("serviceAccountName", "string", False),
                10: ("nodeName", "string", False), 11: ("hostNetwork", "bool", False),
                16: ("hostname", "string", False), 17: ("subdomain", "string", False),
                19: ("schedulerName", "string", False),
                20: ("initContainers", "Container", True),
                21: ("automountServiceAccountToken", "bool", False),
                30: ("enableServiceLinks", "bool", False)},
    "Container": {1: ("name", "string", False), 2: ("image", "string", False),
                  3: ("command", "string", True), 4: ("args", "string", True),
                  5: ("workingDir", "string", False), 6: ("ports", "ContainerPort", True),
                  7: ("env", "EnvVar", True), 8: ("resources", "ResourceRequirements", False),
                  13: ("terminationMessagePath", "string", False),
                  14: ("imagePullPolicy", "string", False), 16: ("stdin", "bool", False),
                  17: ("stdinOnce", "bool", False), 18: ("tty", "bool", False),
                  20: ("terminationMessagePolicy", "string", False)},
    "ContainerPort": {1: ("name", "string", False), 2: ("hostPort", "int", False),
                      3: ("containerPort", "int", False), 4: ("protocol", "string", False),
                      5: ("hostIP", "string", False)},
    "EnvVar": {1: ("name", "string", False), 2: ("value", "string", False)},
    "ResourceRequirements": {1: ("limits", "mapquantity", False),
                             2: ("requests", "mapquantity", False)},
    "Pod": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "PodSpec", False)},
    "Service": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "ServiceSpec", False)},
    "ServiceSpec": {1: ("ports", "ServicePort", True), 2: ("selector", "map", False),
                    3: ("clusterIP", "string", False), 4: ("type", "string", False),
                    5: ("externalIPs", "string", True), 7: ("sessionAffinity", "string", False),
                    8: ("loadBalancerIP", "string", False), 10: ("externalName", "string", False),
                    11: ("externalTrafficPolicy", "string", False),
                    13: ("publishNotReadyAddresses", "bool", False),
                    17: ("ipFamilyPolicy", "string", False), 18: ("clusterIPs", "string", True),
                    19: ("ipFamilies", "string", True),
                    22: ("internalTrafficPolicy", "string", False)},
    "ServicePort": {1: ("name", "string", False), 2: ("protocol", "string", False),
                    3: ("port", "int", False), 4: ("targetPort", "intorstr", False),
                    5: ("nodePort", "int", False), 6: ("appProtocol", "string", False)},
    "Job": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "JobSpec", False)},
    "JobSpec": {1: ("parallelism", "int", False), 2: ("completions", "int", False),
                3: ("activeDeadlineSeconds", "int", False), 4: ("selector", "LabelSelector", False),
                5: ("manualSelector", "bool", False), 6: ("template", "PodTemplateSpec", False),
                7: ("backoffLimit", "int", False)},
    "PolicyRule": {1: ("verbs", "string", True), 2: ("apiGroups", "string", True),
                   3: ("resources", "string", True), 4: ("resourceNames", "string", True),
                   5: ("nonResourceURLs", "string", True)},
    "Role": {1: ("metadata", "ObjectMeta", False), 2: ("rules", "PolicyRule", True)},
    "ClusterRole": {1: ("metadata", "ObjectMeta", False), 2: ("rules", "PolicyRule", True),
                    3: ("aggregationRule", "AggregationRule", False)},
    "AggregationRule": {1: ("clusterRoleSelectors", "LabelSelector", True)},
    "Subject": {1: ("kind", "string", False), 2: ("apiGroup", "string", False),
                3: ("name", "string", False), 4: ("namespace", "string", False)},
    "RoleRef": {1: ("apiGroup", "string", False), 2: ("kind", "string", False),
                3: ("name", "string", False)},
    "RoleBinding": {1: ("metadata", "ObjectMeta", False), 2: ("subjects", "Subject", True),
                    3: ("roleRef", "RoleRef", False)},
    "ClusterRoleBinding": {1: ("metadata", "ObjectMeta", False), 2: ("subjects", "Subject", True),
                           3: ("roleRef", "RoleRef", False)},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta", False)},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta", False),
                               2: ("spec", "SelfSubjectRulesReviewSpec", False)},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string", False)},
    "ServiceAccount": {1: ("metadata", "ObjectMeta", False),
                       4: ("automountServiceAccountToken", "bool", False)},
}
_API = {"ConfigMap": "v1", "Secret": "v1", "Namespace": "v1", "Pod": "v1", "Service": "v1",
        "Deployment": "apps/v1", "Job": "batch/v1", "Role": "", "ClusterRole": "",
        "RoleBinding": "", "ClusterRoleBinding": "", "ServiceAccount": "v1",
        "SelfSubjectReview": "", "SelfSubjectRulesReview": ""}


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def message(buf: bytes, schema: str) -> dict[str, Any]:
    import base64

    spec = SCHEMAS[schema]
    out: dict[str, Any] = {}
    for n, v in fields(buf):
        f = spec.get(n)
        if f is None:
            continue  # a field knet does not model: ignored, as the JSON decoder would
        name, typ, repeated = f
        val: Any
        if typ == "string":
            val = _s(v)
            if val == "" and not repeated:
                continue  # gogo-protobuf writes empty non-pointer strings: "unset" in JSON
        elif typ == "int":
            val = _signed(v) if isinstance(v, int) else 0
        elif typ == "bool":
            val = bool(v)
        elif typ in ("map", "mapbytes", "mapquantity"):
            k = x = b""
            for m, y in fields(v):
                if m == 1:
                    k = y
                elif m == 2:
                    x = y
            if typ == "map":
                value: Any = _s(x)
            elif typ == "mapbytes":
                value = base64.b64encode(x).decode()
            else:
                value = next((_s(y) for m, y in fields(x) if m == 1), "")
            out.setdefault(name, {})[_s(k)] = value
            continue
        elif typ == "intorstr":
            kind, iv, sv = 0, 0, ""
            for m, y in fields(v):
                if m == 1:
                    kind = y
                elif m == 2:
                    iv = _signed(y)
                elif m == 3:
                    sv = _s(y)
            val = sv if kind == 1 else iv
        else:
            val = message(v, typ)
        if repeated:
            out.setdefault(name, []).append(val)
        else:
            out[name] = val
    return out


def _object(kind: str) -> Callable[[bytes], dict[str, Any]]:
    return lambda raw: message(raw, kind)


for _k in _API:
    DECODERS[_k] = _object(_k)
