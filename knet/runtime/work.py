"""A model of work: what serving a request costs a pod, CPU throttling, and a metrics-server.

Invariants:
- Every HTTP request a built-in app serves (echo, nginx, agnhost, http-echo, and user apps
  served through ``ctx.serve``) costs CPU time: the pod annotation
  ``knet.dev/cpu-per-request`` (a duration: ``5ms``, ``0.02``), else ``IMAGE_COSTS`` for the
  image's built-in app, else ``DEFAULT_CPU_PER_REQUEST`` (5 ms). Idle pods use
  ``IDLE_CPU`` (1m) per container and ``DEFAULT_MEMORY`` (16 MiB, annotation
  ``knet.dev/memory`` overrides) — documented in docs/workloads.md.
- CPU limits are CFS quotas: a pod may use ``limit × 100 ms`` of CPU per 100 ms period; a
  request arriving when the quota is spent waits until it is refilled (the app serves slower,
  ``throttled_seconds`` grows). Without a limit nothing waits.
- The metrics-server scrapes every ``SCRAPE_INTERVAL`` (15 s, ``--metric-resolution``) on
  the virtual clock: a query at ``t`` reports the window ending at the last scrape
  (``floor(t / 15) × 15``), so every reader sees the same numbers between scrapes. It is
  computed from the recorded work when asked (no timer keeps the loop busy).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from knet.control.autoscaling import PodUsage
from knet.control.quantity import amount

if TYPE_CHECKING:
    from knet.model.core import Pod

COST_ANNOTATION = "knet.dev/cpu-per-request"
MEMORY_ANNOTATION = "knet.dev/memory"
DEFAULT_CPU_PER_REQUEST = 0.005
IMAGE_COSTS = {"echo": 0.005, "nginx": 0.002, "agnhost": 0.005, "http-echo": 0.003}
IDLE_CPU = 0.001
DEFAULT_MEMORY = 16 * 1024 * 1024
SCRAPE_INTERVAL = 15.0
CFS_PERIOD = 0.1


def _duration(text: str) -> float | None:
    s = text.strip()
    try:
        for unit, scale in (("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("s", 1.0)):
            if s.endswith(unit):
                return float(s[:-len(unit)]) * scale
        return float(s)
    except ValueError:
        return None


def cpu_per_request(pod: Pod) -> float:
    v = pod.metadata.annotations.get(COST_ANNOTATION)
    if v is not None:
        d = _duration(v)
        if d is not None and d >= 0:
            return d
    from knet.runtime.apps import builtin_kind

    for c in pod.spec.containers:
        cost = IMAGE_COSTS.get(builtin_kind(c.image))
        if cost is not None:
            return cost
    return DEFAULT_CPU_PER_REQUEST


def cpu_limit(pod: Pod) -> float | None:
    """Sum of the containers' cpu limits in cores (None when any container has none)."""
    total = 0
    for c in pod.spec.containers:
        v = c.limits.get("cpu")
        if v is None:
            return None
        total += amount("cpu", v)
    return total / 1000


def memory_of(pod: Pod) -> float:
    v = pod.metadata.annotations.get(MEMORY_ANNOTATION)
    if v is not None:
        try:
            return float(amount("memory", v))
        except (ValueError, ArithmeticError):
            pass
    return float(DEFAULT_MEMORY * max(1, len(pod.spec.containers)))


@dataclass
class PodWork:
    cost: float
    limit: float | None
    memory: float
    containers: tuple[str, ...]
    samples: deque[tuple[float, float]] = field(default_factory=deque)  # (time, cpu seconds)
    requests: int = 0
    cpu_seconds: float = 0.0
    throttled_seconds: float = 0.0
    tokens: float = 0.0
    refilled: float = 0.0
    started: float = 0.0


class WorkModel:
    """Per-pod CPU accounting and throttling, plus the metrics-server view of it."""

    def __init__(self, now: Any) -> None:
        self._now = now
        self.pods: dict[str, PodWork] = {}
        self.on_memory: Any = None  # the runtime's memory check (knet.runtime.pressure)

    def pod_started(self, pod: Pod) -> PodWork:
        lim = cpu_limit(pod)
        w = self.pods[pod.key] = PodWork(cpu_per_request(pod), lim, memory_of(pod),
                                         tuple(c.name for c in pod.spec.containers))
        w.tokens = (lim or 0.0) * CFS_PERIOD
        w.refilled = w.started = self._now()
        return w

    def pod_gone(self, key: str) -> None:
        self.pods.pop(key, None)

    def set_memory(self, key: str, memory: float | str) -> None:
        """The pod's working set now (bytes, or a quantity such as ``"300Mi"``): above a
        container's limit it is OOM-killed; a node short of memory evicts (pressure.py)."""
        w = self.pods.get(key)
        if w is None:
            return
        w.memory = float(amount("memory", memory)) if isinstance(memory, str) else float(memory)
        if self.on_memory is not None:
            self.on_memory(key)

    def charge(self, key: str, cost: float | None = None) -> float:
        """Account one request; the delay (seconds) the CFS quota imposes before it runs."""
        w = self.pods.get(key)
        if w is None:
            return 0.0
        now = self._now()
        c = w.cost if cost is None else cost
        w.requests += 1
        w.cpu_seconds += c
        w.samples.append((now, c))
        while w.samples and w.samples[0][0] < now - 4 * SCRAPE_INTERVAL:
            w.samples.popleft()
        if w.limit is None:
            return 0.0
        cap = w.limit * CFS_PERIOD
        w.tokens = min(cap, w.tokens + (now - w.refilled) * w.limit)
        w.refilled = now
        w.tokens -= c
        if w.tokens >= 0:
            return 0.0
        delay = -w.tokens / w.limit
        w.throttled_seconds += delay
        return delay

    # --- the metrics-server ----------------------------------------------------------------

    def scrape_time(self, t: float | None = None) -> float:
        now = self._now() if t is None else t
        return math.floor(now / SCRAPE_INTERVAL) * SCRAPE_INTERVAL

    def pod_usage(self, key: str) -> PodUsage | None:
        w = self.pods.get(key)
        if w is None:
            return None
        s = self.scrape_time()
        if s < w.started + SCRAPE_INTERVAL:
            return None  # metrics-server has no full window for a pod this young
        used = sum(c for t, c in w.samples if s - SCRAPE_INTERVAL < t <= s)
        cpu = used / SCRAPE_INTERVAL
        if w.limit is not None:
            cpu = min(cpu, w.limit)
        cpu += IDLE_CPU * len(w.containers)
        rps = sum(1 for t, _ in w.samples if s - SCRAPE_INTERVAL < t <= s) / SCRAPE_INTERVAL
        return PodUsage(cpu, w.memory, s, SCRAPE_INTERVAL, {"requests-per-second": rps})

    def object_metric(self, kind: str, namespace: str, name: str, metric: str
                      ) -> float | None:
        return None

    def top(self, pods: list[Pod]) -> list[dict[str, Any]]:
        """``kubectl top pods`` rows / metrics.k8s.io PodMetrics (cpu in nanocores)."""
        from knet.control.cluster import timestamp

        out = []
        for p in sorted(pods, key=lambda p: p.key):
            u = self.pod_usage(p.key)
            w = self.pods.get(p.key)
            if u is None or w is None:
                continue
            per = len(w.containers) or 1
            out.append({
                "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
                "metadata": {"name": p.name, "namespace": p.namespace},
                "timestamp": timestamp(u.timestamp), "window": f"{int(u.window)}s",
                "containers": [{"name": n, "usage": {
                    "cpu": f"{int(u.cpu / per * 1e9)}n",
                    "memory": f"{int(u.memory / per / 1024)}Ki"}} for n in w.containers],
            })
        return out


def format_top(rows: list[dict[str, Any]]) -> str:
    """``kubectl top pods`` text: NAME, CPU(cores) in millicores, MEMORY(bytes) in Mi."""
    lines = [("NAME", "CPU(cores)", "MEMORY(bytes)")]
    for r in rows:
        cpu = sum(int(c["usage"]["cpu"][:-1]) for c in r["containers"]) / 1e6
        mem = sum(int(c["usage"]["memory"][:-2]) for c in r["containers"]) / 1024
        lines.append((r["metadata"]["name"], f"{int(cpu)}m", f"{int(mem)}Mi"))
    widths = [max(len(x[i]) for x in lines) for i in range(3)]
    return "\n".join("   ".join(x[i].ljust(widths[i]) for i in range(3)).rstrip()
                     for x in lines) + "\n"
