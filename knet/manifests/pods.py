"""Pod specs: validation and defaulting as the API server does (pkg/apis/core/validation,
pkg/apis/core/v1/defaults.go), shared by Pod manifests and every workload's pod template.

Invariants: a PodSpec returned here is defaulted (restartPolicy Always, dnsPolicy
ClusterFirst, terminationGracePeriodSeconds 30, schedulerName default-scheduler, container port
protocol TCP, probe period 10 / timeout 1 / success 1 / failure 3, httpGet path "/" scheme
HTTP, hostPort = containerPort under hostNetwork). Problems go to the cursor's context.
"""

from __future__ import annotations

import re

from typing import Any

from knet.manifests import names
from knet.manifests.fields import F, plain, quote, type_name
from knet.model.core import (
    Container, ContainerPort, ContainerStatus, NodeSelectorTerm, PodCondition, PodSpec,
    PodStatus, PreferredSchedulingTerm, Probe, Protocol, Toleration,
)
from knet.model.meta import LabelSelectorRequirement

PROTOCOLS = ("SCTP", "TCP", "UDP")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
NODE_SELECTOR_OPS = ("DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn")

POD_SPEC_FIELDS = {
    "volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
    "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "nodeSelector",
    "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName",
    "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "securityContext",
    "imagePullSecrets", "hostname", "subdomain", "affinity", "schedulerName", "tolerations",
    "hostAliases", "priorityClassName", "priority", "dnsConfig", "readinessGates",
    "runtimeClassName", "enableServiceLinks", "preemptionPolicy", "overhead",
    "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates",
    "resourceClaims", "resources",
}
CONTAINER_FIELDS = {
    "name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources",
    "resizePolicy", "restartPolicy", "volumeMounts", "volumeDevices", "livenessProbe",
    "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath",
    "terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty",
}
_SPEC_MODELLED = {
    "initContainers", "containers", "restartPolicy", "terminationGracePeriodSeconds",
    "dnsPolicy", "nodeSelector", "nodeName", "hostNetwork", "hostname", "subdomain",
    "affinity", "schedulerName", "tolerations", "hostAliases", "priority", "dnsConfig",
    "readinessGates",
}
_CONTAINER_MODELLED = {
    "name", "image", "command", "args", "ports", "envFrom", "env", "resources",
    "livenessProbe", "readinessProbe", "startupProbe", "restartPolicy",
}


def int_or_name(f: F, *, required_positive: bool = True) -> int | str | None:
    """ValidatePortNumOrName: a port number 1–65535 or an IANA_SVC_NAME."""
    v = f.as_int_or_str()
    if v is None:
        return None
    msgs = names.port_number(v) if isinstance(v, int) else names.iana_svc_name(v)
    for m in msgs:
        f.invalid(m)
    return v


def parse_probe(f: F | None) -> Probe | None:
    if f is None or not f.is_mapping():
        return None
    handlers: dict[str, Any] = {}
    for key in ("httpGet", "tcpSocket", "exec", "grpc"):
        h = f.map(key)
        if h is None:
            continue
        handlers[key] = h
    if len(handlers) > 1:
        f.error("Forbidden: may not specify more than 1 handler type")
    elif not handlers:
        f.error("Required value: must specify a handler type")
    http = tcp = exe = grpc = None
    if "httpGet" in handlers:
        h = handlers["httpGet"]
        port = h.child("port")
        if port is None:
            h.required("port")
        else:
            int_or_name(port)
        scheme = h.str("scheme", "HTTP")
        if scheme not in ("HTTP", "HTTPS"):
            h.child("scheme").unsupported(["HTTP", "HTTPS"])
        http = plain(h.value)
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")
    if "tcpSocket" in handlers:
        h = handlers["tcpSocket"]
        port = h.child("port")
        if port is None:
            h.required("port")
        else:
            int_or_name(port)
        tcp = plain(h.value)
    if "exec" in handlers:
        handlers["exec"].str_list("command")
        exe = plain(handlers["exec"].value)
    if "grpc" in handlers:
        h = handlers["grpc"]
        port = h.child("port")
        if port is None:
            h.required("port")
        else:
            p = port.as_int()
            if p is not None:
                for m in names.port_number(p):
                    port.invalid(m)
        grpc = plain(h.value)
        grpc.setdefault("service", "")
    values = {}
    for key, default, minimum in (("initialDelaySeconds", 0, 0), ("periodSeconds", 10, 1),
                                  ("timeoutSeconds", 1, 1), ("successThreshold", 1, 1),
                                  ("failureThreshold", 3, 1)):
        v = f.int(key, default)
        if v < minimum:
            f.child(key).invalid(  # type: ignore[union-attr]
                f"must be greater than or equal to {minimum}")
        values[key] = v
    return Probe(http_get=http, tcp_socket=tcp, exec=exe, grpc=grpc,
                 initial_delay_seconds=values["initialDelaySeconds"],
                 period_seconds=values["periodSeconds"],
                 timeout_seconds=values["timeoutSeconds"],
                 success_threshold=values["successThreshold"],
                 failure_threshold=values["failureThreshold"],
                 termination_grace_period_seconds=f.opt_int("terminationGracePeriodSeconds"))


# k8s.io/apimachinery/pkg/api/resource: the text form of a Quantity
_QUANTITY_RE = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY = re.compile(r"([+-]?[0-9.]+)(|[numkMGTPE]|[KMGTPE]i|[eE][-+]?[0-9]+)")


def _quantity_ok(text: str) -> bool:
    m = _QUANTITY.fullmatch(text)
    return not (m is None or m.group(1).count(".") > 1 or m.group(1).strip("+-.") == "")


def _quantities(f: F | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if f is None or not f.is_mapping():
        return out
    for k, v in f.entries():
        if isinstance(v.value, bool) or not isinstance(v.value, (int, float, str)):
            v.error(f"expected a quantity (string or number), got {type_name(v.value)}")
            continue
        text = str(v.value)
        if not _quantity_ok(text):
            v.invalid(f"quantities must match the regular expression '{_QUANTITY_RE}'")
            continue
        out[k] = text
    return out


def parse_container(f: F, seen_names: set[str], host_network: bool, *, init: bool) -> Container:
    f.known(CONTAINER_FIELDS)
    name = f.str("name", required=True)
    if name:
        for m in names.dns1123_label(name):
            f.child("name").invalid(m)  # type: ignore[union-attr]
        if name in seen_names:
            f.child("name").error(f"Duplicate value: {quote(name)}")  # type: ignore[union-attr]
        seen_names.add(name)
    image = f.str("image")
    if not image.strip():
        f.required("image")
    ports = []
    port_names: set[str] = set()
    for pf in f.list("ports"):
        if not pf.is_mapping():
            continue
        pf.known(["name", "containerPort", "protocol", "hostPort", "hostIP"])
        cp = pf.port("containerPort", required=True) or 0
        pname = pf.str("name")
        if pname:
            for m in names.iana_svc_name(pname):
                pf.child("name").invalid(m)  # type: ignore[union-attr]
            if pname in port_names:
                pf.child("name").error(f"Duplicate value: {quote(pname)}")  # type: ignore[union-attr]
            port_names.add(pname)
        proto = pf.str("protocol", "TCP")
        if proto not in PROTOCOLS:
            pf.child("protocol").unsupported(PROTOCOLS)  # type: ignore[union-attr]
            proto = "TCP"
        hp_f = pf.child("hostPort")
        host_port = (pf.port("hostPort") or 0) if hp_f is None or hp_f.value != 0 else 0
        if host_network:
            if host_port == 0:
                host_port = cp  # SetDefaults_Pod: hostNetwork ⇒ hostPort = containerPort
            elif host_port != cp:
                pf.child("hostPort").invalid(  # type: ignore[union-attr]
                    "must match `containerPort` when `hostNetwork` is true")
        ports.append(ContainerPort(container_port=cp, name=pname, protocol=Protocol(proto),
                                   host_port=host_port))
    env = []
    env_names: set[str] = set()
    for ef in f.list("env"):
        if not ef.is_mapping():
            continue
        ef.known(["name", "value", "valueFrom"])
        ename = ef.str("name", required=True)
        if ef.has("value"):
            ef.str("value")  # must be a string: `value: 8080` / `value: yes` are rejected
        if ef.has("value") and ef.has("valueFrom"):
            ef.sub_error("valueFrom", "Invalid value: \"\": may not be specified when `value` "
                                      "is not empty")
        env_names.add(ename)
        env.append(plain(ef.value))
    env_from = tuple(plain(x.value) for x in f.list("envFrom") if x.is_mapping())
    res = f.map("resources")
    requests = _quantities(res.child("requests")) if res else {}
    limits = _quantities(res.child("limits")) if res else {}
    for k, v in limits.items():  # SetDefaults: requests default to limits
        requests.setdefault(k, v)
    restart = f.str("restartPolicy")
    if restart:
        if not init:
            f.child("restartPolicy").error(  # type: ignore[union-attr]
                "Forbidden: may not be set for non-init containers")
        elif restart != "Always":
            f.child("restartPolicy").unsupported(["Always"])  # type: ignore[union-attr]
    readiness = parse_probe(f.child("readinessProbe"))
    liveness = parse_probe(f.child("livenessProbe"))
    startup = parse_probe(f.child("startupProbe"))
    if init and not restart:
        for key, probe in (("readinessProbe", readiness), ("livenessProbe", liveness),
                           ("startupProbe", startup)):
            if probe is not None:
                f.sub_error(key, "Forbidden: may not be set for init containers without "
                                 "restartPolicy=Always")
    if startup is not None and startup.success_threshold != 1:
        f.child("startupProbe").child("successThreshold").invalid("must be 1")  # type: ignore[union-attr]
    if liveness is not None and liveness.success_threshold != 1:
        f.child("livenessProbe").child("successThreshold").invalid("must be 1")  # type: ignore[union-attr]
    extra = {k: plain(v) for k, v in f.value.items() if k not in _CONTAINER_MODELLED}
    extra.setdefault("terminationMessagePath", "/dev/termination-log")
    extra.setdefault("terminationMessagePolicy", "File")
    tag = image.rsplit("/", 1)[-1]
    latest = ":" not in tag or tag.endswith(":latest")
    if "@" not in image:
        extra.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    return Container(
        name=name, image=image, command=f.str_list("command"), args=f.str_list("args"),
        ports=tuple(ports), env=tuple(env), env_from=env_from, requests=requests,
        limits=limits, readiness_probe=readiness, liveness_probe=liveness,
        startup_probe=startup, restart_policy=restart, extra=extra)


def _requirements(f: F, key: str, ops: tuple[str, ...]) -> tuple[LabelSelectorRequirement, ...]:
    out = []
    for r in f.list(key):
        if not r.is_mapping():
            continue
        rkey = r.str("key", required=True)
        op = r.str("operator", required=True)
        values = r.str_list("values")
        if op and op not in ops:
            r.child("operator").unsupported(ops)  # type: ignore[union-attr]
        elif op in ("In", "NotIn") and not values:
            r.required("values")
        elif op in ("Exists", "DoesNotExist") and values:
            r.child("values").error(  # type: ignore[union-attr]
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        elif op in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
            r.child("values").error(  # type: ignore[union-attr]
                "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'")
        out.append(LabelSelectorRequirement(key=rkey, operator=op, values=values))
    return tuple(out)


def _node_selector_term(f: F) -> NodeSelectorTerm:
    return NodeSelectorTerm(match_expressions=_requirements(f, "matchExpressions",
                                                            NODE_SELECTOR_OPS),
                            match_fields=_requirements(f, "matchFields", NODE_SELECTOR_OPS))


def parse_tolerations(f: F) -> tuple[Toleration, ...]:
    out = []
    for t in f.list("tolerations"):
        if not t.is_mapping():
            continue
        key = t.str("key")
        op = t.str("operator", "Equal")
        value = t.str("value")
        effect = t.str("effect")
        if op not in ("Equal", "Exists"):
            t.child("operator").unsupported(["Equal", "Exists"])  # type: ignore[union-attr]
        if not key and op != "Exists":
            t.child("operator").invalid(  # type: ignore[union-attr]
                "operator must be Exists when `key` is empty, which means \"match all values "
                "and all keys\"") if t.has("operator") else t.sub_error(
                "operator", f"Invalid value: {quote(op)}: operator must be Exists when `key` is "
                            "empty, which means \"match all values and all keys\"")
        if op == "Exists" and value:
            t.child("operator").invalid(  # type: ignore[union-attr]
                "value must be empty when `operator` is 'Exists'")
        if key:
            for m in names.qualified_name(key):
                t.child("key").invalid(m)  # type: ignore[union-attr]
        if effect and effect not in TAINT_EFFECTS:
            t.child("effect").unsupported(TAINT_EFFECTS)  # type: ignore[union-attr]
        secs = t.opt_int("tolerationSeconds")
        if secs is not None and effect != "NoExecute":
            t.child("effect").invalid(  # type: ignore[union-attr]
                "effect must be 'NoExecute' when `tolerationSeconds` is set") if t.has(
                "effect") else t.sub_error("effect", "Invalid value: \"\": effect must be "
                                           "'NoExecute' when `tolerationSeconds` is set")
        out.append(Toleration(key=key, operator=op, value=value, effect=effect,
                              toleration_seconds=secs))
    return tuple(out)


def parse_pod_spec(f: F) -> PodSpec:
    f.known(POD_SPEC_FIELDS)
    host_network = f.bool("hostNetwork")
    seen: set[str] = set()
    containers = tuple(parse_container(c, seen, host_network, init=False)
                       for c in f.list("containers") if c.is_mapping())
    if not containers:
        f.required("containers")
    init = tuple(parse_container(c, seen, host_network, init=True)
                 for c in f.list("initContainers") if c.is_mapping())
    restart = f.str("restartPolicy", "Always")
    if restart not in RESTART_POLICIES:
        f.child("restartPolicy").unsupported(RESTART_POLICIES)  # type: ignore[union-attr]
    dns_policy = f.str("dnsPolicy", "ClusterFirst")
    if dns_policy not in DNS_POLICIES:
        f.child("dnsPolicy").unsupported(DNS_POLICIES)  # type: ignore[union-attr]
    dns_config = f.map("dnsConfig")
    if dns_policy == "None" and dns_config is None:
        f.sub_error("dnsConfig", "Required value: must provide `dnsConfig` when `dnsPolicy` "
                                 "is None")
    if dns_config is not None:
        ns = dns_config.list("nameservers")
        if len(ns) > 3:
            dns_config.child("nameservers").error(  # type: ignore[union-attr]
                "Invalid value: must not have more than 3 nameservers")
        for n in ns:
            s = n.as_str()
            if s is not None:
                for m in names.ip(s):
                    n.invalid(m)
        if len(dns_config.list("searches")) > 32:
            dns_config.child("searches").error(  # type: ignore[union-attr]
                "Invalid value: must not have more than 32 search paths")
        dns_config.str_list("searches")
    grace = f.int("terminationGracePeriodSeconds", 30)
    if grace < 0:
        f.child("terminationGracePeriodSeconds").invalid(  # type: ignore[union-attr]
            "must be greater than or equal to 0")
    for key in ("hostname", "subdomain"):
        v = f.str(key)
        if v:
            for m in names.dns1123_label(v):
                f.child(key).invalid(m)  # type: ignore[union-attr]
    node_name = f.str("nodeName")
    if node_name:
        for m in names.dns1123_subdomain(node_name):
            f.child("nodeName").invalid(m)  # type: ignore[union-attr]
    node_selector = f.str_map("nodeSelector")
    required_terms: tuple[NodeSelectorTerm, ...] = ()
    preferred: list[PreferredSchedulingTerm] = []
    pod_affinity = pod_anti_affinity = None
    aff = f.map("affinity")
    if aff is not None:
        na = aff.map("nodeAffinity")
        if na is not None:
            req = na.map("requiredDuringSchedulingIgnoredDuringExecution")
            if req is not None:
                terms = [t for t in req.list("nodeSelectorTerms") if t.is_mapping()]
                if not terms:
                    req.required("nodeSelectorTerms")
                required_terms = tuple(_node_selector_term(t) for t in terms)
            for p in na.list("preferredDuringSchedulingIgnoredDuringExecution"):
                if not p.is_mapping():
                    continue
                w = p.int("weight", required=True)
                wf = p.child("weight")
                if wf is not None and not 1 <= w <= 100:
                    wf.invalid("must be in the range 1-100")
                pref = p.map("preference")
                term = _node_selector_term(pref) if pref else NodeSelectorTerm()
                preferred.append(PreferredSchedulingTerm(weight=w, preference=term))
        if aff.has("podAffinity"):
            pod_affinity = plain(aff.map("podAffinity").value)  # type: ignore[union-attr]
        if aff.has("podAntiAffinity"):
            pod_anti_affinity = plain(aff.map("podAntiAffinity").value)  # type: ignore[union-attr]
    host_aliases = []
    for h in f.list("hostAliases"):
        if h.is_mapping():
            ip = h.str("ip")
            for m in names.ip(ip):
                h.child("ip").invalid(m) if h.has("ip") else h.required("ip")  # type: ignore[union-attr]
            h.str_list("hostnames")
            host_aliases.append(plain(h.value))
    gates = []
    for g in f.list("readinessGates"):
        if g.is_mapping():
            gates.append(g.str("conditionType", required=True))
    extra = {k: plain(v) for k, v in f.value.items() if k not in _SPEC_MODELLED}
    extra.setdefault("securityContext", {})
    return PodSpec(
        containers=containers, init_containers=init, node_name=node_name,
        node_selector=node_selector, required_node_affinity=required_terms,
        preferred_node_affinity=tuple(preferred), pod_affinity=pod_affinity,
        pod_anti_affinity=pod_anti_affinity, tolerations=parse_tolerations(f),
        hostname=f.str("hostname"), subdomain=f.str("subdomain"), host_network=host_network,
        restart_policy=restart, termination_grace_period_seconds=grace, dns_policy=dns_policy,
        dns_config=plain(dns_config.value) if dns_config else None,
        host_aliases=tuple(host_aliases),
        scheduler_name=f.str("schedulerName", "default-scheduler"),
        priority=f.int("priority", 0), readiness_gates=tuple(gates), extra=extra)


def _container_status(f: F) -> ContainerStatus:
    state, reason = "waiting", ""
    st = f.map("state")
    if st is not None:
        for s in ("running", "terminated", "waiting"):
            if st.has(s):
                state = s
                sub = st.map(s)
                reason = sub.str("reason") if sub else ""
                break
    return ContainerStatus(name=f.str("name"), ready=f.bool("ready"),
                           started=f.bool("started", state == "running"),
                           restart_count=f.int("restartCount"), state=state, reason=reason,
                           image=f.str("image"))


def parse_pod_status(f: F | None) -> PodStatus:
    from ipaddress import ip_address

    if f is None:
        return PodStatus()
    ips = []
    for item in f.list("podIPs"):
        if item.is_mapping():
            s = item.str("ip")
            try:
                ips.append(ip_address(s))
            except ValueError:
                item.child("ip").invalid(names.ip(s)[0]) if item.has("ip") else item.required("ip")  # type: ignore[union-attr]
    pod_ip = f.str("podIP")
    if pod_ip:
        try:
            first = ip_address(pod_ip)
            if not ips:
                ips = [first]
            elif ips[0] != first:
                f.child("podIPs").invalid("first value must match `podIP`")  # type: ignore[union-attr]
        except ValueError:
            f.child("podIP").invalid(names.ip(pod_ip)[0])  # type: ignore[union-attr]
    host_ip = None
    if f.str("hostIP"):
        try:
            host_ip = ip_address(f.str("hostIP"))
        except ValueError:
            f.child("hostIP").invalid(names.ip(f.str("hostIP"))[0])  # type: ignore[union-attr]
    conditions = []
    for c in f.list("conditions"):
        if c.is_mapping():
            status = c.str("status", "Unknown")
            if status not in ("True", "False", "Unknown"):
                c.child("status").unsupported(["False", "True", "Unknown"])  # type: ignore[union-attr]
            conditions.append(PodCondition(
                type=c.str("type", required=True), status=status, reason=c.str("reason"),
                message=c.str("message"), last_transition_time=c.str("lastTransitionTime")))
    phase = f.str("phase", "Pending")
    phases = ("Failed", "Pending", "Running", "Succeeded", "Unknown")
    if phase not in phases:
        f.child("phase").unsupported(phases)  # type: ignore[union-attr]
    return PodStatus(
        phase=phase, pod_ips=tuple(ips), host_ip=host_ip, conditions=tuple(conditions),
        container_statuses=tuple(_container_status(c) for c in f.list("containerStatuses")
                                 if c.is_mapping()),
        init_container_statuses=tuple(_container_status(c)
                                      for c in f.list("initContainerStatuses")
                                      if c.is_mapping()),
        reason=f.str("reason"), message=f.str("message"), start_time=f.str("startTime"),
        nominated_node_name=f.str("nominatedNodeName"))
