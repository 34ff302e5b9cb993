"""``knet trace --from ns/pod --url URL | --dns NAME``: run one request in the emulated cluster
(on virtual time) and tell its whole story: DNS → Service → rule → endpoint → reply."""

from __future__ import annotations

import json
from typing import Any

import click

from knet.errors import UsageError


async def _scenario(files: tuple[str, ...], seed: int | None, src: str, url: str | None,
                    dns_name: str | None, pcap: str | None, verbose: bool,
                    html: str | None = None) -> dict[str, Any]:
    import knet

    from knet.runtime.capture import traced_request

    async with knet.run(list(files), seed=seed) as cluster:
        result, cap = await traced_request(cluster, src, url, dns_name, verbose=verbose)
        if pcap:
            result["pcap"] = {"path": pcap, "packets": cap.write_pcapng(pcap)}
        if html:
            from knet.ui.view import story

            result["stories"] = [story(fl, cap.names) for fl in cap.flows()]
    return result


def live_trace(files: tuple[str, ...], seed: int | None, src: str, url: str | None,
               dns_name: str | None, pcap: str | None, output: str,
               server: str | None = None, verbose: bool = False, html: str | None = None) -> int:
    from knet.fabric.clock import run_virtual

    if server is not None:
        from knet.expose.control import request

        if pcap or html:
            raise UsageError("--pcap and --html need a local run (-f); knet up writes "
                             "--capture instead")
        res = request(f"{server}/v1/trace", "POST",
                      {"from": src, "verbose": verbose,
                       **({"url": url} if url else {"dns": dns_name})})
    else:
        if not files:
            raise UsageError("no input: give -f PATH (or --server for a running knet up)")
        res = run_virtual(_scenario(files, seed, src, url, dns_name, pcap, verbose, html))
    if html:
        from knet.ui.export import story_html

        page = story_html(f"{src} → {url or dns_name}", res.pop("stories"), _answer(res))
        with open(html, "w", encoding="utf-8") as f:
            f.write(page)
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
    if html:
        click.echo(f"wrote the story to {html}")
    return 1 if "error" in res else 0


def _answer(res: dict[str, Any]) -> str:
    if "error" in res:
        return f"error: {res['error']}"
    if "http" in res:
        return f"HTTP {res['http']['status']}"
    return f"{res['dns']['name']} → {', '.join(res['dns']['addresses']) or '(no addresses)'}"
