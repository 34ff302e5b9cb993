"""A node's datapath: its kube-proxy mode's engine, as the fabric's Datapath.

Invariants:
- The engine is the mode's (``knet.netfilter.Netfilter`` for iptables, ``IPVSNetfilter`` for
  IPVS, ``knet.netfilter.nft.Nftables`` for nftables), built by ``knet.proxy.modes`` and
  updated in place by every kube-proxy sync: the datapath wraps the same object for the
  node's lifetime, so conntrack (and IPVS's connections) persist across syncs.
- ``forward`` hands back the engine's own ``Result``: it is the fabric's ``Hop`` by duck type
  (``verdict``/``packet``/``local``/``reject_with``; the fabric maps the engines' plain
  strings itself, and wraps a Result in a ``Hop`` — ``explanation`` = the Result — only for
  its taps). So a packet costs one engine call here, nothing else: every decision is the
  engine's, over the very state kube-proxy (``knet.proxy``) last synced for this node.
- The engine is a ``knet.netfilter.engine.Engine``: one ``forward(packet, iif, now,
  explain=…)`` whatever the mode. Network policy (``knet.policy``) is the one hook after it:
  when the cluster has policies, ``policy`` judges each new connection's first packet.
- ``explain`` is off by default (hot path); captures switch it on to keep the matched rules.
"""

from __future__ import annotations

from typing import Any

from knet.netfilter.packet import Packet


class NodeDatapath:
    """``Datapath`` for one node: ``forward(packet, entered_from, now) -> Hop``-like Result."""

    __slots__ = ("node", "engine", "mode", "explain", "policy")

    def __init__(self, node: str, engine: Any, *, mode: str = "iptables",
                 policy: Any = None) -> None:
        self.node = node
        self.engine = engine
        self.mode = mode
        self.explain = False
        self.policy = policy  # knet.policy.hook.PolicyHook, or None

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

    def forward(self, packet: Packet, entered_from: str, now: float) -> Any:
        r = self.engine.forward(packet, entered_from, now, explain=self.explain)
        hook = self.policy
        if hook is None or not hook.active:
            return r
        return hook(r, entered_from, now, self.explain)

    def __repr__(self) -> str:
        return f"<NodeDatapath {self.node} {self.mode}>"


NetfilterDatapath = NodeDatapath  # the iptables-only name it had before IPVS/nftables ran

__all__ = ["NetfilterDatapath", "NodeDatapath"]
