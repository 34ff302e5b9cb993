"""Small factories for ingress tests: model objects built directly (no manifests layer)."""

from __future__ import annotations

import random
from typing import Any

from knet.ingress import ControllerConfig, Router, build_table, make_request
from knet.model import (
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice, HTTPIngressPath, Ingress,
    IngressBackend, IngressClass, IngressRule, IngressTLS, ObjectMeta, Service, ServicePort,
    ServiceSpec,
)

NGINX_CLASS = IngressClass(ObjectMeta(name="nginx"), controller="k8s.io/ingress-nginx")


def backend(svc: str, port: int | str = 80) -> IngressBackend:
    if isinstance(port, str):
        return IngressBackend(service_name=svc, service_port_name=port)
    return IngressBackend(service_name=svc, service_port_number=port)


def path(p: str, svc: str, port: int | str = 80, pt: str = "Prefix") -> HTTPIngressPath:
    return HTTPIngressPath(path=p, path_type=pt, backend=backend(svc, port))


def ingress(name: str, rules: list[tuple[str, list[HTTPIngressPath]]] | None = None, *,
            ns: str = "default", cls: str | None = "nginx", annotations: dict[str, str] | None = None,
            default: IngressBackend | None = None, tls: list[tuple[list[str], str]] | None = None,
            created: str = "", index: int = 0) -> Ingress:
    return Ingress(
        metadata=ObjectMeta(name=name, namespace=ns, annotations=annotations or {},
                            creation_timestamp=created, creation_index=index),
        ingress_class_name=cls or "",
        default_backend=default,
        rules=tuple(IngressRule(host=h, paths=tuple(ps)) for h, ps in (rules or [])),
        tls=tuple(IngressTLS(hosts=tuple(hs), secret_name=s) for hs, s in (tls or [])),
    )


def service(name: str, ports: list[tuple[int, str, int]] | None = None, *, ns: str = "default",
            cluster_ip: str = "10.96.0.10") -> Service:
    ports = ports if ports is not None else [(80, "http", 8080)]
    return Service(ObjectMeta(name=name, namespace=ns), ServiceSpec(
        ports=tuple(ServicePort(port=p, name=n, target_port=t) for p, n, t in ports),
        selector={"app": name}, cluster_ip=cluster_ip, cluster_ips=(cluster_ip,)))


def slice_(svc: str, ips: list[str], *, ns: str = "default", port: int = 8080,
           port_name: str = "http", ready: bool = True) -> EndpointSlice:
    return EndpointSlice(
        ObjectMeta(name=f"{svc}-abc", namespace=ns, labels={"kubernetes.io/service-name": svc}),
        endpoints=tuple(Endpoint(addresses=(ip,), conditions=EndpointConditions(ready=ready))
                        for ip in ips),
        ports=(EndpointPort(port=port, name=port_name),))


class World:
    """A mutable bag of objects with a route() helper."""

    def __init__(self, *ingresses: Ingress, classes: tuple[IngressClass, ...] = (NGINX_CLASS,),
                 config: ControllerConfig | None = None, seed: int = 1) -> None:
        self.ingresses = list(ingresses)
        self.classes = list(classes)
        self.services: list[Service] = []
        self.slices: list[EndpointSlice] = []
        self.config = config if config is not None else ControllerConfig()
        self.seed = seed
        self._router: Router | None = None

    def svc(self, name: str, ips: list[str] | None = None, *, ns: str = "default",
            ports: list[tuple[int, str, int]] | None = None, cluster_ip: str = "10.96.0.10") -> World:
        self.services.append(service(name, ports, ns=ns, cluster_ip=cluster_ip))
        for _port, pname, target in (ports or [(80, "http", 8080)]):
            self.slices.append(slice_(name, ips if ips is not None else ["10.244.0.5"], ns=ns,
                                      port=target, port_name=pname))
        self._router = None
        return self

    def router(self) -> Router:
        if self._router is None:
            self._router = Router(build_table(self.ingresses, self.classes, self.services,
                                              self.slices, self.config), random.Random(self.seed))
        return self._router

    def route(self, host: str, p: str, method: str = "GET", headers: Any = None, **kw: Any):
        return self.router().route(make_request(method, host, p, headers, **kw))
