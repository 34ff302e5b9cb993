"""Flow records shaped like Hubble's (``hubble observe -o jsonpb``: one GetFlowsResponse per
line, cilium/api/v1/flow/flow.proto field names).

Invariants:
- One record per traced packet, observed where its fate was decided: the node that delivered
  it (``trace_observation_point`` TO_ENDPOINT / TO_STACK / TO_NETWORK) or the node that
  dropped it. Addresses and ports are those of the packet between the two endpoints, i.e.
  after DNAT/SNAT for the original direction and before un-NAT for replies, so a ClusterIP
  connection shows the backend pod as destination and the Service as ``destination_service``
  (as Hubble does).
- Endpoint labels use Hubble's forms: ``k8s:key=value`` plus
  ``k8s:io.kubernetes.pod.namespace=NS`` for pods; ``reserved:host`` (identity 1),
  ``reserved:remote-node`` (6) and ``reserved:world`` (2) otherwise.
- ``verdict`` is Hubble's FORWARDED or DROPPED (a REJECT drops the packet and answers with an
  error); ``drop_reason_desc`` takes Cilium's DropReason names where one fits (NO_SERVICE for
  "has no endpoints", POLICY_DENIED for other rule drops). The ``knet`` key carries what
  Hubble has no field for (knet verdict, reason text, original tuple, flow id).
- Times are RFC 3339 UTC with 0/3/6/9 fractional digits (protobuf JSON Timestamp).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from knet.netfilter.packet import Packet, Proto
from knet.trace.record import Names, TracedPacket, TraceVerdict
from knet.trace.story import dst_ep, src_ep

_FLAGS = (("S", "SYN"), ("A", "ACK"), ("F", "FIN"), ("R", "RST"), ("P", "PSH"))
_RESERVED = {"host": 1, "world": 2, "remote-node": 6}


def rfc3339(seconds: float) -> str:
    ns = int(round(seconds * 1e9))
    whole, frac = divmod(ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(whole, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac == 0:
        return base + "Z"
    if frac % 1_000_000 == 0:
        return f"{base}.{frac // 1_000_000:03d}Z"
    if frac % 1000 == 0:
        return f"{base}.{frac // 1000:06d}Z"
    return f"{base}.{frac:09d}Z"


def _wire_packet(tp: TracedPacket) -> Packet:
    if tp.is_reply and tp.hops:
        return tp.packet
    return tp.final


def _observer(tp: TracedPacket) -> str:
    if tp.verdict is not TraceVerdict.FORWARDED and tp.hops:
        return tp.hops[-1].node
    if tp.delivered_node and tp.delivered_node != "outside":
        return tp.delivered_node
    if tp.hops:
        return tp.hops[-1].node
    return tp.delivered_node


def _endpoint(ip: Any, names: Names, observer: str) -> dict[str, Any]:
    info = names.pod(ip)
    if info is not None:
        labels = sorted(f"k8s:{k}={v}" for k, v in info.labels.items())
        labels.append(f"k8s:io.kubernetes.pod.namespace={info.namespace}")
        return {"namespace": info.namespace, "labels": sorted(labels), "pod_name": info.name}
    node = names.node_of_ip(ip)
    kind = "world" if not node else ("host" if node == observer else "remote-node")
    return {"identity": _RESERVED[kind], "labels": [f"reserved:{kind}"]}


def _l4(p: Packet) -> dict[str, Any]:
    if p.proto == Proto.TCP:
        flags = {name: True for letter, name in _FLAGS if letter in p.flags}
        return {"TCP": {"source_port": p.sport, "destination_port": p.dport, "flags": flags}}
    if p.proto == Proto.UDP:
        return {"UDP": {"source_port": p.sport, "destination_port": p.dport}}
    if p.proto == Proto.SCTP:
        return {"SCTP": {"source_port": p.sport, "destination_port": p.dport}}
    key = "ICMPv6" if p.src.version == 6 else "ICMPv4"
    return {key: {"type": p.icmp_type, "code": p.icmp_code}}


def _summary(p: Packet) -> str:
    if p.proto == Proto.TCP:
        return "TCP Flags: " + ", ".join(n for letter, n in _FLAGS if letter in p.flags)
    if p.proto == Proto.ICMP:
        return f"ICMPv{'6' if p.src.version == 6 else '4'} type {p.icmp_type} code {p.icmp_code}"
    return str(p.proto).upper()


def drop_reason(tp: TracedPacket) -> str:
    r = tp.reason
    if r.startswith("network policy:"):
        return "POLICY_DENIED"
    if "has no endpoints" in r or "has no local endpoints" in r:
        return "NO_SERVICE"
    if r == "no route":
        return "FIB_LOOKUP_FAILED"
    if r == "no such pod":
        return "UNKNOWN_L3_TARGET_ADDRESS"
    if "INVALID" in r:
        return "INVALID_PACKET_DROPPED"
    if r in ("partition", "loss", "routing loop"):
        return "DROP_REASON_UNKNOWN"
    return "POLICY_DENIED"


def flow_record(tp: TracedPacket, names: Names, *, epoch: float = 0.0) -> dict[str, Any]:
    """One Hubble GetFlowsResponse-shaped dict for a traced packet."""
    p = _wire_packet(tp)
    observer = _observer(tp)
    time = rfc3339(epoch + (tp.delivered_time if tp.delivered is not None and
                            tp.verdict is TraceVerdict.FORWARDED else tp.time))
    dropped = tp.verdict is not TraceVerdict.FORWARDED
    flow: dict[str, Any] = {
        "time": time,
        "verdict": "DROPPED" if dropped else "FORWARDED",
    }
    if dropped:
        flow["drop_reason_desc"] = drop_reason(tp)
    flow["IP"] = {"source": str(p.src), "destination": str(p.dst),
                  "ipVersion": "IPv6" if p.src.version == 6 else "IPv4"}
    flow["l4"] = _l4(p)
    flow["source"] = _endpoint(p.src, names, observer)
    flow["destination"] = _endpoint(p.dst, names, observer)
    flow["Type"] = "L3_L4"
    flow["node_name"] = observer
    flow["event_type"] = {"type": 1 if dropped else 4}
    client_is_pod = tp.flow is not None and names.kind(tp.flow.client) == "pod"
    flow["traffic_direction"] = "EGRESS" if client_is_pod else "INGRESS"
    if not dropped:
        kind = names.kind(tp.delivered_to) if tp.delivered_to else ""
        flow["trace_observation_point"] = {"pod": "TO_ENDPOINT", "node": "TO_STACK"}.get(
            kind, "TO_NETWORK")
    flow["is_reply"] = tp.is_reply
    svc = tp.flow.service if tp.flow is not None else ""
    if svc:
        ns, _, name = svc.partition("/")
        flow["destination_service"] = {"name": name.split(":", 1)[0], "namespace": ns}
    flow.update(policy_fields(tp))
    flow["Summary"] = _summary(p)
    o = tp.flow.original if tp.flow is not None else tp.packet
    flow["knet"] = {
        "flow": tp.flow.id if tp.flow is not None else 0,
        "packet": tp.index,
        "verdict": str(tp.verdict),
        "reason": tp.reason,
        "sent": {"source": src_ep(tp.packet), "destination": dst_ep(tp.packet)},
        "delivered": ({"source": src_ep(tp.delivered), "destination": dst_ep(tp.delivered),
                       "to": tp.delivered_to} if tp.delivered is not None else None),
        "connection": {"source": src_ep(o), "destination": dst_ep(o)},
        "nodes": tp.nodes,
    }
    if svc:
        flow["knet"]["service"] = svc
    return {"flow": flow, "node_name": observer, "time": time}


def _policy_ref(name: str) -> dict[str, Any]:
    """Hubble's ``Policy`` message for ``"NetworkPolicy ns/name"`` / ``"<Kind> name …"``."""
    kind, _, rest = name.partition(" ")
    ref = rest.split(" ", 1)[0]
    ns, _, pname = ref.rpartition("/")
    out: dict[str, Any] = {"name": pname, "kind": kind}
    if ns:
        out["namespace"] = ns
    return out


def policy_fields(tp: TracedPacket) -> dict[str, Any]:
    """``ingress_allowed_by``/``egress_allowed_by``/``ingress_denied_by``/
    ``egress_denied_by``: the policies that decided each end of the packet's connection."""
    out: dict[str, list[dict[str, Any]]] = {}
    for h in tp.hops:
        for s in h.steps:
            d = getattr(s, "decision", None)
            if d is None:
                continue
            for side in (d.egress, d.ingress):
                if side is None:
                    continue
                key = f"{side.direction.lower()}_{'allowed' if side.allowed else 'denied'}_by"
                for name in side.policies:
                    ref = _policy_ref(name)
                    if ref not in out.setdefault(key, []):
                        out[key].append(ref)
    return out


def to_jsonl(packets: Iterable[TracedPacket], names: Names, *, epoch: float = 0.0) -> str:
    return "".join(json.dumps(flow_record(tp, names, epoch=epoch), sort_keys=False) + "\n"
                   for tp in packets)


__all__ = ["drop_reason", "flow_record", "policy_fields", "rfc3339", "to_jsonl"]
