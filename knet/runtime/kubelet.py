"""kubelet for one node: pod lifecycle, init containers, probes, restarts, graceful deletion.

Invariants (pkg/kubelet, v1.32):
- A pod's containers share its network namespace (the sandbox), created once for the pod;
  a container restart gets a fresh writable layer (``VirtualFS``) and a new app task.
- Probes are prober workers (pkg/kubelet/prober/worker.go): one per container and kind,
  ticking every ``periodSeconds``; skipped before ``initialDelaySeconds`` since the container
  started and, for liveness/readiness, until the startup probe succeeded; a result flips only
  after ``failureThreshold``/``successThreshold`` equal results in a row; readiness starts
  Failure, liveness and startup start Success/Unknown. At kubelet start a worker first waits a
  random part of its period (seeded). httpGet/tcpSocket probes come from the node's IP.
- Restart back-off is client-go's flowcontrol.Backoff as the kubelet uses it: 10 s initial,
  doubling, 300 s cap, forgotten after 600 s; the first restart is immediate, the next ones
  wait (``CrashLoopBackOff``). restartPolicy Never/OnFailure end in Succeeded/Failed.
- Deletion: SIGTERM (``ctx.stopping``) to every container, up to the grace period, then
  SIGKILL (task cancel); then the kubelet reports the pod gone (``finalize_pod_deletion``).
- The kubelet only *reports* status; the control plane decides everything else (EndpointSlice
  conditions follow Ready; kube-proxy follows the slices).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from knet.control.cluster import timestamp
from knet.control.store import evolve
from knet.model.core import (
    Container,
    ContainerStatus,
    Pod,
    PodCondition,
    PodStatus,
    Probe,
)
from knet.runtime.apps import PodContext, select_app
from knet.runtime.env import ConfigError, container_env
from knet.runtime.shell import Shell
from knet.runtime.vfs import VirtualFS
from knet.runtime.volumes import SYNC_PERIOD, MountError, PodVolumes, record_event

if TYPE_CHECKING:
    from knet.runtime.cluster import RuntimeCluster

BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
KILLED = 137  # 128 + SIGKILL
USER_AGENT = "kube-probe/1.32"


@dataclass
class _Backoff:
    delay: float
    last_update: float


def _failing_app(error: Exception) -> Callable[[PodContext], Awaitable[int | None]]:
    async def app(ctx: PodContext) -> int | None:
        raise error
    return app


class ContainerRunner:
    """One container of a pod: its program, state, probes, restart bookkeeping."""

    def __init__(self, worker: PodWorker, spec: Container, index: int, init: bool) -> None:
        self.worker = worker
        self.spec = spec
        self.index = index
        self.init = init
        self.sidecar = init and spec.restart_policy == "Always"
        self.restart_count = 0
        self.state = "waiting"
        self.reason = "ContainerCreating" if not init else "PodInitializing"
        self.exit_code: int | None = None
        self.started = False  # startup probe passed (or none)
        self.ready = False
        self.running_since = 0.0
        self.task: asyncio.Task[int | None] | None = None
        self.ctx: PodContext | None = None
        self.generation = 0
        self.killing = False
        self.fs = VirtualFS()
        self._backoff: _Backoff | None = None
        self.probe_tasks: list[asyncio.Task[None]] = []
        self.exited = asyncio.Event()
        self.crash_code: int | None = None
        self.oom = False  # killed for exceeding its memory limit (knet.runtime.pressure)
        self.probe_errors: dict[str, str] = {}  # kind → the last failure, as kubelet words it

    @property
    def name(self) -> str:
        return self.spec.name

    def status(self) -> ContainerStatus:
        return ContainerStatus(self.name, ready=self.ready, started=self.state == "running"
                               and self.started, restart_count=self.restart_count,
                               state=self.state, reason=self.reason, image=self.spec.image,
                               exit_code=self.exit_code)

    def start(self) -> None:
        w = self.worker
        rt = w.runtime
        pod = rt.state.pod(w.key) if rt.state.store.get("Pod", *w.key.split("/", 1)) else w.pod
        env = container_env(rt.state, pod, self.spec)
        self.fs = w.volumes.filesystem(self.spec)
        self.ctx = PodContext(pod, self.spec, env, w.netns, self.fs, rt)
        try:
            app = select_app(pod, self.spec, self.index if not self.init else -1,
                             rt.user_factory(pod) if not self.init else None)
        except Exception as e:  # noqa: BLE001 - e.g. an app module that does not import
            app = _failing_app(e)  # the process starts and dies with the error in its log
        self.generation += 1
        self.state, self.reason, self.exit_code = "running", "", None
        self.started = self.spec.startup_probe is None
        self.ready = False
        self.killing = False
        self.exited = asyncio.Event()
        self.running_since = rt.loop.time()
        self.task = rt.loop.create_task(self._run(app, self.ctx), name=f"{w.key}/{self.name}")
        if self.spec.limits.get("memory") is not None:
            from knet.runtime import pressure

            rt.loop.call_soon(pressure.check, rt, w.key)  # over its limit: OOM-killed

    async def _run(self, app: Any, ctx: PodContext) -> int | None:
        try:
            code = await app(ctx)
            return 0 if code is None else int(code)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - an app crash is an exit code, not our error
            ctx.log(f"{type(e).__name__}: {e}")
            return 1
        finally:
            await ctx.aclose()

    async def wait(self) -> int:
        assert self.task is not None
        try:
            code = await asyncio.shield(self.task)
        except asyncio.CancelledError:
            if self.task.cancelled():
                code = KILLED if self.crash_code is None else self.crash_code
            else:
                raise
        self.crash_code = None
        code = KILLED if code is None else code
        self.exit_code = code
        self.state = "terminated"
        self.reason = "OOMKilled" if self.oom else "Completed" if code == 0 else "Error"
        self.oom = False
        self.ready = False
        self.started = False
        self.exited.set()
        return code

    async def stop(self, grace: float) -> None:
        """preStop hook, then SIGTERM, wait up to what is left of ``grace``, then SIGKILL.

        The hook runs while the app still serves (kubelet's killContainer: the hook's time
        counts against the grace period; a hook still running when it ends is cut short)."""
        if self.task is None or self.task.done():
            return
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        hook = (self.spec.extra.get("lifecycle") or {}).get("preStop")
        if hook:
            try:
                await asyncio.wait_for(self._pre_stop(hook), grace)
            except (TimeoutError, Exception):  # noqa: BLE001 - a failed hook still stops
                pass
        grace = max(0.0, grace - (loop.time() - t0))
        if self.task.done():
            return
        self.killing = True
        if self.ctx is not None:
            self.ctx.stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), grace)
        except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001
            pass
        if not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except BaseException:  # noqa: BLE001
                pass

    async def _pre_stop(self, hook: Any) -> None:
        """lifecycle.preStop: ``sleep`` (KEP-3960), ``exec`` (the container's shell), or
        ``httpGet`` (from the node, like a probe)."""
        if "sleep" in hook:
            await asyncio.sleep(float((hook.get("sleep") or {}).get("seconds", 0)))
        elif "exec" in hook:
            argv = list((hook.get("exec") or {}).get("command") or ())
            w = self.worker
            sh = Shell(self.fs, w.pod.spec.hostname or w.pod.name,
                       env=dict(self.ctx.env) if self.ctx is not None else None,
                       net=w.runtime.pod(w.key), clock=w.runtime.now)
            await sh.run_argv(argv)
        elif "httpGet" in hook:
            h = hook["httpGet"]
            w = self.worker
            host = h.get("host") or str(w.runtime.state_pod_ip(w.key) or "")
            await http_probe(w.kubelet.netns, host, _port(h.get("port"), self.spec),
                             h.get("path") or "/", h.get("scheme", "HTTP"),
                             h.get("httpHeaders") or ())

    def kill(self, exit_code: int = KILLED) -> None:
        """The process dies now (a crash, or SIGKILL) with ``exit_code``."""
        if self.task is not None and not self.task.done():
            self.killing = True
            self.crash_code = exit_code
            self.task.cancel()

    def backoff_delay(self, finished: float, now: float) -> float:
        """Seconds to wait before restarting (client-go flowcontrol.Backoff)."""
        b = self._backoff
        if b is not None and finished - b.last_update > 2 * BACKOFF_MAX:
            b = self._backoff = None
        if b is None:
            return 0.0
        return max(0.0, b.delay - (now - finished))

    def backoff_next(self, now: float) -> None:
        b = self._backoff
        if b is None or now - b.last_update > 2 * BACKOFF_MAX:
            self._backoff = _Backoff(BACKOFF_INITIAL, now)
        else:
            b.delay = min(b.delay * 2, BACKOFF_MAX)
            b.last_update = now


class PodWorker:
    """The kubelet's pod worker: drives one pod from sandbox to deletion."""

    def __init__(self, kubelet: Kubelet, pod: Pod) -> None:
        self.kubelet = kubelet
        self.runtime = kubelet.runtime
        self.pod = pod
        self.key = pod.key
        self.netns: Any = None
        self.inits = [ContainerRunner(self, c, i, True) for i, c in enumerate(pod.spec.init_containers)]
        self.containers = [ContainerRunner(self, c, i, False) for i, c in enumerate(pod.spec.containers)]
        self.phase = "Pending"
        self.initialized = not pod.spec.init_containers
        self.terminating = False
        self.done = False
        self.task: asyncio.Task[None] | None = None
        self.supervisors: list[asyncio.Task[None]] = []
        self._published: PodStatus | None = None
        self.volumes = PodVolumes(self.runtime, pod)

    def why_not_ready(self) -> str:
        """What keeps this pod from Ready, container by container, as ``kubectl describe``
        would show it: state (reason), restarts, and the last log line, where a crashed app's
        exception lands (e.g. a missing module)."""
        parts = []
        for c in self.inits + self.containers:
            if c.ready or (c.init and not c.sidecar and c.exit_code == 0):
                continue
            text = f"{c.name}: {c.state}" + (f" {c.reason}" if c.reason else "")
            if c.restart_count:
                text += f", {c.restart_count} restart{'s' if c.restart_count > 1 else ''}"
            if c.ctx is not None and c.ctx.logs:
                text += f", last log: {c.ctx.logs[-1]}"
            for kind in ("startup", "liveness", "readiness"):
                if kind in c.probe_errors:
                    text += f", {kind.capitalize()} probe failed: {c.probe_errors[kind]}"
            parts.append(text)
        return "; ".join(parts) or self.phase

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.task = self.runtime.loop.create_task(self._lifecycle(), name=f"pod {self.key}")

    async def _lifecycle(self) -> None:
        rt = self.runtime
        self.netns = rt.sandbox(self.pod)
        self.publish()
        if not await self._mount_volumes():
            return
        self.supervisors.append(rt.loop.create_task(self._volume_sync()))
        policy = self.pod.spec.restart_policy
        for c in self.inits:
            if c.sidecar:
                self.supervisors.append(rt.loop.create_task(self._supervise(c)))
                while not (c.state == "running" and c.started):
                    await asyncio.sleep(0.05 if not c.spec.startup_probe else
                                        c.spec.startup_probe.period_seconds / 2)
                    if self.terminating:
                        return
                continue
            while True:
                if self.terminating:
                    return
                if not await self._start(c):
                    await asyncio.sleep(BACKOFF_INITIAL)
                    continue
                self.publish()
                code = await c.wait()
                self.publish()
                if code == 0:
                    break
                if policy == "Never":
                    self.phase = "Failed"
                    self.publish()
                    return
                finished = rt.loop.time()
                delay = c.backoff_delay(finished, finished)
                if delay:
                    c.state, c.reason = "waiting", "CrashLoopBackOff"
                    self.publish()
                    await asyncio.sleep(delay)
                c.backoff_next(rt.loop.time())
                c.restart_count += 1
        self.initialized = True
        for c in self.containers:
            self.supervisors.append(rt.loop.create_task(self._supervise(c)))
        self.publish()

    def _current(self) -> Pod:
        rt = self.runtime
        cur = rt.state.store.get("Pod", *self.key.split("/", 1))
        return cur if cur is not None and cur.metadata.uid == self.pod.metadata.uid else self.pod

    async def _mount_volumes(self) -> bool:
        """The volume manager's WaitForAttachAndMount: retry with exponential back-off
        (500 ms doubling to 2 min 2 s, goroutinemap's) while a mount fails."""
        delay = 0.5
        while not self.terminating:
            try:
                self.volumes.setup(self._current())
                return True
            except MountError as e:
                record_event(self.runtime, self.pod, "Warning", "FailedMount", str(e))
                self.publish()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 122.0)
        return False

    async def _volume_sync(self) -> None:
        """kubelet's periodic pod sync re-projects configMap/secret/downwardAPI volumes."""
        while not self.terminating:
            await asyncio.sleep(SYNC_PERIOD)
            self.volumes.refresh(self._current())

    async def _start(self, c: ContainerRunner) -> bool:
        try:
            c.start()
        except ConfigError as e:
            c.state, c.reason = "waiting", "CreateContainerConfigError"
            record_event(self.runtime, self.pod, "Warning", "Failed", f"Error: {e}")
            self.publish()
            return False
        return True

    async def _supervise(self, c: ContainerRunner) -> None:
        rt = self.runtime
        policy = "Always" if c.sidecar else self.pod.spec.restart_policy
        while not self.terminating:
            if not await self._start(c):
                await asyncio.sleep(BACKOFF_INITIAL)
                continue
            if self.phase == "Pending":
                self.phase = "Running"
            self._start_probes(c)
            self.publish()
            code = await c.wait()
            self._stop_probes(c)
            if self.terminating:
                return
            self.publish()
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                self._maybe_complete()
                return
            finished = rt.loop.time()
            delay = c.backoff_delay(finished, finished)
            if delay:
                c.state, c.reason = "waiting", "CrashLoopBackOff"
                self.publish()
                await asyncio.sleep(delay)
                if self.terminating:
                    return
            c.backoff_next(rt.loop.time())
            c.restart_count += 1

    def _maybe_complete(self) -> None:
        if all(c.state == "terminated" for c in self.containers):
            ok = all(c.exit_code == 0 for c in self.containers)
            self.phase = "Succeeded" if ok else "Failed"
            self.publish()

    async def terminate(self, grace: float) -> None:
        """Graceful stop (pod deleted): SIGTERM everything, wait ≤ grace, SIGKILL the rest."""
        if self.terminating:
            return
        self.terminating = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
        runners = [c for c in self.containers + self.inits if c.task is not None]
        await asyncio.gather(*(c.stop(grace) for c in runners))
        for c in runners:
            self._stop_probes(c)
        for t in self.supervisors:
            t.cancel()
        self.done = True

    def kill_all(self) -> None:
        """Crash every running container (exit 137): restarts follow restartPolicy."""
        for c in self.containers + self.inits:
            c.kill()

    # -- probes ---------------------------------------------------------------------------
    def _start_probes(self, c: ContainerRunner) -> None:
        loop = self.runtime.loop
        for kind, probe in (("startup", c.spec.startup_probe), ("liveness", c.spec.liveness_probe),
                            ("readiness", c.spec.readiness_probe)):
            if probe is not None:
                c.probe_tasks.append(loop.create_task(self._probe_worker(c, kind, probe)))
        if c.spec.readiness_probe is None and c.started:
            c.ready = True

    def _stop_probes(self, c: ContainerRunner) -> None:
        for t in c.probe_tasks:
            t.cancel()
        c.probe_tasks.clear()

    async def _probe_worker(self, c: ContainerRunner, kind: str, probe: Probe) -> None:
        rt = self.runtime
        period = max(1, probe.period_seconds)
        if rt.loop.time() - self.kubelet.started_at < period:
            await asyncio.sleep(self.kubelet.rng.random() * period)
        gen = c.generation
        last: bool | None = None
        run = 0
        while True:
            if c.generation != gen or c.state != "running" or c.killing:
                return
            elapsed = rt.loop.time() - c.running_since
            due = elapsed >= probe.initial_delay_seconds
            if kind == "startup" and c.started:
                return
            if kind != "startup" and not c.started:
                due = False
            if due and not self.kubelet.paused:
                ok = await self._probe(c, probe, kind)
                if c.generation != gen or c.state != "running" or c.killing:
                    return
                run = run + 1 if ok == last else 1
                last = ok
                threshold = probe.success_threshold if ok else probe.failure_threshold
                if run >= threshold:
                    self._probe_result(c, kind, ok, probe)
                    if not ok and kind in ("liveness", "startup"):
                        return
            await asyncio.sleep(period)

    def _probe_result(self, c: ContainerRunner, kind: str, ok: bool, probe: Probe) -> None:
        if kind == "readiness":
            if c.ready != ok:
                c.ready = ok
                self.publish()
        elif kind == "startup":
            if ok:
                c.started = True
                if c.spec.readiness_probe is None:
                    c.ready = True
                self.publish()
            else:
                self._probe_kill(c, probe)
        elif kind == "liveness" and not ok:
            self._probe_kill(c, probe)

    def _probe_kill(self, c: ContainerRunner, probe: Probe) -> None:
        grace = probe.termination_grace_period_seconds
        if grace is None:
            grace = self.pod.spec.termination_grace_period_seconds
        c.ready = False
        self.publish()
        self.runtime.loop.create_task(c.stop(float(grace)))

    async def _probe(self, c: ContainerRunner, probe: Probe, kind: str = "") -> bool:
        """One probe; a failure's message (kubelet's wording, pkg/probe) is kept per kind."""
        timeout = max(1, probe.timeout_seconds)
        why: list[str] = []
        try:
            ok = await asyncio.wait_for(self._probe_once(c, probe, why), timeout)
        except TimeoutError:
            ok = False
            why.append(f"{_probe_target(probe, self, c.spec)}: context deadline exceeded"
                       + (" (Client.Timeout exceeded while awaiting headers)"
                          if probe.http_get is not None else ""))
        except (OSError, ConnectionError, ValueError) as e:
            ok = False
            text = (os.strerror(e.errno) if isinstance(e, OSError) and e.errno
                    else getattr(e, "strerror", None) or str(e))
            why.append(f"{_probe_target(probe, self, c.spec, dial=True)}: connect: "
                       f"{text.lower()}")
        if ok:
            c.probe_errors.pop(kind, None)
        else:
            c.probe_errors[kind] = why[-1] if why else "probe failed"
        return ok

    async def _probe_once(self, c: ContainerRunner, probe: Probe,
                          why: list[str] | None = None) -> bool:
        node_ns = self.kubelet.netns
        pod_ip = str(self.runtime.state_pod_ip(self.key) or "")
        if probe.exec is not None:
            argv = list(probe.exec.get("command") or ())
            sh = Shell(c.fs, self.pod.spec.hostname or self.pod.name,
                       env=dict(c.ctx.env) if c.ctx is not None else None,
                       net=self.runtime.pod(self.key), clock=self.runtime.now)
            code = await sh.run_argv(argv)
            if code != 0 and why is not None:
                why.append(f"command {' '.join(argv)!r} exited with {code}")
            return code == 0
        h = probe.http_get or probe.tcp_socket or probe.grpc
        if h is None:
            return True
        port = _port(h.get("port"), c.spec)
        host = h.get("host") or pod_ip
        if self.pod.spec.host_network:
            host = h.get("host") or str(self.kubelet.node_ip)
        if probe.http_get is not None:
            status = await http_probe_status(node_ns, host, port, h.get("path") or "/",
                                             h.get("scheme", "HTTP"), h.get("httpHeaders") or ())
            if not 200 <= status < 400 and why is not None:
                why.append(f"HTTP probe failed with statuscode: {status}" if status else
                           "HTTP probe failed: malformed HTTP response")
            return 200 <= status < 400
        reader, writer = await node_ns.open_connection(host, port)
        writer.close()
        return True

    # -- status ---------------------------------------------------------------------------
    def publish(self) -> None:
        if self.kubelet.paused or self.done:
            return
        self.runtime.publish_status(self)

    def status(self, current: Pod) -> PodStatus:
        now = self.runtime.now()
        t = timestamp(now)
        all_c = self.containers
        ready = (self.initialized and bool(all_c) and all(c.ready for c in all_c)
                 and all(c.ready or not c.sidecar for c in self.inits)
                 and self.phase == "Running")
        cstatuses = tuple(c.status() for c in all_c)
        if not self.initialized:
            cstatuses = tuple(ContainerStatus(c.name, state="waiting", reason="PodInitializing",
                                              image=c.spec.image) for c in all_c)
        not_ready = [c.name for c in all_c if not c.ready]
        reason = "" if ready else ("PodCompleted" if self.phase in ("Succeeded", "Failed")
                                   else "ContainersNotReady")
        msg = "" if ready or reason == "PodCompleted" else \
            f"containers with unready status: [{' '.join(not_ready)}]"
        init_reason = "" if self.initialized else "ContainersNotInitialized"
        init_msg = "" if self.initialized else "containers with incomplete status: [" + " ".join(
            c.name for c in self.inits if c.exit_code != 0) + "]"
        wanted = [
            ("PodReadyToStartContainers", "True", "", ""),
            ("Initialized", "True" if self.initialized else "False", init_reason, init_msg),
            ("Ready", "True" if ready else "False", reason, msg),
            ("ContainersReady", "True" if ready else "False", reason, msg),
        ]
        old = {c.type: c for c in current.status.conditions}
        conds = []
        for typ, st, why, m in wanted:
            prev = old.get(typ)
            when = prev.last_transition_time if prev is not None and prev.status == st else t
            conds.append(PodCondition(typ, st, why, m, when))
        sched = old.get("PodScheduled")
        if sched is not None:
            conds.append(sched)
        target = old.get("DisruptionTarget")  # written by an eviction or a preemption
        if target is not None:
            conds.append(target)
        phase = self.phase
        return evolve(current.status, phase=phase, conditions=tuple(conds),
                      container_statuses=cstatuses,
                      init_container_statuses=tuple(c.status() for c in self.inits),
                      start_time=current.status.start_time or t)


def _probe_target(probe: Probe, w: PodWorker, spec: Container, dial: bool = False) -> str:
    """``Get "http://IP:PORT/path"`` / ``dial tcp IP:PORT`` as kubelet's probe errors say."""
    h = probe.http_get or probe.tcp_socket or probe.grpc or {}
    host = h.get("host") or str(w.runtime.state_pod_ip(w.key) or "")
    try:
        port: Any = _port(h.get("port"), spec)
    except ValueError:
        port = h.get("port")
    hp = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if probe.http_get is not None:
        url = f'Get "{str(h.get("scheme", "HTTP")).lower()}://{hp}{h.get("path") or "/"}"'
        return f"{url}: dial tcp {hp}" if dial else url
    return f"dial tcp {hp}"


async def http_probe(ns: Any, host: str, port: int, path: str, scheme: str = "HTTP",
                     headers: Any = ()) -> bool:
    """kubelet's HTTP prober: GET, success iff 200 ≤ status < 400 (pkg/probe/http)."""
    return 200 <= await http_probe_status(ns, host, port, path, scheme, headers) < 400


async def http_probe_status(ns: Any, host: str, port: int, path: str, scheme: str = "HTTP",
                            headers: Any = ()) -> int:
    """The status code of kubelet's probe GET (0 for a malformed response)."""
    import ssl

    ctx = None
    if str(scheme).upper() == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await ns.open_connection(host, port, ssl=ctx)
    try:
        hdrs = {"Host": f"{host}:{port}" if ":" not in host else f"[{host}]:{port}",
                "User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
        for h in headers:
            hdrs[h.get("name", "")] = h.get("value", "")
        req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        writer.write(req.encode())
        line = await reader.readline()
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            return 0
        return int(parts[1])
    finally:
        writer.close()


def _port(value: Any, spec: Container) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    for p in spec.ports:
        if p.name == value:
            return p.container_port
    raise ValueError(f"port {value!r} not found")


class Kubelet:
    """The pods bound to one node."""

    def __init__(self, runtime: RuntimeCluster, node: str) -> None:
        self.runtime = runtime
        self.node = node
        self.workers: dict[str, PodWorker] = {}
        self.paused = False  # node NotReady/unreachable: no status reports
        self.started_at = runtime.loop.time()
        self.rng = random.Random(f"{runtime.seed}:kubelet:{node}")

    @property
    def netns(self) -> Any:
        return self.runtime.fabric.node(self.node).netns

    @property
    def node_ip(self) -> Any:
        return self.runtime.fabric.node(self.node).addresses[0]

    def add(self, pod: Pod) -> PodWorker:
        w = self.workers.get(pod.key)
        if w is None:
            w = self.workers[pod.key] = PodWorker(self, pod)
            w.start()
        return w

    def __repr__(self) -> str:
        return f"<Kubelet {self.node} pods={len(self.workers)}>"
