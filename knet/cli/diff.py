"""``knet diff``: what knet predicts for the files against what a live cluster reports."""

from __future__ import annotations

import click

from knet.cli.options import emit_json, files_option, seed_option


@click.command()
@click.option("--kubeconfig", required=True, metavar="PATH",
              help="The cluster to compare with (kind, any cluster, or knet up --api).")
@click.option("--context", default=None, help="kubeconfig context (default: its current one).")
@click.option("--rules-from", "rules_from", multiple=True, metavar="NODE=FILE",
              help="A real node's iptables-save dump to compare knet's rules with (repeatable).")
@click.option("--reach-port", "reach_ports", multiple=True, type=int, metavar="P",
              help="Also compare the reachability table on TCP port P (repeatable).")
@click.option("--all", "all_rows", is_flag=True, help="Show agreeing rows too.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@files_option
@seed_option
def diff(kubeconfig: str, context: str | None, rules_from: tuple[str, ...],
         reach_ports: tuple[int, ...], all_rows: bool, output: str, files: tuple[str, ...],
         seed: int | None) -> int:
    """Compare, object by object, what knet predicts for the files with what the cluster
    reports: objects, scheduling, EndpointSlices, DNS answers, and kube-proxy rules from a
    node's dump. Exit 1 on any difference."""
    from knet.errors import UsageError
    from knet.real.diff import run_diff

    if not files:
        raise UsageError("no input: give -f PATH (the files the cluster was created from)")
    report = run_diff(files, kubeconfig, context, rules_from, seed, reach_ports)
    if output == "json":
        emit_json(report.to_json())
    else:
        click.echo(report.render(all_rows=all_rows), nl=False)
    return 1 if report.differences else 0


COMMANDS = [diff]
