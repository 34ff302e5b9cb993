"""Small factories for DNS tests: model objects built directly (no manifests layer)."""

from __future__ import annotations

from ipaddress import ip_address

from knet.model.core import (Container, Namespace, Pod, PodCondition, PodSpec, PodStatus, Protocol,
                             Service, ServicePort, ServiceSpec, ServiceType)
from knet.model.discovery import (SERVICE_NAME_LABEL, Endpoint, EndpointConditions, EndpointPort,
                                  EndpointSlice, ObjectReference)
from knet.model.meta import ObjectMeta

_counter = [0]


def meta(ns: str, name: str, labels: dict | None = None) -> ObjectMeta:
    _counter[0] += 1
    return ObjectMeta(name=name, namespace=ns, labels=labels or {}, creation_index=_counter[0])


def ns(name: str) -> Namespace:
    return Namespace(ObjectMeta(name=name))


def svc(ns_: str, name: str, ip: str | tuple[str, ...] = "", ports=(), *, headless: bool = False,
        external_name: str = "", publish_not_ready: bool = False) -> Service:
    sports = tuple(ServicePort(port=p[0], name=p[1], protocol=Protocol(p[2] if len(p) > 2 else "TCP"))
                   for p in ports)
    if external_name:
        spec = ServiceSpec(type=ServiceType.EXTERNAL_NAME, external_name=external_name, ports=sports)
    elif headless:
        spec = ServiceSpec(cluster_ip="None", cluster_ips=("None",), ports=sports, selector={"a": "b"},
                           publish_not_ready_addresses=publish_not_ready)
    else:
        ips = (ip,) if isinstance(ip, str) else tuple(ip)
        spec = ServiceSpec(cluster_ip=ips[0], cluster_ips=ips, ports=sports, selector={"a": "b"})
    return Service(meta(ns_, name), spec)


def ep(*addresses: str, ready: bool | None = True, hostname: str = "", pod: str = "") -> Endpoint:
    return Endpoint(addresses=tuple(addresses), conditions=EndpointConditions(ready=ready),
                    hostname=hostname,
                    target_ref=ObjectReference(kind="Pod", name=pod) if pod else None)


def eps(ns_: str, service: str, endpoints, ports=(), *, name: str = "", family: str = "IPv4") -> EndpointSlice:
    eports = tuple(EndpointPort(port=p[0], name=p[1], protocol=Protocol(p[2] if len(p) > 2 else "TCP"))
                   for p in ports)
    return EndpointSlice(meta(ns_, name or f"{service}-abc{family[-1]}", {SERVICE_NAME_LABEL: service}),
                         address_type=family, endpoints=tuple(endpoints), ports=eports)


def pod(ns_: str, name: str, ip: str, *, ready: bool = True, hostname: str = "", subdomain: str = "",
        dns_policy: str = "ClusterFirst", dns_config=None, host_aliases=(), host_network: bool = False) -> Pod:
    return Pod(meta(ns_, name),
               PodSpec(containers=(Container(name="c"),), hostname=hostname, subdomain=subdomain,
                       dns_policy=dns_policy, dns_config=dns_config, host_aliases=tuple(host_aliases),
                       host_network=host_network),
               PodStatus(phase="Running", pod_ips=(ip_address(ip),) if ip else (),
                         conditions=(PodCondition("Ready", "True" if ready else "False"),)))


def shop_objects():
    """Reference §6: namespace shop, services cart, cart-db (headless StatefulSet), payments."""
    services = [
        svc("shop", "cart", "10.96.7.20", [(80, "http"), (9090, "grpc")]),
        svc("shop", "cart-db", headless=True, ports=[(5432, "pg")]),
        svc("shop", "payments", external_name="payments.example.net"),
    ]
    slices = [
        eps("shop", "cart", [ep("10.244.1.5"), ep("10.244.1.12"), ep("10.244.2.7")],
            [(8080, "http"), (9090, "grpc")]),
        eps("shop", "cart-db", [ep("10.244.1.30", hostname="cart-db-0", pod="cart-db-0"),
                                ep("10.244.2.31", hostname="cart-db-1", pod="cart-db-1"),
                                ep("10.244.1.32", hostname="cart-db-2", pod="cart-db-2", ready=False)],
            [(5432, "pg")]),
    ]
    return services, slices, [ns("shop")]
