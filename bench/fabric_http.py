"""aiohttp requests/s over the knet fabric (pass-through datapath) vs real loopback sockets.

Both sides run in this process on the same asyncio loop with the same app and client settings:
sequential requests on one keep-alive connection, then 32 concurrent requests in flight.
Usage: python bench/fabric_http.py [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
from aiohttp import web

from knet.fabric import Fabric
from knet.fabric.aio import client_session, serve_app


def make_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "client": request.remote})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def drive(session: aiohttp.ClientSession, base: str, n: int, concurrency: int) -> float:
    async def one(i: int) -> None:
        async with session.get(f"{base}/r/{i}") as resp:
            await resp.read()
            assert resp.status == 200

    for i in range(20):  # warm-up: connections, caches
        await one(i)
    t0 = time.perf_counter()
    if concurrency == 1:
        for i in range(n):
            await one(i)
    else:
        # ``concurrency`` clients, each with one request in flight (as wrk/hey drive a
        # server): not n tasks parked on a semaphore, whose pile only feeds the GC.
        left = iter(range(n))

        async def client() -> None:
            for i in left:
                await one(i)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return n / (time.perf_counter() - t0)


async def loopback(n: int, concurrency: int) -> float:
    runner = web.AppRunner(make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            return await drive(session, f"http://127.0.0.1:{port}", n, concurrency)
    finally:
        await runner.cleanup()


async def fabric(n: int, concurrency: int) -> float:
    f = Fabric(seed=0)
    f.add_node("node-a", ["172.18.0.2"], ["10.244.0.0/24"])
    f.add_node("node-b", ["172.18.0.3"], ["10.244.1.0/24"])
    server_ns = f.add_pod("default/server", "node-b", ["10.244.1.10"])
    client_ns = f.add_pod("default/client", "node-a", ["10.244.0.10"])
    runner = await serve_app(make_app(), server_ns, 8080)
    try:
        async with client_session(client_ns, connector_kwargs={"limit": concurrency}) as session:
            return await drive(session, "http://10.244.1.10:8080", n, concurrency)
    finally:
        await runner.cleanup()


async def main(n: int, rounds: int) -> None:
    # Alternate the two sides and keep each one's best round: a shared machine adds noise
    # that only ever slows a round down.
    print(f"{'scenario':<16}{'fabric req/s':>14}{'loopback req/s':>16}{'ratio':>8}")
    for label, conc in (("sequential", 1), ("32 concurrent", 32)):
        fab = loop_ = 0.0
        for _ in range(rounds):
            fab = max(fab, await fabric(n, conc))
            loop_ = max(loop_, await loopback(n, conc))
        print(f"{label:<16}{fab:>14.0f}{loop_:>16.0f}{fab / loop_:>7.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
