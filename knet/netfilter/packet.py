"""The light packet record that moves through the fabric and the netfilter engine.

Invariants: a Packet is immutable; NAT produces a new Packet (``replace``). Addresses are
``ipaddress`` objects. Scapy is never imported here: wire packets are built only when a capture
is written (knet.trace).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

IPAddress = IPv4Address | IPv6Address

# Interface names every layer shares (the fabric, the datapaths, the path tracer).
WIRE = "eth0"
"""``entered_from`` for packets arriving from another node or from outside the cluster."""

LOCAL = ""
"""``entered_from`` for packets the node itself generates (host-network sockets)."""


def veth_name(netns: str) -> str:
    """Host-side veth name as kindnet/ptp CNI names it: ``veth`` + 8 hex digits."""
    return "veth" + hashlib.sha1(netns.encode()).hexdigest()[:8]


class Proto(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"
    ICMP = "icmp"


@dataclass(frozen=True, slots=True)
class Packet:
    src: IPAddress
    dst: IPAddress
    proto: Proto
    sport: int = 0
    dport: int = 0
    # TCP flags as the letters tcpdump prints, in order S, F, R, P, A (e.g. "S", "SA", "PA", "FA").
    flags: str = ""
    seq: int = 0
    ack: int = 0
    payload: bytes = b""
    mark: int = 0
    # Interfaces: "" when not applicable. Pods' host-side veths are named like kindnet's ("veth…").
    iif: str = ""
    oif: str = ""
    # ICMP errors (REJECT, port unreachable): type/code and the offending packet's header.
    icmp_type: int = 0
    icmp_code: int = 0
    orig: Packet | None = None

    def replace(self, **changes: Any) -> Packet:
        return dataclasses.replace(self, **changes)

    @property
    def family(self) -> int:
        return self.src.version

    def endpoint_str(self, side: str = "dst") -> str:
        ip = self.dst if side == "dst" else self.src
        port = self.dport if side == "dst" else self.sport
        return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"

    def __repr__(self) -> str:
        f = f" [{self.flags}]" if self.flags else ""
        return (f"<{self.proto} {self.endpoint_str('src')} → {self.endpoint_str('dst')}{f}"
                f"{' len=' + str(len(self.payload)) if self.payload else ''}>")
