"""``knet ui -f …`` (the page over a cluster that only needs to be drawn) and ``knet map``
(the service map as dot, SVG or PNG)."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from knet.cli.options import files_option, load_cluster, seed_option


@click.command()
@click.option("--listen", default="127.0.0.1:0", show_default=True, metavar="127.0.0.1:P",
              help="Where to serve the page (loopback only; port 0 picks one).")
@files_option
@seed_option
def ui(listen: str, files: tuple[str, ...], seed: int | None) -> int:
    """Serve the page for the cluster the files describe (map and rules; no live flows —
    ``knet up --ui`` serves those) until Ctrl-C."""
    from knet.expose.plan import parse_listen
    from knet.ui.server import UiServer

    host, port = parse_listen(listen, "--listen")
    cluster = load_cluster(files, seed)

    async def serve() -> None:
        server = await UiServer(cluster).start(host, port)
        click.echo(f"knet ui: {server.url}  (Ctrl-C to stop)")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.aclose()

    asyncio.run(serve())
    return 0


@click.command(name="map")
@click.option("-o", "--output", type=click.Choice(["dot", "svg", "png"]), default="svg",
              show_default=True)
@click.option("--out", "out", default=None, metavar="FILE", help="Write here instead of stdout.")
@files_option
@seed_option
def map_(output: str, out: str | None, files: tuple[str, ...], seed: int | None) -> int:
    """Draw the service map: nodes as groups, pods, Services, Ingresses, selection edges."""
    from knet.ui.export import render_map
    from knet.ui.view import service_map

    data = render_map(service_map(load_cluster(files, seed)), output)
    if out:
        with open(out, "wb") as f:
            f.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


COMMANDS = [ui, map_]
