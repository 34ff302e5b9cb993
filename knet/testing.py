"""Helpers for async tests against a running knet cluster (the pytest plugin's logic lives here).

Invariants:
- Every wait is a timer on the running event loop: on a ``VirtualTimeLoop`` (the pytest
  plugin's default) ``wait_for(..., timeout=30)`` and ``eventually`` cost only the CPU of the
  callbacks, never 30 wall-clock seconds; on a real loop they really wait.
- Helpers never hide what the network did: a failed reachability assertion carries the packet
  story (every hop, NAT and the rule that decided) recorded while it was tried.
- ``ClusterFactory`` tears clusters down in reverse start order, and keeps their automatic
  captures (``--knet-pcap-dir``) readable after teardown so a failing test's traffic can be
  written as pcapng.

Usage::

    await assert_reachable(client, "web", port=80)
    await assert_unreachable(client, "nobody", port=80)
    counts = await distribution(client, "http://web/", n=90)   # Counter({"web-…-abc": 31, …})
    await wait_for(lambda: cluster.pod("default/web-0").ready, timeout=60)
    await eventually(lambda: assert_reachable(client, "web", port=80), timeout=30)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from collections.abc import Generator

from knet.errors import KnetError, UsageError

T = TypeVar("T")

# What a failed connection attempt raises in a pod: refused/unreachable (OSError family),
# a SYN that never got an answer (timeout), a name that did not resolve (NetworkError).
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError, KnetError)


# --- settings ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Settings:
    """The plugin's options (``--knet-seed``, ``--knet-pcap-dir``, ``--knet-real-time``)."""

    seed: int | None = None
    pcap_dir: Path | None = None
    real_time: bool = False
    kubeconfig: str | None = None  # the kubeconfig backend: run against a real cluster
    context: str | None = None

    @property
    def capture(self) -> bool:
        """Record every cluster's traffic (so a failing test's can be written)."""
        return self.pcap_dir is not None

    def header(self) -> str:
        if self.kubeconfig:
            ctx = f", context {self.context}" if self.context else ""
            return (f"knet: kubeconfig backend ({self.kubeconfig}{ctx}): tests run against "
                    "that cluster; what needs the emulator is skipped")
        seed = "topology's" if self.seed is None else str(self.seed)
        time = "real" if self.real_time else "virtual"
        pcap = f"{self.pcap_dir} (failing tests)" if self.pcap_dir is not None else "off"
        return f"knet: seed={seed}, time={time}, pcap-dir={pcap}"


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop knet tests run on: virtual time unless ``real_time`` (always real
    against a real cluster)."""
    if settings.real_time or settings.kubeconfig:
        return default_loop
    from knet.fabric.clock import VirtualTimeLoop

    return VirtualTimeLoop


def default_loop() -> asyncio.AbstractEventLoop:
    """What ``asyncio.Runner`` would create without a factory (the current policy's loop)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return asyncio.get_event_loop_policy().new_event_loop()


# --- clusters ------------------------------------------------------------------------------

@dataclass(slots=True)
class Started:
    """One cluster a factory started: what, with which seed, and its automatic capture."""

    label: str
    paths: tuple[str, ...]
    seed: int | None
    cluster: Any = None
    capture: Any = None
    written: Path | None = None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "test"


def resolve_paths(paths: Iterable[str | Path], base_dirs: Sequence[Path]) -> tuple[str, ...]:
    """Relative topology paths are looked up in ``base_dirs`` in order (the pytest plugin
    passes: next to the test file, pytest's rootdir, the directory pytest was started from).
    A path found nowhere is a one-line UsageError naming every place looked at."""
    out = []
    for p in paths:
        path = Path(p)
        if str(p) == "-":
            out.append(str(p))
            continue
        looked = [path] if path.is_absolute() else (
            list(dict.fromkeys(base / path for base in base_dirs)) or [path])
        found = next((c for c in looked if c.exists()), None)
        if found is None:
            where = ", ".join(str(c) for c in looked)
            raise UsageError(f"topology {str(p)!r} not found: looked at {where}")
        out.append(str(found))
    return tuple(out)


def start_capture(cluster: Any, **filters: Any) -> Any:
    """A running capture of the cluster (``cluster.capture``)."""
    return cluster.capture(**filters).start()


class ClusterFactory:
    """Starts clusters for one test: ``await factory("a.yaml", seed=1)`` (torn down when the
    factory closes) or ``async with factory("b.yaml") as c:``. Closing tears every cluster
    still running down in reverse start order."""

    def __init__(self, settings: Settings, *, base_dirs: Sequence[Path] = (),
                 name: str = "test") -> None:
        self.settings = settings
        self.base_dirs = tuple(base_dirs)
        self.name = _safe(name)
        self.started: list[Started] = []
        self._stack = contextlib.AsyncExitStack()

    def __call__(self, topology: str | Path | Iterable[str | Path], *more: str | Path,
                 seed: int | None = None, capture: bool | None = None,
                 **run_kwargs: Any) -> PendingCluster:
        if isinstance(topology, (str, Path)):
            paths: list[str | Path] = [topology, *more]
        else:
            paths = [*topology, *more]
        if not paths:
            raise UsageError("knet_factory needs at least one topology path")
        return PendingCluster(self, resolve_paths(paths, self.base_dirs),
                              self.settings.seed if seed is None else seed,
                              self.settings.capture if capture is None else capture, run_kwargs)

    async def _start(self, pending: PendingCluster) -> tuple[Started, contextlib.AsyncExitStack]:
        import knet

        label = self.name if not self.started else f"{self.name}-{len(self.started) + 1}"
        rec = Started(label, pending.paths, pending.seed)
        self.started.append(rec)
        kw = dict(pending.run_kwargs)
        wait = kw.pop("wait", True)
        timeout = kw.pop("timeout", 600.0)
        stack = contextlib.AsyncExitStack()
        if self.settings.kubeconfig:
            from knet.real import connect

            try:
                rec.cluster = await stack.enter_async_context(connect(
                    pending.paths, kubeconfig=self.settings.kubeconfig,
                    context=self.settings.context, label=label))
            except BaseException:
                await stack.aclose()
                raise
            return rec, stack
        try:
            cluster = await stack.enter_async_context(
                knet.run(list(pending.paths), seed=pending.seed, wait=False, **kw))
            rec.cluster = cluster
            rec.seed = getattr(cluster, "seed", pending.seed)
            if pending.capture:
                rec.capture = start_capture(cluster)
                stack.callback(rec.capture.stop)
            if wait:
                await cluster.wait_ready(timeout)
        except BaseException:
            await stack.aclose()
            raise
        return rec, stack

    def write_captures(self) -> list[Path]:
        """Write each cluster's automatic capture to ``pcap_dir/<test>[-N].pcapng``."""
        out: list[Path] = []
        if self.settings.pcap_dir is None:
            return out
        for rec in self.started:
            if rec.capture is None or rec.written is not None:
                continue
            self.settings.pcap_dir.mkdir(parents=True, exist_ok=True)
            path = self.settings.pcap_dir / f"{rec.label}.pcapng"
            rec.capture.write_pcapng(path)
            rec.written = path
            out.append(path)
        return out

    def describe(self) -> str:
        lines = []
        for i, rec in enumerate(self.started, 1):
            line = f"cluster {i}: topology {', '.join(rec.paths)} seed={rec.seed}"
            if rec.written is not None:
                line += f"\n  pcapng: {rec.written}"
            lines.append(line)
        return "\n".join(lines)

    async def aclose(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> ClusterFactory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class PendingCluster:
    """``await`` it (torn down with the factory) or ``async with`` it (torn down at the end
    of the block)."""

    def __init__(self, factory: ClusterFactory, paths: tuple[str, ...], seed: int | None,
                 capture: bool, run_kwargs: dict[str, Any]) -> None:
        self.factory = factory
        self.paths = paths
        self.seed = seed
        self.capture = capture
        self.run_kwargs = run_kwargs
        self._stack: contextlib.AsyncExitStack | None = None

    async def _await(self) -> Any:
        rec, stack = await self.factory._start(self)
        self.factory._stack.push_async_exit(stack)
        return rec.cluster

    def __await__(self) -> Generator[Any, None, Any]:
        return self._await().__await__()

    async def __aenter__(self) -> Any:
        rec, self._stack = await self.factory._start(self)
        return rec.cluster

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.__aexit__(et, e, tb)

    def __repr__(self) -> str:
        return f"<PendingCluster {', '.join(self.paths)} seed={self.seed}>"


# --- reachability ---------------------------------------------------------------------------

def _endpoint(src: Any) -> tuple[str, Any]:
    """(name, fabric) of a pod or external handle."""
    name = getattr(src, "key", None) or f"external {src.ip}"
    if hasattr(src, "probe_tcp"):
        return name, None
    rt = getattr(src, "rt", None)
    if rt is None:
        raise UsageError(f"{src!r} is not a knet pod or external handle")
    return name, rt


def _target(dst: Any) -> str:
    if isinstance(dst, str):
        return dst
    ip = getattr(dst, "ip", None)
    if ip is None:
        raise UsageError(f"cannot connect to {dst!r}: give a host name, an IP or a pod handle")
    return str(ip)


def _fmt(host: str, port: int) -> str:
    try:
        if ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


async def _attempt(src: Any, dst: Any, port: int, timeout: float
                   ) -> tuple[bool, str, str]:
    """Try a TCP connection from ``src``; (connected, what happened, packet story)."""
    probe = getattr(src, "probe_tcp", None)
    if probe is not None:  # a pod of a real cluster (knet.real): nc in the pod, no capture
        ok, what = await probe(_target(dst), port, timeout)
        return ok, what, "(no packet capture on a real cluster)"
    _, rt = _endpoint(src)
    host = _target(dst)
    cap = rt.capture(ip=src.ip).start()
    try:
        try:
            _, writer = await asyncio.wait_for(src.open_connection(host, port), timeout)
        except _CONNECT_ERRORS as e:
            if isinstance(e, asyncio.TimeoutError):
                what = f"no answer within {timeout:g}s (connect timed out)"
            else:
                what = f"{type(e).__name__}: {e}"
            return False, what, cap.story()
        peer = writer.get_extra_info("peername")
        writer.close()
        with contextlib.suppress(*_CONNECT_ERRORS):
            await writer.wait_closed()
        return True, f"connected (peer {peer[0]}:{peer[1]})" if peer else "connected", cap.story()
    finally:
        cap.stop()


async def assert_reachable(src: Any, dst: Any, port: int, *, timeout: float = 5.0) -> None:
    """A TCP connection from ``src`` (pod/external handle) to ``dst`` (name, IP or pod handle)
    on ``port`` is established within ``timeout`` seconds (virtual by default)."""
    __tracebackhide__ = True
    ok, what, story = await _attempt(src, dst, port, timeout)
    if not ok:
        name, _ = _endpoint(src)
        raise AssertionError(f"{name} cannot reach {_fmt(_target(dst), port)}: {what}\n"
                             f"packets seen from {src.ip}:\n{_indent(story)}")


async def assert_unreachable(src: Any, dst: Any, port: int, *, timeout: float = 5.0) -> None:
    """No TCP connection from ``src`` to ``dst:port`` is established within ``timeout``
    (refused, timed out, or the name does not resolve)."""
    __tracebackhide__ = True
    ok, what, story = await _attempt(src, dst, port, timeout)
    if ok:
        name, _ = _endpoint(src)
        raise AssertionError(f"{name} reached {_fmt(_target(dst), port)} (expected it to be "
                             f"unreachable): {what}\npackets seen from {src.ip}:\n"
                             f"{_indent(story)}")


def assert_reachability(cluster: Any, expected: str, **kw: Any) -> Any:
    """The cluster's reachability table (``cluster.reachability``; a running cluster or a
    control-plane ``Cluster``) equals ``expected``, a table in ``knet reach``'s text format
    (upstream e2e truth-table marks: ``.`` allowed, ``X`` blocked, ``~`` self, not scored).
    Pods, ports and protocols default to the ones the expected text names (title lines such
    as ``TCP/80``; TCP/80 without one). Returns the table; on a difference raises an
    AssertionError listing every differing cell and the actual table."""
    __tracebackhide__ = True
    from knet.policy.reach import reachability, table_shape

    pods, probes = table_shape(expected)
    kw.setdefault("pods", pods)
    kw.setdefault("ports", sorted({p for p, _ in probes}))
    kw.setdefault("protocols", sorted({t for _, t in probes}))
    live = getattr(cluster, "reachability", None)  # a running cluster; else the control plane
    table = live(**kw) if live is not None else reachability(cluster, **kw)
    diffs = table.differences(expected)
    if diffs:
        raise AssertionError("reachability differs in {} cell(s):\n{}\nactual:\n{}".format(
            len(diffs), "\n".join(f"  {d}" for d in diffs), _indent(table.render())))
    return table


def _indent(text: str) -> str:
    text = text.rstrip("\n")
    if not text:
        return "  (no packets)"
    return "\n".join("  " + line if line else "" for line in text.splitlines())


# --- load distribution -----------------------------------------------------------------------

def backend_name(body: str, key: str = "pod") -> str:
    """The answering backend: the JSON echo's ``key`` field, else the stripped body."""
    text = body.strip()
    if text.startswith("{"):
        with contextlib.suppress(ValueError):
            data = json.loads(text)
            if isinstance(data, dict) and key in data:
                return str(data[key])
    return text


def _session(client: Any) -> Any:
    new = getattr(client, "new_session", None)
    if callable(new):
        return new(connector_kwargs={"force_close": True})
    from knet.fabric.aio import client_session

    return client_session(client.netns, connector_kwargs={"force_close": True})


async def distribution(client: Any, url: str, n: int = 100, *, key: str = "pod",
                       method: str = "GET", count_errors: bool = False,
                       **request_kwargs: Any) -> Counter[str]:
    """Send ``n`` requests from ``client`` (each on a new connection, so each is balanced
    anew) and count who answered: the JSON echo's ``pod`` field (``key``), else the body.
    A non-2xx answer counts as ``"HTTP <status>"``; with ``count_errors`` a failed request
    counts as its exception's name instead of raising."""
    counts: Counter[str] = Counter()
    async with _session(client) as session:
        for _ in range(n):
            try:
                async with session.request(method, url, **request_kwargs) as r:
                    body = await r.text()
                    status = r.status
            except Exception as e:  # noqa: BLE001 - counted or re-raised as is
                if not count_errors:
                    raise
                counts[type(e).__name__] += 1
                continue
            counts[backend_name(body, key) if 200 <= status < 300 else f"HTTP {status}"] += 1
    return counts


# --- time ------------------------------------------------------------------------------------

async def _call(fn: Callable[[], T | Awaitable[T]]) -> T:
    value = fn()
    if inspect.isawaitable(value):
        return await value
    return value


async def wait_for(condition: Callable[[], Any], timeout: float = 30.0, *,
                   interval: float = 0.1, message: str | None = None) -> Any:
    """Until ``condition()`` (sync, or returning an awaitable) is truthy; returns its value.
    Time passes on the loop's clock: virtual under the knet plugin. Raises AssertionError
    after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await _call(condition)
        if value:
            return value
        left = deadline - loop.time()
        if left <= 0:
            what = message or getattr(condition, "__name__", "condition")
            raise AssertionError(f"{what} not met within {timeout:g}s "
                                 f"(last value {value!r})")
        await asyncio.sleep(min(interval, left))


async def eventually(check: Callable[[], T | Awaitable[T]], timeout: float = 30.0, *,
                     interval: float = 0.5,
                     exceptions: tuple[type[BaseException], ...] = (AssertionError,)) -> T:
    """Retry ``check()`` (sync or async; a block of assertions) until it stops raising one of
    ``exceptions``; returns its value. After ``timeout`` seconds re-raises the last error."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await _call(check)
        except exceptions as e:
            left = deadline - loop.time()
            if left <= 0:
                e.add_note(f"(still failing after {timeout:g}s)")
                raise
        await asyncio.sleep(min(interval, max(left, 0.0)))


@dataclass
class LoadResult:
    """What ``load`` saw: requests sent, answers by pod, errors by kind, latencies."""

    sent: int = 0
    ok: int = 0
    by_pod: Counter[str] | None = None
    errors: Counter[str] | None = None
    latencies: list[float] | None = None

    @property
    def failed(self) -> int:
        return sum((self.errors or Counter()).values())

    def percentile(self, q: float) -> float:
        xs = sorted(self.latencies or [])
        return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else 0.0


async def load(client: Any, url: str, rps: float, seconds: float, *, key: str = "pod",
               timeout: float = 10.0, method: str = "GET") -> LoadResult:
    """Open-loop load from a pod: ``rps`` requests per second for ``seconds`` (virtual
    seconds under knet's clock), each on a new connection so kube-proxy balances each one;
    requests do not wait for earlier answers (a slow or throttled backend queues them).
    Answers are counted by the echo's ``pod`` field; failures by exception name or
    ``HTTP <status>``. Each request costs the serving pod CPU (knet.runtime.work)."""
    result = LoadResult(by_pod=Counter(), errors=Counter(), latencies=[])
    loop = asyncio.get_running_loop()
    interval = 1.0 / rps
    start = loop.time()
    tasks: list[asyncio.Task[None]] = []
    async with _session(client) as session:
        async def one() -> None:
            t0 = loop.time()
            try:
                async with asyncio.timeout(timeout):
                    async with session.request(method, url) as r:
                        body = await r.text()
                        status = r.status
            except Exception as e:  # noqa: BLE001 - every failure is a counted outcome
                result.errors[type(e).__name__] += 1  # type: ignore[index]
                return
            if 200 <= status < 300:
                result.ok += 1
                result.by_pod[backend_name(body, key)] += 1  # type: ignore[index]
                result.latencies.append(loop.time() - t0)  # type: ignore[union-attr]
            else:
                result.errors[f"HTTP {status}"] += 1  # type: ignore[index]

        n = int(rps * seconds)
        for i in range(n):
            delay = start + i * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
            result.sent += 1
        await asyncio.gather(*tasks)
    return result


__all__ = [
    "ClusterFactory", "PendingCluster", "Settings", "Started", "assert_reachability",
    "assert_reachable",
    "assert_unreachable", "backend_name", "default_loop", "distribution", "eventually",
    "LoadResult", "load",
    "loop_factory", "resolve_paths", "start_capture", "wait_for",
]
