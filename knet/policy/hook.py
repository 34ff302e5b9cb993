"""The one network-policy hook every kube-proxy mode's datapath runs after its engine.

Invariants (kube-network-policies: a netfilter chain at postrouting priority srcnat − 5,
NFQUEUE for the first packet of a connection, accepted connections marked in conntrack):
- Judged: a packet that created or continues an unjudged conntrack entry in the original
  direction while the entry is NEW (TCP SYN, SCTP INIT, UDP before any reply), after every
  DNAT (the engine's translated destination) and before SNAT (the source as it arrived).
- Accepted ⇒ the verdict is recorded on the entry (``CtEntry.policy`` = (index generation,
  decision)): later packets and replies pass without judging, and a policy change leaves
  established connections alone — unless ``PolicyIndex.strict`` (KNP's opt-in strict mode):
  then the next original-direction packet after any change is judged again, and a denied
  connection is cut (every later packet, both directions, dropped).
- Denied ⇒ the packet is dropped (no ICMP, no RST: a TCP connect times out) and the entry
  removed, as an NFQUEUE drop leaves it unconfirmed; a retransmission is judged again.
- Each node judges its own pods only: egress when the source pod runs here, ingress when
  the destination pod does. Traffic the node itself sends (``iif == ""``, or a source that
  is one of its addresses) is always allowed into its pods (kubelet probes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from knet.netfilter.engine import Result, Step
from knet.netfilter.packet import Packet
from knet.policy.index import Decision, PolicyIndex


class PolicyHook:
    """Judge new connections on one node (``__call__(result, iif, now, explain)``)."""

    __slots__ = ("index", "node", "conntrack")

    def __init__(self, index: PolicyIndex, node: str, conntrack: Any) -> None:
        self.index = index
        self.node = node
        self.conntrack = conntrack

    @property
    def active(self) -> bool:
        return self.index.active

    def __call__(self, r: Result, iif: str, now: float, explain: bool) -> Result:
        e = r.entry
        if e is None or r.verdict != "ACCEPT":
            return r
        idx = self.index
        judged = e.policy
        if judged is not None:
            # judged already: pass, unless strict mode re-evaluates after a change
            if not idx.strict:
                return r
            gen, d = cast("tuple[int, Decision]", judged)
            if not d.allowed:
                return r.with_verdict("DROP", policy_step(d, r.packet, "drop") if explain
                                      else None)
            if gen == idx.generation or r.direction != "original":
                return r
        elif r.direction != "original" or (r.ctstate != "NEW" and not idx.strict):
            return r  # (strict mode also judges connections made before any policy)
        arrived, out = r.arrived, r.packet
        d = idx.judge(arrived.src, out.dst, out.dport, str(out.proto), node=self.node,
                      from_node=iif == "")
        if d.allowed:
            e.policy = (idx.generation, d)
            if explain and d.involved:
                return r.with_verdict(r.verdict, policy_step(d, out, "accept"))
            return r
        if judged is not None or r.ctstate != "NEW":  # strict: cut it, both directions
            e.policy = (idx.generation, d)
        else:  # the NFQUEUE drop: the entry is never confirmed
            self.conntrack.remove(e)
        return r.with_verdict("DROP", policy_step(d, out, "drop") if explain else None)


@dataclass(frozen=True, slots=True)
class PolicyStep(Step):
    """The policy hook's explanation step, with the structured decision (Hubble's
    ``*_allowed_by``/``*_denied_by``; ``knet reach --explain``)."""

    decision: Decision | None = None


def policy_step(d: Decision, pkt: Packet, action: str) -> Step:
    return PolicyStep("POSTROUTING", "policy", "network-policy", 0, "", action, note=str(d),
                      decision=d)


class PolicedEngine:
    """An ``Engine`` with the policy hook after it (the static walks' datapath; the runtime's
    ``NodeDatapath`` calls the same hook)."""

    __slots__ = ("engine", "hook")

    def __init__(self, engine: Any, hook: PolicyHook) -> None:
        self.engine = engine
        self.hook = hook

    @property
    def conntrack(self) -> Any:
        return self.engine.conntrack

    def forward(self, packet: Packet, iif: str, now: float, *, explain: bool | None = None
                ) -> Result:
        r = self.engine.forward(packet, iif, now, explain=explain)
        if not self.hook.active:
            return r
        return self.hook(r, iif, now, True if explain is None else explain)

    def enumerate_outcomes(self, packet: Packet, hook_path: str = "prerouting", *,
                           affinity: bool = False) -> Any:
        return self.engine.enumerate_outcomes(packet, hook_path, affinity=affinity)

    def is_local(self, addr: Any) -> bool:
        return bool(self.engine.is_local(addr))

    def set_local_addresses(self, addrs: Any) -> None:
        self.engine.set_local_addresses(addrs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)
