"""Model objects → manifest dicts, as ``kubectl get -o yaml`` prints them.

Invariant: ``read`` accepts every manifest made here and gives back an equal object (same
config), status included; keys are the API's camelCase; empty optional fields are omitted.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

from knet.model.apps import DaemonSet, Deployment, Job, ReplicaSet, StatefulSet
from knet.model.core import (
    ConfigMap, Container, ContainerStatus, Namespace, Node, Pod, PodSpec, PodStatus, Probe,
    Secret, Service, ServiceType,
)
from knet.model.discovery import EndpointSlice
from knet.model.meta import LabelSelector, LabelSelectorRequirement, ObjectMeta
from knet.model.networking import Ingress, IngressBackend, IngressClass

API_VERSIONS = {
    "Namespace": "v1", "Node": "v1", "Pod": "v1", "Service": "v1", "ConfigMap": "v1",
    "Secret": "v1", "EndpointSlice": "discovery.k8s.io/v1", "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
    "Job": "batch/v1", "Ingress": "networking.k8s.io/v1", "IngressClass": "networking.k8s.io/v1",
}
FAMILY = {4: "IPv4", 6: "IPv6"}


def _meta(m: ObjectMeta) -> dict[str, Any]:
    out: dict[str, Any] = {"name": m.name}
    if m.generate_name:
        out["generateName"] = m.generate_name
    if m.namespace:
        out["namespace"] = m.namespace
    if m.uid:
        out["uid"] = m.uid
    if m.resource_version:
        out["resourceVersion"] = m.resource_version
    if m.creation_timestamp:
        out["creationTimestamp"] = m.creation_timestamp
    if m.deletion_timestamp:
        out["deletionTimestamp"] = m.deletion_timestamp
    if m.deletion_grace_period_seconds is not None:
        out["deletionGracePeriodSeconds"] = m.deletion_grace_period_seconds
    if m.labels:
        out["labels"] = dict(m.labels)
    if m.annotations:
        out["annotations"] = dict(m.annotations)
    if m.owner_references:
        out["ownerReferences"] = [
            {k: v for k, v in (("apiVersion", r.api_version), ("kind", r.kind),
                               ("name", r.name), ("uid", r.uid)) if v}
            | ({"controller": True} if r.controller else {})
            for r in m.owner_references]
    return out


def _requirements(reqs: tuple[LabelSelectorRequirement, ...]) -> list[dict[str, Any]]:
    out = []
    for r in reqs:
        d: dict[str, Any] = {"key": r.key, "operator": r.operator}
        if r.values:
            d["values"] = list(r.values)
        out.append(d)
    return out


def _selector(s: LabelSelector) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if s.match_labels:
        out["matchLabels"] = dict(s.match_labels)
    if s.match_expressions:
        out["matchExpressions"] = _requirements(s.match_expressions)
    return out


def _probe(p: Probe) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, h in (("httpGet", p.http_get), ("tcpSocket", p.tcp_socket), ("exec", p.exec),
                   ("grpc", p.grpc)):
        if h is not None:
            out[key] = dict(h)
    out.update(initialDelaySeconds=p.initial_delay_seconds, periodSeconds=p.period_seconds,
               timeoutSeconds=p.timeout_seconds, successThreshold=p.success_threshold,
               failureThreshold=p.failure_threshold)
    if not p.initial_delay_seconds:
        del out["initialDelaySeconds"]
    if p.termination_grace_period_seconds is not None:
        out["terminationGracePeriodSeconds"] = p.termination_grace_period_seconds
    return out


def _container(c: Container) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name, "image": c.image}
    if c.command:
        out["command"] = list(c.command)
    if c.args:
        out["args"] = list(c.args)
    if c.ports:
        ports = []
        for p in c.ports:
            d: dict[str, Any] = {}
            if p.name:
                d["name"] = p.name
            d["containerPort"] = p.container_port
            d["protocol"] = str(p.protocol)
            if p.host_port:
                d["hostPort"] = p.host_port
            ports.append(d)
        out["ports"] = ports
    if c.env:
        out["env"] = [dict(e) for e in c.env]
    if c.env_from:
        out["envFrom"] = [dict(e) for e in c.env_from]
    res: dict[str, Any] = {}
    if c.requests:
        res["requests"] = dict(c.requests)
    if c.limits:
        res["limits"] = dict(c.limits)
    out["resources"] = res
    for key, probe in (("readinessProbe", c.readiness_probe), ("livenessProbe", c.liveness_probe),
                       ("startupProbe", c.startup_probe)):
        if probe is not None:
            out[key] = _probe(probe)
    if c.restart_policy:
        out["restartPolicy"] = c.restart_policy
    for k, v in c.extra.items():
        if k != "resources":
            out[k] = v
    return out


def _pod_spec(s: PodSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if s.init_containers:
        out["initContainers"] = [_container(c) for c in s.init_containers]
    out["containers"] = [_container(c) for c in s.containers]
    out["restartPolicy"] = s.restart_policy
    out["terminationGracePeriodSeconds"] = s.termination_grace_period_seconds
    out["dnsPolicy"] = s.dns_policy
    if s.dns_config is not None:
        out["dnsConfig"] = dict(s.dns_config)
    if s.node_selector:
        out["nodeSelector"] = dict(s.node_selector)
    if s.node_name:
        out["nodeName"] = s.node_name
    if s.host_network:
        out["hostNetwork"] = True
    if s.hostname:
        out["hostname"] = s.hostname
    if s.subdomain:
        out["subdomain"] = s.subdomain
    affinity: dict[str, Any] = {}
    node_aff: dict[str, Any] = {}
    if s.required_node_affinity:
        node_aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
            {k: v for k, v in (("matchExpressions", _requirements(t.match_expressions)),
                               ("matchFields", _requirements(t.match_fields))) if v}
            for t in s.required_node_affinity]}
    if s.preferred_node_affinity:
        node_aff["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": p.weight, "preference": {
                k: v for k, v in (("matchExpressions",
                                   _requirements(p.preference.match_expressions)),
                                  ("matchFields", _requirements(p.preference.match_fields)))
                if v}}
            for p in s.preferred_node_affinity]
    if node_aff:
        affinity["nodeAffinity"] = node_aff
    if s.pod_affinity is not None:
        affinity["podAffinity"] = dict(s.pod_affinity)
    if s.pod_anti_affinity is not None:
        affinity["podAntiAffinity"] = dict(s.pod_anti_affinity)
    if affinity:
        out["affinity"] = affinity
    if s.tolerations:
        tols = []
        for t in s.tolerations:
            d: dict[str, Any] = {}
            if t.key:
                d["key"] = t.key
            d["operator"] = t.operator
            if t.value:
                d["value"] = t.value
            if t.effect:
                d["effect"] = t.effect
            if t.toleration_seconds is not None:
                d["tolerationSeconds"] = t.toleration_seconds
            tols.append(d)
        out["tolerations"] = tols
    if s.host_aliases:
        out["hostAliases"] = [dict(h) for h in s.host_aliases]
    out["schedulerName"] = s.scheduler_name
    if s.priority:
        out["priority"] = s.priority
    if s.readiness_gates:
        out["readinessGates"] = [{"conditionType": g} for g in s.readiness_gates]
    for k, v in s.extra.items():
        out.setdefault(k, v)
    return out


def _container_status(c: ContainerStatus) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if c.reason:
        state["reason"] = c.reason
    return {"name": c.name, "ready": c.ready, "started": c.started,
            "restartCount": c.restart_count, "image": c.image, "state": {c.state: state}}


def _pod_status(s: PodStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"phase": s.phase}
    if s.pod_ips:
        out["podIP"] = str(s.pod_ips[0])
        out["podIPs"] = [{"ip": str(ip)} for ip in s.pod_ips]
    if s.host_ip is not None:
        out["hostIP"] = str(s.host_ip)
        out["hostIPs"] = [{"ip": str(s.host_ip)}]
    if s.conditions:
        out["conditions"] = [
            {k: v for k, v in (("type", c.type), ("status", c.status), ("reason", c.reason),
                               ("message", c.message),
                               ("lastTransitionTime", c.last_transition_time)) if v}
            for c in s.conditions]
    if s.container_statuses:
        out["containerStatuses"] = [_container_status(c) for c in s.container_statuses]
    if s.init_container_statuses:
        out["initContainerStatuses"] = [_container_status(c)
                                        for c in s.init_container_statuses]
    for key, v in (("reason", s.reason), ("message", s.message), ("startTime", s.start_time),
                   ("nominatedNodeName", s.nominated_node_name), ("qosClass", s.qos_class)):
        if v:
            out[key] = v
    return out


def _lb_status(ingress: tuple) -> dict[str, Any]:
    items = []
    for i in ingress:
        d: dict[str, Any] = {}
        if i.ip:
            d["ip"] = i.ip
        if i.hostname:
            d["hostname"] = i.hostname
        if i.ip_mode:
            d["ipMode"] = i.ip_mode
        items.append(d)
    return {"loadBalancer": {"ingress": items} if items else {}}


def _service(s: Service) -> tuple[dict[str, Any], dict[str, Any]]:
    sp = s.spec
    spec: dict[str, Any] = {"type": str(sp.type)}
    if sp.ports:
        ports = []
        for p in sp.ports:
            d: dict[str, Any] = {}
            if p.name:
                d["name"] = p.name
            d["protocol"] = str(p.protocol)
            if p.app_protocol:
                d["appProtocol"] = p.app_protocol
            d["port"] = p.port
            d["targetPort"] = p.target_port
            if p.node_port:
                d["nodePort"] = p.node_port
            ports.append(d)
        spec["ports"] = ports
    if sp.selector is not None:
        spec["selector"] = dict(sp.selector)
    if sp.cluster_ip:
        spec["clusterIP"] = sp.cluster_ip
    if sp.cluster_ips:
        spec["clusterIPs"] = list(sp.cluster_ips)
    if sp.ip_families:
        spec["ipFamilies"] = [FAMILY[f] for f in sp.ip_families]
    if sp.ip_family_policy:
        spec["ipFamilyPolicy"] = sp.ip_family_policy
    spec["sessionAffinity"] = sp.session_affinity
    if sp.session_affinity == "ClientIP":
        spec["sessionAffinityConfig"] = {"clientIP": {
            "timeoutSeconds": sp.session_affinity_timeout}}
    if sp.external_ips:
        spec["externalIPs"] = list(sp.external_ips)
    if sp.load_balancer_ip:
        spec["loadBalancerIP"] = sp.load_balancer_ip
    if sp.load_balancer_source_ranges:
        spec["loadBalancerSourceRanges"] = list(sp.load_balancer_source_ranges)
    if sp.load_balancer_class:
        spec["loadBalancerClass"] = sp.load_balancer_class
    if sp.type is ServiceType.LOAD_BALANCER:
        spec["allocateLoadBalancerNodePorts"] = sp.allocate_load_balancer_node_ports
    if sp.external_traffic_policy:
        spec["externalTrafficPolicy"] = sp.external_traffic_policy
    if sp.internal_traffic_policy:
        spec["internalTrafficPolicy"] = sp.internal_traffic_policy
    if sp.health_check_node_port:
        spec["healthCheckNodePort"] = sp.health_check_node_port
    if sp.external_name:
        spec["externalName"] = sp.external_name
    if sp.publish_not_ready_addresses:
        spec["publishNotReadyAddresses"] = True
    if sp.traffic_distribution:
        spec["trafficDistribution"] = sp.traffic_distribution
    return spec, _lb_status(s.load_balancer_ingress)


def _backend(b: IngressBackend) -> dict[str, Any]:
    if b.is_resource:
        return {"resource": {"apiGroup": b.resource_api_group, "kind": b.resource_kind,
                             "name": b.resource_name}}
    port = {"name": b.service_port_name} if b.service_port_name else {
        "number": b.service_port_number}
    return {"service": {"name": b.service_name, "port": port}}


def _ingress(i: Ingress) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if i.ingress_class_name:
        spec["ingressClassName"] = i.ingress_class_name
    if i.default_backend is not None:
        spec["defaultBackend"] = _backend(i.default_backend)
    if i.rules:
        rules = []
        for r in i.rules:
            d: dict[str, Any] = {}
            if r.host:
                d["host"] = r.host
            if r.paths:
                d["http"] = {"paths": [
                    {**({"path": p.path} if p.path else {}), "pathType": p.path_type,
                     "backend": _backend(p.backend)} for p in r.paths]}
            rules.append(d)
        spec["rules"] = rules
    if i.tls:
        spec["tls"] = [{k: v for k, v in (("hosts", list(t.hosts)),
                                          ("secretName", t.secret_name)) if v} for t in i.tls]
    return spec


def _node(n: Node) -> tuple[dict[str, Any], dict[str, Any]]:
    spec: dict[str, Any] = dict(n.extra.get("spec", {}))
    if n.pod_cidrs:
        spec["podCIDR"] = str(n.pod_cidrs[0])
        spec["podCIDRs"] = [str(c) for c in n.pod_cidrs]
    if n.unschedulable:
        spec["unschedulable"] = True
    if n.taints:
        spec["taints"] = [{k: v for k, v in (("key", t.key), ("value", t.value),
                                             ("effect", t.effect), ("timeAdded", t.time_added))
                           if v} for t in n.taints]
    status: dict[str, Any] = {k: v for k, v in n.extra.items() if k != "spec"}
    if n.addresses:
        status["addresses"] = [{"type": a.type, "address": a.address} for a in n.addresses]
    if n.capacity:
        status["capacity"] = dict(n.capacity)
    if n.allocatable:
        status["allocatable"] = dict(n.allocatable)
    status["conditions"] = [{"type": "Ready", "status": "True" if n.ready else "False"}]
    return spec, status


def to_manifest(obj: Any) -> dict[str, Any]:
    """A manifest dict for ``obj`` (apiVersion, kind, metadata, spec/data, status)."""
    kind = obj.kind
    from knet.manifests import render_controllers

    special = render_controllers.manifest(obj, _meta(obj.metadata))
    if special is not None:
        return special
    out: dict[str, Any] = {"apiVersion": API_VERSIONS.get(kind, ""), "kind": kind,
                           "metadata": _meta(obj.metadata)}
    if isinstance(obj, Namespace):
        out["spec"] = {"finalizers": ["kubernetes"]}
        out["status"] = {"phase": "Active"}
    elif isinstance(obj, Node):
        out["spec"], out["status"] = _node(obj)
    elif isinstance(obj, Pod):
        out["spec"] = _pod_spec(obj.spec)
        out["status"] = _pod_status(obj.status)
    elif isinstance(obj, Service):
        out["spec"], out["status"] = _service(obj)
    elif isinstance(obj, EndpointSlice):
        out["addressType"] = obj.address_type
        eps = []
        for e in obj.endpoints:
            d: dict[str, Any] = {"addresses": list(e.addresses)}
            cond = {k: v for k, v in (("ready", e.conditions.ready),
                                      ("serving", e.conditions.serving),
                                      ("terminating", e.conditions.terminating))
                    if v is not None}
            d["conditions"] = cond
            if e.hostname:
                d["hostname"] = e.hostname
            if e.node_name:
                d["nodeName"] = e.node_name
            if e.zone:
                d["zone"] = e.zone
            if e.target_ref is not None:
                d["targetRef"] = {k: v for k, v in (
                    ("kind", e.target_ref.kind), ("name", e.target_ref.name),
                    ("namespace", e.target_ref.namespace), ("uid", e.target_ref.uid)) if v}
            hints: dict[str, Any] = {}
            if e.hints_zones:
                hints["forZones"] = [{"name": z} for z in e.hints_zones]
            if e.hints_nodes:
                hints["forNodes"] = [{"name": n} for n in e.hints_nodes]
            if hints:
                d["hints"] = hints
            eps.append(d)
        out["endpoints"] = eps
        out["ports"] = [
            {k: v for k, v in (("name", p.name), ("port", p.port),
                               ("protocol", str(p.protocol)), ("appProtocol", p.app_protocol))
             if v is not None and v != "" or (k == "name" and v == "")}
            for p in obj.ports]
    elif isinstance(obj, ConfigMap):
        if obj.data:
            out["data"] = dict(obj.data)
        if obj.binary_data:
            out["binaryData"] = {k: base64.b64encode(v).decode()
                                 for k, v in obj.binary_data.items()}
    elif isinstance(obj, Secret):
        out["type"] = obj.type
        if obj.data:
            out["data"] = {k: base64.b64encode(v).decode() for k, v in obj.data.items()}
    elif hasattr(obj, "manifest_spec"):  # network policies: the defaulted spec as stored
        out["apiVersion"] = obj.api_version
        if hasattr(obj, "manifest_fields"):  # StorageClass: top-level fields, no spec
            out.update(obj.manifest_fields())
        else:
            out["spec"] = dict(obj.manifest_spec)
        if hasattr(obj, "manifest_status"):  # PersistentVolume(Claim) phase
            out["status"] = dict(obj.manifest_status)
    elif isinstance(obj, Ingress):
        out["spec"] = _ingress(obj)
        out["status"] = _lb_status(obj.load_balancer_ingress)
    elif isinstance(obj, IngressClass):
        spec: dict[str, Any] = {"controller": obj.controller}
        if obj.parameters:
            spec["parameters"] = dict(obj.parameters)
        out["spec"] = spec
    elif isinstance(obj, Deployment):
        strategy: dict[str, Any] = {"type": obj.strategy_type}
        if obj.strategy_type == "RollingUpdate":
            strategy["rollingUpdate"] = {"maxSurge": obj.max_surge,
                                         "maxUnavailable": obj.max_unavailable}
        out["spec"] = {"replicas": obj.replicas, "selector": _selector(obj.selector),
                       "template": dict(obj.template), "strategy": strategy,
                       "minReadySeconds": obj.min_ready_seconds,
                       "revisionHistoryLimit": obj.revision_history_limit}
        if obj.paused:
            out["spec"]["paused"] = True
    elif isinstance(obj, ReplicaSet):
        out["spec"] = {"replicas": obj.replicas, "selector": _selector(obj.selector),
                       "template": dict(obj.template)}
    elif isinstance(obj, StatefulSet):
        spec = {"replicas": obj.replicas, "selector": _selector(obj.selector),
                "template": dict(obj.template),
                "podManagementPolicy": obj.pod_management_policy,
                "updateStrategy": {"type": obj.update_strategy_type}}
        if obj.service_name:
            spec["serviceName"] = obj.service_name
        if obj.ordinals_start:
            spec["ordinals"] = {"start": obj.ordinals_start}
        if obj.volume_claim_templates:
            spec["volumeClaimTemplates"] = [dict(t) for t in obj.volume_claim_templates]
        out["spec"] = spec
    elif isinstance(obj, DaemonSet):
        out["spec"] = {"selector": _selector(obj.selector), "template": dict(obj.template)}
    elif isinstance(obj, Job):
        spec = {"template": dict(obj.template), "parallelism": obj.parallelism,
                "backoffLimit": obj.backoff_limit}
        if obj.completions is not None:
            spec["completions"] = obj.completions
        if obj.selector is not None:
            spec["selector"] = _selector(obj.selector)
        out["spec"] = spec
        if obj.status is not None:
            out["status"] = render_controllers.job_status(obj.status)
    if isinstance(obj, Deployment) and obj.status is not None:
        out["status"] = render_controllers.deployment_status(obj.status)
    return out


class _Dumper(yaml.SafeDumper):
    """Strings as kubectl (sigs.k8s.io/yaml, go-yaml) prints them: plain when they read back
    as the same string, else double-quoted (``status: "False"``, ``resourceVersion: "65"``,
    ``""``), multi-line text as a literal block (``Corefile: |``). Also quotes the plain
    scalars that kubectl's YAML 1.1 reader takes for booleans (``y``, ``n``)."""


_STR = "tag:yaml.org,2002:str"


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value.rstrip("\n"):
        return dumper.represent_scalar(_STR, value, style="|")
    plain = (value not in ("y", "Y", "n", "N") and value != ""
             and dumper.resolve(yaml.ScalarNode, value, (True, False)) == _STR
             and dumper.analyze_scalar(value).allow_block_plain)
    return dumper.represent_scalar(_STR, value, style=None if plain else '"')


_Dumper.add_representer(str, _represent_str)


def to_yaml(manifest: Any) -> str:
    """YAML text for a manifest dict (or a list of them, as a multi-document stream) that
    ``read`` and kubectl both read back unchanged; keys keep their order."""
    if isinstance(manifest, list):
        return yaml.dump_all(manifest, Dumper=_Dumper, sort_keys=False,
                             default_flow_style=False)
    return yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
