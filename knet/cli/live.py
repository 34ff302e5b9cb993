"""``knet trace --from ns/pod --url URL | --dns NAME``: run one request in the emulated cluster
(on virtual time) and tell its whole story: DNS → Service → rule → endpoint → reply."""

from __future__ import annotations

import json
from typing import Any

import click

from knet.errors import UsageError


def capture_for(cluster: Any) -> Any:
    """The runtime's capture (pod/service names resolved) or a bare one over its fabric."""
    if hasattr(cluster, "capture"):
        return cluster.capture()
    from knet.trace import Capture

    for dp in getattr(cluster, "datapaths", {}).values():
        dp.explain = True  # keep the matched rules for the story
    return Capture(cluster.fabric)


async def _scenario(files: tuple[str, ...], seed: int | None, src: str, url: str | None,
                    dns_name: str | None, pcap: str | None) -> dict[str, Any]:
    import knet

    result: dict[str, Any] = {"from": src}
    async with knet.run(list(files), seed=seed) as cluster:
        pod = cluster.pod(src)
        cap = capture_for(cluster)
        async with cap:
            if url is not None:
                resp = await pod.http.get(url, allow_redirects=False)
                body = await resp.read()
                result["http"] = {"status": resp.status, "headers": dict(resp.headers),
                                  "body": body.decode("utf-8", "replace")}
            else:
                assert dns_name is not None
                result["dns"] = {"name": dns_name, "addresses": await pod.resolve(dns_name)}
            await cluster.run_until_idle()
        result["story"] = cap.story(verbose=True)
        result["flows"] = len(cap.flows())
        if pcap:
            result["pcap"] = {"path": pcap, "packets": cap.write_pcapng(pcap)}
    return result


def live_trace(files: tuple[str, ...], seed: int | None, src: str, url: str | None,
               dns_name: str | None, pcap: str | None, output: str) -> int:
    from knet.fabric.clock import run_virtual

    if not files:
        raise UsageError("no input: give -f PATH")
    if url is not None and dns_name is not None:
        raise UsageError("give either --url or --dns, not both")
    res = run_virtual(_scenario(files, seed, src, url, dns_name, pcap))
    if output == "json":
        click.echo(json.dumps(res, indent=2, default=str))
        return 0
    click.echo(res["story"].rstrip("\n"))
    click.echo("")
    if "http" in res:
        h = res["http"]
        click.echo(f"HTTP {h['status']}: {h['body'][:300].rstrip()}")
    else:
        d = res["dns"]
        click.echo(f"{d['name']} → {', '.join(d['addresses']) or '(no addresses)'}")
    if "pcap" in res:
        click.echo(f"wrote {res['pcap']['packets']} packets to {res['pcap']['path']}")
    return 0
