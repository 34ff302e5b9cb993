"""knet's Gateway API controller: the objects it creates for each Gateway it serves.

Like Envoy Gateway and NGINX Gateway Fabric, every Gateway of a knet GatewayClass gets a
LoadBalancer Service (address from the cluster's LB pool, the Gateway's
``status.addresses``) whose ports are the listeners' ports, so traffic to a Gateway crosses
kube-proxy like any Service's. Pure: objects in, objects out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from knet.gateway.model import CONTROLLER, GatewayObject
from knet.gateway.routes import BUILTIN_CLASS
from knet.model.apps import Deployment
from knet.model.core import Protocol, Service, ServicePort, ServiceSpec, ServiceType
from knet.model.meta import LabelSelector, ObjectMeta

GATEWAY_LABEL = "gateway.networking.k8s.io/gateway-name"
MANAGED_BY = {"app.kubernetes.io/managed-by": "knet-gateway"}
IMAGE = "knet/gateway:v1"


def service_name(gateway: str) -> str:
    return f"knet-gateway-{gateway}"[:63].rstrip("-")


def served(objects: Iterable[Any]) -> list[GatewayObject]:
    """The Gateways whose class belongs to knet's controller (the built-in ``knet`` included)."""
    objs = list(objects)
    classes = {o.metadata.name: o for o in objs if getattr(o, "kind", "") == "GatewayClass"}
    ours = {n for n, c in classes.items() if c.spec.get("controllerName") == CONTROLLER}
    if BUILTIN_CLASS not in classes:
        ours.add(BUILTIN_CLASS)
    return [o for o in objs if getattr(o, "kind", "") == "Gateway"
            and o.spec.get("gatewayClassName") in ours]


def gateway_service(gw: GatewayObject) -> Service:
    ports: dict[int, ServicePort] = {}
    for ls in gw.spec.get("listeners", ()):
        p = ls["port"]
        if p not in ports and ls["protocol"] != "UDP":
            ports[p] = ServicePort(p, Protocol.TCP, f"{ls['protocol'].lower()}-{p}", p)
    labels = {GATEWAY_LABEL: gw.metadata.name, **MANAGED_BY}
    wanted = [a["value"] for a in gw.spec.get("addresses", ())
              if a.get("type", "IPAddress") == "IPAddress" and a.get("value")]
    return Service(
        ObjectMeta(name=service_name(gw.metadata.name), namespace=gw.metadata.namespace,
                   labels=labels),
        ServiceSpec(type=ServiceType.LOAD_BALANCER, ports=tuple(ports.values()),
                    selector=dict(labels), external_traffic_policy="Cluster",
                    load_balancer_ip=wanted[0] if wanted else ""))


def gateway_deployment(gw: GatewayObject) -> Deployment:
    """The data-plane pods (built-in image ``knet/gateway``: knet.gateway.dataplane)."""
    labels = {GATEWAY_LABEL: gw.metadata.name, **MANAGED_BY}
    ports = sorted({ls["port"] for ls in gw.spec.get("listeners", ()) if ls["protocol"] != "UDP"})
    template = {
        "metadata": {"labels": dict(labels)},
        "spec": {"containers": [{
            "name": "gateway", "image": IMAGE,
            "args": ["--gateway", gw.metadata.key],
            "ports": [{"containerPort": p, "protocol": "TCP"} for p in ports],
        }]},
    }
    return Deployment(ObjectMeta(name=service_name(gw.metadata.name),
                                 namespace=gw.metadata.namespace, labels=dict(labels)),
                      selector=LabelSelector(dict(labels)), template=template, replicas=1)


def generated_objects(objects: Iterable[Any]) -> list[Any]:
    """What the controller adds for the input's Gateways (skipping names the user took)."""
    objs = list(objects)
    taken = {(o.kind, o.metadata.namespace, o.metadata.name) for o in objs}
    out: list[Any] = []
    for gw in served(objs):
        svc = gateway_service(gw)
        if ("Service", svc.metadata.namespace, svc.metadata.name) not in taken and svc.spec.ports:
            out.append(svc)
            dep = gateway_deployment(gw)
            if ("Deployment", dep.metadata.namespace, dep.metadata.name) not in taken:
                out.append(dep)
    return out


__all__ = ["GATEWAY_LABEL", "gateway_service", "generated_objects", "served", "service_name"]
