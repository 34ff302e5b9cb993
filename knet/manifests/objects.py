"""Per-kind parsing, validation and defaulting (one object at a time).

Invariants: each ``parse_*`` takes a document cursor and returns a defaulted model object
(or ``None`` when the object is too broken to build); every problem goes to the cursor's
context, worded like the API server (pkg/apis/*/validation, pkg/apis/*/v1/defaults.go).
Checks that need other objects (duplicates, ClusterIP/NodePort allocation, Endpoints
mirroring) live in knet.manifests.crosscheck.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Any
from collections.abc import Callable

from knet.manifests import controllers as _controllers
from knet.manifests import names
from knet.manifests.fields import F, plain, quote
from knet.manifests.pods import (
    PROTOCOLS, _quantities, int_or_name, parse_pod_spec, parse_pod_status,
)
from knet.model.apps import DaemonSet, Deployment, Job, ReplicaSet, StatefulSet
from knet.model.config import ClusterConfig
from knet.model.core import (
    ConfigMap, LoadBalancerIngress, Namespace, Node, NodeAddress, Pod, Protocol, Secret,
    Service, ServicePort, ServiceSpec, ServiceType, Taint,
)
from knet.model.discovery import (
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice, ObjectReference,
)
from knet.model.meta import (
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference, Source,
)
from knet.model.networking import (
    HTTPIngressPath, Ingress, IngressBackend, IngressClass, IngressRule, IngressTLS,
)

# kind → (apiVersion, namespaced, name validator)
KINDS: dict[str, tuple[str, bool, Callable[[str], list[str]]]] = {
    "Namespace": ("v1", False, names.dns1123_label),
    "Node": ("v1", False, names.dns1123_subdomain),
    "Pod": ("v1", True, names.dns1123_subdomain),
    "Service": ("v1", True, names.dns1035_label),
    "Endpoints": ("v1", True, names.dns1123_subdomain),
    "ConfigMap": ("v1", True, names.dns1123_subdomain),
    "Secret": ("v1", True, names.dns1123_subdomain),
    "EndpointSlice": ("discovery.k8s.io/v1", True, names.dns1123_subdomain),
    "Deployment": ("apps/v1", True, names.dns1123_subdomain),
    "ReplicaSet": ("apps/v1", True, names.dns1123_subdomain),
    "StatefulSet": ("apps/v1", True, names.dns1123_subdomain),
    "DaemonSet": ("apps/v1", True, names.dns1123_subdomain),
    "Job": ("batch/v1", True, names.dns1123_subdomain),
    "Ingress": ("networking.k8s.io/v1", True, names.dns1123_subdomain),
    "IngressClass": ("networking.k8s.io/v1", False, names.dns1123_subdomain),
    **{k: (v, ns, getattr(names, check)) for k, (v, ns, check) in _controllers.KINDS.items()},
}
META_FIELDS = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
}
TOTAL_ANNOTATION_SIZE = 256 * 1024
# k8s.io/apimachinery/pkg/util/rand: vowels and confusable digits removed
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SESSION_AFFINITY_MAX = 86400
SESSION_AFFINITY_DEFAULT = 10800


@dataclass(slots=True)
class Scope:
    """What parsing needs from outside one object: the cluster config and the seed."""

    config: ClusterConfig

    def uid(self, kind: str, namespace: str, name: str) -> str:
        h = hashlib.sha256(f"{self.config.seed}/{kind}/{namespace}/{name}".encode()).digest()
        return str(uuid.UUID(bytes=h[:16], version=4))

    def generated_name(self, prefix: str, index: int) -> str:
        h = hashlib.sha256(f"{self.config.seed}/{prefix}/{index}".encode()).digest()
        return prefix + "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in h[:5])


# --- metadata -----------------------------------------------------------------------------

def parse_labels(f: F, key: str) -> dict[str, str]:
    """A labels map: keys are qualified names, values label values (strings!)."""
    sub = f.map(key)
    if sub is None:
        return {}
    out: dict[str, str] = {}
    for k, v in sub.entries():
        s = "" if v.value is None else v.as_str()
        if s is None:
            continue
        for m in names.qualified_name(k):
            v.error(f"Invalid value: {quote(k)}: {m}", at_key=True)
        for m in names.label_value(s):
            v.invalid(m)
        out[k] = s
    return out


def parse_annotations(f: F, key: str) -> dict[str, str]:
    sub = f.map(key)
    if sub is None:
        return {}
    out: dict[str, str] = {}
    total = 0
    for k, v in sub.entries():
        s = "" if v.value is None else v.as_str()
        if s is None:
            continue
        for m in names.qualified_name(k.lower()):
            v.error(f"Invalid value: {quote(k)}: {m}", at_key=True)
        total += len(k) + len(s)
        out[k] = s
    if total > TOTAL_ANNOTATION_SIZE:
        sub.error(f"Too long: must have at most {TOTAL_ANNOTATION_SIZE} bytes")
    return out


def parse_meta(doc: F, kind: str, scope: Scope, index: int, source: Source) -> ObjectMeta:
    _, namespaced, check = KINDS[kind]
    meta = doc.map("metadata")
    if meta is None:
        doc.required("metadata")
        return ObjectMeta(name="", source=source, creation_index=index)
    meta.known(META_FIELDS)
    name = meta.str("name")
    generate = meta.str("generateName")
    namespace = meta.str("namespace")
    if namespaced:
        namespace = namespace or "default"
        for m in names.dns1123_label(namespace):
            meta.child("namespace").invalid(m)  # type: ignore[union-attr]
    elif namespace:
        namespace = ""  # cluster-scoped: the API ignores metadata.namespace
    if not name and generate:
        name = scope.generated_name(generate, index)
    doc.ctx.name = f"{namespace}/{name}" if namespace else name
    if not name:
        if not meta.has("name"):
            meta.sub_error("name", "Required value: name or generateName is required")
    else:
        for m in check(name):
            (meta.child("name") or meta).invalid(m)
    owners = []
    for o in meta.list("ownerReferences"):
        if o.is_mapping():
            owners.append(OwnerReference(
                kind=o.str("kind", required=True), name=o.str("name", required=True),
                uid=o.str("uid"), controller=o.bool("controller"),
                api_version=o.str("apiVersion")))
    grace = meta.opt_int("deletionGracePeriodSeconds")
    return ObjectMeta(
        name=name, namespace=namespace, labels=parse_labels(meta, "labels"),
        annotations=parse_annotations(meta, "annotations"),
        uid=meta.str("uid") or (scope.uid(kind, namespace, name) if name else ""),
        generate_name=generate, creation_timestamp=meta.str("creationTimestamp"),
        creation_index=index, deletion_timestamp=meta.str("deletionTimestamp"),
        deletion_grace_period_seconds=grace, owner_references=tuple(owners),
        resource_version=meta.str("resourceVersion"), source=source)


def parse_selector(f: F | None) -> LabelSelector:
    if f is None or not f.is_mapping():
        return LabelSelector()
    f.known(["matchLabels", "matchExpressions"])
    labels = parse_labels(f, "matchLabels")
    exprs = []
    for r in f.list("matchExpressions"):
        if not r.is_mapping():
            continue
        key = r.str("key", required=True)
        op = r.str("operator", required=True)
        values = r.str_list("values")
        ops = ("DoesNotExist", "Exists", "In", "NotIn")
        if op and op not in ops:
            r.child("operator").unsupported(ops)  # type: ignore[union-attr]
        elif op in ("In", "NotIn") and not values:
            r.sub_error("values", "Required value: must be specified when `operator` is 'In' "
                                  "or 'NotIn'")
        elif op in ("Exists", "DoesNotExist") and values:
            r.child("values").error(  # type: ignore[union-attr]
                "Forbidden: may not be specified when `operator` is 'Exists' or "
                "'DoesNotExist'")
        if key:
            for m in names.qualified_name(key):
                r.child("key").invalid(m)  # type: ignore[union-attr]
        exprs.append(LabelSelectorRequirement(key=key, operator=op, values=values))
    return LabelSelector(match_labels=labels, match_expressions=tuple(exprs))


# --- simple kinds ---------------------------------------------------------------------------

def parse_namespace(doc: F, meta: ObjectMeta, scope: Scope) -> Namespace:
    return Namespace(metadata=meta)


def parse_node(doc: F, meta: ObjectMeta, scope: Scope) -> Node:
    spec = doc.map("spec")
    status = doc.map("status")
    cidrs = []
    unschedulable = False
    taints: list[Taint] = []
    if spec is not None:
        texts = list(spec.str_list("podCIDRs"))
        single = spec.str("podCIDR")
        if single and not texts:
            texts = [single]
        elif single and texts and texts[0] != single:
            spec.child("podCIDRs").invalid("first value must match `podCIDR`")  # type: ignore[union-attr]
        for t in texts:
            try:
                cidrs.append(ip_network(t, strict=False))
            except ValueError:
                spec.child("podCIDRs" if spec.has("podCIDRs") else "podCIDR").invalid(  # type: ignore[union-attr]
                    names.cidr(t)[0])
        unschedulable = spec.bool("unschedulable")
        for tf in spec.list("taints"):
            if not tf.is_mapping():
                continue
            key = tf.str("key", required=True)
            effect = tf.str("effect", required=True)
            if effect and effect not in ("NoExecute", "NoSchedule", "PreferNoSchedule"):
                tf.child("effect").unsupported(["NoExecute", "NoSchedule", "PreferNoSchedule"])  # type: ignore[union-attr]
            for m in names.qualified_name(key) if key else []:
                tf.child("key").invalid(m)  # type: ignore[union-attr]
            value = tf.str("value")
            for m in names.label_value(value):
                tf.child("value").invalid(m)  # type: ignore[union-attr]
            taints.append(Taint(key=key, effect=effect, value=value,
                                time_added=tf.str("timeAdded")))
    addresses = []
    capacity: dict[str, str] = {}
    allocatable: dict[str, str] = {}
    ready = True
    extra: dict[str, Any] = {}
    if status is not None:
        for a in status.list("addresses"):
            if a.is_mapping():
                addresses.append(NodeAddress(type=a.str("type", required=True),
                                             address=a.str("address", required=True)))
        capacity = _quantities(status.child("capacity"))  # a ResourceList: name → quantity
        allocatable = _quantities(status.child("allocatable")) or dict(capacity)
        for c in status.list("conditions"):
            if c.is_mapping() and c.str("type") == "Ready":
                ready = c.str("status") == "True"
        extra = {k: plain(v) for k, v in status.value.items()
                 if k not in ("addresses", "capacity", "allocatable", "conditions")}
    if spec is not None:
        extra_spec = {k: plain(v) for k, v in spec.value.items()
                      if k not in ("podCIDR", "podCIDRs", "unschedulable", "taints")}
        if extra_spec:
            extra = {**extra, "spec": extra_spec}
    return Node(metadata=meta, pod_cidrs=tuple(cidrs), addresses=tuple(addresses),
                taints=tuple(taints), unschedulable=unschedulable, capacity=capacity,
                allocatable=allocatable, ready=ready, extra=extra)


def parse_pod(doc: F, meta: ObjectMeta, scope: Scope) -> Pod:
    spec_f = doc.map("spec")
    if spec_f is None:
        doc.required("spec")
        spec_f = F({}, "spec", doc.loc, doc.ctx)
    spec = parse_pod_spec(spec_f)
    return Pod(metadata=meta, spec=spec, status=parse_pod_status(doc.map("status")))


def _config_data(doc: F, key: str, seen: set[str]) -> dict[str, str]:
    sub = doc.map(key)
    out: dict[str, str] = {}
    if sub is None:
        return out
    for k, v in sub.entries():
        for m in names.config_map_key(k):
            v.error(f"Invalid value: {quote(k)}: {m}", at_key=True)
        if k in seen:
            v.error(f"Invalid value: {quote(k)}: duplicate of key present in data/binaryData",
                    at_key=True)
        seen.add(k)
        s = "" if v.value is None else v.as_str()
        if s is not None:
            out[k] = s
    return out


def _b64(v: F, s: str) -> bytes | None:
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        v.invalid(f"illegal base64 data ({e})")
        return None


def parse_configmap(doc: F, meta: ObjectMeta, scope: Scope) -> ConfigMap:
    seen: set[str] = set()
    data = _config_data(doc, "data", seen)
    binary: dict[str, bytes] = {}
    bf = doc.map("binaryData")
    entries = dict(bf.entries()) if bf is not None else {}
    for k, text in _config_data(doc, "binaryData", seen).items():
        b = _b64(entries[k], text)
        if b is not None:
            binary[k] = b
    return ConfigMap(metadata=meta, data=data, binary_data=binary)


def parse_secret(doc: F, meta: ObjectMeta, scope: Scope) -> Secret:
    data: dict[str, bytes] = {}
    sub = doc.map("data")
    if sub is not None:
        for k, v in sub.entries():
            for m in names.config_map_key(k):
                v.error(f"Invalid value: {quote(k)}: {m}", at_key=True)
            s = "" if v.value is None else v.as_str()
            if s is not None:
                b = _b64(v, s)
                if b is not None:
                    data[k] = b
    sd = doc.map("stringData")
    if sd is not None:  # stringData is merged into data, stringData wins (v1 conversion)
        for k, v in sd.entries():
            for m in names.config_map_key(k):
                v.error(f"Invalid value: {quote(k)}: {m}", at_key=True)
            s = "" if v.value is None else v.as_str()
            if s is not None:
                data[k] = s.encode()
    type_ = doc.str("type", "Opaque") or "Opaque"
    required = {"kubernetes.io/tls": ("tls.crt", "tls.key"),
                "kubernetes.io/basic-auth": (),
                "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
                "kubernetes.io/dockercfg": (".dockercfg",)}.get(type_, ())
    given = set(data) | set(sub.value if sub is not None else ())
    for key in required:
        if key not in given:
            loc = (sub.key_loc or sub.loc) if sub is not None else doc.loc
            doc.ctx.add(f"data[{key}]", loc, "Required value")
    return Secret(metadata=meta, type=type_, data=data)


# --- Service --------------------------------------------------------------------------------

SERVICE_SPEC_FIELDS = {
    "ports", "selector", "clusterIP", "clusterIPs", "type", "externalIPs", "sessionAffinity",
    "loadBalancerIP", "loadBalancerSourceRanges", "externalName", "externalTrafficPolicy",
    "healthCheckNodePort", "publishNotReadyAddresses", "sessionAffinityConfig", "ipFamilies",
    "ipFamilyPolicy", "allocateLoadBalancerNodePorts", "loadBalancerClass",
    "internalTrafficPolicy", "trafficDistribution",
}
SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
FAMILIES = {"IPv4": 4, "IPv6": 6}
FAMILY_NAMES = {4: "IPv4", 6: "IPv6"}
TRAFFIC_DISTRIBUTIONS = ("PreferClose", "PreferSameNode", "PreferSameZone")


def _ip_version(s: str) -> int | None:
    fixed = names.sloppy_ip(s)
    return None if fixed is None else ip_address(fixed).version


def _legacy_ip(f: F | None, path: str, value: str) -> str:
    """A legacy IP field as kube-proxy reads it (``ParseIPSloppy``: leading zeros are
    decimal), with the API server's warning when Go's strict parser would refuse it."""
    fixed = names.sloppy_ip(value)
    if fixed is None or fixed == value:
        return value
    w = names.ip_warning(path, value)
    if w is not None and f is not None:
        f.ctx.warn(f.loc, w)
    return fixed


def parse_service(doc: F, meta: ObjectMeta, scope: Scope) -> Service | None:
    spec = doc.map("spec")
    if spec is None:
        spec = F({}, "spec", doc.loc, doc.ctx)
    spec.known(SERVICE_SPEC_FIELDS)
    type_f = spec.child("type")
    type_s = spec.str("type", "ClusterIP")
    if type_s not in SERVICE_TYPES:
        type_f.unsupported(SERVICE_TYPES)  # type: ignore[union-attr]
        type_s = "ClusterIP"
    stype = ServiceType(type_s)
    external = stype is ServiceType.EXTERNAL_NAME

    # ports
    ports: list[ServicePort] = []
    port_fs = [p for p in spec.list("ports") if p.is_mapping()]
    seen_names: set[str] = set()
    seen_ports: set[tuple[str, int]] = set()
    seen_node_ports: set[tuple[str, int]] = set()
    for pf in port_fs:
        pf.known(["name", "protocol", "appProtocol", "port", "targetPort", "nodePort"])
        name = pf.str("name")
        if len(port_fs) > 1 and not name:
            pf.required("name")
        elif name:
            for m in names.dns1123_label(name):
                pf.child("name").invalid(m)  # type: ignore[union-attr]
            if name in seen_names:
                pf.child("name").error(f"Duplicate value: {quote(name)}")  # type: ignore[union-attr]
            seen_names.add(name)
        port = pf.port("port", required=True) or 0
        proto = pf.str("protocol", "TCP")
        if proto not in PROTOCOLS:
            pf.child("protocol").unsupported(PROTOCOLS)  # type: ignore[union-attr]
            proto = "TCP"
        target: int | str = port
        tf = pf.child("targetPort")
        if tf is not None:
            t = int_or_name(tf)
            if t is not None and t != 0 and t != "":
                target = t
        app = pf.str("appProtocol")
        if app:
            for m in names.qualified_name(app):
                pf.child("appProtocol").invalid(m)  # type: ignore[union-attr]
        node_port = pf.int("nodePort", 0)
        if (proto, port) in seen_ports:
            pf.error(f"Duplicate value: {{\"port\": {port}, \"protocol\": \"{proto}\"}}")
        seen_ports.add((proto, port))
        if node_port:
            if stype not in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER):
                pf.child("nodePort").error(  # type: ignore[union-attr]
                    f"Forbidden: may not be used when `type` is '{stype}'")
            elif (proto, node_port) in seen_node_ports:
                pf.child("nodePort").error(f"Duplicate value: {node_port}")  # type: ignore[union-attr]
            seen_node_ports.add((proto, node_port))
        ports.append(ServicePort(port=port, protocol=Protocol(proto), name=name,
                                 target_port=target, node_port=node_port, app_protocol=app))

    selector = spec.str_map("selector") if spec.has("selector") else None
    if selector is not None:
        for k, v in selector.items():
            for m in names.qualified_name(k):
                spec.child("selector").invalid(m)  # type: ignore[union-attr]
            for m in names.label_value(v):
                spec.child("selector").invalid(m)  # type: ignore[union-attr]

    # clusterIP / clusterIPs (strategy PrepareForCreate syncs the two, then validation)
    cip = spec.str("clusterIP")
    cips = list(spec.str_list("clusterIPs"))
    cips_f = spec.child("clusterIPs")
    if cip and not cips:
        cips = [cip]
    elif cips and not cip:
        cip = cips[0]
    elif cip and cips and cips[0] != cip:
        cips_f.invalid("first value must match `clusterIP`")  # type: ignore[union-attr]
    fams_f = spec.child("ipFamilies")
    families: list[int] = []
    for ff in spec.list("ipFamilies"):
        s = ff.as_str()
        if s is None:
            continue
        if s not in FAMILIES:
            ff.unsupported(["IPv4", "IPv6"])
            continue
        if FAMILIES[s] in families:
            ff.error(f"Duplicate value: {quote(s)}")
            continue
        families.append(FAMILIES[s])
    policy_f = spec.child("ipFamilyPolicy")
    policy = spec.str("ipFamilyPolicy") or None
    if policy is not None and policy not in FAMILY_POLICIES:
        policy_f.unsupported(FAMILY_POLICIES)  # type: ignore[union-attr]
        policy = None
    headless = cip == "None"

    if external:
        en = spec.str("externalName").removesuffix(".")
        if not en:
            spec.required("externalName")
        else:
            for m in names.dns1123_subdomain(en):
                spec.child("externalName").invalid(m)  # type: ignore[union-attr]
        for key, present in (("clusterIPs", bool(cip)), ("ipFamilies", bool(families)),
                             ("ipFamilyPolicy", policy is not None)):
            if present:
                spec.sub_error(key, "Forbidden: may not be set for ExternalName services")
        cips, cip, families, policy = [], "", [], None
    else:
        if not port_fs and not headless:
            spec.required("ports")
        bad_ip = False
        for i, ip in enumerate(cips):
            if i == 0 and ip == "None":
                if len(cips) > 1:
                    cips_f.invalid("'None' must be the first and only value")  # type: ignore[union-attr]
                    bad_ip = True
                continue
            if _ip_version(ip) is None:
                where = (cips_f.items_of_list()[i] if cips_f is not None and spec.has("clusterIPs")
                         else spec.child("clusterIP"))
                where.error(f"Invalid value: {quote(ip)}: must be a valid IP address, (e.g. "  # type: ignore[union-attr]
                            "10.9.8.7 or 2001:db8::ffff)")
                bad_ip = True
        if len(cips) > 2:
            cips_f.invalid("may only hold up to 2 values")  # type: ignore[union-attr]
            bad_ip = True
        if not bad_ip:
            for i, ip in enumerate(cips):
                if ip != "None":
                    where = (cips_f.items_of_list()[i] if cips_f is not None and spec.has("clusterIPs")
                             else spec.child("clusterIP"))
                    cips[i] = _legacy_ip(where, f"spec.clusterIPs[{i}]", ip)
            cip = cips[0] if cips else cip
        if not bad_ip and len(cips) == 2 and _ip_version(cips[0]) == _ip_version(cips[1]):
            cips_f.invalid("may specify no more than one IP for each IP family")  # type: ignore[union-attr]
            bad_ip = True
        if policy == "SingleStack":
            if len(cips) == 2:
                policy_f.invalid("must be RequireDualStack or PreferDualStack when multiple "  # type: ignore[union-attr]
                                 "'clusterIPs' are specified")
            if len(families) == 2:
                policy_f.invalid("must be RequireDualStack or PreferDualStack when multiple "  # type: ignore[union-attr]
                                 "'ipFamilies' are specified")
        if not headless and not bad_ip:
            for i, ip in enumerate(cips[:len(families)]):
                if _ip_version(ip) != families[i]:
                    (cips_f or spec.child("clusterIP")).error(  # type: ignore[union-attr]
                        f"Invalid value: {quote(ip)}: expected an {FAMILY_NAMES[families[i]]} "
                        f"value as indicated by `ipFamilies[{i}]`")
        if headless and stype in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER):
            spec.sub_error("clusterIPs[0]", f"Invalid value: \"None\": may not be set to "
                                            f"'None' for {stype} services")
        if not bad_ip:
            families, policy = _default_families(spec, cips, families, policy, selector,
                                                 headless, scope.config, fams_f, policy_f)

    # session affinity
    affinity = spec.str("sessionAffinity", "None")
    timeout = 0
    sac = spec.map("sessionAffinityConfig")
    if affinity == "None":
        if sac is not None:
            spec.sub_error("sessionAffinityConfig", "Forbidden: must not be set when session "
                                                    "affinity is None")
    elif affinity == "ClientIP":
        timeout = SESSION_AFFINITY_DEFAULT
        cip_cfg = sac.map("clientIP") if sac is not None else None
        if cip_cfg is not None and cip_cfg.has("timeoutSeconds"):
            timeout = cip_cfg.int("timeoutSeconds", SESSION_AFFINITY_DEFAULT)
            if not 0 < timeout <= SESSION_AFFINITY_MAX:
                cip_cfg.child("timeoutSeconds").invalid(  # type: ignore[union-attr]
                    f"must be greater than 0 and less than {SESSION_AFFINITY_MAX}")
    else:
        spec.child("sessionAffinity").unsupported(["ClientIP", "None"])  # type: ignore[union-attr]
        affinity = "None"

    # traffic policies (validateServiceExternalTrafficPolicy)
    external_ips = spec.str_list("externalIPs")
    fixed_ips = []
    for i, (ipf, ip) in enumerate(zip(spec.list("externalIPs"), external_ips)):
        if _ip_version(ip) is None:
            ipf.invalid("must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
            fixed_ips.append(ip)
            continue
        ip = _legacy_ip(ipf, f"spec.externalIPs[{i}]", ip)
        fixed_ips.append(ip)
        if ip_address(ip).is_unspecified or ip_address(ip).is_loopback:
            ipf.invalid("may not be unspecified (0.0.0.0, ::)" if ip_address(ip).is_unspecified
                        else "may not be in the loopback range (127.0.0.0/8, ::1/128)")
    external_ips = tuple(fixed_ips)
    externally = (stype in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER)
                  or (stype is ServiceType.CLUSTER_IP and bool(external_ips)))
    etp = spec.str("externalTrafficPolicy")
    if not externally:
        if etp:
            spec.child("externalTrafficPolicy").invalid(  # type: ignore[union-attr]
                "may only be set for externally-accessible services")
        etp = ""
    else:
        if not etp:
            etp = "Cluster"
        elif etp not in ("Cluster", "Local"):
            spec.child("externalTrafficPolicy").unsupported(["Cluster", "Local"])  # type: ignore[union-attr]
            etp = "Cluster"
    itp = spec.str("internalTrafficPolicy")
    if itp and itp not in ("Cluster", "Local"):
        spec.child("internalTrafficPolicy").unsupported(["Cluster", "Local"])  # type: ignore[union-attr]
    if not itp or itp not in ("Cluster", "Local"):
        itp = "" if external else "Cluster"
    hc = spec.int("healthCheckNodePort", 0)
    if hc and not (stype is ServiceType.LOAD_BALANCER and etp == "Local"):
        spec.child("healthCheckNodePort").invalid(  # type: ignore[union-attr]
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is "
            "'Local'")

    # load balancer fields
    ranges = spec.str_list("loadBalancerSourceRanges")
    if ranges and stype is not ServiceType.LOAD_BALANCER:
        spec.sub_error("loadBalancerSourceRanges",
                       "Forbidden: may only be used when `type` is 'LoadBalancer'")
    fixed_ranges = []
    for i, (rf, r) in enumerate(zip(spec.list("loadBalancerSourceRanges"), ranges)):
        errs = names.cidr(r.strip())
        for m in errs:
            rf.invalid(m)
        fixed = names.sloppy_cidr(r.strip()) if not errs else None
        if fixed is not None and names.cidr_warning("", r.strip()) is not None:
            rf.ctx.warn(rf.loc, names.cidr_warning(  # type: ignore[arg-type]
                f"spec.loadBalancerSourceRanges[{i}]", r))
            r = fixed
        fixed_ranges.append(r)
    ranges = tuple(fixed_ranges)
    lb_ip = spec.str("loadBalancerIP")
    if lb_ip and _ip_version(lb_ip) is None:
        spec.child("loadBalancerIP").invalid(  # type: ignore[union-attr]
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
    elif lb_ip:
        lb_ip = _legacy_ip(spec.child("loadBalancerIP"), "spec.loadBalancerIP", lb_ip)
    lb_class = spec.str("loadBalancerClass")
    if lb_class:
        if stype is not ServiceType.LOAD_BALANCER:
            spec.sub_error("loadBalancerClass",
                           "Forbidden: may only be used when service type is 'LoadBalancer'")
        for m in names.qualified_name(lb_class):
            spec.child("loadBalancerClass").invalid(m)  # type: ignore[union-attr]
    alloc_np = spec.bool("allocateLoadBalancerNodePorts", True)
    if spec.has("allocateLoadBalancerNodePorts") and stype is not ServiceType.LOAD_BALANCER:
        spec.sub_error("allocateLoadBalancerNodePorts",
                       "Forbidden: may only be used when `type` is 'LoadBalancer'")
    td = spec.str("trafficDistribution")
    if td and td not in TRAFFIC_DISTRIBUTIONS:
        spec.child("trafficDistribution").unsupported(TRAFFIC_DISTRIBUTIONS)  # type: ignore[union-attr]

    lb_ingress = _lb_ingress(doc.map("status"))
    return Service(metadata=meta, spec=ServiceSpec(
        type=stype, ports=tuple(ports), selector=selector,
        cluster_ip=cip, cluster_ips=tuple(cips), ip_families=tuple(families),
        ip_family_policy=policy or "", session_affinity=affinity,
        session_affinity_timeout=timeout, external_ips=external_ips, load_balancer_ip=lb_ip,
        load_balancer_source_ranges=ranges, load_balancer_class=lb_class,
        allocate_load_balancer_node_ports=alloc_np, external_traffic_policy=etp,
        internal_traffic_policy=itp, health_check_node_port=hc,
        external_name=spec.str("externalName") if external else "",
        publish_not_ready_addresses=spec.bool("publishNotReadyAddresses"),
        traffic_distribution=td), load_balancer_ingress=lb_ingress)


def _default_families(spec: F, cips: list[str], families: list[int], policy: str | None,
                      selector: dict[str, str] | None, headless: bool,
                      config: ClusterConfig, fams_f: F | None, policy_f: F | None,
                      ) -> tuple[list[int], str]:
    """registry/core/service/ipallocator initIPFamilyFields (v1.32)."""
    cluster = list(config.families)
    families = list(families)
    for i, ip in enumerate(cips):
        if ip == "None":
            break
        v = _ip_version(ip)
        if i >= len(families):
            families.append(v)  # type: ignore[arg-type]
    if policy is None:
        policy = "RequireDualStack" if len(families) == 2 else "SingleStack"
    if headless and not selector:
        # headless without selector: families follow the policy, no allocation
        if policy == "SingleStack":
            if not families:
                families = [cluster[0]]
        else:
            if not families:
                families = [cluster[0]]
            if len(families) < 2 and len(cluster) == 2:
                families.append(next(f for f in cluster if f not in families))
        return families[:2], policy
    ok = True
    if policy == "RequireDualStack" and len(cluster) < 2:
        (policy_f or spec).error(f"Invalid value: {quote(policy)}: this cluster is not "
                                 "configured for dual-stack services") if policy_f else \
            spec.sub_error("ipFamilyPolicy", "Invalid value: \"RequireDualStack\": this cluster "
                                             "is not configured for dual-stack services")
        ok = False
    for i, fam in enumerate(families):
        if fam not in cluster:
            spec.sub_error(f"ipFamilies[{i}]", f"Invalid value: {quote(FAMILY_NAMES[fam])}: "
                                               f"{FAMILY_NAMES[fam]} is not configured on this "
                                               "cluster")
            ok = False
    if not ok:
        return families, policy
    if len(families) < 2 and policy != "SingleStack" and len(cluster) == 2:
        if not families:
            families.append(cluster[0])
        families.append(next(f for f in cluster if f not in families))
    if not families:
        families = [cluster[0]]
    return families, policy


def _lb_ingress(status: F | None) -> tuple[LoadBalancerIngress, ...]:
    if status is None:
        return ()
    lb = status.map("loadBalancer")
    if lb is None:
        return ()
    out = []
    for i in lb.list("ingress"):
        if not i.is_mapping():
            continue
        ip = i.str("ip")
        if ip and _ip_version(ip) is None:
            i.child("ip").invalid("must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")  # type: ignore[union-attr]
        mode = i.str("ipMode") or ("VIP" if ip else "")
        if mode and mode not in ("VIP", "Proxy"):
            i.child("ipMode").unsupported(["Proxy", "VIP"])  # type: ignore[union-attr]
        out.append(LoadBalancerIngress(ip=ip, hostname=i.str("hostname"), ip_mode=mode))
    return tuple(out)


# --- EndpointSlice ----------------------------------------------------------------------------

def _endpoint_conditions(f: F | None) -> EndpointConditions:
    if f is None or not f.is_mapping():
        return EndpointConditions()
    return EndpointConditions(ready=f.opt_bool("ready"), serving=f.opt_bool("serving"),
                              terminating=f.opt_bool("terminating"))


def parse_endpointslice(doc: F, meta: ObjectMeta, scope: Scope) -> EndpointSlice:
    address_type = doc.str("addressType", required=True)
    types = ("FQDN", "IPv4", "IPv6")
    if address_type and address_type not in types:
        doc.child("addressType").unsupported(types)  # type: ignore[union-attr]
    eps = []
    ep_fs = doc.list("endpoints")
    if len(ep_fs) > 1000:
        doc.child("endpoints").error("Too many: must have at most 1000 items")  # type: ignore[union-attr]
    for ef in ep_fs:
        if not ef.is_mapping():
            continue
        addrs = ef.str_list("addresses")
        if not addrs:
            ef.required("addresses")
        if len(addrs) > 100:
            ef.child("addresses").error("Too many: must have at most 100 items")  # type: ignore[union-attr]
        for af, a in zip(ef.list("addresses"), addrs):
            if address_type in ("IPv4", "IPv6"):
                v = _ip_version(a)
                if v != FAMILIES[address_type]:
                    af.invalid(f"must be an {address_type} address")
            elif address_type == "FQDN":
                for m in names.dns1123_subdomain(a):
                    af.invalid(m)
        hostname = ef.str("hostname")
        if hostname:
            for m in names.dns1123_label(hostname):
                ef.child("hostname").invalid(m)  # type: ignore[union-attr]
        ref = ef.map("targetRef")
        target = None
        if ref is not None:
            target = ObjectReference(kind=ref.str("kind"), name=ref.str("name"),
                                     namespace=ref.str("namespace"), uid=ref.str("uid"))
        hints = ef.map("hints")
        zones: tuple[str, ...] = ()
        nodes: tuple[str, ...] = ()
        if hints is not None:
            zones = tuple(z.str("name") for z in hints.list("forZones") if z.is_mapping())
            nodes = tuple(n.str("name") for n in hints.list("forNodes") if n.is_mapping())
        eps.append(Endpoint(addresses=addrs, conditions=_endpoint_conditions(
            ef.child("conditions")), hostname=hostname, node_name=ef.str("nodeName"),
            zone=ef.str("zone"), target_ref=target, hints_zones=zones, hints_nodes=nodes))
    ports = []
    seen: set[str] = set()
    port_fs = doc.list("ports")
    if len(port_fs) > 100:
        doc.child("ports").error("Too many: must have at most 100 items")  # type: ignore[union-attr]
    for pf in port_fs:
        if not pf.is_mapping():
            continue
        name = pf.str("name") if pf.has("name") else None
        if name:
            for m in names.dns1123_label(name):
                pf.child("name").invalid(m)  # type: ignore[union-attr]
        key = name or ""
        if key in seen:
            (pf.child("name") or pf).error(f"Duplicate value: {quote(key)}")
        seen.add(key)
        port = pf.port("port")
        proto = pf.str("protocol", "TCP")
        if proto not in PROTOCOLS:
            pf.child("protocol").unsupported(PROTOCOLS)  # type: ignore[union-attr]
            proto = "TCP"
        ports.append(EndpointPort(port=port, name=name, protocol=Protocol(proto),
                                  app_protocol=pf.str("appProtocol")))
    return EndpointSlice(metadata=meta, address_type=address_type or "IPv4",
                         endpoints=tuple(eps), ports=tuple(ports))


# --- Ingress ------------------------------------------------------------------------------------

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
_INVALID_PATH_SEQ = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIX = ("/..", "/.")


def _backend(f: F) -> IngressBackend:
    f.known(["service", "resource"])
    svc = f.map("service")
    res = f.map("resource")
    if svc is not None and res is not None:
        f.error("Invalid value: \"\": cannot set both resource and service backends")
        return IngressBackend()
    if res is not None:
        kind = res.str("kind", required=True)
        name = res.str("name", required=True)
        group = res.str("apiGroup")
        if not group:
            res.sub_error("apiGroup", "Required value: apiGroup is required")
        return IngressBackend(resource_api_group=group, resource_kind=kind, resource_name=name)
    if svc is None:
        f.error("Invalid value: \"\": resource or service backend is required")
        return IngressBackend()
    svc.known(["name", "port"])
    name = svc.str("name", required=True)
    if name:
        for m in names.dns1035_label(name):
            svc.child("name").invalid(m)  # type: ignore[union-attr]
    port = svc.map("port")
    pname, pnum = "", 0
    if port is not None:
        port.known(["name", "number"])
        pname = port.str("name")
        pnum = port.int("number", 0)
    if pname and pnum:
        f.error("Invalid value: \"\": cannot set both port name & port number")
    elif pname:
        for m in names.iana_svc_name(pname):
            port.child("name").invalid(m)  # type: ignore[union-attr]
    elif pnum:
        for m in names.port_number(pnum):
            port.child("number").invalid(m)  # type: ignore[union-attr]
    else:
        f.error("Required value: port name or number is required")
    return IngressBackend(service_name=name, service_port_name=pname, service_port_number=pnum)


def _validate_host(f: F, host: str) -> None:
    if _ip_version(host) is not None:
        f.invalid("must be a DNS name, not an IP address")
    elif host.startswith("*"):
        for m in names.wildcard_dns1123_subdomain(host):
            f.invalid(m)
    else:
        for m in names.dns1123_subdomain(host):
            f.invalid(m)


def parse_ingress(doc: F, meta: ObjectMeta, scope: Scope) -> Ingress:
    spec = doc.map("spec")
    if spec is None:
        spec = F({}, "spec", doc.loc, doc.ctx)
    spec.known(["ingressClassName", "defaultBackend", "rules", "tls"])
    cls = spec.str("ingressClassName")
    if cls:
        for m in names.dns1123_subdomain(cls):
            spec.child("ingressClassName").invalid(m)  # type: ignore[union-attr]
    backend_f = spec.map("defaultBackend")
    default = _backend(backend_f) if spec.has("defaultBackend") and backend_f is not None else None
    rules = []
    rule_fs = [r for r in spec.list("rules") if r.is_mapping()]
    if default is None and not rule_fs:
        spec.error("Invalid value: \"\": either `defaultBackend` or `rules` must be specified")
    for rf in rule_fs:
        rf.known(["host", "http"])
        host = rf.str("host")
        if host:
            _validate_host(rf.child("host"), host)  # type: ignore[arg-type]
        paths = []
        http = rf.map("http")
        if http is not None:
            pfs = [p for p in http.list("paths") if p.is_mapping()]
            if not pfs:
                http.required("paths")
            for pf in pfs:
                pf.known(["path", "pathType", "backend"])
                path = pf.str("path")
                ptype = pf.str("pathType")
                if not pf.has("pathType"):
                    pf.sub_error("pathType", "Required value: pathType must be specified")
                elif ptype not in PATH_TYPES:
                    pf.child("pathType").unsupported(PATH_TYPES)  # type: ignore[union-attr]
                elif ptype in ("Exact", "Prefix"):
                    where = pf.child("path")
                    if not path.startswith("/"):
                        (where.invalid("must be an absolute path") if where is not None else
                         pf.sub_error("path", f"Invalid value: {quote(path)}: must be an "
                                              "absolute path"))
                    for seq in _INVALID_PATH_SEQ:
                        if seq in path:
                            where.invalid(f"must not contain '{seq}'")  # type: ignore[union-attr]
                    for suf in _INVALID_PATH_SUFFIX:
                        if path.endswith(suf):
                            where.invalid(f"cannot end with '{suf}'")  # type: ignore[union-attr]
                elif path and not path.startswith("/"):
                    pf.child("path").invalid("must be an absolute path")  # type: ignore[union-attr]
                b = pf.map("backend")
                if b is None:
                    pf.required("backend")
                    backend = IngressBackend()
                else:
                    backend = _backend(b)
                paths.append(HTTPIngressPath(path=path, path_type=ptype, backend=backend))
        rules.append(IngressRule(host=host, paths=tuple(paths)))
    tls = []
    for tf in spec.list("tls"):
        if not tf.is_mapping():
            continue
        hosts = tf.str_list("hosts")
        for hf, h in zip(tf.list("hosts"), hosts):
            _validate_host(hf, h)
        secret = tf.str("secretName")
        if secret:
            for m in names.dns1123_subdomain(secret):
                tf.child("secretName").invalid(m)  # type: ignore[union-attr]
        tls.append(IngressTLS(hosts=hosts, secret_name=secret))
    return Ingress(metadata=meta, ingress_class_name=cls, default_backend=default,
                   rules=tuple(rules), tls=tuple(tls),
                   load_balancer_ingress=_lb_ingress(doc.map("status")))


def parse_ingressclass(doc: F, meta: ObjectMeta, scope: Scope) -> IngressClass:
    spec = doc.map("spec")
    controller = ""
    params: list[tuple[str, str]] = []
    if spec is None:
        doc.sub_error("spec.controller", "Required value")
    else:
        controller = spec.str("controller", required=True)
        if controller:
            # validateIngressClassController: a domain-prefixed path, at most 250 chars
            prefix, _, path = controller.partition("/")
            if not path or names.dns1123_subdomain(prefix):
                spec.child("controller").invalid(  # type: ignore[union-attr]
                    "must be a domain-prefixed path (such as \"acme.io/foo\")")
            if len(controller) > 250:
                spec.child("controller").error("Too long: must have at most 250 bytes")  # type: ignore[union-attr]
        p = spec.map("parameters")
        if p is not None:
            for key in ("apiGroup", "kind", "name", "namespace", "scope"):
                if p.has(key):
                    params.append((key, p.str(key)))
            if not p.has("kind"):
                p.required("kind")
            if not p.has("name"):
                p.required("name")
    return IngressClass(metadata=meta, controller=controller, parameters=tuple(params))


# --- workloads --------------------------------------------------------------------------------

def _template(spec: F, kind: str, selector: LabelSelector | None,
              restart_policies: tuple[str, ...]) -> dict[str, Any]:
    tf = spec.map("template")
    if tf is None:
        spec.required("template")
        return {}
    tf.known(["metadata", "spec"])
    tmeta = tf.map("metadata")
    labels = parse_labels(tmeta, "labels") if tmeta is not None else {}
    if tmeta is not None:
        parse_annotations(tmeta, "annotations")
    if selector is not None and not selector.empty and not selector.matches(labels):
        where = tmeta.child("labels") if tmeta is not None and tmeta.has("labels") else None
        if where is not None:
            where.error(f"Invalid value: {quote(labels)}: `selector` does not match template "
                        "`labels`")
        else:
            tf.sub_error("metadata.labels", "Invalid value: {}: `selector` does not match "
                                            "template `labels`")
    pspec_f = tf.map("spec")
    if pspec_f is None:
        tf.required("spec")
        return plain(tf.value)
    pspec = parse_pod_spec(pspec_f)
    if pspec.restart_policy not in restart_policies:
        if kind == "Job" and not pspec_f.has("restartPolicy"):
            pspec_f.sub_error("restartPolicy", "Required value: valid values: \"OnFailure\", "
                                               "\"Never\"")
        else:
            (pspec_f.child("restartPolicy") or pspec_f).unsupported(restart_policies)
    return plain(tf.value)


def _workload_selector(spec: F, kind: str) -> tuple[LabelSelector, bool]:
    """The selector, and whether it is valid (only a valid one is matched to the template)."""
    sf = spec.child("selector")
    if sf is None:
        spec.required("selector")
        return LabelSelector(), False
    before = len(spec.ctx.problems)
    sel = parse_selector(sf)
    if len(spec.ctx.problems) > before:
        return LabelSelector(), False
    if sel.empty:
        sf.error(f"Invalid value: {{}}: empty selector is invalid for {kind.lower()}")
        return sel, False
    return sel, True


def _replicas(spec: F) -> int:
    n = spec.int("replicas", 1)
    if n < 0:
        spec.child("replicas").invalid("must be greater than or equal to 0")  # type: ignore[union-attr]
    return n


def _spec(doc: F) -> F:
    spec = doc.map("spec")
    if spec is None:
        doc.required("spec")
        return F({}, "spec", doc.loc, doc.ctx)
    return spec


def _int_or_percent(f: F | None, default: int | str) -> int | str:
    if f is None:
        return default
    v = f.as_int_or_str()
    if v is None:
        return default
    if isinstance(v, str):
        if not v.endswith("%") or not v[:-1].isdigit():
            f.invalid("a valid percent string must be a numeric string followed by an ending "
                      "'%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")
            return default
    elif v < 0:
        f.invalid("must be greater than or equal to 0")
    return v


def parse_deployment(doc: F, meta: ObjectMeta, scope: Scope) -> Deployment:
    spec = _spec(doc)
    sel, ok = _workload_selector(spec, "Deployment")
    template = _template(spec, "Deployment", sel if ok else None, ("Always",))
    strategy = spec.map("strategy")
    stype, surge, unavail = "RollingUpdate", "25%", "25%"
    if strategy is not None:
        stype = strategy.str("type", "RollingUpdate")
        if stype not in ("Recreate", "RollingUpdate"):
            strategy.child("type").unsupported(["Recreate", "RollingUpdate"])  # type: ignore[union-attr]
        ru = strategy.map("rollingUpdate")
        if stype == "Recreate" and ru is not None:
            ru.error("Forbidden: may not be specified when strategy `type` is 'Recreate'")
        if ru is not None:
            surge = _int_or_percent(ru.child("maxSurge"), "25%")  # type: ignore[assignment]
            unavail = _int_or_percent(ru.child("maxUnavailable"), "25%")  # type: ignore[assignment]
            if surge in (0, "0%") and unavail in (0, "0%"):
                (ru.child("maxUnavailable") or ru).invalid(
                    "may not be 0 when `maxSurge` is 0")
    return Deployment(metadata=meta, selector=sel, template=template, replicas=_replicas(spec),
                      strategy_type=stype, max_surge=surge, max_unavailable=unavail,
                      min_ready_seconds=spec.int("minReadySeconds", 0),
                      revision_history_limit=spec.int("revisionHistoryLimit", 10),
                      paused=spec.bool("paused"))


def parse_replicaset(doc: F, meta: ObjectMeta, scope: Scope) -> ReplicaSet:
    spec = _spec(doc)
    sel, ok = _workload_selector(spec, "ReplicaSet")
    return ReplicaSet(metadata=meta, selector=sel,
                      template=_template(spec, "ReplicaSet", sel if ok else None, ("Always",)),
                      replicas=_replicas(spec))


def parse_statefulset(doc: F, meta: ObjectMeta, scope: Scope) -> StatefulSet:
    spec = _spec(doc)
    sel, ok = _workload_selector(spec, "StatefulSet")
    template = _template(spec, "StatefulSet", sel if ok else None, ("Always",))
    pmp = spec.str("podManagementPolicy", "OrderedReady")
    if pmp not in ("OrderedReady", "Parallel"):
        spec.child("podManagementPolicy").unsupported(["OrderedReady", "Parallel"])  # type: ignore[union-attr]
    svc = spec.str("serviceName")
    if svc:
        for m in names.dns1123_label(svc):
            spec.child("serviceName").invalid(m)  # type: ignore[union-attr]
    ordinals = spec.map("ordinals")
    start = ordinals.int("start", 0) if ordinals is not None else 0
    if start < 0:
        ordinals.child("start").invalid("must be greater than or equal to 0")  # type: ignore[union-attr]
    us = spec.map("updateStrategy")
    ustype = us.str("type", "RollingUpdate") if us is not None else "RollingUpdate"
    if ustype not in ("OnDelete", "RollingUpdate"):
        us.child("type").unsupported(["OnDelete", "RollingUpdate"])  # type: ignore[union-attr]
    vcts = tuple(plain(t.value) for t in spec.list("volumeClaimTemplates"))
    return StatefulSet(metadata=meta, selector=sel, template=template, service_name=svc,
                       replicas=_replicas(spec), pod_management_policy=pmp,
                       ordinals_start=start, update_strategy_type=ustype,
                       volume_claim_templates=vcts)


def parse_daemonset(doc: F, meta: ObjectMeta, scope: Scope) -> DaemonSet:
    spec = _spec(doc)
    sel, ok = _workload_selector(spec, "DaemonSet")
    return DaemonSet(metadata=meta, selector=sel,
                     template=_template(spec, "DaemonSet", sel if ok else None, ("Always",)))


JOB_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def parse_job(doc: F, meta: ObjectMeta, scope: Scope) -> Job:
    spec = _spec(doc)
    manual = spec.bool("manualSelector")
    sel: LabelSelector | None = None
    if manual:
        sel, _ = _workload_selector(spec, "Job")
    elif spec.has("selector"):
        given = parse_selector(spec.child("selector"))
        if given.match_labels.get(JOB_UID_LABELS[0]) not in (None, meta.uid):
            spec.child("selector").invalid(  # type: ignore[union-attr]
                "`selector` not auto-generated")
        sel = given
    template = _template(spec, "Job", sel, ("Never", "OnFailure"))
    if not manual and template:
        # Job strategy PrepareForCreate: generate the selector from the Job's uid
        tmeta = dict(template.get("metadata") or {})
        labels = dict(tmeta.get("labels") or {})
        labels.setdefault(JOB_UID_LABELS[0], meta.uid)
        labels.setdefault(JOB_NAME_LABELS[0], meta.name)
        labels.setdefault(JOB_UID_LABELS[1], meta.uid)
        labels.setdefault(JOB_NAME_LABELS[1], meta.name)
        tmeta["labels"] = labels
        template = {**template, "metadata": tmeta}
        sel = LabelSelector(match_labels={JOB_UID_LABELS[0]: meta.uid})
    completions = spec.opt_int("completions")
    parallelism = spec.int("parallelism", 1)
    if not spec.has("completions") and not spec.has("parallelism"):
        completions = 1
    elif not spec.has("completions") and spec.has("parallelism"):
        completions = None  # work-queue job
    for key, v in (("completions", completions), ("parallelism", parallelism)):
        if v is not None and v < 0:
            spec.child(key).invalid("must be greater than or equal to 0")  # type: ignore[union-attr]
    return Job(metadata=meta, template=template, selector=sel, completions=completions,
               parallelism=parallelism, backoff_limit=spec.int("backoffLimit", 6))


PARSERS: dict[str, Callable[[F, ObjectMeta, Scope], Any]] = {
    "Namespace": parse_namespace, "Node": parse_node, "Pod": parse_pod,
    "Service": parse_service, "EndpointSlice": parse_endpointslice,
    "ConfigMap": parse_configmap, "Secret": parse_secret, "Ingress": parse_ingress,
    "IngressClass": parse_ingressclass,
    "Deployment": lambda doc, meta, scope: _controllers.deployment_fields(
        doc, parse_deployment(doc, meta, scope)),
    "ReplicaSet": parse_replicaset,
    "StatefulSet": lambda doc, meta, scope: _controllers.statefulset_fields(
        doc, parse_statefulset(doc, meta, scope)),
    "DaemonSet": lambda doc, meta, scope: _controllers.daemonset_fields(
        doc, parse_daemonset(doc, meta, scope)),
    "Job": lambda doc, meta, scope: _controllers.job_fields(doc, parse_job(doc, meta, scope)),
    **_controllers.PARSERS,
}

# Gateway API kinds: validation and defaulting live in knet.gateway.objects
from knet.gateway.model import KINDS as _GATEWAY_KINDS  # noqa: E402


def _gateway_parser(kind: str) -> Callable[[F, ObjectMeta, Scope], Any]:
    def parse_kind(doc: F, meta: ObjectMeta, scope: Scope) -> Any:
        from knet.gateway.objects import parser

        return parser(kind)(doc, meta, scope)
    return parse_kind


for _kind, (_version, _namespaced) in _GATEWAY_KINDS.items():
    KINDS[_kind] = (_version, _namespaced, names.dns1123_subdomain)
    PARSERS[_kind] = _gateway_parser(_kind)


def _register_policy_kinds() -> None:
    from knet.manifests import policy

    KINDS.update(policy.KINDS)
    PARSERS.update(policy.PARSERS)


_register_policy_kinds()


def _register_storage_kinds() -> None:
    from knet.manifests import storage

    KINDS.update(storage.KINDS)
    PARSERS.update(storage.PARSERS)


_register_storage_kinds()
