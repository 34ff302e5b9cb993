"""The pods that are not Ready when ``knet up`` starts serving, and why (issue 12.1).

A real cluster runs with broken pods, and that is when people look: ``knet up`` does not stop
for them. It prints one row per pod that is neither Ready nor finished, with the reason a user
would dig out of ``kubectl describe``:
- Pending and unscheduled: the scheduler's message (PodScheduled=False, Unschedulable);
- a container waiting (CrashLoopBackOff, ContainerCreating, PodInitializing …) or running but
  failing its probes: the kubelet's account (state, restarts, last log line, the last probe
  failure in kubelet's words, e.g. ``Readiness probe failed: HTTP probe failed with
  statuscode: 500``).
Pure over the runtime's state and pod workers; rendering is ``kubectl``-style columns.
"""

from __future__ import annotations

from typing import Any


def not_ready(rt: Any) -> list[dict[str, str]]:
    """One entry per pod that is not Ready (and not Succeeded/Failed/terminating)."""
    from knet.printers import _pod_status

    out = []
    for p in sorted(rt.state.pods(), key=lambda p: (p.namespace, p.name)):
        if p.status.ready or p.status.phase in ("Succeeded", "Failed") or p.terminating:
            continue
        sched = p.status.condition("PodScheduled")
        if not p.spec.node_name:
            why = (sched.message if sched is not None and sched.message
                   else "waiting for the scheduler")
        else:
            w = rt._worker(p.key)
            why = w.why_not_ready() if w is not None else "not started by the kubelet yet"
        out.append({"namespace": p.namespace, "name": p.name,
                    "node": p.spec.node_name or "<none>", "status": _pod_status(p),
                    "reason": why})
    return out


def render(rows: list[dict[str, str]], total: int) -> str:
    head = (f"NOT READY: {len(rows)} of {total} pods (knet up keeps serving; "
            f"`knet get pods` follows them)")
    table = [("NAMESPACE", "NAME", "NODE", "STATUS", "REASON")]
    table += [(r["namespace"], r["name"], r["node"], r["status"], r["reason"]) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(4)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(t[:4], widths, strict=True)) + "   " + t[4]
             for t in table]
    return "\n".join([head, *lines]) + "\n"
