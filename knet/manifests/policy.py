"""Parsing, defaulting and validation of the network policy kinds.

- ``networking.k8s.io/v1`` NetworkPolicy: defaulting as pkg/apis/networking/v1/defaults.go
  (``policyTypes`` = [Ingress] plus Egress iff ``spec.egress`` has a rule; every port's
  ``protocol`` = TCP), validation with pkg/apis/networking/validation's paths and messages.
- ``policy.networking.k8s.io/v1alpha2`` ClusterNetworkPolicy and the ``v1alpha1``
  AdminNetworkPolicy / BaselineAdminNetworkPolicy (the CRDs' OpenAPI rules), mapped onto one
  model (knet.model.policy). Problems go to the cursor's context; nothing is applied on error.
"""

from __future__ import annotations

from ipaddress import ip_network
from typing import TYPE_CHECKING, Any

from knet.manifests import names
from knet.manifests.fields import F, plain, quote
from knet.model.meta import LabelSelector, ObjectMeta
from knet.model.policy import (
    ACCEPT,
    ADMIN,
    BASELINE,
    DENY,
    EGRESS,
    INGRESS,
    PASS,
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    ClusterNetworkPolicy,
    CNPPeer,
    CNPPort,
    CNPRule,
    IPBlock,
    IPNetwork,
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    NetworkPolicyRule,
)

if TYPE_CHECKING:
    from knet.manifests.objects import Scope

NP_PROTOCOLS = ("TCP", "UDP", "SCTP")


def parse_selector(f: F | None) -> LabelSelector:
    # knet.manifests.objects imports this module to register the kinds
    from knet.manifests.objects import parse_selector as parse

    return parse(f)
_SPEC = ("podSelector", "policyTypes", "ingress", "egress")


def _cidr(f: F) -> IPNetwork | None:
    s = f.as_str()
    if s is None:
        return None
    msgs = names.cidr(s)
    if msgs:
        for m in msgs:
            f.invalid(m)
        return None
    return ip_network(s, strict=False)


def _np_port(f: F) -> tuple[NetworkPolicyPort | None, dict[str, Any]]:
    if not f.is_mapping():
        return None, {}
    f.known(("protocol", "port", "endPort"))
    proto = f.str("protocol", "TCP")  # SetDefaults_NetworkPolicyPort
    if proto not in NP_PROTOCOLS:
        f.child("protocol").unsupported(NP_PROTOCOLS)  # type: ignore[union-attr]
    out: dict[str, Any] = {"protocol": proto}
    port: int | str | None = None
    pf = f.child("port")
    end_f = f.child("endPort")
    end = end_f.as_int() if end_f is not None else None
    if pf is not None:
        port = pf.as_int_or_str()
        if isinstance(port, int):
            for m in names.port_number(port):
                pf.invalid(m)
            if end is not None:
                if end < port:
                    end_f.error(f"Invalid value: {port}: must be greater than or equal to "  # type: ignore[union-attr]
                                "`port`")
                for m in names.port_number(end):
                    end_f.invalid(m)  # type: ignore[union-attr]
        elif isinstance(port, str):
            if end is not None:
                end_f.invalid("may not be specified when `port` is non-numeric")  # type: ignore[union-attr]
            for m in names.iana_svc_name(port):
                pf.invalid(m)
        out["port"] = port
    elif end is not None:
        end_f.invalid("may not be specified when `port` is not specified")  # type: ignore[union-attr]
    if end is not None:
        out["endPort"] = end
    return NetworkPolicyPort(proto, port, end), out


def _np_peer(f: F) -> NetworkPolicyPeer | None:
    if not f.is_mapping():
        return None
    f.known(("podSelector", "namespaceSelector", "ipBlock"))
    pod = parse_selector(f.child("podSelector")) if f.has("podSelector") else None
    ns = parse_selector(f.child("namespaceSelector")) if f.has("namespaceSelector") else None
    block: IPBlock | None = None
    bf = f.map("ipBlock")
    if bf is not None:
        bf.known(("cidr", "except"))
        cf = bf.child("cidr")
        cidr = None
        if cf is None or cf.value == "":
            bf.required("cidr")
        else:
            cidr = _cidr(cf)
        excepts = []
        for ef in bf.list("except"):
            s = ef.as_str()
            if s is None:
                continue
            if names.cidr(s):
                ef.invalid("must be a valid CIDR")
                continue
            e = ip_network(s, strict=False)
            if cidr is not None and (e.version != cidr.version or not e.subnet_of(cidr)  # type: ignore[arg-type]
                                     or e.prefixlen <= cidr.prefixlen):
                ef.invalid("must be a strict subset of `cidr`")
                continue
            excepts.append(e)
        if cidr is not None:
            block = IPBlock(cidr, tuple(excepts))
    given = sum(1 for k in ("podSelector", "namespaceSelector", "ipBlock") if f.has(k))
    if given == 0:
        f.error("Required value: must specify a peer")
        return None
    if given > 1 and f.has("ipBlock"):
        f.error("Forbidden: may not specify both ipBlock and another peer")
        return None
    return NetworkPolicyPeer(pod, ns, block)


def _np_rules(spec: F, key: str, peers_key: str) -> tuple[tuple[NetworkPolicyRule, ...],
                                                        list[dict[str, Any]]]:
    rules, out = [], []
    for rf in spec.list(key):
        if not rf.is_mapping():
            continue
        rf.known(("ports", peers_key))
        ports, ports_out = [], []
        for pf in rf.list("ports"):
            p, d = _np_port(pf)
            if p is not None:
                ports.append(p)
                ports_out.append(d)
        peers = [p for p in (_np_peer(x) for x in rf.list(peers_key)) if p is not None]
        rules.append(NetworkPolicyRule(tuple(ports), tuple(peers)))
        rule_out: dict[str, Any] = {}
        if rf.has("ports"):
            rule_out["ports"] = ports_out
        if rf.has(peers_key):
            rule_out[peers_key] = plain(rf.value[peers_key])
        out.append(rule_out)
    return tuple(rules), out


def parse_network_policy(doc: F, meta: ObjectMeta, scope: Scope) -> NetworkPolicy:
    spec = doc.map("spec")
    if spec is None:
        doc.required("spec")
        return NetworkPolicy(metadata=meta)
    spec.known(_SPEC)
    doc.known(("apiVersion", "kind", "metadata", "spec", "status"))
    selector = parse_selector(spec.child("podSelector"))
    ingress, ing_out = _np_rules(spec, "ingress", "from")
    egress, eg_out = _np_rules(spec, "egress", "to")
    types_f = spec.child("policyTypes")
    types: list[str] = []
    if types_f is not None:
        items = types_f.items_of_list()
        if len(items) > 2:
            types_f.error(f"Invalid value: {quote(plain(types_f.value))}: may not specify "
                          "more than two policyTypes")
        else:
            for tf in items:
                s = tf.as_str()
                if s is None:
                    continue
                if s not in (INGRESS, EGRESS):
                    tf.unsupported((INGRESS, EGRESS))
                    continue
                types.append(s)
    if not types:  # SetDefaults_NetworkPolicy
        types = [INGRESS] + ([EGRESS] if egress else [])
    manifest: dict[str, Any] = {"podSelector": plain(spec.value.get("podSelector") or {}),
                                "policyTypes": types}
    if spec.has("ingress"):
        manifest["ingress"] = ing_out
    if spec.has("egress"):
        manifest["egress"] = eg_out
    return NetworkPolicy(metadata=meta, pod_selector=selector, policy_types=tuple(types),
                         ingress=ingress, egress=egress, manifest_spec=manifest)


# --- ClusterNetworkPolicy and the v1alpha1 kinds --------------------------------------------

def _ranged_int(f: F | None, lo: int, hi: int) -> int | None:
    if f is None:
        return None
    v = f.as_int()
    if v is None:
        return None
    if v < lo:
        f.error(f"Invalid value: {v}: {f.path} in body should be greater than or equal to {lo}")
    elif v > hi:
        f.error(f"Invalid value: {v}: {f.path} in body should be less than or equal to {hi}")
    return v


def _one_of(f: F, allowed: tuple[str, ...]) -> list[str]:
    present = [k for k in allowed if f.has(k)]
    if len(present) != 1:
        f.error(f"Invalid value: \"object\": exactly one of the fields in {list(allowed)} "
                "must be set".replace("'", ""))
    return present


def _pods_sel(f: F) -> tuple[LabelSelector, LabelSelector]:
    f.known(("namespaceSelector", "podSelector"))
    for k in ("namespaceSelector", "podSelector"):
        if not f.has(k):
            f.required(k)
    return parse_selector(f.child("namespaceSelector")), parse_selector(f.child("podSelector"))


def _cnp_peer(f: F, egress: bool, v1alpha1: bool) -> CNPPeer | None:
    if not f.is_mapping():
        return None
    known = ["namespaces", "pods"] + (["networks", "nodes", "domainNames"] if egress else [])
    present = [k for k in known if f.has(k)]
    if len(present) > 1:
        f.error(f"Invalid value: \"object\": exactly one of the fields in {known} must be "
                "set".replace("'", ""))
        return None
    if not present:
        return CNPPeer("")  # a peer of a newer API: fail closed (knet.policy)
    k = present[0]
    if k == "namespaces":
        return CNPPeer("namespaces", namespace_selector=parse_selector(f.child(k)))
    if k == "pods":
        pf = f.map(k)
        if pf is None:
            return None
        ns, pod = _pods_sel(pf)
        return CNPPeer("pods", namespace_selector=ns, pod_selector=pod)
    if k == "nodes":
        return CNPPeer("nodes", node_selector=parse_selector(f.child(k)))
    if k == "networks":
        nets = [n for n in (_cidr(x) for x in f.list(k)) if n is not None]
        if len(f.list(k)) > 25:
            f.child(k).error(f"Too many: {len(f.list(k))}: must have at most 25 items")  # type: ignore[union-attr]
        return CNPPeer("networks", networks=tuple(nets))
    return CNPPeer("domainNames")


def _cnp_ports_v2(rf: F) -> tuple[CNPPort, ...] | None:
    if not rf.has("protocols"):
        return None
    out = []
    for pf in rf.list("protocols"):
        if not pf.is_mapping():
            continue
        pf.known(("tcp", "udp", "sctp", "destinationNamedPort"))
        present = _one_of(pf, ("tcp", "udp", "sctp", "destinationNamedPort"))
        if len(present) != 1:
            continue
        k = present[0]
        if k == "destinationNamedPort":
            name = pf.str(k)
            out.append(CNPPort(named=name))
            continue
        proto = k.upper()
        pp = pf.map(k)
        dp = pp.map("destinationPort") if pp is not None else None
        if dp is None:
            out.append(CNPPort(proto))
            continue
        dp.known(("number", "range"))
        if dp.has("number"):
            n = _ranged_int(dp.child("number"), 1, 65535) or 0
            out.append(CNPPort(proto, n, n))
        elif dp.has("range"):
            rg = dp.map("range")
            if rg is None:
                continue
            s = _ranged_int(rg.child("start"), 1, 65535) or 0
            e = _ranged_int(rg.child("end"), 1, 65535) or 0
            if not rg.has("start"):
                rg.required("start")
            if not rg.has("end"):
                rg.required("end")
            if s and e and s >= e:
                rg.error("Invalid value: \"object\": Start port must be less than End port")
            out.append(CNPPort(proto, s, e))
        else:
            dp.error("Invalid value: \"object\": exactly one of the fields in [number range] "
                     "must be set")
    return tuple(out)


def _cnp_ports_v1(rf: F) -> tuple[CNPPort, ...] | None:
    if not rf.has("ports"):
        return None
    out = []
    for pf in rf.list("ports"):
        if not pf.is_mapping():
            continue
        present = _one_of(pf, ("portNumber", "namedPort", "portRange"))
        if len(present) != 1:
            continue
        k = present[0]
        if k == "namedPort":
            out.append(CNPPort(named=pf.str(k)))
            continue
        m = pf.map(k)
        if m is None:
            continue
        proto = m.str("protocol", "TCP")
        if proto not in NP_PROTOCOLS:
            m.child("protocol").unsupported(NP_PROTOCOLS)  # type: ignore[union-attr]
        if k == "portNumber":
            n = _ranged_int(m.child("port"), 1, 65535) or 0
            out.append(CNPPort(proto, n, n))
        else:
            s = _ranged_int(m.child("start"), 1, 65535) or 0
            e = _ranged_int(m.child("end"), 1, 65535) or 0
            if s and e and s >= e:
                m.error("Invalid value: \"object\": Start port must be less than End port")
            out.append(CNPPort(proto, s, e))
    return tuple(out)


_V1_ACTIONS = {"Allow": ACCEPT, "Deny": DENY, "Pass": PASS}


def _cnp_rules(spec: F, key: str, v1alpha1: bool, actions: tuple[str, ...]
               ) -> tuple[CNPRule, ...]:
    egress = key == "egress"
    peers_key = "to" if egress else "from"
    items = spec.list(key)
    limit = 100 if v1alpha1 else 25
    if len(items) > limit:
        spec.child(key).error(f"Too many: {len(items)}: must have at most {limit} items")  # type: ignore[union-attr]
    out = []
    for i, rf in enumerate(items):
        if not rf.is_mapping():
            continue
        rf.known(("name", "action", peers_key, "protocols" if not v1alpha1 else "ports"))
        name = rf.str("name")
        action = rf.str("action", required=True)
        if action and action not in actions:
            rf.child("action").unsupported(actions)  # type: ignore[union-attr]
        if v1alpha1:
            action = _V1_ACTIONS.get(action, action)
        peer_fs = rf.list(peers_key)
        if not peer_fs:
            rf.required(peers_key)
        peers = [p for p in (_cnp_peer(x, egress, v1alpha1) for x in peer_fs) if p is not None]
        ports = _cnp_ports_v1(rf) if v1alpha1 else _cnp_ports_v2(rf)
        if ports and any(p.named for p in ports) and any(
                p.kind in ("networks", "nodes", "domainNames") for p in peers):
            rf.error("Invalid value: \"object\": networks/nodes/domainNames peers cannot be "
                     "combined with a destination named port")
        out.append(CNPRule(name or f"{key}[{i}]", action, tuple(peers), ports))
    return tuple(out)


def _cluster_policy(doc: F, meta: ObjectMeta, cls: type, *, v1alpha1: bool,
                    tier: str | None) -> ClusterNetworkPolicy:
    spec = doc.map("spec")
    if spec is None:
        doc.required("spec")
        return cls(metadata=meta)
    keys = ["subject", "ingress", "egress"] + (["priority"] if tier != BASELINE else []) + (
        ["tier", "priority"] if tier is None else [])
    spec.known(keys)
    if tier is None:
        tier = spec.str("tier", required=True)
        if tier and tier not in (ADMIN, BASELINE):
            spec.child("tier").unsupported((ADMIN, BASELINE))  # type: ignore[union-attr]
    priority = 0
    if "priority" in keys:
        if not spec.has("priority"):
            spec.required("priority")
        priority = _ranged_int(spec.child("priority"), 0, 1000) or 0
    subj = spec.map("subject")
    sub_ns = sub_pns = sub_pods = None
    if subj is None:
        spec.required("subject")
    else:
        subj.known(("namespaces", "pods"))
        present = _one_of(subj, ("namespaces", "pods"))
        if present == ["namespaces"]:
            sub_ns = parse_selector(subj.child("namespaces"))
        elif present == ["pods"]:
            pf = subj.map("pods")
            if pf is not None:
                sub_pns, sub_pods = _pods_sel(pf)
    if v1alpha1:
        actions = ("Allow", "Deny", "Pass") if cls is AdminNetworkPolicy else ("Allow", "Deny")
    else:
        actions = (ACCEPT, DENY, PASS)
    ingress = _cnp_rules(spec, "ingress", v1alpha1, actions)
    egress = _cnp_rules(spec, "egress", v1alpha1, actions)
    return cls(metadata=meta, tier=tier or ADMIN, priority=priority,
               subject_namespaces=sub_ns, subject_pod_namespaces=sub_pns,
               subject_pods=sub_pods, ingress=ingress, egress=egress,
               manifest_spec=plain(spec.value))


def parse_cluster_network_policy(doc: F, meta: ObjectMeta, scope: Scope
                                 ) -> ClusterNetworkPolicy:
    return _cluster_policy(doc, meta, ClusterNetworkPolicy, v1alpha1=False, tier=None)


def parse_admin_network_policy(doc: F, meta: ObjectMeta, scope: Scope) -> AdminNetworkPolicy:
    return _cluster_policy(doc, meta, AdminNetworkPolicy, v1alpha1=True,  # type: ignore[return-value]
                           tier=ADMIN)


def parse_baseline_admin_network_policy(doc: F, meta: ObjectMeta, scope: Scope
                                        ) -> BaselineAdminNetworkPolicy:
    if meta.name and meta.name != "default":
        m = doc.child("metadata")
        (m.child("name") if m is not None and m.child("name") else doc).error(  # type: ignore[union-attr]
            f"Invalid value: {quote(meta.name)}: Only one baseline admin network policy with "
            "metadata.name=\"default\" can be created in the cluster")
    return _cluster_policy(doc, meta, BaselineAdminNetworkPolicy,  # type: ignore[return-value]
                           v1alpha1=True, tier=BASELINE)


API = "policy.networking.k8s.io"
# kind → (apiVersion, namespaced, name validator), parser: registered in knet.manifests.objects
KINDS = {
    "NetworkPolicy": ("networking.k8s.io/v1", True, names.dns1123_subdomain),
    "ClusterNetworkPolicy": (f"{API}/v1alpha2", False, names.dns1123_subdomain),
    "AdminNetworkPolicy": (f"{API}/v1alpha1", False, names.dns1123_subdomain),
    "BaselineAdminNetworkPolicy": (f"{API}/v1alpha1", False, names.dns1123_subdomain),
}
PARSERS = {
    "NetworkPolicy": parse_network_policy,
    "ClusterNetworkPolicy": parse_cluster_network_policy,
    "AdminNetworkPolicy": parse_admin_network_policy,
    "BaselineAdminNetworkPolicy": parse_baseline_admin_network_policy,
}
