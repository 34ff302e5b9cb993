"""The kubeconfig backend: the handles of ``knet.run`` over a real Kubernetes API.

A test written for knet (``@pytest.mark.knet`` + ``knet_cluster``) runs unchanged against a
cluster reached through a kubeconfig (kind, any conformant cluster, or ``knet up --api``):
- The topology's objects are validated by knet first (same located errors), then applied
  verbatim, as ``kubectl apply -f`` sends them. Objects of the ``default`` namespace go to a
  fresh namespace per test (``knet-<test>-<n>``) and handles keep answering to
  ``default/NAME``; objects that name other namespaces go there (the namespaces are created if
  missing). Everything created is deleted at the end. knet's cluster-shaping kinds (Topology,
  kind Cluster, kubeadm and kube-proxy configuration, Nodes) describe the emulated cluster and
  are not applied: the real cluster is what it is.
- Readiness is waited for through the API (every pod of the test's namespaces Ready or
  Succeeded).
- A pod handle's traffic originates inside the pod, as knet's does: ``pod.http`` runs
  ``curl`` in the pod through the exec subresource (so DNS, Services, kube-proxy and policies
  are the cluster's, from the pod's own network namespace), ``pod.resolve`` runs ``getent
  ahosts``, reachability probes run ``nc -z``. Port-forward would go *to* a pod, not *from*
  it, so it cannot stand in for a client pod. The pod's image needs those tools (busybox,
  curl images and knet's pod shell have them); a missing tool fails with the shell's message.
- What a real cluster cannot do (virtual time, a capture of every hop, partitions, link
  faults, node readiness flips, outside clients on virtual addresses) raises
  ``NotOnRealCluster``; the pytest plugin turns it into a skip that says so.

The client library is kr8s: asyncio-native (the plugin's tests are async), with exec, logs and
label selectors built in and a small dependency set; the official ``kubernetes`` client is
synchronous and would need a thread per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from knet.errors import KnetError, NotFound, NotOnRealCluster, UsageError
from knet.real.state import LiveState, close_api, open_api
from knet.runtime.exec import ExecResult

# Kinds that shape the emulated cluster itself (knet.manifests.config) or are the cluster's own.
_NOT_APPLIED = frozenset({"Node"})
_CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "IngressClass", "ClusterRole",
    "ClusterRoleBinding", "PriorityClass", "GatewayClass", "ClusterNetworkPolicy",
    "AdminNetworkPolicy", "BaselineAdminNetworkPolicy", "CustomResourceDefinition"})


def _unsupported(what: str) -> NotOnRealCluster:
    return NotOnRealCluster(f"{what} needs the emulator; it cannot run on a real cluster")


# --- HTTP from inside a pod ---------------------------------------------------------------------

_MARK = "\n--knet-curl-status--"


@dataclass(slots=True)
class ExecResponse:
    """The parts of ``aiohttp.ClientResponse`` tests use, from curl's output in the pod."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    async def read(self) -> bytes:
        return self.body

    async def text(self, encoding: str | None = None) -> str:
        return self.body.decode(encoding or "utf-8", "replace")

    async def json(self, **_: Any) -> Any:
        return json.loads(self.body)

    def release(self) -> None:
        pass

    async def __aenter__(self) -> ExecResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


class _RequestContext:
    """``await session.get(…)`` and ``async with session.get(…) as r`` both work."""

    def __init__(self, coro: Any) -> None:
        self._coro = coro
        self._resp: ExecResponse | None = None

    def __await__(self) -> Any:
        return self._coro.__await__()

    async def __aenter__(self) -> ExecResponse:
        self._resp = await self._coro
        return self._resp

    async def __aexit__(self, *exc: object) -> None:
        pass


class ExecHTTP:
    """An HTTP client whose requests leave from a pod: ``curl`` run in the pod by exec."""

    def __init__(self, pod: RealPod) -> None:
        self.pod = pod

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                data: bytes | str | None = None, json_body: Any = None,
                allow_redirects: bool = True, timeout: Any = None, **kw: Any) -> _RequestContext:
        if "json" in kw:
            json_body = kw.pop("json")
        return _RequestContext(self._request(method, str(url), dict(headers or {}), data,
                                             json_body, allow_redirects, timeout))

    def get(self, url: str, **kw: Any) -> _RequestContext:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> _RequestContext:
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> _RequestContext:
        return self.request("PUT", url, **kw)

    def delete(self, url: str, **kw: Any) -> _RequestContext:
        return self.request("DELETE", url, **kw)

    def head(self, url: str, **kw: Any) -> _RequestContext:
        return self.request("HEAD", url, **kw)

    async def _request(self, method: str, url: str, headers: dict[str, str],
                       data: bytes | str | None, json_body: Any, redirects: bool,
                       timeout: Any) -> ExecResponse:
        argv = ["curl", "-sS", "-i", "-X", method, "-w", _MARK + "%{http_code}"]
        if method == "HEAD":
            argv[4:5] = ["-I"]
            del argv[3]
        if redirects:
            argv.append("-L")
        seconds = getattr(timeout, "total", timeout)
        if isinstance(seconds, (int, float)):
            argv += ["-m", f"{seconds:g}"]
        if json_body is not None:
            data = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        for k, v in headers.items():
            argv += ["-H", f"{k}: {v}"]
        if data is not None:
            argv += ["--data-binary", data.decode() if isinstance(data, bytes) else data]
        argv.append(url)
        res = await self.pod.exec(argv, retries=2 if method in ("GET", "HEAD") else 0)
        if res.exit_code != 0 or _MARK not in res.stdout:
            raise ConnectionError(f"{self.pod.key}: {' '.join(map(shlex.quote, argv))}: "
                                  f"{res.stderr.strip() or 'exit ' + str(res.exit_code)}")
        raw, _, _code = res.stdout.rpartition(_MARK)
        return _parse_curl(raw, url)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> ExecHTTP:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


def _parse_curl(raw: str, url: str) -> ExecResponse:
    """``curl -i`` output (with -L, one head per hop: the last one counts)."""
    text = raw
    while True:
        head, sep, rest = text.partition("\r\n\r\n")
        if not sep:
            head, sep, rest = text.partition("\n\n")
        nxt = rest.lstrip("\r\n")
        if nxt.startswith("HTTP/") and head.startswith("HTTP/"):
            text = nxt
            continue
        break
    lines = head.splitlines()
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k:
            headers[k.strip()] = v.strip()
    return ExecResponse(status, headers, rest.encode(), url)


# --- handles -----------------------------------------------------------------------------------

@dataclass(slots=True)
class _PodState:
    namespace: str
    name: str
    ip: str = ""
    ips: tuple[str, ...] = ()
    node: str = ""
    phase: str = ""
    ready: bool = False
    labels: dict[str, str] = field(default_factory=dict)


class RealPod:
    """A pod of the real cluster, with the handle interface of ``knet.run``'s pods."""

    def __init__(self, cluster: RealCluster, key: str) -> None:
        self.cluster = cluster
        self.key = key  # as the test names it (default/NAME)
        self._ns, self.name = cluster.real_key(key).split("/", 1)

    def _state(self) -> _PodState:
        st = self.cluster.cache.get(f"{self._ns}/{self.name}")
        if st is None:
            raise NotFound(f"pod {self.key} not found in the cluster")
        return st

    @property
    def ip(self) -> str:
        return self._state().ip

    @property
    def ips(self) -> list[str]:
        return list(self._state().ips)

    @property
    def node(self) -> str:
        return self._state().node

    @property
    def ready(self) -> bool:
        return self._state().ready

    @property
    def phase(self) -> str:
        return self._state().phase

    @property
    def model(self) -> Any:
        """The pod as knet's model (``knet.model.core.Pod``), from the last poll."""
        return self.cluster.state.pod(self.key)

    @property
    def http(self) -> ExecHTTP:
        return ExecHTTP(self)

    def new_session(self, **_: Any) -> ExecHTTP:
        return ExecHTTP(self)

    async def exec(self, argv: Sequence[str], container: str | None = None, *,
                   timeout: float = 120.0, retries: int = 0) -> ExecResult:
        """Run ``argv`` in the pod (the exec subresource). ``retries``: how often to run it
        again when the exec stream itself breaks (only for commands that are safe to repeat:
        the backend's own GETs, lookups and probes)."""
        from kr8s.asyncio.objects import Pod

        for attempt in range(retries + 1):
            pod = await Pod.get(self.name, namespace=self._ns, api=self.cluster.api)
            try:
                done = await asyncio.wait_for(
                    pod.exec(list(argv), container=container, check=False), timeout)
            except Exception as e:  # noqa: BLE001 - the stream broke, not the command
                if attempt == retries or not _stream_broke(e):
                    raise
                continue
            return ExecResult(int(done.returncode), _text(done.stdout), _text(done.stderr))
        raise AssertionError("unreachable")

    async def resolve(self, name: str, family: int = 0) -> list[str]:
        flag = {4: "ahostsv4", 6: "ahostsv6"}.get(family, "ahosts")
        res = await self.exec(["getent", flag, name], retries=2)
        out: list[str] = []
        for line in res.stdout.splitlines():
            addr = line.split()[0] if line.split() else ""
            if addr and addr not in out:
                out.append(addr)
        return out

    async def probe_tcp(self, host: str, port: int, timeout: float) -> tuple[bool, str]:
        """Open (and close) a TCP connection from the pod: ``nc -z``."""
        secs = max(1, int(timeout + 0.999))
        res = await self.exec(["nc", "-z", "-w", str(secs), host, str(port)], retries=2)
        if res.exit_code == 0:
            return True, "connected"
        return False, (res.stderr.strip() or f"nc exited {res.exit_code} (refused or "
                                                 f"no answer within {secs}s)")

    async def open_connection(self, host: str, port: int, **kw: Any) -> Any:
        raise _unsupported("a raw stream from a pod (open_connection)")

    def logs(self, container: str | None = None) -> list[str]:
        raise _unsupported("synchronous logs (use await pod.fetch_logs())")

    async def fetch_logs(self, container: str | None = None) -> list[str]:
        from kr8s.asyncio.objects import Pod

        pod = await Pod.get(self.name, namespace=self._ns, api=self.cluster.api)
        return [line async for line in pod.logs(container=container)]

    async def aclose(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<RealPod {self.key} ({self._ns}/{self.name})>"


@dataclass(slots=True)
class RealNode:
    name: str
    ip: str
    synced: bool = True  # a real kube-proxy's sync state is not observable through the API


class RealCluster:
    """``async with RealCluster(paths, kubeconfig=…) as cluster`` (what ``knet_cluster`` is
    under ``--knet-kubeconfig``)."""

    backend = "kubeconfig"

    def __init__(self, paths: Sequence[str], *, kubeconfig: str, context: str | None = None,
                 label: str = "test", ready_timeout: float = 300.0, poll: float = 0.5) -> None:
        self.paths = list(paths)
        self.kubeconfig = kubeconfig
        self.context = context
        self.namespace = _namespace_for(label)
        self.ready_timeout = ready_timeout
        self.poll = poll
        self.api: Any = None
        self.cache: dict[str, _PodState] = {}
        self.state = RealState(self)
        self._created_namespaces: list[str] = []
        self._created_cluster_objects: list[Any] = []
        self._poller: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._t0 = time.monotonic()
        self.seed = None

    # -- set-up and teardown
    async def __aenter__(self) -> RealCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        from knet.manifests import read
        from knet.manifests.config import is_config_kind
        from knet.manifests.read import raw_documents

        read(self.paths)  # knet's validation first: located errors, nothing applied
        docs = [d for d in raw_documents(self.paths)
                if not is_config_kind(str(d.get("apiVersion", "")), str(d.get("kind", "")))
                and d.get("kind") not in _NOT_APPLIED]
        self.api = await open_api(self.kubeconfig, self.context)
        try:
            await self._apply(docs)
            await self.refresh()
            self._poller = asyncio.get_running_loop().create_task(self._poll())
            await self.wait_ready(self.ready_timeout)
        except BaseException:
            await self.aclose()
            raise

    async def _apply(self, docs: list[dict[str, Any]]) -> None:
        from kr8s.asyncio.objects import object_from_spec

        wanted = {self.namespace}
        for d in docs:
            if d.get("kind") not in _CLUSTER_SCOPED:
                meta = d.setdefault("metadata", {})
                ns = meta.get("namespace") or "default"
                meta["namespace"] = self.namespace if ns == "default" else ns
                wanted.add(meta["namespace"])
        declared = {d["metadata"]["name"] for d in docs if d.get("kind") == "Namespace"}
        for ns in sorted(wanted - declared):
            await self._ensure_namespace(ns)
        order = sorted(docs, key=lambda d: 0 if d.get("kind") == "Namespace" else 1)
        for d in order:
            obj = await object_from_spec(d, api=self.api, allow_unknown_type=True)
            if d.get("kind") == "Namespace":
                if await obj.exists():
                    continue
                await obj.create()
                self._created_namespaces.append(obj.name)
                continue
            outside = d.get("kind") in _CLUSTER_SCOPED or \
                d["metadata"].get("namespace") not in (self.namespace, *self._created_namespaces)
            if outside and await obj.exists():
                continue  # the cluster has it already (kubectl apply would keep it): not ours
            await obj.create()
            if d.get("kind") in _CLUSTER_SCOPED:
                self._created_cluster_objects.append(obj)

    async def _ensure_namespace(self, ns: str) -> None:
        from kr8s.asyncio.objects import Namespace

        obj = await Namespace({"metadata": {"name": ns}}, api=self.api)
        if not await obj.exists():
            await obj.create()
            self._created_namespaces.append(ns)

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
            self._poller = None
        for obj in reversed(self._created_cluster_objects):
            with contextlib.suppress(Exception):
                await obj.delete()
        from kr8s.asyncio.objects import Namespace

        for ns in reversed(self._created_namespaces):
            with contextlib.suppress(Exception):
                await (await Namespace({"metadata": {"name": ns}}, api=self.api)).delete()
        self._created_namespaces.clear()
        self._created_cluster_objects.clear()
        if self.api is not None:
            await close_api(self.api)

    # -- the cache the synchronous properties read
    async def refresh(self) -> None:
        pods = [p async for p in self.api.get("pods", namespace="all")]
        cache = {}
        for p in pods:
            raw = p.raw
            st = raw.get("status", {})
            conds = {c.get("type"): c.get("status") for c in st.get("conditions", []) or []}
            ips = tuple(x.get("ip", "") for x in st.get("podIPs", []) or []) or \
                ((st["podIP"],) if st.get("podIP") else ())
            cache[f"{p.namespace}/{p.name}"] = _PodState(
                p.namespace, p.name, ips[0] if ips else "", ips,
                raw.get("spec", {}).get("nodeName", ""), st.get("phase", ""),
                conds.get("Ready") == "True", dict(raw.get("metadata", {}).get("labels") or {}))
        self.cache = cache
        await self.state.refresh()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            with contextlib.suppress(Exception):
                await self.refresh()

    async def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        mine = {self.namespace, *self._created_namespaces}
        while True:
            await self.refresh()
            pods = [s for s in self.cache.values() if s.namespace in mine]
            waiting = [f"{s.namespace}/{s.name} ({s.phase}{', not Ready' if s.phase == 'Running' else ''})"
                       for s in pods if not (s.ready or s.phase == "Succeeded")]
            if not waiting and await self._workloads_settled(mine) and self._endpoints_settled(mine):
                # Ready endpoints are in the EndpointSlices; kube-proxy programs them within
                # its minSyncPeriod (1 s by default), which the API cannot show: wait it out
                await asyncio.sleep(1.0)
                return
            if time.monotonic() > deadline:
                raise KnetError(f"pods not ready after {timeout:g}s: {', '.join(waiting[:10])}")
            await asyncio.sleep(self.poll)

    def _endpoints_settled(self, namespaces: Iterable[str]) -> bool:
        """Every Service of the test's namespaces lists each Ready pod it selects as a ready
        endpoint (the EndpointSlice controller has caught up)."""
        nss = set(namespaces)
        ready_ips: dict[str, int] = {}
        for es in self.state.endpoint_slices():
            if es.namespace in nss:
                key = f"{es.namespace}/{es.service_name}"
                ready_ips[key] = ready_ips.get(key, 0) + sum(
                    len(ep.addresses) for ep in es.endpoints if ep.conditions.ready is not False)
        for svc in self.state.services():
            sel = dict(svc.spec.selector or {})
            if svc.namespace not in nss or not sel:
                continue
            want = sum(1 for p in self.cache.values() if p.namespace == svc.namespace and p.ready
                       and all(p.labels.get(k) == v for k, v in sel.items()))
            if ready_ips.get(f"{svc.namespace}/{svc.name}", 0) < want:
                return False
        return True

    async def _workloads_settled(self, namespaces: Iterable[str]) -> bool:
        for ns in namespaces:
            for kind in ("deployments", "statefulsets"):
                async for obj in self.api.get(kind, namespace=ns):
                    spec, st = obj.raw.get("spec", {}), obj.raw.get("status", {})
                    if int(st.get("readyReplicas") or 0) < int(spec.get("replicas", 1)):
                        return False
        return True

    # -- names
    def real_key(self, key: str) -> str:
        ns, _, name = key.rpartition("/")
        ns = ns or "default"
        return f"{self.namespace if ns == 'default' else ns}/{name}"

    def test_key(self, ns: str, name: str) -> str:
        return f"{'default' if ns == self.namespace else ns}/{name}"

    # -- handles
    def pod(self, key: str) -> RealPod:
        if self.real_key(key) not in self.cache:
            raise NotFound(f"pod {key} not found (looked in namespace "
                           f"{self.real_key(key).split('/')[0]})")
        return RealPod(self, key)

    def pods(self, selector: Mapping[str, str] | None = None, namespace: str | None = None
             ) -> list[RealPod]:
        ns = self.real_key(f"{namespace}/x").split("/")[0] if namespace else None
        mine = {self.namespace, *self._created_namespaces}
        out = []
        for st in sorted(self.cache.values(), key=lambda s: (s.namespace, s.name)):
            if ns is not None and st.namespace != ns:
                continue
            if ns is None and st.namespace not in mine:
                continue
            if selector and any(st.labels.get(k) != v for k, v in selector.items()):
                continue
            out.append(RealPod(self, self.test_key(st.namespace, st.name)))
        return out

    def node(self, name: str) -> RealNode:
        n = self.state.node(name)
        ip = next((a.address for a in n.addresses if a.type == "InternalIP"), "")
        return RealNode(name, ip)

    def now(self) -> float:
        return time.monotonic() - self._t0

    # -- changes through the API
    async def apply_manifest(self, text: str) -> None:
        import yaml

        await self._apply([d for d in yaml.safe_load_all(text) if isinstance(d, dict)])

    def apply(self, obj: Any) -> list[Any]:
        raise _unsupported("a synchronous apply (use await cluster.apply_manifest(yaml))")

    def scale(self, name: str, replicas: int, kind: str = "Deployment") -> None:
        self._spawn(self._scale(name, replicas, kind))

    async def _scale(self, name: str, replicas: int, kind: str) -> None:
        ns, _, short = self.real_key(name).partition("/")
        obj = await self.api.get(kind.lower() + "s", short, namespace=ns)
        await (obj[0] if isinstance(obj, list) else obj).scale(replicas)

    def set_image(self, name: str, image: str, container: str | None = None,
                  kind: str = "Deployment") -> None:
        self._spawn(self._set_image(name, image, container, kind))

    async def _set_image(self, name: str, image: str, container: str | None, kind: str) -> None:
        ns, _, short = self.real_key(name).partition("/")
        found = await self.api.get(kind.lower() + "s", short, namespace=ns)
        obj = found[0] if isinstance(found, list) else found
        containers = obj.raw["spec"]["template"]["spec"]["containers"]
        target = container or containers[0]["name"]
        await obj.patch({"spec": {"template": {"spec": {"containers": [
            {"name": target, "image": image}]}}}})

    def delete_pod(self, key: str, grace: float | None = None) -> None:
        self._spawn(self._delete_pod(key, grace))

    async def _delete_pod(self, key: str, grace: float | None) -> None:
        from kr8s.asyncio.objects import Pod

        ns, _, name = self.real_key(key).partition("/")
        pod = await Pod.get(name, namespace=ns, api=self.api)
        await pod.delete(grace_period=None if grace is None else int(grace))

    async def drain(self, node: str) -> None:
        from kr8s.asyncio.objects import Node

        n = await Node.get(node, api=self.api)
        await n.cordon()
        async for p in self.api.get("pods", namespace="all", field_selector=f"spec.nodeName={node}"):
            owners = p.raw.get("metadata", {}).get("ownerReferences") or []
            if any(o.get("kind") == "DaemonSet" for o in owners):
                continue
            await p.evict()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle(self) -> None:
        """Wait for the API writes issued by the synchronous methods."""
        if self._pending:
            await asyncio.gather(*list(self._pending))

    # -- what only the emulator can do
    async def advance(self, seconds: float) -> None:
        raise _unsupported("virtual time (cluster.advance)")

    def capture(self, *a: Any, **kw: Any) -> Any:
        raise _unsupported("a capture of every hop")

    def partition(self, *a: Any, **kw: Any) -> None:
        raise _unsupported("a network partition between nodes (needs a chaos tool)")

    def heal(self, *a: Any, **kw: Any) -> None:
        raise _unsupported("healing a partition")

    def set_link(self, *a: Any, **kw: Any) -> None:
        raise _unsupported("link latency/loss (needs a chaos tool)")

    def set_node_ready(self, *a: Any, **kw: Any) -> None:
        raise _unsupported("flipping a node's readiness")

    def kill_pod(self, *a: Any, **kw: Any) -> None:
        raise _unsupported("killing a container from outside")

    def external(self, *a: Any, **kw: Any) -> Any:
        raise _unsupported("a client outside the cluster on a virtual address")

    def reachability(self, *a: Any, **kw: Any) -> Any:
        raise _unsupported("the whole reachability table (use knet diff)")

    def __repr__(self) -> str:
        return f"<RealCluster {self.kubeconfig} namespace={self.namespace}>"


class RealState:
    """``cluster.state``: the API's objects as knet's model (read by knet's own parser), so
    ``state.service(key).spec.ports`` reads the same on both backends. Refreshed with the pod
    cache."""

    KINDS = ("pods", "services", "endpointslices", "nodes", "namespaces")

    def __init__(self, cluster: RealCluster) -> None:
        self.cluster = cluster
        self._live = LiveState({})

    async def refresh(self) -> None:
        self._live = await LiveState.fetch(self.cluster.api, self.KINDS)

    def _get(self, kind: str, key: str) -> Any:
        k = self.cluster.real_key(key) if kind != "Node" else key
        obj = self._live.get(kind, k)
        if obj is None:
            raise NotFound(f"{kind} {key} not found")
        return obj

    def service(self, key: str) -> Any:
        return self._get("Service", key)

    def services(self) -> list[Any]:
        return self._live.of("Service")

    def pod(self, key: str) -> Any:
        return self._get("Pod", key)

    def pods(self, namespace: str | None = None) -> list[Any]:
        pods = self._live.of("Pod")
        if namespace is None:
            return pods
        ns = self.cluster.real_key(f"{namespace}/x").split("/")[0]
        return [p for p in pods if p.metadata.namespace == ns]

    def endpoint_slices(self) -> list[Any]:
        return self._live.of("EndpointSlice")

    def node(self, name: str) -> Any:
        return self._get("Node", name)

    def nodes(self) -> list[Any]:
        return self._live.of("Node")


def _namespace_for(label: str) -> str:
    """A DNS-1123 namespace name per test: knet-<readable part>-<hash>."""
    digest = hashlib.sha256(f"{label}/{time.time_ns()}".encode()).hexdigest()[:6]
    part = "".join(c if c.isalnum() else "-" for c in label.lower().rsplit("::", 1)[-1])
    part = "-".join(x for x in part.split("-") if x)[:40].rstrip("-")
    return f"knet-{part}-{digest}" if part else f"knet-{digest}"


def _stream_broke(e: BaseException) -> bool:
    """A WebSocket that failed under the exec (httpx-ws raises these inside task groups)."""
    if isinstance(e, BaseExceptionGroup):
        return any(_stream_broke(x) for x in e.exceptions)
    return type(e).__name__ in ("WebSocketNetworkError", "WebSocketDisconnect",
                                "ReadError", "RemoteProtocolError")


def _text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data or "")


def connect(paths: Sequence[str], *, kubeconfig: str, context: str | None = None,
            label: str = "test") -> RealCluster:
    if not kubeconfig:
        raise UsageError("a kubeconfig path is needed (--knet-kubeconfig or KNET_KUBECONFIG)")
    return RealCluster(paths, kubeconfig=kubeconfig, context=context, label=label)


__all__ = ["ExecHTTP", "NotOnRealCluster", "RealCluster", "RealPod", "connect"]
