"""In-cluster HTTP through the full data path vs the same aiohttp pair on real loopback.

knet side: a client pod requests ``http://echo/`` — a ClusterIP Service of 3 ``knet/echo``
pods — so every new connection crosses DNS (cached per TTL after the first lookup), the
client node's KUBE-SERVICES/KUBE-SVC/KUBE-SEP DNAT + conntrack, the wire, and the backend
node's tables; replies are un-NATed by conntrack. Loopback side: the same echo app
(``knet.runtime.apps.echo_application``, the very code a knet/echo pod serves) on 127.0.0.1
with the same client settings (keep-alive pool of 64, or a new connection per request). Both
run on the same (real-time) event loop in this process, alternating, best of ``--rounds``.
Also: time from ``knet.run`` to all pods Ready for topologies/demo.yaml, in virtual and in
real time.

Usage: python bench/runtime_http.py [--requests N] [--rounds R] [--no-ready]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from knet.fabric import run_virtual
from knet.runtime import run
from knet.runtime.apps import echo_application

ROOT = Path(__file__).resolve().parent.parent
TOPO = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 3
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers: [{name: echo, image: "knet/echo:1", ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, image: "busybox:1.36", command: [sleep, infinity]}]
"""


async def drive(session: aiohttp.ClientSession, url: str, n: int, concurrency: int) -> float:
    async def one() -> None:
        async with session.get(url) as r:
            await r.read()
            assert r.status == 200

    for _ in range(20):
        await one()
    t0 = time.perf_counter()
    if concurrency == 1:
        for _ in range(n):
            await one()
    else:
        # ``concurrency`` clients, each with one request in flight (as wrk/hey drive a
        # server): not n tasks parked on a semaphore, whose pile only feeds the GC.
        left = [n]

        async def client() -> None:
            while left[0] > 0:
                left[0] -= 1
                await one()
        await asyncio.gather(*(client() for _ in range(concurrency)))
    return n / (time.perf_counter() - t0)


async def bench_http(n: int, rounds: int, tmp: Path) -> None:
    topo = tmp / "bench-runtime.yaml"
    topo.write_text(TOPO)
    knet_name, loop_name = "knet (pod→ClusterIP→pod)", "loopback"
    knet_new, loop_new = "knet, new connection per request", "loopback, new connection per request"
    results: dict[str, dict[int, float]] = {knet_name: {}, loop_name: {}, knet_new: {},
                                            loop_new: {}}

    def best(name: str, conc: int, rate: float) -> None:
        results[name][conc] = max(results[name].get(conc, 0.0), rate)

    # The loopback side serves the very app a knet/echo pod serves, through the same runner
    # settings (knet.runtime.apps.serve_until_stopped).
    runner = web.AppRunner(echo_application("x", "default", "n", "127.0.0.1"),
                           handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    loop_url = f"http://127.0.0.1:{port}/"
    try:
        async with run(str(topo), seed=1) as c:
            client = c.pod("default/client")
            # Alternate the two sides, keep each one's best round: a shared machine adds noise
            # that only ever slows a round down.
            for _ in range(rounds):
                for conc in (1, 32):
                    async with client.new_session(connector_kwargs={"limit": 64}) as s:
                        best(knet_name, conc, await drive(s, "http://echo/", n, conc))
                    async with aiohttp.ClientSession(
                            connector=aiohttp.TCPConnector(limit=64)) as s:
                        best(loop_name, conc, await drive(s, loop_url, n, conc))
                m = max(50, n // 4)
                async with client.new_session(connector_kwargs={"force_close": True}) as s:
                    best(knet_new, 1, await drive(s, "http://echo/", m, 1))
                async with aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(force_close=True)) as s:
                    best(loop_new, 1, await drive(s, loop_url, m, 1))
    finally:
        await runner.cleanup()
    print(f"{'path':40} {'sequential req/s':>18} {'32 concurrent req/s':>20}")
    for name, r in results.items():
        seq = f"{r.get(1, 0):.0f}"
        con = f"{r[32]:.0f}" if 32 in r else "-"
        print(f"{name:40} {seq:>18} {con:>20}")
    for conc, label in ((1, "sequential"), (32, "32 concurrent")):
        print(f"knet/loopback, {label}: {results[knet_name][conc] / results[loop_name][conc]:.2f}x")


async def time_to_ready() -> tuple[float, float]:
    t0 = time.perf_counter()
    async with run(str(ROOT / "topologies" / "demo.yaml")) as c:
        return time.perf_counter() - t0, c.now()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-ready", action="store_true", help="skip the time-to-Ready runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(bench_http(args.requests, args.rounds, Path(d)))
    if args.no_ready:
        return
    wall, virt = run_virtual(time_to_ready())
    print(f"\ndemo.yaml, knet.run → all pods Ready (virtual time): {wall * 1000:.0f} ms wall, "
          f"{virt:.1f} s cluster time")
    wall_real, _ = asyncio.run(time_to_ready())
    print(f"demo.yaml, knet.run → all pods Ready (real time):    {wall_real:.2f} s wall "
          f"(probe periods and jitter are real seconds)")


if __name__ == "__main__":
    main()
