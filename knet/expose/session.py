"""One ``knet up`` run: boot the cluster, open the loopback surfaces, wait for a signal, clean up.

Order (each step's failure undoes the previous ones):
1. read the topology (errors → exit 1 before anything listens);
2. boot: the runtime starts on virtual time (``BootWarpLoop``) and runs until every pod is Ready
   and every kube-proxy synced — probe delays cost no wall time — then the loop switches to
   real time (``--real-boot`` boots on real time instead);
3. capture (``--capture``) starts before the runtime so the boot is recorded too;
4. listeners: NodePorts per node, LoadBalancer IPs, DNS, ingress, control endpoint; the
   address table goes to stdout (flushed) and the state file is written;
5. run until SIGINT/SIGTERM; then close listeners, stop the cluster, write the pcapng, remove
   the state file; exit 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from knet import heap
from knet.errors import NetworkError, UsageError


@dataclass
class UpOptions:
    files: tuple[str, ...]
    seed: int | None = None
    dns: tuple[str, int] | None = None
    ingress: tuple[str, int] | None = None
    ingress_tls: tuple[str, int] | None = None
    gateways: tuple[tuple[str, int | None, str, int], ...] = ()  # (ns/name, port, host, port)
    all_gateways: bool = False  # --gateways: list every Gateway's loopback address
    control: tuple[str, int] | None = ("127.0.0.1", 0)
    ui: tuple[str, int] | None = None
    metrics: tuple[str, int] | None = None
    api: tuple[str, int] | None = None  # the Kubernetes API (knet.api); the CLI turns it on
    token_file: str | None = None
    capture: str | None = None
    capture_limit: str | None = None  # N packets or a size (50MB): a two-file ring
    watch: bool = False
    nodeports: bool = True
    real_boot: bool = False
    boot_timeout: float = 600.0
    wait: bool = True
    state_file: bool = True
    watch_interval: float = 0.5
    name: str | None = None
    stop: asyncio.Event | None = None  # set it to stop (as SIGINT does); for embedding/tests
    out: Any = field(default=None)
    err: Any = field(default=None)


def _say(stream: Any, text: str) -> None:
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


async def run_up(opts: UpOptions) -> int:
    import knet.runtime as runtime
    from knet.control import Cluster, ingressnginx
    from knet.expose import state as statefile
    from knet.expose.control import ControlServer
    from knet.expose.loopback import Loopback
    from knet.expose.watch import Watcher
    from knet.manifests import read

    out = opts.out or sys.stdout
    err = opts.err or sys.stderr
    loop = asyncio.get_running_loop()
    t_wall = time.monotonic()

    if opts.watch and "-" in opts.files:
        raise UsageError("--watch cannot watch stdin (-f -)")
    if not opts.boot_timeout > 0 or opts.boot_timeout == float("inf"):
        raise UsageError(f"--boot-timeout: expected a number of seconds > 0, got "
                         f"{opts.boot_timeout:g}")
    if opts.name is not None:
        statefile.check_name(opts.name)
    stop = opts.stop if opts.stop is not None else asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    if _early_signals:
        _early_signals.clear()
        stop.set()  # a signal arrived before the loop could take it over
    try:
        inp = read(list(opts.files), stdin=sys.stdin)
        for w in inp.warnings:
            _say(err, f"warning: {w}")
        state = Cluster.from_input(inp, seed=opts.seed, ready_on_start=False)
        for obj in runtime.builtin_ingress_controller(state):
            state.apply(obj)
        name = opts.name or state.config.name
        statefile.check_name(name)
    except BaseException:
        _remove_signal_handlers(loop)
        raise
    stream = None
    if opts.capture:
        from knet.expose.capture import StreamingCapture, parse_limit

        limit, limit_bytes = parse_limit(opts.capture_limit)
        stream = StreamingCapture(opts.capture, limit=limit, limit_bytes=limit_bytes)
        try:
            stream.open()  # an unwritable path fails now, before anything runs
        except BaseException:
            _remove_signal_handlers(loop)
            raise
    elif opts.capture_limit is not None:
        _remove_signal_handlers(loop)
        raise UsageError("--capture-limit needs --capture FILE")
    token = statefile.new_token()
    base = {"cluster": state.config.name, "files": list(opts.files), "starting": True}
    slot = statefile.claim(name, base) if opts.state_file else 0
    claimed = opts.state_file

    rt = runtime.RuntimeCluster(state, seed=opts.seed)
    cap = None
    gw: Loopback | None = None
    ctl: ControlServer | None = None
    extras: list[Any] = []  # the page and the metrics endpoint, closed in reverse order
    watcher: Watcher | None = None
    api: Any = None
    go_real = getattr(loop, "go_real", None)
    try:
        if opts.capture:
            cap = rt.capture()
            cap.epoch = time.time() - loop.time()
            cap.start()
        if opts.real_boot and go_real is not None:
            go_real()
        await rt.start()
        # --wait only bounds how long we wait before serving: pods that never get Ready are
        # listed with their reasons, and the cluster serves anyway (as a real one does)
        boot = loop.create_task(rt.wait_ready(opts.boot_timeout if opts.wait else 0.0))
        stopper = loop.create_task(stop.wait())
        await asyncio.wait({boot, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            boot.cancel()
            _say(err, "interrupted during boot")
            return 0
        stopper.cancel()
        all_ready = not isinstance(boot.exception(), NetworkError)
        if boot.exception() is not None and all_ready:
            boot.result()  # not a readiness timeout: a real error
        virtual_boot = rt.now()
        if go_real is not None:
            go_real()
        if cap is not None:
            cap.epoch = time.time() - loop.time()
        if stream is not None and cap is not None:
            stream.epoch = cap.epoch
            stream.attach(cap)  # the boot's packets first, then every second as they come

        gw = Loopback(rt, nodeports=opts.nodeports, warn=lambda m: _say(err, f"warning: {m}"),
                      slot=slot)
        await gw.start()
        if opts.dns is not None:
            await gw.serve_dns(*opts.dns)
        if (opts.ingress or opts.ingress_tls) and ingressnginx.controller_address(state) is None:
            raise UsageError("--ingress: the topology has no ingress controller (no Ingress and "
                             "no ingress-nginx controller): nothing would answer")
        if opts.ingress is not None:
            await gw.serve_ingress("ingress", *opts.ingress, service_port=80)
        if opts.ingress_tls is not None:
            await gw.serve_ingress("ingress-tls", *opts.ingress_tls, service_port=443)
        for key, gw_port, host, port in opts.gateways:
            from knet.gateway.view import exposed_service

            svc_key, gw_port = exposed_service(rt.state, key, gw_port)
            await gw.serve_gateway(key, svc_key, gw_port, host, port)
        if opts.all_gateways:
            from knet.gateway.view import loopback_addresses

            for key, addr in loopback_addresses(rt.state, gw.table()):
                gw.extra[f"gateway-lb {key}"] = {"address": addr}
        if opts.control is not None:
            ctl = ControlServer(rt, gw, started=t_wall, token=token,
                                on_change=lambda m: _say(out, f"control: {m}"),
                                err=lambda m: _say(err, m))
            await ctl.start(*opts.control)
            assert ctl.address is not None
            gw.extra["control"] = {"address": f"{ctl.address[0]}:{ctl.address[1]}",
                                   "url": ctl.url}
        rt.epoch = time.time() - rt.now()  # metric and flow timestamps in Unix time from here
        if opts.ui is not None:
            from knet.ui.server import UiServer

            ui = await UiServer(state, rt).start(*opts.ui)
            extras.append(ui)
            gw.extra["ui"] = {"address": f"{ui.address[0]}:{ui.address[1]}", "url": ui.url}
        if opts.metrics is not None:
            from knet.metrics.server import MetricsServer

            met = await MetricsServer(rt).start(*opts.metrics)
            extras.append(met)
            gw.extra["metrics"] = {"address": f"{met.address[0]}:{met.address[1]}", "url": met.url}
        if opts.api is not None:
            from knet.api.up import start_api

            api = await start_api(rt, opts.api, token_file=opts.token_file,
                                  write=opts.state_file, name=name)
            gw.extra["api"] = api.table()
        if opts.watch:
            watcher = Watcher(rt, opts.files, inp.objects, interval=opts.watch_interval,
                              report=lambda m: _say(out, m), error=lambda m: _say(err, m),
                              config=inp.config)
            watcher.start()

        took = time.monotonic() - t_wall
        how = ("on real time" if opts.real_boot or go_real is None
               else f"{virtual_boot:.1f}s of cluster time on virtual time")
        from knet.expose import notready

        unready = [] if all_ready else notready.not_ready(rt)
        _say(out, f'knet up: cluster "{name}" {"ready" if not unready else "up"} in {took:.2f}s '
                  f"({how}); {len(state.nodes())} nodes, {len(state.pods())} pods, "
                  f"{len(state.services())} services"
                  + (f"; {len(unready)} pods not Ready" if unready else ""))
        _say(out, "")
        _say(out, gw.render_table().rstrip("\n"))
        if unready:
            _say(out, "")
            _say(out, notready.render(unready, len(state.pods())).rstrip("\n"))
        if opts.state_file:
            table = gw.table()
            if "control" in table:
                table["control"] = {**table["control"], "token": token}
            statefile.write(name, {**base, "starting": False, "name": name,
                                   "pid": os.getpid(), "slot": slot, **table})
        if api is not None and api.kubeconfig is not None:
            _say(out, "")
            _say(out, f"export KUBECONFIG={api.kubeconfig}")
        _say(out, "")
        heap.settle()  # the booted cluster is long-lived: out of later collections
        _say(out, "up; Ctrl-C to stop")

        await stop.wait()
        _say(err, "stopping")
        return 0
    finally:
        for x in reversed(extras):
            await x.aclose()
        if watcher is not None:
            await watcher.aclose()
        if api is not None:
            await api.aclose()
        if ctl is not None:
            await ctl.aclose()
        if gw is not None:
            await gw.aclose()
        if claimed:
            statefile.remove(name)
        if cap is not None:
            cap.stop()
        await rt.aclose()
        if stream is not None:
            if cap is not None and stream.cap is None:  # stopped during the boot
                stream.epoch = cap.epoch
                stream.cap = cap
            n = stream.close()
            ring = f" (ring of two files, {stream.rotations} rotations)" if stream.rotations else ""
            _say(err, f"wrote {n} packets to {opts.capture}{ring}")
        _remove_signal_handlers(loop)


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.remove_signal_handler(sig)
        except (NotImplementedError, RuntimeError):
            pass


_early_signals: list[int] = []


def catch_signals_early() -> Callable[[], None]:
    """From the first moment of ``knet up``: remember SIGINT/SIGTERM until the loop takes them
    over (``run_up`` then stops at once), so a signal at any phase is a clean stop. Returns a
    function that puts the previous handlers back."""
    def remember(signum: int, frame: Any) -> None:
        _early_signals.append(signum)

    old: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, remember)
        except ValueError:  # not the main thread
            break

    def restore() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)
        _early_signals.clear()

    return restore


def up(opts: UpOptions) -> int:
    """Run ``knet up`` on a fresh ``BootWarpLoop`` until SIGINT/SIGTERM."""
    from knet.expose.loop import run_up as run_loop

    restore = catch_signals_early()
    try:
        return run_loop(run_up(opts))
    finally:
        restore()
