"""What ``knet up`` exposes on loopback, decided from cluster state (pure).

Invariants:
- Loopback addresses are stable for the life of one ``knet up``: the nodes present at start get
  127.0.1.2, 127.0.1.3, … in name order (``kubectl get nodes`` order), LoadBalancer IPs get
  127.0.2.1, 127.0.2.2, … in address order; objects appearing later take the next free address
  and a removed object's address is not reused. Another cluster running at the same time gets
  another slot (``knet.expose.state``): slot k ≥ 1 uses 127.(2k+1).x.y for nodes and
  127.(2k+2).x.y for LoadBalancer IPs, so two clusters never share an address. The
  ``AddressBook`` holds that memory; every other function here is a pure function of the
  objects passed in.
- The outside address that stands for a real client is derived from the client's loopback
  source address alone: 127.a.b.d (or ::1) → 203.0.113.d / 2001:db8::d (RFC 5737 / RFC 3849
  documentation ranges), d outside 1..254 → 1. So ``curl --interface 127.0.0.7`` is client
  203.0.113.7, and every real client from 127.0.0.1 is 203.0.113.1.
- The node that answers for a LoadBalancer IP is chosen the way MetalLB's layer-2 mode does
  (speaker/layer2_controller.go ``ShouldAnnounce``): candidate nodes are the Ready nodes
  without ``node.kubernetes.io/exclude-from-external-load-balancers``; with
  ``externalTrafficPolicy: Local`` only those with a ready endpoint of the Service; the winner is
  the first after sorting by ``sha256(node + "#" + ip)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

IPAddress = IPv4Address | IPv6Address

NODE_BASE = IPv4Address("127.0.1.2")
LB_BASE = IPv4Address("127.0.2.1")
_FIRST_BLOCK = 254  # 127.0.1.2-127.0.1.255 / 127.0.2.1-127.0.2.254, then 127.1.x.y / 127.2.x.y
from knet.control.speaker import EXCLUDE_LB_LABEL, announcer, lb_ips  # noqa: E402,F401

OUTSIDE_V4 = IPv4Address("203.0.113.0")
OUTSIDE_V6 = IPv6Address("2001:db8::")


def node_loopback(index: int, slot: int = 0) -> IPv4Address:
    """The loopback address of the ``index``-th node (0-based): 127.0.1.2, 127.0.1.3, …
    (slot k ≥ 1, another running cluster: 127.(2k+1).0.2, …)."""
    if slot:
        return IPv4Address(f"127.{2 * slot + 1}.0.2") + index
    if index < _FIRST_BLOCK:
        return NODE_BASE + index
    return IPv4Address("127.1.0.1") + (index - _FIRST_BLOCK)


def lb_loopback(index: int, slot: int = 0) -> IPv4Address:
    """The loopback address of the ``index``-th LoadBalancer IP (0-based): 127.0.2.1, …
    (slot k ≥ 1: 127.(2k+2).0.1, …)."""
    if slot:
        return IPv4Address(f"127.{2 * slot + 2}.0.1") + index
    if index < _FIRST_BLOCK:
        return LB_BASE + index
    return IPv4Address("127.2.0.1") + (index - _FIRST_BLOCK)


def outside_ips(client_host: str) -> tuple[IPv4Address, IPv6Address]:
    """The outside (v4, v6) addresses that stand for a real client at ``client_host``."""
    try:
        ip = ip_address(client_host.split("%", 1)[0])
    except ValueError:
        d = 1
    else:
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        d = ip.packed[-1] if isinstance(ip, IPv4Address) else 1
    if not 1 <= d <= 254:
        d = 1
    return OUTSIDE_V4 + d, OUTSIDE_V6 + d


def check_loopback(host: str, what: str) -> str:
    """``host`` as an address text, or a UsageError if it is not loopback."""
    from knet.errors import UsageError

    h = host.strip("[]")
    if h == "localhost":
        return "127.0.0.1"
    try:
        ip = ip_address(h)
    except ValueError:
        raise UsageError(f"{what}: expected a loopback IP address (127.0.0.0/8 or ::1), "
                         f"got {host!r}") from None
    if not ip.is_loopback:
        raise UsageError(f"{what}: refusing to bind {ip}: knet up listens on loopback only "
                         f"(127.0.0.0/8 or ::1)")
    return str(ip)


def parse_listen(value: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` / ``[::1]:PORT`` / ``PORT`` → (loopback host, port); loopback enforced."""
    from knet.errors import UsageError

    v = value.strip()
    if v.isdigit():
        host, port_s = "127.0.0.1", v
    elif v.startswith("["):
        host, _, rest = v[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port_s = v.rpartition(":")
        if not sep or ":" in host:
            host, port_s = v, ""
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise UsageError(f"{what}: expected HOST:PORT with a port in 0-65535, got {value!r}")
    return check_loopback(host, what), int(port_s)


class AddressBook:
    """Stable loopback addresses for nodes and LoadBalancer IPs during one ``knet up``."""

    def __init__(self, slot: int = 0) -> None:
        self.slot = slot
        self.nodes: dict[str, IPv4Address] = {}
        self.lbs: dict[IPAddress, IPv4Address] = {}

    def update(self, node_names: Iterable[str], lb_ips: Iterable[IPAddress]) -> None:
        for name in sorted(n for n in node_names if n not in self.nodes):
            self.nodes[name] = node_loopback(len(self.nodes), self.slot)
        for ip in sorted((i for i in set(lb_ips) if i not in self.lbs),
                         key=lambda a: (a.version, a)):
            self.lbs[ip] = lb_loopback(len(self.lbs), self.slot)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a loopback listener relays to: ``dst``:``port`` in the fabric."""

    kind: str  # "nodeport" | "loadbalancer"
    service: str  # ns/name
    dst: IPAddress
    port: int
    node: str  # the node the connection enters (the NodePort's node / the LB announcer)


ListenKey = tuple[str, int, str]  # (loopback address, port, "tcp" | "udp")


def node_ip(node: Any, family: int = 4) -> IPAddress | None:
    ips = node.ips(family) or node.ips()
    return ips[0] if ips else None


def listeners(book: AddressBook, nodes: list[Any], services: list[Any], slices: list[Any]
              ) -> dict[ListenKey, Target]:
    """Every loopback listener ``knet up`` should have, with its target (book updated)."""
    book.update([n.name for n in nodes], [ip for s in services for ip in lb_ips(s)])
    out: dict[ListenKey, Target] = {}
    by_name = {n.name: n for n in nodes}
    for svc in services:
        stype = str(svc.spec.type)
        if stype not in ("NodePort", "LoadBalancer"):
            continue
        for p in svc.spec.ports:
            proto = str(p.protocol).lower()
            if proto not in ("tcp", "udp"):
                continue  # SCTP has no portable loopback socket
            if p.node_port:
                for name, node in by_name.items():
                    dst = node_ip(node)
                    if dst is None:
                        continue
                    out[(str(book.nodes[name]), p.node_port, proto)] = Target(
                        "nodeport", svc.key, dst, p.node_port, name)
            for ip in lb_ips(svc):
                who = announcer(ip, svc, nodes, slices)
                out[(str(book.lbs[ip]), p.port, proto)] = Target(
                    "loadbalancer", svc.key, ip, p.port, who or "")
    return out
