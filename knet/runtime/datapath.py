"""A node's datapath: its netfilter engine over its kube-proxy tables, as the fabric's Datapath.

Invariants:
- The fabric's ``Hop`` wants ``Verdict``/``RejectWith`` enum members (it compares by
  identity); ``knet.netfilter.Netfilter`` returns plain strings. This adapter maps one to the
  other and nothing else: every decision is the engine's, over the very RuleSets kube-proxy
  (``knet.proxy``) wrote for this node.
- Local addresses are the node's (Node.status.addresses); loopback is always local (engine).
- ``explain`` is off by default (hot path); traces switch it on to keep the matched rules.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address
from typing import Iterable

from knet.fabric.datapath import LOCAL, Hop, RejectWith, Verdict
from knet.netfilter import Netfilter, RuleSet
from knet.netfilter.packet import Packet

IPAddress = IPv4Address | IPv6Address

_VERDICT = {"ACCEPT": Verdict.ACCEPT, "DROP": Verdict.DROP, "REJECT": Verdict.REJECT}
_REJECT_WITH = {
    "icmp-port-unreachable": RejectWith.ICMP_PORT_UNREACHABLE,
    "icmp6-port-unreachable": RejectWith.ICMP_PORT_UNREACHABLE,
    "icmp-host-unreachable": RejectWith.ICMP_HOST_UNREACHABLE,
    "icmp6-addr-unreachable": RejectWith.ICMP_HOST_UNREACHABLE,
    "icmp-net-unreachable": RejectWith.ICMP_NET_UNREACHABLE,
    "icmp6-no-route": RejectWith.ICMP_NET_UNREACHABLE,
    "icmp-admin-prohibited": RejectWith.ICMP_ADMIN_PROHIBITED,
    "icmp6-adm-prohibited": RejectWith.ICMP_ADMIN_PROHIBITED,
    "tcp-reset": RejectWith.TCP_RESET,
}


class NetfilterDatapath:
    """``Datapath`` for one node: ``forward(packet, entered_from, now) -> Hop``."""

    __slots__ = ("node", "netfilter", "explain")

    def __init__(self, node: str, addresses: Iterable[IPAddress], *, seed: int | str = 0,
                 rulesets: dict[int, RuleSet] | None = None) -> None:
        self.node = node
        addrs = tuple(addresses)
        masq = {}
        for a in addrs:
            masq.setdefault(a.version, a)
        rs = rulesets or {}
        self.netfilter = Netfilter(rs.get(4), rs.get(6), local_addresses=addrs,
                                   masquerade_address=masq,
                                   rng=random.Random(f"{seed}:netfilter:{node}"))
        self.explain = False

    def set_ruleset(self, family: int, ruleset: RuleSet) -> None:
        self.netfilter.rulesets[family] = ruleset

    def set_addresses(self, addresses: Iterable[IPAddress]) -> None:
        addrs = tuple(addresses)
        self.netfilter.set_local_addresses(addrs)
        masq = {}
        for a in addrs:
            masq.setdefault(a.version, a)
        self.netfilter.masquerade_address = masq

    @property
    def conntrack(self):  # noqa: ANN201 - knet.netfilter.Conntrack
        return self.netfilter.conntrack

    def forward(self, packet: Packet, entered_from: str, now: float) -> Hop:
        if entered_from == LOCAL:
            r = self.netfilter.process(packet, "output", now, explain=self.explain)
        else:
            if packet.iif != entered_from:
                packet = packet.replace(iif=entered_from)
            r = self.netfilter.process(packet, "prerouting", now, explain=self.explain)
        verdict = _VERDICT[r.verdict]
        if verdict is Verdict.REJECT:
            return Hop(verdict, r.packet, r.local,
                       _REJECT_WITH.get(r.reject_with, RejectWith.ICMP_PORT_UNREACHABLE), r)
        return Hop(verdict, r.packet, r.local, RejectWith.ICMP_PORT_UNREACHABLE, r)

    def __repr__(self) -> str:
        return f"<NetfilterDatapath {self.node}>"
