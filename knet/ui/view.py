"""What the page shows, as JSON: the service map, flow summaries and request stories.

Invariants:
- Pure functions over the control-plane state and traced flows (``knet.trace``); no IO, no
  clock. The server only serialises what these return.
- A flow summary carries Hubble's flow fields the page filters on (source/destination
  namespace, pod, Service, verdict, drop reason, L4 protocol and ports) plus the L7 facts read
  from the packets' own bytes: an HTTP/1 request line and status, a DNS question and rcode.
  Nothing is inferred that the packets do not show.
- A story lists every packet of a flow with every node hop, the hop's compact rule lines as
  ``knet trace`` prints them (the deciding rule named in the mode's own terms) and the NAT.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from knet.trace.record import Flow, Names, TracedPacket
from knet.trace.story import dst_ep, hop_lines, nat_change, packet_header, src_ep

HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD ", b"PATCH ", b"OPTIONS ",
                b"CONNECT ", b"TRACE ")


# -- the service map ---------------------------------------------------------------------------
def service_map(state: Any, traffic: Mapping[tuple[str, str], int] | None = None) -> dict[str, Any]:
    """Nodes (groups), pods (phase, readiness), Services, Ingresses, Gateways, policies, and
    the edges between them: selection (Service → pod), routing (Ingress/Gateway → Service),
    policy (policy → pod it selects) and traffic (client pod → Service or pod, with counts;
    a node's own traffic, i.e. kubelet's probes, is left out)."""
    nodes = [{"id": f"node:{n.name}", "name": n.name, "kind": "Node",
              "ready": n.ready, "ips": [str(a) for a in n.ips()]} for n in state.nodes()]
    pods = []
    for p in state.pods():
        st = p.status
        pods.append({
            "id": f"pod:{p.namespace}/{p.name}", "name": p.name, "namespace": p.namespace,
            "kind": "Pod", "node": p.spec.node_name, "phase": st.phase,
            "ready": _pod_ready(p), "ip": str(st.pod_ips[0]) if st.pod_ips else "",
            "hostNetwork": bool(p.spec.host_network), "labels": dict(p.metadata.labels)})
    services: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    by_ns: dict[str, list[Any]] = {}
    for p in state.pods():
        by_ns.setdefault(p.namespace, []).append(p)
    for s in state.services():
        sid = f"svc:{s.namespace}/{s.name}"
        services.append({"id": sid, "name": s.name, "namespace": s.namespace, "kind": "Service",
                         "type": str(s.spec.type), "clusterIP": s.spec.cluster_ip or "",
                         "ports": [f"{sp.port}/{sp.protocol}" for sp in s.spec.ports]})
        sel = dict(s.spec.selector or {})
        if not sel:
            continue
        for p in by_ns.get(s.namespace, ()):
            if all(p.metadata.labels.get(k) == v for k, v in sel.items()):
                edges.append({"source": sid, "target": f"pod:{p.namespace}/{p.name}",
                              "kind": "selects"})
    routes = []
    for ing in state.ingresses():
        iid = f"ing:{ing.namespace}/{ing.name}"
        routes.append({"id": iid, "name": ing.name, "namespace": ing.namespace, "kind": "Ingress"})
        for svc in sorted(_ingress_backends(ing)):
            edges.append({"source": iid, "target": f"svc:{ing.namespace}/{svc}", "kind": "routes"})
    for kind in ("NetworkPolicy", "ClusterNetworkPolicy", "Gateway", "HTTPRoute", "GRPCRoute"):
        for o in _objects(state, kind):
            oid = f"{kind.lower()}:{o.namespace}/{o.name}" if o.namespace else f"{kind.lower()}:{o.name}"
            routes.append({"id": oid, "name": o.name, "namespace": o.namespace, "kind": kind})
            if kind == "NetworkPolicy":  # the pods it isolates
                for p in by_ns.get(o.namespace, ()):
                    if o.pod_selector.matches(p.metadata.labels):
                        edges.append({"source": oid, "target": f"pod:{p.namespace}/{p.name}",
                                      "kind": "isolates"})
    for (src, dst), n in sorted((traffic or {}).items()):
        if src.startswith("node:"):
            continue  # kubelet's probes from each node to its own pods: not drawn
        edges.append({"source": src, "target": dst, "kind": "traffic", "count": n})
    return {"nodes": nodes, "pods": pods, "services": services, "routes": routes,
            "edges": edges}


def _objects(state: Any, kind: str) -> list[Any]:
    """The store's objects of ``kind`` (none for kinds this knet does not model)."""
    try:
        return list(state.objects(kind))
    except Exception:  # noqa: BLE001 - an unknown kind is simply absent from the map
        return []


def _pod_ready(p: Any) -> bool:
    c = p.status.condition("Ready")
    return c is not None and str(c.status) == "True"


def _ingress_backends(ing: Any) -> set[str]:
    out: set[str] = set()
    if ing.default_backend is not None and ing.default_backend.service_name:
        out.add(ing.default_backend.service_name)
    for rule in ing.rules:
        for path in rule.paths:
            if path.backend.service_name:
                out.add(path.backend.service_name)
    return out


# -- events ------------------------------------------------------------------------------------
def events(state: Any, kubelet: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """``kubectl get events``: the controllers' core/v1 Events (with their counts) and the
    kubelet's pod events, oldest first."""
    from knet.control.cluster import timestamp

    out = []
    for e in state.objects("Event"):
        ref = e.involved_object
        out.append({"time": e.last_timestamp or e.first_timestamp, "type": e.type,
                    "reason": e.reason, "object": f"{ref.kind.lower()}/{ref.name}",
                    "namespace": ref.namespace, "message": e.message, "count": e.count,
                    "source": e.source})
    for e in kubelet:
        ns, _, name = e.object.partition("/")
        out.append({"time": timestamp(e.time), "type": e.type, "reason": e.reason,
                    "object": f"pod/{name}", "namespace": ns, "message": e.message, "count": 1,
                    "source": e.source})
    return sorted(out, key=lambda x: x["time"])


# -- flows -------------------------------------------------------------------------------------
def endpoint_id(ip: Any, names: Names) -> str:
    """The map id of whoever owns ``ip`` (a pod), else ``ip:<address>``."""
    info = names.pod(ip)
    if info is not None:
        return f"pod:{info.ref}"
    node = names.node_of_ip(ip)
    return f"node:{node}" if node else f"ip:{ip}"


def flow_summary(fid: int, flow: Flow, names: Names, *, epoch: float = 0.0) -> dict[str, Any]:
    """One connection as the flow list shows it."""
    o = flow.original
    first = flow.packets[0]
    src, dst = names.pod(o.src), names.pod(first.final.dst)
    verdict = str(flow.verdict).upper()
    drop = next((p for p in flow.packets if p.verdict.value != "forwarded"), None)
    out: dict[str, Any] = {
        "id": fid, "time": epoch + first.time, "protocol": flow.proto.upper(),
        "source": {"ip": str(o.src), "port": o.sport, "pod": src.ref if src else "",
                   "namespace": src.namespace if src else "", "name": names.label(o.src)},
        "destination": {"ip": str(first.final.dst), "port": first.final.dport,
                        "pod": dst.ref if dst else "", "namespace": dst.namespace if dst else "",
                        "name": names.label(first.final.dst)},
        "original_destination": dst_ep(o),
        "service": flow.service, "verdict": "FORWARDED" if verdict == "FORWARDED" else "DROPPED",
        "knet_verdict": verdict.lower(), "drop_reason": drop.reason if drop else "",
        "packets": len(flow.packets), "nodes": sorted({h.node for p in flow.packets for h in p.hops}),
        "summary": f"{src_ep(o)} → {dst_ep(o)}",
    }
    l7 = l7_of(flow)
    if l7:
        out["l7"] = l7
    return out


def traffic_edge(flow: Flow, names: Names) -> tuple[str, str]:
    """(client, target) for the map's traffic edges: the Service when the flow went to one."""
    src = endpoint_id(flow.original.src, names)
    if flow.service:
        return src, f"svc:{flow.service.split(':')[0]}"
    return src, endpoint_id(flow.packets[0].final.dst, names)


def l7_of(flow: Flow) -> dict[str, Any]:
    """HTTP/1 method/path/host/status or DNS question/rcode, read from the packets' bytes."""
    req = next((p.packet.payload for p in flow.packets if not p.is_reply and p.packet.payload),
               b"")
    rsp = next((p.packet.payload for p in flow.packets if p.is_reply and p.packet.payload), b"")
    if flow.proto.lower() == "udp" and 53 in (flow.original.dport, flow.packets[0].final.dport):
        return _dns(req, rsp)
    if req.startswith(HTTP_METHODS):
        head = req.split(b"\r\n\r\n", 1)[0].decode("latin-1", "replace").split("\r\n")
        method, _, rest = head[0].partition(" ")
        path = rest.rsplit(" ", 1)[0]
        host = next((h.split(":", 1)[1].strip() for h in head[1:]
                     if h.lower().startswith("host:")), "")
        out: dict[str, Any] = {"type": "http", "method": method, "path": path, "host": host}
        if rsp.startswith(b"HTTP/"):
            parts = rsp.split(b"\r\n", 1)[0].split(b" ")
            if len(parts) > 1 and parts[1].isdigit():
                out["status"] = int(parts[1])
        return out
    if req[:1] == b"\x16":
        return {"type": "tls"}
    if req.startswith(b"PRI * HTTP/2.0"):
        return {"type": "http2"}
    return {}


def _dns(query: bytes, reply: bytes) -> dict[str, Any]:
    from dnslib import QTYPE, RCODE, DNSRecord

    out: dict[str, Any] = {"type": "dns"}
    try:
        q = DNSRecord.parse(query)
        if q.questions:
            out["query"] = str(q.questions[0].qname)
            out["qtype"] = QTYPE.get(q.questions[0].qtype, str(q.questions[0].qtype))
    except Exception:  # noqa: BLE001 - a malformed query is shown as such
        out["malformed"] = True
        return out
    if reply:
        try:
            r = DNSRecord.parse(reply)
            out["rcode"] = RCODE.get(r.header.rcode, str(r.header.rcode))
            out["answers"] = [str(rr.rdata) for rr in r.rr]
        except Exception:  # noqa: BLE001
            out["rcode"] = "MALFORMED"
    return out


def matches(summary: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    """The page's flow filter: namespace, pod, service, verdict, protocol, text (substring of
    the L7 facts: method, path, DNS name, status)."""
    for key, want in filters.items():
        if not want:
            continue
        if key == "namespace":
            ok = want in (summary["source"]["namespace"], summary["destination"]["namespace"])
        elif key == "pod":
            ok = any(want in summary[side]["pod"] for side in ("source", "destination"))
        elif key == "service":
            ok = want in summary["service"]
        elif key == "verdict":
            ok = summary["verdict"] == want.upper() or summary["knet_verdict"] == want.lower()
        elif key == "protocol":
            ok = summary["protocol"] == want.upper()
        elif key == "text":
            ok = want.lower() in " ".join(str(v) for v in summary.get("l7", {}).values()).lower()
        else:
            continue
        if not ok:
            return False
    return True


# -- stories -----------------------------------------------------------------------------------
def story(flow: Flow, names: Names) -> dict[str, Any]:
    """Every packet of ``flow`` with every hop drawn: node, interface, rule lines, NAT."""
    return {"flow": flow.id, "service": flow.service, "verdict": str(flow.verdict),
            "packets": [packet_story_json(tp, names) for tp in flow.packets]}


def l7_lines(capture: Any) -> list[str]:
    """The L7 decisions a capture saw (ingress-nginx's and the Gateways': which Ingress or
    route, rule and backend took each request), as ``knet trace --url`` prints them."""
    entries = getattr(capture, "l7", None)
    if not entries:
        return []
    from knet.gateway.l7 import story_lines

    return story_lines(entries)


def packet_story_json(tp: TracedPacket, names: Names) -> dict[str, Any]:
    hops = []
    for h in tp.hops:
        hops.append({"node": h.node, "from": h.entered_from or "local", "verdict": h.verdict,
                     "nat": nat_change(h.before, h.after) if h.translated else "",
                     "lines": hop_lines(h, names)})
    return {"header": packet_header(tp, names), "reply": tp.is_reply, "hops": hops,
            "delivered_to": tp.delivered_to, "verdict": str(tp.verdict), "reason": tp.reason}


def rule_hits(flows: Iterable[Flow]) -> dict[str, dict[str, int]]:
    """Per node, how many recorded packets matched each rule (by its restore-form text)."""
    out: dict[str, dict[str, int]] = {}
    for fl in flows:
        for tp in fl.packets:
            for h in tp.hops:
                node = out.setdefault(h.node, {})
                for s in h.steps:
                    if s.rule:
                        node[s.rule] = node.get(s.rule, 0) + 1
    return out


def with_hits(rules_text: str, hits: Mapping[str, int]) -> list[dict[str, Any]]:
    """The node's rules, one entry per line, with the recorded hit count of each rule."""
    return [{"text": line, "hits": hits.get(line, 0)} for line in rules_text.splitlines()]


__all__ = ["flow_summary", "l7_of", "matches", "rule_hits", "service_map", "story",
           "traffic_edge", "with_hits"]
