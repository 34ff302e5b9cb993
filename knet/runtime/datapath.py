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
- The arrival interface reaches the engine as ``process(..., iif=…)`` when the engine takes
  it (no packet copy); older engines get a packet with ``iif`` set.
- ``explain`` is off by default (hot path); captures switch it on to keep the matched rules.
"""

from __future__ import annotations

import inspect
from typing import Any

from knet.fabric.datapath import LOCAL
from knet.netfilter.packet import Packet


def _takes_iif(engine: Any) -> bool:
    try:
        return "iif" in inspect.signature(engine.process).parameters
    except (TypeError, ValueError):
        return False


class NodeDatapath:
    """``Datapath`` for one node: ``forward(packet, entered_from, now) -> Hop``-like Result."""

    __slots__ = ("node", "engine", "mode", "explain", "_process", "_iif")

    def __init__(self, node: str, engine: Any, *, mode: str = "iptables") -> None:
        self.node = node
        self.engine = engine
        self.mode = mode
        self.explain = False
        self._process = engine.process
        self._iif = _takes_iif(engine)

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
        if entered_from == LOCAL:
            return self._process(packet, "output", now, explain=self.explain)
        if self._iif:
            return self._process(packet, "prerouting", now, explain=self.explain,
                                 iif=entered_from)
        if packet.iif != entered_from:
            packet = packet.replace(iif=entered_from)
        return self._process(packet, "prerouting", now, explain=self.explain)

    def __repr__(self) -> str:
        return f"<NodeDatapath {self.node} {self.mode}>"


NetfilterDatapath = NodeDatapath  # the iptables-only name it had before IPVS/nftables ran

__all__ = ["NetfilterDatapath", "NodeDatapath"]
