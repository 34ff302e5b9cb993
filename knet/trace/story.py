"""Text stories of traced packets and flows: which rule, in which chain, changed what.

Invariants:
- A story is derived only from the recorded netfilter ``Step`` values (table, chain, rule
  number, rule text, packet before/after) and the fabric's routing events; nothing is inferred
  that the tables did not decide.
- The compact form keeps the hooks that changed or decided something (NAT, MARK, an explicit
  ACCEPT/DROP/REJECT, a non-ACCEPT policy), conntrack translations and routing; ``verbose``
  adds every matched rule with its full restore-form text.
- Output is deterministic (no dict-order or wall-clock dependence).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from knet.fabric.datapath import LOCAL, WIRE
from knet.fabric.network import FabricEvent
from knet.netfilter.packet import Packet, Proto
from knet.trace.record import Flow, Names, NodeHop, TracedPacket, TraceVerdict, assemble

if TYPE_CHECKING:
    from knet.netfilter.engine import Step

_BUILTIN = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
_DECISIVE = frozenset({"dnat", "snat", "masquerade", "mark", "drop", "reject", "accept", "unknown",
                       "ipvs"})
# nftables mode's base chains (kube-proxy's table), elided like iptables' built-in chains.
_NFT_BASE = ("filter-", "nat-")


def is_base_chain(chain: str) -> bool:
    return chain in _BUILTIN or chain.startswith(_NFT_BASE)
_COMMENT = re.compile(r'--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))')
_PROBABILITY = re.compile(r"--probability (\S+)")


def rule_comment(rule: str) -> str:
    m = _COMMENT.search(rule)
    if m is None:
        return ""
    return (m.group(1) if m.group(1) is not None else m.group(2)).replace('\\"', '"')


def ep(ip: object, port: int) -> str:
    s = str(ip)
    return f"[{s}]:{port}" if ":" in s else f"{s}:{port}"


def src_ep(p: Packet) -> str:
    return ep(p.src, p.sport) if p.proto != Proto.ICMP else str(p.src)


def dst_ep(p: Packet) -> str:
    return ep(p.dst, p.dport) if p.proto != Proto.ICMP else str(p.dst)


def nat_change(before: Packet, after: Packet) -> str:
    parts = []
    if (before.src, before.sport) != (after.src, after.sport):
        parts.append(f"source {src_ep(before)} → {src_ep(after)}")
    if (before.dst, before.dport) != (after.dst, after.dport):
        parts.append(f"destination {dst_ep(before)} → {dst_ep(after)}")
    return ", ".join(parts) or "unchanged"


def _item(s: Step) -> str | None:
    chain, index, rule, action = s.chain, s.index, s.rule, s.action
    if action in ("return", "continue"):
        return None
    if action == "policy":
        return None if s.note.upper().endswith("ACCEPT") else f"{chain} {s.note}"
    if action == "ipvs":  # the IPVS scheduler's choice: "IPVS rr → 10.244.1.5:8080 (2nd of 3)"
        return s.note
    if action in ("jump", "goto") and is_base_chain(chain):
        return None
    text = f"{chain} rule {index}"
    cmt = rule_comment(rule)
    if cmt:
        text += f' "{cmt}"'
    prob = _PROBABILITY.search(rule)
    if prob is not None:
        text += f" probability {prob.group(1)}"
    before, after = s.before, s.after
    if action == "dnat" and before is not None and after is not None:
        text += f" DNAT {dst_ep(before)} → {dst_ep(after)}"
    elif action in ("snat", "masquerade") and before is not None and after is not None:
        text += f" {action.upper()} {src_ep(before)} → {src_ep(after)}"
    elif action == "mark":
        text += f" MARK {s.note.split('→')[-1].strip()}"
    elif action in ("accept", "drop", "reject"):
        text += f" {action.upper()}"
    elif action == "unknown":
        text += f" ({s.note})"
    return text


def hop_lines(h: NodeHop, names: Names | None = None, *, verbose: bool = False) -> list[str]:
    """What one node did, one line per hook/table that mattered (or per step if verbose)."""
    lines: list[str] = []
    if verbose:
        lines.append(f"entered from {_iface(h.entered_from)}; conntrack {h.ctstate or 'n/a'}")
        lines.extend(str(s) for s in h.steps)
        lines.append(f"verdict {h.verdict}" + (" (local delivery)" if h.local else ""))
        return lines
    group: list[Step] = []
    key: tuple[str, str] | None = None

    def flush() -> None:
        if not group:
            return
        if any(s.action in _DECISIVE or (s.action == "policy"
                                         and not s.note.upper().endswith("ACCEPT"))
               for s in group):
            items = [t for t in (_item(s) for s in group) if t]
            if items:
                hook, table = key  # type: ignore[misc]
                where = f"{hook} {table}" if table else hook  # IPVS steps have no table
                lines.append(f"{where}: " + " → ".join(items))
        group.clear()

    for s in h.steps:
        action = s.action
        if action == "conntrack":
            flush()
            key = None
            if s.before is not None:
                lines.append(f"conntrack {s.note}: {nat_change(s.before, s.after)}")
            elif s.note.startswith("INVALID"):
                lines.append(f"conntrack {s.note}")
            else:
                direction = s.note.split(" ", 1)[0]
                lines.append(f"conntrack {h.ctstate or 'known'} connection ({direction} direction)")
            continue
        if action == "route":
            flush()
            key = None
            lines.append(f"routing: {s.note}")
            continue
        if s.table == "policy":  # the network-policy hook (knet.policy.hook)
            flush()
            key = None
            lines.append(s.note)
            continue
        k = (s.hook, s.table)
        if k != key:
            flush()
            key = k
        group.append(s)
    flush()
    if not h.steps and h.translated:
        lines.append(f"translated {nat_change(h.before, h.after)}")
    if h.verdict == "REJECT":
        lines.append(f"REJECT with {h.reject_with or 'icmp-port-unreachable'}")
    elif h.verdict == "DROP":
        lines.append("DROP")
    return lines


def _iface(entered_from: str) -> str:
    if entered_from == LOCAL:
        return "the node itself (OUTPUT)"
    if entered_from == WIRE:
        return "eth0"
    return entered_from


def _who(ip: object, names: Names | None) -> str:
    if names is None:
        return ""
    label = names.label(ip)  # type: ignore[arg-type]
    return f" ({label})" if label else ""


def packet_header(tp: TracedPacket, names: Names | None = None) -> str:
    p = tp.packet
    proto = str(p.proto).upper()
    text = f"#{tp.index} {tp.time:.6f} {proto} {src_ep(p)}{_who(p.src, names)} → {dst_ep(p)}" \
           f"{_who(p.dst, names)}"
    if p.proto == Proto.TCP:
        text += f" [{p.flags}] seq={p.seq} ack={p.ack}"
    if p.proto == Proto.ICMP:
        text += f" type={p.icmp_type} code={p.icmp_code}"
    if p.payload:
        text += f" len={len(p.payload)}"
    if tp.is_reply:
        text += " (reply)"
    return text


def translations(tp: TracedPacket) -> list[str]:
    out = []
    for h in tp.hops:
        if not h.translated:
            continue
        kinds = [s.action.upper() if s.action != "conntrack" else s.note for s in h.steps
                 if s.before is not None]
        label = "/".join(dict.fromkeys(kinds)) or "NAT"
        out.append(f"{label} {nat_change(h.before, h.after)} at {h.node}")
    return out


def packet_summary(tp: TracedPacket, names: Names | None = None) -> str:
    """The packet's fate in one line."""
    nat = translations(tp)
    pre = ("; ".join(nat) + "; ") if nat else ""
    if tp.verdict is TraceVerdict.FORWARDED:
        if tp.delivered is not None:
            return f"{pre}delivered to {tp.delivered_to or '?'} at {dst_ep(tp.delivered)}"
        return f"{pre}forwarded"
    where = f" at {tp.hops[-1].node}" if tp.hops and tp.hops[-1].verdict != "ACCEPT" else ""
    return f"{pre}{tp.verdict.upper()}{where}: {tp.reason}"


def packet_story(tp: TracedPacket, names: Names | None = None, *,
                 verbose: bool = False) -> list[str]:
    lines = [packet_header(tp, names)]
    if tp.icmp_for is not None or (not tp.hops and tp.packet.proto == Proto.ICMP):
        cause = f" for #{tp.icmp_for.index}" if tp.icmp_for is not None else ""
        lines.append(f"   {tp.reason}{cause} from {tp.origin}, delivered to {tp.delivered_to}")
        return lines
    if tp.hops:
        h0 = tp.hops[0]
        if h0.entered_from == WIRE:
            lines.append(f"   arrives at {h0.node} eth0 from {tp.origin or 'outside'}")
        elif h0.entered_from == LOCAL:
            lines.append(f"   sent by node {h0.node} (OUTPUT)")
        else:
            lines.append(f"   leaves {tp.origin} via {h0.node}/{h0.entered_from}")
    for i, h in enumerate(tp.hops):
        for line in hop_lines(h, names, verbose=verbose):
            lines.append(f"   {h.node} {line}")
        if h.verdict == "ACCEPT" and not h.local and i + 1 < len(tp.hops):
            lines.append(f"   {h.node} → {tp.hops[i + 1].node} via eth0")
    if tp.verdict is TraceVerdict.FORWARDED and tp.delivered is not None:
        lines.append(f"   delivered to {tp.delivered_to} at {dst_ep(tp.delivered)}"
                     + (f" (as {src_ep(tp.delivered)} → {dst_ep(tp.delivered)})"
                        if tp.delivered != tp.packet else ""))
    elif tp.verdict is not TraceVerdict.FORWARDED:
        lines.append(f"   {tp.verdict.upper()}: {tp.reason}")
    if tp.error is not None:
        e = tp.error
        kind = (f"ICMP type {e.icmp_type} code {e.icmp_code}" if e.proto == Proto.ICMP
                else f"TCP [{e.flags}]")
        lines.append(f"   {kind} {src_ep(e)} → {dst_ep(e)} sent back to {tp.origin}")
    return lines


def _signature(tp: TracedPacket) -> tuple:
    return (tp.verdict, tp.delivered_to, tuple(
        (h.node, tuple(line for line in hop_lines(h) if not line.startswith("conntrack ")
                       or "NAT" in line)) for h in tp.hops))


def flow_header(flow: Flow, names: Names | None = None) -> str:
    o, t = flow.original, flow.translated
    proto = str(o.proto).upper()
    text = f"flow {flow.id}: {proto} {src_ep(o)}{_who(o.src, names)} → {dst_ep(o)}"
    if flow.service:
        text += f" [service {flow.service}]"
    else:
        text += _who(o.dst, names)
    if flow.dnat or flow.snat:
        text += f" ⇒ {src_ep(t)} → {dst_ep(t)}{_who(t.dst, names)}"
    n_out = sum(1 for p in flow.packets if not p.is_reply)
    text += f"  {flow.verdict.upper()}, {len(flow.packets)} packets ({n_out} →, " \
            f"{len(flow.packets) - n_out} ←)"
    return text


def flow_story(flow: Flow, names: Names | None = None, *, verbose: bool = False) -> list[str]:
    lines = [flow_header(flow, names)]
    last: dict[bool, tuple[int, tuple]] = {}
    for tp in flow.packets:
        sig = _signature(tp)
        prev = last.get(tp.is_reply)
        if not verbose and prev is not None and prev[1] == sig:
            lines.append(packet_header(tp, names))
            lines.append(f"   same path as #{prev[0]}" + (
                f", delivered to {tp.delivered_to}" if tp.delivered_to else ""))
            continue
        last[tp.is_reply] = (tp.index, sig)
        lines.extend(packet_story(tp, names, verbose=verbose))
    return lines


def render_story(subject: Flow | TracedPacket | Iterable[Flow | TracedPacket | FabricEvent], *,
                 names: Names | None = None, verbose: bool = False) -> str:
    """The story of a flow, a packet, several of them, or raw fabric tap events."""
    if isinstance(subject, Flow):
        return "\n".join(flow_story(subject, names, verbose=verbose)) + "\n"
    if isinstance(subject, TracedPacket):
        return "\n".join(packet_story(subject, names, verbose=verbose)) + "\n"
    items = list(subject)
    if items and all(isinstance(x, FabricEvent) for x in items):
        names = names or Names(None)
        asm = assemble(items, names)  # type: ignore[arg-type]
        items = list(asm.flows)
    out: list[str] = []
    for x in items:
        if isinstance(x, Flow):
            out.extend(flow_story(x, names, verbose=verbose))
        elif isinstance(x, TracedPacket):
            out.extend(packet_story(x, names, verbose=verbose))
        out.append("")
    return "\n".join(out)


__all__ = ["flow_story", "hop_lines", "packet_story", "packet_summary", "render_story",
           "rule_comment", "translations"]
