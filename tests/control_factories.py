"""Small factories of model objects for the control-plane tests."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from knet.model.apps import DaemonSet, Deployment, Job, ReplicaSet, StatefulSet
from knet.model.core import (
    Container, ContainerPort, Node, NodeSelectorTerm, Pod, PodCondition, PodSpec, PodStatus,
    PreferredSchedulingTerm, Protocol, Service, ServicePort, ServiceSpec, ServiceType, Taint,
    Toleration,
)
from knet.model.meta import LabelSelector, LabelSelectorRequirement, ObjectMeta

_index = [1000]


def _next() -> int:
    _index[0] += 1
    return _index[0]


def node(name: str, *, labels: dict[str, str] | None = None, taints: tuple[Taint, ...] = (),
         cpu: str = "8", memory: str = "16Gi", pods: str = "110",
         unschedulable: bool = False) -> Node:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi"}
    return Node(ObjectMeta(name, labels={"kubernetes.io/hostname": name, **(labels or {})},
                           creation_index=_next()),
                taints=taints, capacity=dict(alloc), allocatable=dict(alloc),
                unschedulable=unschedulable)


def container(name: str = "app", *, cpu: str = "", memory: str = "",
              ports: tuple[ContainerPort, ...] = ()) -> Container:
    req = {}
    if cpu:
        req["cpu"] = cpu
    if memory:
        req["memory"] = memory
    return Container(name=name, image="knet/echo", ports=ports, requests=req)


def pod(name: str, ns: str = "default", *, labels: dict[str, str] | None = None,
        containers: tuple[Container, ...] | None = None, node_name: str = "",
        node_selector: dict[str, str] | None = None,
        required: tuple[NodeSelectorTerm, ...] = (),
        preferred: tuple[PreferredSchedulingTerm, ...] = (),
        tolerations: tuple[Toleration, ...] = (), hostname: str = "", subdomain: str = "",
        host_network: bool = False, anti_affinity: dict[str, Any] | None = None,
        status: PodStatus | None = None, grace: int = 30) -> Pod:
    spec = PodSpec(containers=containers or (container(),), node_name=node_name,
                   node_selector=node_selector or {}, required_node_affinity=required,
                   preferred_node_affinity=preferred, tolerations=tolerations,
                   hostname=hostname, subdomain=subdomain, host_network=host_network,
                   pod_anti_affinity=anti_affinity, termination_grace_period_seconds=grace)
    return Pod(ObjectMeta(name, ns, labels=labels or {}, creation_index=_next()), spec,
               status or PodStatus())


def expr(key: str, op: str, *values: str) -> LabelSelectorRequirement:
    return LabelSelectorRequirement(key, op, tuple(values))


def term(*exprs: LabelSelectorRequirement, fields: tuple = ()) -> NodeSelectorTerm:
    return NodeSelectorTerm(tuple(exprs), tuple(fields))


def service(name: str, ns: str = "default", *, selector: dict[str, str] | None = None,
            ports: tuple[ServicePort, ...] = (ServicePort(80, target_port=8080),),
            type: ServiceType = ServiceType.CLUSTER_IP, cluster_ip: str = "",
            publish_not_ready: bool = False, etp: str = "", lb_ip: str = "",
            annotations: dict[str, str] | None = None, traffic_distribution: str = "",
            families: tuple[int, ...] = (), policy: str = "") -> Service:
    return Service(ObjectMeta(name, ns, annotations=annotations or {}, creation_index=_next()),
                   ServiceSpec(type=type, ports=ports, selector=selector,
                               cluster_ip=cluster_ip,
                               cluster_ips=(cluster_ip,) if cluster_ip else (),
                               publish_not_ready_addresses=publish_not_ready,
                               external_traffic_policy=etp, load_balancer_ip=lb_ip,
                               traffic_distribution=traffic_distribution,
                               ip_families=families, ip_family_policy=policy))


def template(labels: dict[str, str], *, image: str = "knet/echo", cpu: str = "",
             ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": image}
    if cpu:
        c["resources"] = {"requests": {"cpu": cpu}}
    if ports:
        c["ports"] = ports
    return {"metadata": {"labels": dict(labels)}, "spec": {"containers": [c], **spec}}


def deployment(name: str, replicas: int = 3, ns: str = "default", **kw: Any) -> Deployment:
    labels = {"app": name}
    t = template(labels, **{k: v for k, v in kw.items()
                            if k not in ("max_surge", "max_unavailable", "strategy_type")})
    extra = {k: v for k, v in kw.items() if k in ("max_surge", "max_unavailable", "strategy_type")}
    return Deployment(ObjectMeta(name, ns, creation_index=_next()), LabelSelector(labels), t,
                      replicas=replicas, **extra)


def replicaset(name: str, replicas: int = 3, ns: str = "default") -> ReplicaSet:
    labels = {"app": name}
    return ReplicaSet(ObjectMeta(name, ns, creation_index=_next()), LabelSelector(labels),
                      template(labels), replicas=replicas)


def statefulset(name: str, replicas: int = 3, ns: str = "default", *, service_name: str = "",
                policy: str = "OrderedReady", start: int = 0) -> StatefulSet:
    labels = {"app": name}
    return StatefulSet(ObjectMeta(name, ns, creation_index=_next()), LabelSelector(labels),
                       template(labels), service_name=service_name, replicas=replicas,
                       pod_management_policy=policy, ordinals_start=start)


def daemonset(name: str, ns: str = "default", **spec: Any) -> DaemonSet:
    labels = {"app": name}
    return DaemonSet(ObjectMeta(name, ns, creation_index=_next()), LabelSelector(labels),
                     template(labels, **spec))


def job(name: str, ns: str = "default", *, completions: int | None = 1,
        parallelism: int = 1) -> Job:
    return Job(ObjectMeta(name, ns, creation_index=_next()),
               template({}, restartPolicy="Never"), completions=completions,
               parallelism=parallelism)


def running(ip: str, node: str = "", ready: bool = True) -> PodStatus:
    r = "True" if ready else "False"
    return PodStatus(phase="Running", pod_ips=(ip_address(ip),),
                     conditions=(PodCondition("Ready", r), PodCondition("PodScheduled", "True")))


def tcp(port: int, name: str = "", target: int | str = 0) -> ServicePort:
    return ServicePort(port, Protocol.TCP, name, target or port)


def port(n: int, name: str = "", proto: str = "TCP") -> ContainerPort:
    return ContainerPort(n, name, Protocol(proto))


CP_TAINT = Taint("node-role.kubernetes.io/control-plane", "NoSchedule")
__all__ = [n for n in dir() if not n.startswith("_")]
