"""The running emulation: control plane + fabric + per-node kubelet and kube-proxy.

Invariants:
- The control plane (``knet.control.Cluster``) is the single source of truth; the runtime
  reacts to its events: Services/EndpointSlices feed every node's kube-proxy change trackers,
  Pods bound to a node start in that node's kubelet, deletions stop them. The runtime never
  mutates the control plane from inside an event callback; work is queued on the loop.
- Every packet between pods crosses the nodes' datapaths = netfilter over the tables the
  node's kube-proxy last synced (``NodeProxy``); nothing routes around them.
- Time is the loop's: virtual under ``VirtualTimeLoop`` (tests), real otherwise (``knet up``).
  Control-plane time is seconds since ``run`` started. One seed drives every random choice
  (fabric ISNs and loss, netfilter statistic draws, probe jitter, DNS ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from ipaddress import ip_address
from typing import Any
from collections.abc import AsyncIterator, Callable, Iterable, Mapping

import aiohttp

from knet.control import Cluster, ingressnginx
from knet.control.store import evolve
from knet.errors import NetworkError, NotFound, UsageError
from knet.fabric import OUTSIDE, Fabric, clock_of
from knet.fabric.aio import client_session
from knet.metrics import ClusterMetrics
from knet.model.core import Pod
from knet.runtime.apps import load_factory
from knet.runtime.datapath import NodeDatapath
from knet.policy.hook import PolicyHook
from knet.model.policy import CLUSTER_POLICY_KINDS
from knet.policy.index import POLICY_INPUT_KINDS, PolicyIndex
from knet.dns import DnsView
from knet.runtime.dns import PodDns, ResolvConf, pod_resolv_conf
from knet.runtime.kubelet import Kubelet, PodWorker
from knet.runtime.nodeproxy import NodeProxy, make_node_proxy

# Deadlines closer than this count as reached: on the virtual clock, time summed from float
# timers can stop 1e-13 s short of a deadline, and a wait for that remainder fires at once
# without moving time (asyncio runs timers within its clock resolution), forever.
_RESOLUTION = 1e-6
_DNS_KINDS = frozenset({"Service", "EndpointSlice", "Pod", "Namespace", "ConfigMap"})
_WATCHED = frozenset({"Service", "EndpointSlice", "Ingress", "IngressClass", "Secret",
                      "ConfigMap", "Namespace"})


def _split(key: str, default_ns: str = "default") -> tuple[str, str]:
    if "/" in key:
        ns, name = key.split("/", 1)
        return ns, name
    return default_ns, key


class RuntimeCluster:
    """``async with knet.run(...) as cluster``: handles, faults, time."""

    def __init__(self, state: Cluster, *, seed: int | None = None,
                 apps: Mapping[str, Callable[..., Any] | str] | None = None,
                 clock: Any = None) -> None:
        self.state = state
        self.seed = state.seed if seed is None else seed
        self.loop = asyncio.get_running_loop()
        self.clock = clock if clock is not None else clock_of(self.loop)
        self.fabric = Fabric(self.clock, seed=int(self.seed or 0))
        self.families = tuple(state.config.families)
        self._t0 = self.loop.time() - state.now
        self.proxies: dict[str, NodeProxy] = {}
        self.datapaths: dict[str, NodeDatapath] = {}
        # network policy, compiled once and kept current by the store's events (knet.policy)
        self.policy = PolicyIndex.from_cluster(state)
        self.kubelets: dict[str, Kubelet] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._apps: dict[str, Callable[..., Any]] = {}
        for k, f in (apps or {}).items():
            self.set_app(k, f, restart=False)
        self._watchers: list[Callable[[], None]] = []
        self._notify_pending = False
        self._announce_pending = False
        self._announced: dict[Any, str] = {}
        self._deadline: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()
        self._handles: dict[str, PodHandle] = {}
        self._externals: dict[str, ExternalHandle] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False
        self.dns_view = DnsView(
            services=state.services(), endpoint_slices=state.endpoint_slices(),
            pods=state.pods(), namespaces=state.namespaces(), config_maps=state.config_maps(),
            cluster=state.config, now=state.now, seed=int(self.seed or 0))
        self.errors: list[BaseException] = []
        from knet.runtime.work import WorkModel

        self.work = WorkModel(self.now)  # CPU per request, throttling, metrics-server
        state.metrics = self.work
        from knet.runtime import pressure

        self.work.on_memory = lambda key: pressure.check(self, key)
        self.metrics = ClusterMetrics()
        self.epoch = 0.0  # added to now() for metric timestamps (knet up: the Unix time)
        self._queued: dict[str, list[float]] = {}  # per node: times of changes not yet synced
        self.events: list[Any] = []  # kubelet Events (knet.runtime.volumes.PodEvent)
        self._explaining = 0  # running captures (datapaths keep matched rules while > 0)

    # -- time ---------------------------------------------------------------------------
    def now(self) -> float:
        """Control-plane time: seconds since the emulation started."""
        return self.loop.time() - self._t0

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    async def run_until_idle(self) -> None:
        await self.clock.run_until_idle()

    settle = run_until_idle

    # -- start / stop -------------------------------------------------------------------
    async def start(self) -> None:
        for node in self.state.nodes():
            self._add_node(node)
        for svc in self.state.services():
            for p in self.proxies.values():
                p.on_service_change(None, svc)
        for es in self.state.endpoint_slices():
            for p in self.proxies.values():
                p.on_slice_change(None, es)
        self._unsubscribe = self.state.subscribe(self._on_event)
        for name in self.proxies:
            self._sync_proxy(name)  # kube-proxy's first (full) sync before pods start
        for name in self.proxies:
            self._tasks.append(self.loop.create_task(self._proxy_loop(name), name=f"kube-proxy {name}"))
        self._announce_lb()
        for pod in self.state.pods():
            self._ensure_pod(pod)
        self._arm_deadline()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._deadline is not None:
            self._deadline.cancel()
        for h in list(self._handles.values()) + list(self._externals.values()):
            await h.aclose()
        workers = [w for k in self.kubelets.values() for w in k.workers.values()]
        for w in workers:
            w.terminating = True
            w.done = True
            if w.task is not None:
                w.task.cancel()
            for t in w.supervisors:
                t.cancel()
            for c in w.containers + w.inits:
                for t in c.probe_tasks:
                    t.cancel()
                if c.task is not None:
                    c.task.cancel()
        for t in self._tasks:
            t.cancel()
        pending = [t for w in workers for t in ([w.task] if w.task else []) + w.supervisors
                   + [c.task for c in w.containers + w.inits if c.task]
                   + [p for c in w.containers + w.inits for p in c.probe_tasks]] + self._tasks
        await asyncio.gather(*pending, return_exceptions=True)
        for ns in [n for n, x in self.fabric.namespaces.items() if x.kind != "node"]:
            self.fabric.remove_namespace(ns)

    async def __aenter__(self) -> RuntimeCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- nodes and kube-proxy -------------------------------------------------------------
    def _add_node(self, node: Any) -> None:
        if node.name in self.fabric.nodes:
            return
        # kube-proxy in the cluster's mode, and the engine that runs what it syncs
        proxy = make_node_proxy(node, self.state.config, self.families,
                                random.Random(f"{self.seed}:netfilter:{node.name}"))
        dp = NodeDatapath(node.name, proxy.engine, mode=proxy.mode,
                          policy=PolicyHook(self.policy, node.name, proxy.engine.conntrack))
        dp.explain = self._explaining > 0
        self.proxies[node.name] = proxy
        self.datapaths[node.name] = dp
        self.fabric.add_node(node.name, node.ips(), node.pod_cidrs, datapath=dp)
        self._wake[node.name] = asyncio.Event()
        self.kubelets[node.name] = Kubelet(self, node.name)

    def _sync_proxy(self, name: str) -> None:
        t = time.perf_counter()
        out = self.proxies[name].sync(self.loop.time())  # the node's engine runs it from now on
        took = time.perf_counter() - t
        now = self.now()
        queued = self._queued.pop(name, [])
        self.metrics.proxy_synced(name, took, full=all(getattr(r, "full", True) for r in out.values()),
                                  epoch_now=self.epoch + now, programming=[now - q for q in queued])
        self._changed.set()

    def _queue_proxy_change(self, name: str, kind: str) -> None:
        now = self.now()
        self._queued.setdefault(name, []).append(now)
        self.metrics.proxy_queued(name, kind, self.epoch + now)

    async def _proxy_loop(self, name: str) -> None:
        p = self.proxies[name]
        ev = self._wake[name]
        while not self._closed:  # 3.11's wait_for can swallow a cancel that races ev.set()
            # the bounded-frequency runner: a change syncs once minSyncPeriod allows; with
            # no change a sync still runs at the mode's maximum interval (IPVS: syncPeriod)
            now = self.loop.time()
            t = p.next_sync_time(now)
            if t <= now:
                try:
                    self._sync_proxy(name)
                except Exception as e:  # noqa: BLE001 - keep the node alive; report
                    self.errors.append(e)
                    await asyncio.sleep(1.0)
                continue
            ev.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ev.wait(), t - now)

    # -- events ------------------------------------------------------------------------
    def _on_event(self, ev: Any) -> None:
        kind = ev.kind
        prev, cur = ev.previous, ev.current
        if kind in _DNS_KINDS:
            self.dns_view.apply_change(kind, prev, cur, now=self.now())
        if kind in POLICY_INPUT_KINDS:
            self.policy.on_change(prev, cur)
        if kind == "Service":
            for name, p in self.proxies.items():
                p.on_service_change(prev, cur)
                self._queue_proxy_change(name, kind)
                self._wake[name].set()
        elif kind == "EndpointSlice":
            for name, p in self.proxies.items():
                p.on_slice_change(prev, cur)
                self._queue_proxy_change(name, kind)
                self._wake[name].set()
        elif kind == "Node":
            if cur is not None and cur.name not in self.fabric.nodes:
                self._add_node(cur)
                self._tasks.append(self.loop.create_task(self._proxy_loop(cur.name)))
                for svc in self.state.services():
                    self.proxies[cur.name].on_service_change(None, svc)
                for es in self.state.endpoint_slices():
                    self.proxies[cur.name].on_slice_change(None, es)
            for name, p in self.proxies.items():
                p.on_node_change(prev, cur)
                self._wake[name].set()
        elif kind == "Pod":
            self.loop.call_soon(self._pod_changed, prev, cur)
        if kind in ("Service", "Node", "EndpointSlice") and not self._announce_pending:
            self._announce_pending = True
            self.loop.call_soon(self._announce_lb)
        if kind in _WATCHED and self._watchers and not self._notify_pending:
            self._notify_pending = True
            self.loop.call_soon(self._notify)
        self._changed.set()
        self.loop.call_soon(self._arm_deadline)

    def _announce_lb(self) -> None:
        """MetalLB layer-2 mode (``knet.control.speaker``): one eligible node announces each
        LoadBalancer IP; the fabric routes the IP to it, and its tables DNAT the traffic."""
        from knet.control.speaker import announcer, lb_ips

        self._announce_pending = False
        nodes, slices = self.state.nodes(), self.state.endpoint_slices()
        wanted: dict[Any, str] = {}
        for svc in self.state.services():
            for ip in lb_ips(svc):
                who = announcer(ip, svc, nodes, slices)
                if who is not None:
                    wanted[ip] = who
        for ip, node in list(self._announced.items()):
            if wanted.get(ip) != node:
                self.fabric.set_route(ip, None)
                del self._announced[ip]
        for ip, node in wanted.items():
            if self._announced.get(ip) != node:
                self.fabric.set_route(ip, node)
                self._announced[ip] = node

    def lb_announcer(self, ip: str) -> str | None:
        """The node that announces a LoadBalancer IP (MetalLB L2 leader)."""
        return self._announced.get(ip_address(ip))

    def _notify(self) -> None:
        self._notify_pending = False
        for fn in list(self._watchers):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                self.errors.append(e)

    def watch(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn()`` after Service/EndpointSlice/Ingress/Secret… changes (batched)."""
        self._watchers.append(fn)
        return lambda: self._watchers.remove(fn) if fn in self._watchers else None

    def _arm_deadline(self) -> None:
        if self._closed:
            return
        d = self.state.next_deadline()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if d is not None:
            self._deadline = self.loop.call_at(self._t0 + d, self._control_sync)

    def _control_sync(self) -> None:
        self._deadline = None
        self.state.sync(self.now())
        self._arm_deadline()

    def _pod_changed(self, prev: Pod | None, cur: Pod | None) -> None:
        if self._closed:
            return
        if cur is None:
            assert prev is not None
            w = self._worker(prev.key)
            if w is not None:
                self._forget(prev, w)
            else:
                self._drop_sandbox(prev)
            return
        w = self._worker(cur.key)
        if w is None:
            self._ensure_pod(cur)
            w = self._worker(cur.key)
        if w is not None and cur.terminating and not w.terminating:
            grace = _grace_left(cur, self.now())
            self._tasks.append(self.loop.create_task(self._terminate(w, grace)))

    def _ensure_pod(self, pod: Pod) -> None:
        cur = self.state.store.get("Pod", pod.namespace, pod.name)
        if cur is None or not cur.spec.node_name or not cur.status.pod_ips:
            return
        kubelet = self.kubelets.get(cur.spec.node_name)
        if kubelet is None or cur.key in kubelet.workers:
            return
        w = kubelet.add(cur)
        self.work.pod_started(cur)
        self.loop.call_soon(self.work.on_memory, cur.key)  # may press its node
        if cur.terminating:
            self._tasks.append(self.loop.create_task(
                self._terminate(w, _grace_left(cur, self.now()))))

    def _why_not_ready(self, key: str) -> str:
        w = self._worker(key)
        return f"{key} ({w.why_not_ready() if w is not None else 'not started'})"

    def _worker(self, key: str) -> PodWorker | None:
        for k in self.kubelets.values():
            w = k.workers.get(key)
            if w is not None:
                return w
        return None

    async def _terminate(self, w: PodWorker, grace: float) -> None:
        await w.terminate(grace)
        if w.kubelet.paused:
            return  # a NotReady/unreachable kubelet cannot report the pod gone
        if self.state.store.get("Pod", *w.key.split("/", 1)) is not None:
            self.state.finalize_pod_deletion(w.key, self.now())

    def _forget(self, pod: Pod, w: PodWorker) -> None:
        w.kubelet.workers.pop(pod.key, None)
        self.work.pod_gone(pod.key)
        if not w.done:
            w.terminating = True
            w.done = True
            for c in w.containers + w.inits:
                c.kill()
                for t in c.probe_tasks:
                    t.cancel()
            if w.task is not None:
                w.task.cancel()
            for t in w.supervisors:
                t.cancel()
        self._drop_sandbox(pod)
        h = self._handles.pop(pod.key, None)
        if h is not None:
            self._tasks.append(self.loop.create_task(h.aclose()))

    def _drop_sandbox(self, pod: Pod) -> None:
        if pod.key in self.fabric.namespaces and not pod.spec.host_network:
            self.fabric.remove_namespace(pod.key)

    def sandbox(self, pod: Pod) -> Any:
        """The pod's network namespace (the node's own for hostNetwork pods)."""
        if pod.spec.host_network:
            return self.fabric.node(pod.spec.node_name).netns
        ns = self.fabric.namespaces.get(pod.key)
        if ns is None:
            ns = self.fabric.add_pod(pod.key, pod.spec.node_name, pod.status.pod_ips)
        return ns

    def publish_status(self, w: PodWorker) -> None:
        if self._closed:
            return
        cur = self.state.store.get("Pod", *w.key.split("/", 1))
        if cur is None or cur.metadata.uid != w.pod.metadata.uid:
            return
        st = w.status(cur)
        if st != cur.status:
            self.state.apply(evolve(cur, status=st), self.now())

    def state_pod_ip(self, key: str) -> Any:
        p = self.state.store.get("Pod", *key.split("/", 1))
        return p.ip if p is not None else None

    # -- DNS ------------------------------------------------------------------------------
    @property
    def dns_ip(self) -> str | None:
        svc = self.state.store.get("Service", "kube-system", "kube-dns")
        if svc is None or svc.spec.cluster_ip in ("", "None"):
            return None
        return svc.spec.cluster_ip

    # -- apps ---------------------------------------------------------------------------
    def capture(self, filter: Any = None, **filters: Any) -> Any:
        """``async with cluster.capture(pod="default/client") as cap:`` — record every hop
        (filters as ``hubble observe``); ``cap.flows()``, ``cap.explain(flow)``,
        ``cap.write_pcapng(path)``. See knet.trace."""
        from knet.runtime.capture import RuntimeCapture

        return RuntimeCapture(self, filter, **filters)

    def set_app(self, key: str, factory: Callable[..., Any] | str, *, restart: bool = True) -> None:
        """Run ``factory`` in the first container of pod ``ns/name`` or of every pod of the
        workload ``ns/name`` (Deployment, StatefulSet, DaemonSet, Job)."""
        if isinstance(factory, str):
            factory = load_factory(factory)
        ns, name = _split(key)
        self._apps[f"{ns}/{name}"] = factory
        if restart and not self._closed:
            for k in self.kubelets.values():
                for w in k.workers.values():
                    if self.user_factory(w.pod) is factory and w.containers:
                        w.containers[0].kill()

    def user_factory(self, pod: Pod) -> Callable[..., Any] | None:
        f = self._apps.get(pod.key)
        if f is not None:
            return f
        wl = workload_name(pod)
        return self._apps.get(f"{pod.namespace}/{wl}") if wl else None

    # -- handles ------------------------------------------------------------------------
    def pod(self, key: str) -> PodHandle:
        ns, name = _split(key)
        key = f"{ns}/{name}"
        h = self._handles.get(key)
        if h is None or h.uid != self.state.pod(key).metadata.uid:
            h = self._handles[key] = PodHandle(self, key)
        return h

    def pods(self, selector: Mapping[str, str] | None = None, namespace: str | None = None
             ) -> list[PodHandle]:
        out = []
        for p in self.state.pods(namespace):
            if selector and any(p.metadata.labels.get(k) != v for k, v in selector.items()):
                continue
            out.append(self.pod(p.key))
        return out

    def node(self, name: str) -> NodeHandle:
        if name not in self.proxies:
            raise NotFound(f"node {name!r} not found")
        return NodeHandle(self, name)

    def external(self, ip: str = "203.0.113.10", name: str | None = None) -> ExternalHandle:
        h = self._externals.get(ip)
        if h is None:
            ns = self.fabric.add_external(name or f"external-{ip}", [ip])
            h = self._externals[ip] = ExternalHandle(self, ns)
        return h

    # -- readiness ----------------------------------------------------------------------
    def _all_ready(self) -> bool:
        for p in self.state.pods():
            if p.status.phase in ("Succeeded", "Failed") or p.terminating:
                continue
            if not p.spec.node_name or not p.status.ready:
                return False
        return not any(p.needs_sync for p in self.proxies.values())

    async def wait_ready(self, timeout: float = 600.0) -> None:
        """Until every pod is Ready and every kube-proxy has synced the latest state."""
        deadline = self.loop.time() + timeout
        while not self._all_ready():
            left = deadline - self.loop.time()
            if left <= _RESOLUTION:  # float time can stop a hair short of the deadline
                raise NetworkError("pods not ready: " + ", ".join(
                    self._why_not_ready(p.key) for p in self.state.pods() if not p.status.ready
                    and p.status.phase not in ("Succeeded", "Failed")))
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    async def wait_synced(self, timeout: float = 60.0) -> None:
        """Until every node's kube-proxy has synced the latest Services/EndpointSlices."""
        await self.wait_for(lambda: not any(p.needs_sync for p in self.proxies.values()), timeout)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 600.0) -> None:
        deadline = self.loop.time() + timeout
        while not predicate():
            left = deadline - self.loop.time()
            if left <= _RESOLUTION:
                raise NetworkError("condition not met before timeout")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
            except TimeoutError:
                pass

    # -- faults and changes ---------------------------------------------------------------
    def delete_pod(self, key: str, grace: float | None = None) -> None:
        ns, name = _split(key)
        self.state.delete_pod(f"{ns}/{name}", self.now(), grace)

    def kill_pod(self, key: str) -> None:
        """Every container of the pod crashes (exit 137); restartPolicy decides what next."""
        w = self._require_worker(key)
        for c in w.containers:
            c.kill()

    def crash_container(self, key: str, container: str | None = None, exit_code: int = 1) -> None:
        w = self._require_worker(key)
        runners = [c for c in w.containers if container is None or c.name == container]
        if not runners:
            raise NotFound(f"container {container!r} not found in {key}")
        runners[0].kill(exit_code)

    def _require_worker(self, key: str) -> PodWorker:
        ns, name = _split(key)
        w = self._worker(f"{ns}/{name}")
        if w is None:
            raise NotFound(f"pod {ns}/{name} is not running")
        return w

    def set_node_ready(self, name: str, ready: bool, *, unreachable: bool = False) -> None:
        """Node condition Ready=False (or Unknown): taints, NotReady pods, evictions after
        tolerationSeconds. The node's kubelet stops reporting until it is Ready again."""
        k = self.kubelets[name]
        k.paused = not ready
        self.state.set_node_ready(name, ready, self.now(), unreachable=unreachable)
        if ready:
            for w in list(k.workers.values()):
                w.publish()

    def partition(self, a: str, b: str = OUTSIDE) -> None:
        self.fabric.partition(a, b)

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        self.fabric.heal(a, b)

    def set_link(self, a: str, b: str | None = None, *, latency: float = 0.0,
                 loss: float = 0.0) -> None:
        """Latency/loss on the wire between ``a`` and ``b`` (default: every other node and
        the outside)."""
        others = [b] if b is not None else [n for n in self.fabric.nodes if n != a] + [OUTSIDE]
        for o in others:
            self.fabric.set_link(a, o, latency=latency, loss=loss)

    def scale(self, name: str, replicas: int, kind: str = "Deployment") -> None:
        ns, n = _split(name)
        self.state.scale(kind, f"{ns}/{n}", replicas, self.now())

    def set_image(self, name: str, image: str, container: str | None = None,
                  kind: str = "Deployment") -> None:
        """``kubectl set image``: a new pod template → a rolling update."""
        ns, n = _split(name)
        obj = self.state.get(kind, f"{ns}/{n}")
        tpl = _deepcopy(obj.template)
        cs = tpl.setdefault("spec", {}).setdefault("containers", [])
        targets = [c for c in cs if container is None or c.get("name") == container]
        if not targets:
            raise NotFound(f"container {container!r} not found in {kind} {ns}/{n}")
        targets[0]["image"] = image
        self.state.apply(evolve(obj, template=tpl), self.now())

    def apply(self, obj: Any) -> list[Any]:
        """kubectl apply: a model object, a manifest dict, YAML text, or a file path."""
        objs = _objects(obj)
        for o in objs:
            self.state.apply(o, self.now())
        return objs

    def reachability(self, **kw: Any) -> Any:
        """The ``knet reach`` table of the cluster as it is now: every cell's first packet
        through the nodes' current tables and policies (fresh connection state, so running
        connections and the nodes' rng are untouched). Keywords: ``knet.policy.reach``."""
        from knet.policy.reach import reachability

        return reachability(self.state, **kw)

    def delete(self, kind: str, key: str) -> None:
        ns, name = _split(key, "" if kind in ("Node", "Namespace", "IngressClass",
                                              *CLUSTER_POLICY_KINDS) else "default")
        self.state.delete(kind, f"{ns}/{name}" if ns else name, self.now())

    async def drain(self, node: str, **kw: Any) -> list[str]:
        """``kubectl drain``: cordon, evict every pod through its PodDisruptionBudget
        (retrying 429s every 5 s), wait until they are gone; kubectl's lines
        (knet.runtime.drain)."""
        from knet.runtime.drain import drain

        return await drain(self, node, **kw)

    def evict(self, key: str, grace: float | None = None) -> Any:
        """``POST pods/{name}/eviction``: 201, or 429 when a disruption budget forbids it."""
        ns, name = _split(key)
        return self.state.evict(f"{ns}/{name}", self.now(), grace)

    def cordon(self, name: str) -> None:
        self.state.cordon(name, self.now())

    def __repr__(self) -> str:
        return f"<RuntimeCluster nodes={len(self.proxies)} pods={len(self.state.pods())} t={self.now():.3f}>"


def _grace_left(pod: Pod, now: float) -> float:
    g = pod.metadata.deletion_grace_period_seconds
    return float(g if g is not None else pod.spec.termination_grace_period_seconds)


def _deepcopy(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _deepcopy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_deepcopy(v) for v in x]
    return x


def _objects(obj: Any) -> list[Any]:
    import os

    from knet.manifests import read, read_text

    if hasattr(obj, "kind") and hasattr(obj, "metadata"):
        return [obj]
    if isinstance(obj, Mapping):
        import yaml

        return list(read_text(yaml.safe_dump(_deepcopy(obj)), "<apply>").objects)
    if isinstance(obj, str):
        if "\n" not in obj and os.path.exists(obj):
            return list(read([obj]).objects)
        return list(read_text(obj, "<apply>").objects)
    if isinstance(obj, Iterable):
        return [o for x in obj for o in _objects(x)]
    raise UsageError(f"cannot apply {type(obj).__name__}")


def workload_name(pod: Pod) -> str:
    ref = pod.metadata.controller_ref
    if ref is None:
        return ""
    if ref.kind == "ReplicaSet":
        h = pod.metadata.labels.get("pod-template-hash")
        if h and ref.name.endswith("-" + h):
            return ref.name[: -len(h) - 1]
        return ref.name.rsplit("-", 1)[0]
    return ref.name


# --- handles ---------------------------------------------------------------------------------

class PodHandle:
    """A pod as a test sees it: its IPs, node, netns, an HTTP session, a resolver."""

    def __init__(self, rt: RuntimeCluster, key: str) -> None:
        self.rt = rt
        self.key = key
        self.uid = rt.state.pod(key).metadata.uid
        self._http: aiohttp.ClientSession | None = None
        self._sessions: list[aiohttp.ClientSession] = []
        self._dns: PodDns | None = None

    @property
    def model(self) -> Pod:
        return self.rt.state.pod(self.key)

    @property
    def ip(self) -> str:
        ip = self.model.ip
        if ip is None:
            raise NetworkError(f"pod {self.key} has no IP")
        return str(ip)

    @property
    def ips(self) -> list[str]:
        return [str(i) for i in self.model.status.pod_ips]

    @property
    def node(self) -> str:
        return self.model.spec.node_name

    @property
    def ready(self) -> bool:
        return self.model.status.ready

    @property
    def phase(self) -> str:
        return self.model.status.phase

    @property
    def netns(self) -> Any:
        p = self.model
        if p.spec.host_network:
            return self.rt.fabric.node(p.spec.node_name).netns
        ns = self.rt.fabric.namespaces.get(self.key)
        if ns is None:
            raise NetworkError(f"pod {self.key} has no network namespace (not started)")
        return ns

    @property
    def resolv_conf(self) -> ResolvConf:
        return pod_resolv_conf(self.model, self.rt.dns_ip, self.rt.state.config.dns_domain)

    @property
    def dns(self) -> PodDns:
        """The pod's stub resolver (queries from the pod IP to its nameservers)."""
        if self._dns is None or self._dns.netns is not self.netns:
            self._dns = PodDns.for_pod(self.netns, self.model, self.rt.dns_ip,
                                       self.rt.state.config.dns_domain)
        return self._dns

    async def resolve(self, name: str, family: int = 0) -> list[str]:
        """getaddrinfo in the pod: /etc/hosts, then DNS with the pod's search path."""
        return await self.dns.resolve(name, family)

    async def _resolve_cb(self, host: str, port: int, family: int) -> list[str]:
        return await self.resolve(host, family)

    def new_session(self, **kw: Any) -> aiohttp.ClientSession:
        s = client_session(self.netns, self._resolve_cb, **kw)
        self._sessions.append(s)
        return s

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = self.new_session()
        return self._http

    async def open_connection(self, host: str, port: int, **kw: Any) -> Any:
        addr = host
        try:
            ip_address(host)
        except ValueError:
            found = await self.resolve(host)
            if not found:
                raise NetworkError(f"{host}: Name or service not known") from None
            addr = found[0]
        return await self.netns.open_connection(addr, port, **kw)

    def _runner(self, container: str | None) -> Any:
        w = self.rt._require_worker(self.key)
        for c in w.containers:
            if container is None or c.name == container:
                return c
        raise NotFound(f"container {container!r} not found in {self.key}")

    def fs(self, container: str | None = None) -> Any:
        """The container's virtual filesystem (what exec probes and ``cat`` see)."""
        return self._runner(container).fs

    def env(self, container: str | None = None) -> dict[str, str]:
        """The container's environment as its process sees it (env, envFrom, downward API)."""
        r = self._runner(container)
        return dict(r.ctx.env) if r.ctx is not None else {}

    def logs(self, container: str | None = None) -> list[str]:
        r = self._runner(container)
        return list(r.ctx.logs) if r.ctx is not None else []

    async def exec(self, argv: list[str], container: str | None = None, *,
                   stdin: str = "") -> Any:
        """Run ``argv`` in the container (``kubectl exec``): an ``ExecResult`` with
        ``.exit_code``, ``.stdout``, ``.stderr`` (``int()`` of it is the exit code)."""
        from knet.runtime.exec import exec_in

        return await exec_in(self, list(argv), container, stdin=stdin)

    def shell(self, container: str | None = None) -> Any:
        """An interactive shell session (``kubectl exec -it … -- sh``)."""
        from knet.runtime.exec import InteractiveShell

        return InteractiveShell(self, container)

    def container_status(self, name: str | None = None) -> Any:
        for cs in self.model.status.container_statuses:
            if name is None or cs.name == name:
                return cs
        raise NotFound(f"container {name!r} not found in {self.key}")

    async def aclose(self) -> None:
        for s in self._sessions:
            if not s.closed:
                await s.close()
        self._sessions.clear()

    def __repr__(self) -> str:
        return f"<PodHandle {self.key}>"


class ExternalHandle:
    """A client outside the cluster (NodePort / LoadBalancer traffic)."""

    def __init__(self, rt: RuntimeCluster, ns: Any) -> None:
        self.rt = rt
        self.netns = ns
        self._http: aiohttp.ClientSession | None = None

    @property
    def ip(self) -> str:
        return str(self.netns.ips[0])

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = client_session(self.netns)
        return self._http

    async def open_connection(self, host: str, port: int, **kw: Any) -> Any:
        return await self.netns.open_connection(host, port, **kw)

    async def aclose(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()


class NodeHandle:
    """A node's kube-proxy tables, conntrack and host network namespace."""

    def __init__(self, rt: RuntimeCluster, name: str) -> None:
        self.rt = rt
        self.name = name

    @property
    def proxy(self) -> NodeProxy:
        return self.rt.proxies[self.name]

    @property
    def mode(self) -> str:
        """kube-proxy's mode on this node: iptables, ipvs or nftables."""
        return self.proxy.mode

    @property
    def tables(self) -> dict[int, Any]:
        """The live tables per IP family: RuleSets (iptables; the glue in IPVS mode) or
        NftTables (nftables)."""
        return self.proxy.tables()

    def iptables(self, family: int = 4) -> str:
        """The live iptables tables as iptables-restore input (IPVS mode: the glue; "" in
        nftables mode)."""
        return self.proxy.restore_text(family)

    def rules(self, family: int | None = None) -> str:
        """What runs on this node, in the mode's native text (``knet rules``): restore input
        (iptables); kube-ipvs0 addresses, ``ipvsadm -Ln`` of the live table, ipsets and the
        iptables glue (IPVS); the nft transaction (nftables)."""
        return self.proxy.rules(family)

    @property
    def ipvs(self) -> Any:
        """The live IPVS table in IPVS mode (virtual/real servers, connections), else None."""
        return getattr(self.proxy, "ipvs", None)

    def ipvsadm(self) -> str:
        """``ipvsadm -Ln`` of the live IPVS table ("" outside IPVS mode)."""
        fn = getattr(self.proxy, "ipvsadm", None)
        return fn() if fn is not None else ""

    @property
    def datapath(self) -> NodeDatapath:
        return self.rt.datapaths[self.name]

    @property
    def conntrack(self) -> Any:
        return self.datapath.conntrack

    @property
    def netns(self) -> Any:
        return self.rt.fabric.node(self.name).netns

    @property
    def ip(self) -> str:
        return str(self.rt.fabric.node(self.name).addresses[0])

    @property
    def synced(self) -> bool:
        return not self.proxy.needs_sync

    def __repr__(self) -> str:
        return f"<NodeHandle {self.name}>"


# --- run -----------------------------------------------------------------------------------

INGRESS_NGINX_CONTROLLER = ingressnginx.CONTROLLER_IMAGE


def builtin_ingress_controller(state: Cluster) -> list[Any]:
    """kind's ingress-nginx install (``knet.control.ingressnginx``) when the topology has
    ingress-nginx IngressClasses/Ingresses but no controller of its own."""
    return ingressnginx.builtin_objects(state)


@contextlib.asynccontextmanager
async def run(paths: str | Iterable[str] | None = None, *, seed: int | None = None,
              clock: Any = None, apps: Mapping[str, Any] | None = None,
              state: Cluster | None = None, ingress_controller: bool = True,
              wait: bool = True, timeout: float = 600.0) -> AsyncIterator[RuntimeCluster]:
    """``async with knet.run("topology.yaml", seed=1) as cluster:`` — the running emulation.

    Virtual time when the running loop is a ``VirtualTimeLoop`` (tests; ``run_virtual``),
    real time otherwise. With ``wait`` (default) it returns once every pod is Ready and every
    kube-proxy synced (``cluster.wait_ready()``).
    """
    if state is None:
        if paths is None:
            raise UsageError("knet.run needs topology paths or a control-plane state")
        from knet.manifests import read

        inp = read([paths] if isinstance(paths, str) else list(paths))
        state = Cluster.from_input(inp, seed=seed, ready_on_start=False)
    if ingress_controller:
        for obj in builtin_ingress_controller(state):
            state.apply(obj)
    rt = RuntimeCluster(state, seed=seed, apps=apps, clock=clock)
    try:
        await rt.start()
        if wait:
            await rt.wait_ready(timeout)
        yield rt
    finally:
        await rt.aclose()
