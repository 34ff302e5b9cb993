"""``knet trace --from ns/pod --url URL | --dns NAME``: run one request in the emulated cluster
(on virtual time) and tell its whole story: DNS → Service → rule → endpoint → reply.
``traced_request`` is shared with ``knet up``'s control endpoint."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from knet.errors import KnetError, UsageError


async def traced_request(cluster: Any, src: str, url: str | None = None,
                         dns_name: str | None = None, *, timeout: float = 10.0,
                         verbose: bool = False) -> tuple[dict[str, Any], Any]:
    """One HTTP request (``url``) or name resolution (``dns_name``) from pod ``src`` under a
    capture. Returns the JSON-able result (with the story) and the capture."""
    if (url is None) == (dns_name is None):
        raise UsageError("give exactly one of --url or --dns")
    pod = cluster.pod(src)
    result: dict[str, Any] = {"from": src}
    cap = cluster.capture()
    async with cap:
        try:
            async with asyncio.timeout(timeout):
                if url is not None:
                    resp = await pod.http.get(url, allow_redirects=False)
                    body = await resp.read()
                    result["http"] = {"status": resp.status, "headers": dict(resp.headers),
                                      "body": body.decode("utf-8", "replace")}
                else:
                    result["dns"] = {"name": dns_name, "addresses": await pod.resolve(dns_name)}
        except (OSError, TimeoutError, KnetError) as e:
            result["error"] = f"{type(e).__name__}: {e}"
        await asyncio.sleep(0)
    result["story"] = cap.story(verbose=verbose)
    result["flows"] = len(cap.flows())
    return result, cap


async def _scenario(files: tuple[str, ...], seed: int | None, src: str, url: str | None,
                    dns_name: str | None, pcap: str | None, verbose: bool) -> dict[str, Any]:
    import knet

    async with knet.run(list(files), seed=seed) as cluster:
        result, cap = await traced_request(cluster, src, url, dns_name, verbose=verbose)
        if pcap:
            result["pcap"] = {"path": pcap, "packets": cap.write_pcapng(pcap)}
    return result


def live_trace(files: tuple[str, ...], seed: int | None, src: str, url: str | None,
               dns_name: str | None, pcap: str | None, output: str,
               server: str | None = None, verbose: bool = False) -> int:
    from knet.fabric.clock import run_virtual

    if server is not None:
        from knet.gateway.control import request

        if pcap:
            raise UsageError("--pcap needs a local run (-f); knet up writes --capture instead")
        res = request(f"{server}/v1/trace", "POST",
                      {"from": src, "verbose": verbose,
                       **({"url": url} if url else {"dns": dns_name})})
    else:
        if not files:
            raise UsageError("no input: give -f PATH (or --server for a running knet up)")
        res = run_virtual(_scenario(files, seed, src, url, dns_name, pcap, verbose))
    if output == "json":
        click.echo(json.dumps(res, indent=2, default=str))
        return 0
    click.echo(res["story"].rstrip("\n"))
    click.echo("")
    if "error" in res:
        click.echo(f"error: {res['error']}")
    elif "http" in res:
        h = res["http"]
        body = h["body"].rstrip()
        click.echo(f"HTTP {h['status']}: " + (body if len(body) <= 4000 else
                                               body[:4000] + f"… ({len(body)} bytes)"))
    else:
        d = res["dns"]
        click.echo(f"{d['name']} → {', '.join(d['addresses']) or '(no addresses)'}")
    if "pcap" in res:
        click.echo(f"wrote {res['pcap']['packets']} packets to {res['pcap']['path']}")
    return 1 if "error" in res else 0
