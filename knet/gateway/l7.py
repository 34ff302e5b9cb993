"""Gateway decisions seen by traces: while a capture runs, each request a Gateway data plane
decides is recorded as an L7 step (listener → route → rule → filters → backend) for the
story of ``knet trace --url`` and as a Hubble L7 flow record (``l7.http``).

Invariants: nothing is recorded (and nothing costs) unless a capture of that runtime is
running; records are plain dicts, ordered by time; the registry holds no strong reference to
a finished capture.
"""

from __future__ import annotations

import weakref
from typing import Any

_CAPTURES: weakref.WeakKeyDictionary[Any, weakref.WeakSet[Any]] = weakref.WeakKeyDictionary()


def register(rt: Any, capture: Any) -> None:
    _CAPTURES.setdefault(rt, weakref.WeakSet()).add(capture)


def unregister(rt: Any, capture: Any) -> None:
    caps = _CAPTURES.get(rt)
    if caps is not None:
        caps.discard(capture)


def recording(rt: Any) -> bool:
    return bool(_CAPTURES.get(rt))


def record(rt: Any, now: float, pod: str, req: Any, d: Any, protocol: str) -> None:
    """One decided request (``req``: GatewayRequest, ``d``: GatewayDecision) from data-plane
    pod ``pod`` into every running capture of ``rt``."""
    caps = _CAPTURES.get(rt)
    if not caps:
        return
    entry = {
        "time": now, "pod": pod, "gateway": d.gateway, "listener": d.listener,
        "route": d.route, "rule": d.rule, "filters": list(d.filters), "backend": d.backend,
        "upstream": (f"{d.addresses[0][0]}:{d.addresses[0][1]}" if d.addresses else None),
        "status": d.status, "reason": d.reason, "method": req.method, "host": req.host,
        "path": req.path, "protocol": protocol, "location": d.location,
        "upstream_path": d.request.get("path") if d.request else None,
    }
    for cap in list(caps):
        cap.l7.append(entry)


def record_entry(rt: Any, entry: dict[str, Any]) -> None:
    """Another L7 decider's entry (ingress-nginx: ``kind: "ingress"``) into every running
    capture of ``rt``."""
    for cap in list(_CAPTURES.get(rt) or ()):
        cap.l7.append(entry)


def story_lines(entries: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in entries:
        if e.get("kind") == "ingress":
            where = f"ingress {e['ingress']} path {e['path_rule']}" if e["ingress"] else \
                "no Ingress (default backend)"
            to = f" → backend {e['backend']}" if e["backend"] else ""
            out.append(f"L7 http {e['method']} {e['host']}{e['path']}: ingress-nginx "
                       f"({e['pod']}) → {where}{to}: {e['status']}")
            continue
        steps = [f"gateway {e['gateway']} ({e['pod']})", f"listener {e['listener'] or '-'}"]
        if e["route"]:
            steps.append(f"{e['route']} rule {e['rule']}")
        if e["filters"]:
            steps.append("filters " + ", ".join(e["filters"]))
        if e["backend"]:
            steps.append(f"backend {e['backend']}")
        tail = f"{e['status']}"
        if e["location"]:
            tail += f" → {e['location']}"
        elif e["upstream_path"] is not None and e["upstream_path"] != e["path"]:
            tail += f" (upstream path {e['upstream_path']})"
        if e["reason"] and e["status"] != 200:
            tail += f" ({e['reason']})"
        out.append(f"L7 {e['protocol']} {e['method']} {e['host']}{e['path']}: "
                   + " → ".join(steps) + f": {tail}")
    return out


def hubble_records(entries: list[dict[str, Any]], epoch: float = 0.0) -> list[dict[str, Any]]:
    """Hubble L7 flows (``hubble observe --type l7 -o jsonpb`` shape), one per decision."""
    from knet.trace.hubble import rfc3339

    out = []
    for e in entries:
        ns, _, name = e["pod"].partition("/")
        out.append({"flow": {
            "time": rfc3339(epoch + e["time"]), "verdict": "FORWARDED" if e["status"] < 400
            else "DROPPED", "Type": "L7", "node_name": "",
            "source": {"namespace": ns, "pod_name": name},
            "destination_service": {"name": (e["backend"] or "").split(":")[0].split("/")[-1],
                                     "namespace": (e["backend"] or "/").split("/")[0]},
            "l7": {"type": "RESPONSE", "http": {
                "code": e["status"], "method": e["method"],
                "url": f"http://{e['host']}{e['path']}", "protocol": e["protocol"]}},
            "is_reply": True,
            "Summary": f"HTTP/{e['protocol'][5:] or '1.1'} {e['status']} {e['method']} "
                       f"http://{e['host']}{e['path']}",
            "knet": ({"ingress": e["ingress"], "path": e["path_rule"], "backend": e["backend"]}
                     if e.get("kind") == "ingress" else
                     {"gateway": e["gateway"], "listener": e["listener"], "route": e["route"],
                      "rule": e["rule"], "filters": e["filters"], "backend": e["backend"],
                      "upstream": e["upstream"]}),
        }})
    return out


__all__ = ["hubble_records", "record", "recording", "register", "story_lines", "unregister"]
