"""``knet demo``: the story of one cluster in one screen — `make demo` runs it.

Cluster up → ``knet get`` → one request from a pod traced across DNS → ClusterIP → pod with the
deciding rules → an ingress request → a pcapng written → what to try next.
"""

from __future__ import annotations

import time
from typing import Any

import click

from knet.cli.options import files_option, seed_option


def _first_packet_rules(flow: Any) -> list[str]:
    """What each node decided for a flow's first packet (the compact story's lines)."""
    from knet.trace.story import hop_lines

    first = flow.packets[0]
    return [f"{hop.node}: {line}" for hop in first.hops for line in hop_lines(hop)
            if not line.startswith(("routing:", "conntrack"))]


def _pkt(p: Any) -> str:
    return f"{p.proto} {p.endpoint_str('src')} → {p.endpoint_str('dst')}"


async def _story(files: tuple[str, ...], seed: int | None, pcap: str) -> list[str]:
    import knet
    lines: list[str] = []
    t0 = time.perf_counter()
    async with knet.run(list(files), seed=seed) as cluster:
        wall = (time.perf_counter() - t0) * 1000
        pods = cluster.state.pods()
        lines.append(f"▸ cluster up: {len(cluster.state.nodes())} nodes, "
                     f"{sum(1 for p in pods if p.status.ready)}/{len(pods)} pods Ready "
                     f"(virtual {cluster.now():.1f} s, wall {wall:.0f} ms)")
        client = cluster.pod("default/client")
        cap = cluster.capture()
        async with cap:
            resp = await client.http.get("http://web/demo?from=client")
            echo = await resp.json()
            await cluster.run_until_idle()
        lines.append("")
        lines.append(f"▸ default/client ({client.ip}) → GET http://web/demo?from=client")
        for flow in cap.flows():
            first = flow.packets[0]
            delivered = first.delivered
            svc = f" [{flow.service}]" if flow.service else ""
            lines.append(f"  {_pkt(first.packet)}{svc}")
            for r in _first_packet_rules(flow):
                lines.append(f"      {r}")
            if delivered is not None:
                lines.append(f"      ⇒ delivered to {first.delivered_to} as {_pkt(delivered)}")
        lines.append(f"  HTTP {resp.status} from pod {echo['pod']} on {echo['node']} "
                     f"(it saw clientIP {echo['clientIP']})")
        n = cap.write_pcapng(pcap)
        ing = [s for s in cluster.state.services("ingress-nginx")
               if s.spec.type == "LoadBalancer" and s.load_balancer_ingress]
        if ing:
            lb = ing[0].load_balancer_ingress[0].ip
            outside = cluster.external("203.0.113.10")
            lines.append("")
            lines.append(f"▸ outside client 203.0.113.10 → ingress-nginx LoadBalancer {lb}:80")
            for host in ("a.example.com", "b.example.com", "c.example.com"):
                r = await outside.http.get(f"http://{lb}/", headers={"Host": host})
                body = (await r.text()).strip().splitlines()
                lines.append(f"  Host: {host:<14} → HTTP {r.status} {body[0][:60] if body else ''}")
        lines.append("")
        lines.append(f"▸ wrote {n} packets to {pcap} (open it in Wireshark, or: tshark -r {pcap})")
    return lines


@click.command()
@files_option
@seed_option
@click.option("--pcap", default="knet-demo.pcapng", show_default=True)
def demo(files: tuple[str, ...], seed: int | None, pcap: str) -> int:
    """Tell the story of a cluster in one screen (what `make demo` runs)."""
    from knet.cli.options import load_cluster
    from knet.printers import run_get
    from knet.fabric.clock import run_virtual

    if not files:
        files = ("topologies/demo.yaml",)
    cluster = load_cluster(files, seed)
    missing = [what for kind, key, what in (
        ("Pod", "default/client", "a pod default/client (it sends the request)"),
        ("Service", "default/web", "a Service default/web (HTTP on port 80)"))
        if not any(o.metadata.key == key for o in cluster.objects(kind))]
    if missing:
        from knet.errors import UsageError

        raise UsageError(
            f"knet demo needs {' and '.join(missing)}, as topologies/demo.yaml has; "
            f"{' '.join(files)} does not. For another topology use knet get, trace, dig, route "
            "or up")
    click.echo(f"$ knet get pods -o wide -f {' -f '.join(files)}")
    click.echo(run_get(cluster, "pods", None, None, False, "wide"))
    for line in run_virtual(_story(files, seed, pcap)):
        click.echo(line)
    f = " ".join(f"-f {x}" for x in files)
    if cluster.ingresses():  # --ingress and route only where an ingress controller answers
        click.echo(f"""
▸ try next (after `source .venv/bin/activate`, or with .venv/bin/knet):
  knet trace {f} --from default/client --url http://web/      # every hop, the deciding rules
  knet rules {f} --node knet-worker                          # the node's kube-proxy rules
  knet dig {f} web --from default/client                     # DNS with the pod's search path
  knet route {f} --host a.example.com --path /              # the ingress decision
  knet up {f} --dns 127.0.0.1:5353 --ingress 127.0.0.1:8080
      then: dig @127.0.0.1 -p 5353 web.default.svc.cluster.local
            curl -H 'Host: a.example.com' http://127.0.0.1:8080/""")
    else:
        click.echo(f"""
▸ try next (after `source .venv/bin/activate`, or with .venv/bin/knet):
  knet trace {f} --from default/client --url http://web/      # every hop, the deciding rules
  knet rules {f} --node knet-worker                          # the node's kube-proxy rules
  knet dig {f} web --from default/client                     # DNS with the pod's search path
  knet up {f} --dns 127.0.0.1:5353
      then: dig @127.0.0.1 -p 5353 web.default.svc.cluster.local""")
    return 0


COMMANDS = [demo]
