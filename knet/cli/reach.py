"""``knet reach``: reachability tables through the datapath (knet.policy.reach)."""

from __future__ import annotations

import click

from knet.cli.options import emit_json, files_option, load_cluster, read_input, seed_option
from knet.errors import UsageError


@click.command()
@click.option("--pods", "pods", multiple=True, metavar="NS/POD",
              help="A pod of the table (repeatable; default: every pod that is not "
                   "host-network, outside kube-system).")
@click.option("-n", "--namespace", "namespaces", multiple=True, metavar="NS",
              help="Only the pods of this namespace (repeatable).")
@click.option("--port", "ports", multiple=True, type=int, metavar="P",
              help="Destination port as the pod sees it (repeatable; default 80).")
@click.option("--protocol", "protocols", multiple=True, metavar="TCP|UDP|SCTP",
              help="Repeatable; default TCP.")
@click.option("--via", type=click.Choice(["service", "pod"]), default="service",
              help="Probe through the ClusterIP of a Service selecting only the destination "
                   "pod, as upstream e2e does (default), or the pod IP.")
@click.option("--mode", type=click.Choice(["iptables", "ipvs", "nftables"]), default=None,
              help="kube-proxy mode (default: the topology's).")
@click.option("--expect", "expect_file", default=None, metavar="FILE",
              help="A table in the text format: exit 1 and list the cells that differ.")
@click.option("--diff", "diff_files", multiple=True, metavar="FILE",
              help="Compare with the table after applying FILE(s) on top: every cell that "
                   "changes, and why.")
@click.option("--explain", nargs=2, default=None, metavar="FROM TO",
              help="The policy story of one cell (with --port/--protocol).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@files_option
@seed_option
def reach(pods: tuple[str, ...], namespaces: tuple[str, ...], ports: tuple[int, ...],
          protocols: tuple[str, ...], via: str, mode: str | None, expect_file: str | None,
          diff_files: tuple[str, ...], explain: tuple[str, str] | None, output: str,
          files: tuple[str, ...], seed: int | None) -> int:
    """Who can connect to whom: a from × to table per port and protocol, each cell the first
    packet of a connection sent through the nodes' tables and network policies."""
    from knet.policy import reach as r

    ports = ports or (80,)
    protocols = tuple(p.upper() for p in protocols) or ("TCP",)
    if explain is not None:
        if len(ports) != 1 or len(protocols) != 1:
            raise UsageError("--explain takes one --port and one --protocol")
        cluster = load_cluster(files, seed)
        _warn_ties(cluster)
        click.echo(r.explain_cell(cluster, explain[0], explain[1], ports[0], protocols[0],
                                  via=via, mode=mode, seed=seed), nl=False)
        return 0
    kw = dict(pods=pods, namespaces=namespaces, ports=ports, protocols=protocols, via=via,
              mode=mode, seed=seed)
    cluster = load_cluster(files, seed)
    _warn_ties(cluster)
    table = r.reachability(cluster, **kw)  # type: ignore[arg-type]
    if diff_files:
        from knet.control import Cluster

        inp = read_input(files + diff_files)
        after_cluster = Cluster.from_input(inp, seed=seed)
        kw["pods"] = tuple(table.probes[0].pods) if table.probes else pods
        after = r.reachability(after_cluster, explain=True, **kw)  # type: ignore[arg-type]
        changes = r.diff(table, after)
        if output == "json":
            emit_json({"changes": [c.to_json() for c in changes]})
        elif not changes:
            click.echo("no cell changes")
        else:
            for c in changes:
                click.echo(str(c))
        return 0
    if output == "json":
        emit_json(table.to_json())
    else:
        click.echo(table.render(), nl=False)
    if expect_file is not None:
        try:
            with open(expect_file, encoding="utf-8") as fh:
                expected = fh.read()
        except OSError as e:
            raise UsageError(f"cannot read {expect_file}: {e}") from None
        diffs = table.differences(expected)
        if diffs:
            click.echo(f"{len(diffs)} cell(s) differ from {expect_file}:", err=True)
            for d in diffs:
                click.echo(f"  {d}", err=True)
            return 1
    return 0


def _warn_ties(cluster: object) -> None:
    """Cluster policies of one tier sharing a priority: the API leaves their order undefined."""
    from knet.policy.index import PolicyIndex

    for w in PolicyIndex.from_cluster(cluster).warnings:
        click.echo(f"warning: {w}", err=True)


COMMANDS = [reach]
