"""``knet trace`` (static mode): the story of one packet through the tables, or with ``--all``
every outcome its first packet could have."""

from __future__ import annotations

import re
from typing import Any

from knet.netfilter import Step
from knet.path import Walk

_COMMENT = re.compile(r'--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))')
_PROB = re.compile(r"--probability (\S+)")
_JUMP = re.compile(r" -[jg] (\S+)")


def describe_step(step: Step) -> str:
    """``KUBE-SERVICES rule 3 "default/web:http cluster IP" → KUBE-SVC-…``."""
    if step.table == "policy":  # the network-policy hook: "network policy: allowed: …"
        return step.note
    if not step.rule:
        where = f"{step.chain} ({step.table})" if step.table and step.chain else (
            step.chain or step.hook)
        return f"{where}: {step.note or step.action}"
    m = _COMMENT.search(step.rule)
    comment = f' "{m.group(1) or m.group(2)}"' if m else ""
    prob = _PROB.search(step.rule)
    cond = f" probability {prob.group(1)}" if prob else ""
    head = f"{step.chain} rule {step.index}{comment}{cond}"
    a = step.action
    if a in ("dnat", "snat", "masquerade") and step.after is not None and step.before is not None:
        if a == "dnat":
            return f"{head} → DNAT to {step.after.endpoint_str('dst')}"
        return f"{head} → {a.upper()} source {step.before.src} → {step.after.src}"
    if a in ("jump", "goto"):
        j = _JUMP.search(step.rule)  # iptables names the target in the rule; nft in the note
        return f"{head} → {j.group(1) if j else (step.note or a)}"
    if a == "mark":
        return f"{head} → mark for masquerade" if "KUBE-MARK-MASQ" in step.chain or (
            "0x4000" in step.rule) else f"{head} → MARK"
    return f"{head} → {a.upper()}"


def render_walk(w: Walk) -> str:
    p = w.packet
    flags = f" [{p.flags}]" if p.flags else ""
    lines = [f"packet: {p.proto} {p.endpoint_str('src')} → {p.endpoint_str('dst')}{flags}",
             f"from:   {w.source}"]
    total = 0
    for hop in w.hops:
        via = {"": "generated locally (OUTPUT)", "eth0": "arrived on eth0"}.get(
            hop.entered_from, f"arrived from {hop.entered_from}")
        lines.append(f"node {hop.node}: {via}")
        hook = None
        for s in hop.result.steps:
            if s.action in ("continue",):
                continue
            if s.hook != hook:
                hook = s.hook
                lines.append(f"  {hook.upper()}")
            lines.append(f"    {describe_step(s)}")
        total += hop.result.rules_walked
        res = hop.result
        if res.verdict != "ACCEPT":
            how = f" ({res.reject_with})" if res.reject_with else ""
            lines.append(f"  verdict: {res.verdict}{how}")
        elif res.packet != res.original:
            q = res.packet
            lines.append(f"  leaves as {q.proto} {q.endpoint_str('src')} → {q.endpoint_str('dst')}")
    if w.verdict == "ACCEPT" and w.destination is not None and w.delivered is not None:
        d = w.delivered
        where = w.destination
        if where.kind == "pod" and where.pod is not None:
            ports = {cp.container_port for c in where.pod.spec.containers for cp in c.ports}
            note = "" if not ports or d.dport in ports else (
                f" (port {d.dport} is not a declared containerPort)")
            lines.append(f"delivered to pod {where.pod.key} ({d.endpoint_str('dst')}) on "
                         f"{where.pod.spec.node_name}{note}")
        elif where.kind == "node":
            name = f"node {where.node.name}" if where.node is not None else "the node"
            lines.append(f"delivered to {name} itself ({d.endpoint_str('dst')})")
        else:
            lines.append(f"leaves the cluster towards {d.endpoint_str('dst')}")
        if d.src != w.packet.src:
            lines.append(f"source seen by the destination: {d.src} (masqueraded)")
    else:
        lines.append(f"verdict: {w.verdict}" + (f" ({w.note})" if w.note else ""))
    lines.append(f"rules walked: {total}")
    return "\n".join(lines) + "\n"


def walk_json(w: Walk) -> dict[str, Any]:
    d = w.delivered
    return {
        "verdict": w.verdict,
        "packet": _pkt(w.packet),
        "source": str(w.source),
        "destination": str(w.destination) if w.destination else None,
        "delivered": _pkt(d) if d else None,
        "masquerade": bool(d is not None and d.src != w.packet.src),
        "hops": [{
            "node": h.node, "enteredFrom": h.entered_from, "verdict": h.result.verdict,
            "rulesWalked": h.result.rules_walked,
            "steps": [{"hook": s.hook, "table": s.table, "chain": s.chain, "index": s.index,
                       "rule": s.rule, "action": s.action,
                       **({"before": _pkt(s.before), "after": _pkt(s.after)}
                          if s.before is not None and s.after is not None else {})}
                      for s in h.result.steps],
        } for h in w.hops],
        "note": w.note,
    }


def _pkt(p: Any) -> dict[str, Any]:
    return {"src": p.endpoint_str("src"), "dst": p.endpoint_str("dst"), "proto": str(p.proto)}


def trace_dump(rules_file: str, local_addresses: tuple[str, ...], src: str, host: str, port: int,
               proto: str, all_: bool, output: str, seed: int) -> int:
    """Trace through a real node's ``iptables-save`` dump (debug a real cluster offline)."""
    import json
    import random
    from ipaddress import ip_address

    import click

    from knet.errors import UsageError
    from knet.netfilter import Netfilter, parse_rules
    from knet.netfilter.packet import Packet, Proto
    from knet.path import Endpoint, Walk, Hop

    try:
        sip, dip = ip_address(src), ip_address(host)
        locals_ = [ip_address(a) for a in local_addresses]
    except ValueError as e:
        raise UsageError(f"with --rules, --from and --to take IP addresses: {e}") from None
    from knet.cli.boundary import read_text_file
    from knet.errors import RulesError

    try:
        rs = parse_rules(read_text_file(rules_file), family=dip.version)
    except RulesError as e:  # "line N: …" → "FILE:N: …"
        msg = str(e)
        raise RulesError(f"{rules_file}:{msg[5:]}" if msg.startswith("line ") else
                         f"{rules_file}: {msg}") from None
    nf = Netfilter(rs if dip.version == 4 else None, rs if dip.version == 6 else None,
                   local_addresses=locals_, rng=random.Random(seed),
                   masquerade_address={a.version: a for a in reversed(locals_)} or None)
    # A source that is one of the node's addresses is generated locally; else it arrives.
    entered = "" if sip in locals_ else "eth0"
    pkt = Packet(sip, dip, Proto(proto), 40000, port, "S" if proto == "tcp" else "",
                 iif=entered)
    if all_:
        outs = nf.enumerate_outcomes(pkt, "output" if entered == "" else "prerouting",
                                     affinity=True)
        if not outs.items:  # every path ends in some verdict: none found is knet's failure
            raise RulesError(f"{rules_file}: no outcome found for {proto} {src} → {host}:{port}")
        data = {"outcomes": outs.outcomes, "masquerade": outs.masquerade}
        click.echo(json.dumps(data, indent=2) if output == "json" else "\n".join(
            f"{o.target}{'  (masqueraded)' if o.masquerade else ''}" for o in outs.items))
        return 0
    res = nf.forward(pkt, entered, 0.0)
    from pathlib import Path

    # A dump knows no pods: the source is the node itself or just an address.
    kind = "node" if entered == "" else "address"
    w = Walk(Endpoint(kind, sip), pkt, [Hop(Path(rules_file).name, entered, res)], res.verdict)
    if res.verdict == "ACCEPT":
        w.delivered = res.packet
        w.destination = Endpoint("node" if res.local else "address", res.packet.dst)
    click.echo(json.dumps(walk_json(w), indent=2) if output == "json" else render_walk(w),
               nl=False)
    return 0
