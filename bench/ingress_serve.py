"""Run knet's ingress proxy standalone on loopback, as ``knet up --ingress`` does.

The routing table comes from a topology (``knet.load`` → ``build_table``); upstream
connections are real loopback sockets (the bench's backend is a real process on 127.0.0.1,
named by a selectorless Service + EndpointSlice). Prints ``ready HOST:PORT`` once listening
and runs until SIGTERM/SIGINT.

    python bench/ingress_serve.py -f topo.yaml --listen 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import knet
from knet.ingress import build_table
from knet.ingress.proxy import IngressProxy


async def serve(paths: list[str], host: str, port: int) -> None:
    cluster = knet.load(paths)
    table = build_table(cluster.ingresses(), cluster.ingress_classes(), cluster.services(),
                        cluster.endpoint_slices())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with IngressProxy.from_table(table, secrets=cluster.secrets(), clock=loop.time) as proxy:
        h, p = await proxy.listen(host, port)
        print(f"ready {h}:{p}", flush=True)
        await stop.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-f", dest="paths", action="append", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    asyncio.run(serve(a.paths, host or "127.0.0.1", int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
