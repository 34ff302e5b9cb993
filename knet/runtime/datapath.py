"""A node's datapath: its kube-proxy mode's engine, as the fabric's Datapath.

Invariants:
- The engine is the mode's (``knet.netfilter.Netfilter`` for iptables, ``IPVSNetfilter`` for
  IPVS, ``knet.netfilter.nft.Nftables`` for nftables), built by ``knet.proxy.modes`` and
  updated in place by every kube-proxy sync: the datapath wraps the same object for the
  node's lifetime, so conntrack (and IPVS's connections) persist across syncs.
- The fabric's ``Hop`` wants ``Verdict``/``RejectWith`` enum members (it compares by
  identity); the engines return plain strings. This adapter maps one to the other and
  nothing else: every decision is the engine's, over the very state kube-proxy
  (``knet.proxy``) last synced for this node.
- ``explain`` is off by default (hot path); traces switch it on to keep the matched rules.
"""

from __future__ import annotations

from typing import Any

from knet.fabric.datapath import LOCAL, Hop, RejectWith, Verdict
from knet.netfilter.packet import Packet

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


class NodeDatapath:
    """``Datapath`` for one node: ``forward(packet, entered_from, now) -> Hop``."""

    __slots__ = ("node", "engine", "mode", "explain")

    def __init__(self, node: str, engine: Any, *, mode: str = "iptables") -> None:
        self.node = node
        self.engine = engine
        self.mode = mode
        self.explain = False

    @property
    def netfilter(self) -> Any:
        """The engine (kept under its historical name)."""
        return self.engine

    @property
    def conntrack(self):  # noqa: ANN201 - knet.netfilter.Conntrack
        return self.engine.conntrack

    def enumerate_outcomes(self, packet: Packet, hook_path: str = "prerouting", *,
                           affinity: bool = False) -> Any:
        """Every first-packet outcome over the live state (no connection state touched)."""
        return self.engine.enumerate_outcomes(packet, hook_path, affinity=affinity)

    def forward(self, packet: Packet, entered_from: str, now: float) -> Hop:
        if entered_from == LOCAL:
            r = self.engine.process(packet, "output", now, explain=self.explain)
        else:
            if packet.iif != entered_from:
                packet = packet.replace(iif=entered_from)
            r = self.engine.process(packet, "prerouting", now, explain=self.explain)
        verdict = _VERDICT[r.verdict]
        if verdict is Verdict.REJECT:
            return Hop(verdict, r.packet, r.local,
                       _REJECT_WITH.get(r.reject_with, RejectWith.ICMP_PORT_UNREACHABLE), r)
        return Hop(verdict, r.packet, r.local, RejectWith.ICMP_PORT_UNREACHABLE, r)

    def __repr__(self) -> str:
        return f"<NodeDatapath {self.node} {self.mode}>"


NetfilterDatapath = NodeDatapath  # the iptables-only name it had before IPVS/nftables ran

__all__ = ["NetfilterDatapath", "NodeDatapath"]
