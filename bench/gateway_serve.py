"""Run knet's Gateway data plane (one listener port) standalone on loopback.

The tables come from a topology (``knet.load`` → ``knet.gateway.view.tables_for``); upstream
connections are real loopback sockets (the bench's backend is a real process on 127.0.0.1,
named by a selectorless Service + EndpointSlice). Prints ``ready HOST:PORT`` once listening
and runs until SIGTERM/SIGINT. The data-plane pods of ``knet up`` run the same GatewayProxy.

    python bench/gateway_serve.py -f topo.yaml --gateway default/bench --listen 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import knet
from knet.gateway.dataplane import GatewayProxy
from knet.gateway.view import tables_for


async def serve(paths: list[str], gateway: str, port: int, host: str, listen: int) -> None:
    cluster = knet.load(paths)
    tables = tables_for(cluster)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with GatewayProxy(gateway, port, tables, clock=loop.time) as proxy:
        h, p = await proxy.listen(host, listen)
        print(f"ready {h}:{p}", flush=True)
        await stop.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-f", dest="paths", action="append", required=True)
    ap.add_argument("--gateway", required=True, help="NS/NAME")
    ap.add_argument("--port", type=int, default=80, help="the listener port to serve")
    ap.add_argument("--listen", default="127.0.0.1:0")
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    asyncio.run(serve(a.paths, a.gateway, a.port, host or "127.0.0.1", int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
