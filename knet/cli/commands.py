"""Command registrations. Shared options: ``-f`` (repeatable), ``--seed``, ``-o``."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import click

from knet.cli import cli
from knet.errors import UsageError


def files_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-f", "--filename", "files", multiple=True, metavar="PATH",
        help="YAML file, directory, or - for stdin (repeatable).")(fn)


def seed_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--seed", type=int, default=None,
                        help="Seed for every random choice (default: the topology's, else 0).")(fn)


def read_input(files: tuple[str, ...]):
    from knet.manifests import read

    if not files:
        raise UsageError("no input: give -f PATH (a file, a directory, or - for stdin)")
    inp = read(list(files), stdin=sys.stdin)
    for w in inp.warnings:
        click.echo(f"warning: {w}", err=True)
    return inp


def load_cluster(files: tuple[str, ...], seed: int | None):
    from knet.control import Cluster

    return Cluster.from_input(read_input(files), seed=seed)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


@cli.command()
@files_option
def validate(files: tuple[str, ...]) -> int:
    """Check manifests like the API server would; print located errors, exit 1 if any."""
    read_input(files)
    return 0


@cli.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None, help="Namespace (default: default).")
@click.option("-A", "--all-namespaces", is_flag=True, help="All namespaces.")
@click.option("-o", "--output", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@files_option
@seed_option
def get(kind: str, name: str | None, namespace: str | None, all_namespaces: bool,
        output: str | None, files: tuple[str, ...], seed: int | None) -> int:
    """Show converged objects the way kubectl does (pods, svc, nodes, endpointslices, …, all)."""
    from knet.cli.get import run_get

    cluster = load_cluster(files, seed)
    click.echo(run_get(cluster, kind, name, namespace, all_namespaces, output), nl=False)
    return 0


@cli.command()
@click.option("--host", required=True, help="Host header (and SNI for https).")
@click.option("--path", "path", required=True, help="Request path, with query string.")
@click.option("--method", default="GET", show_default=True)
@click.option("-H", "--header", "headers", multiple=True, metavar="'K: V'", help="Request header.")
@click.option("--scheme", type=click.Choice(["http", "https"]), default="http", show_default=True)
@click.option("--client-ip", default="203.0.113.10", show_default=True)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@files_option
@seed_option
def route(host: str, path: str, method: str, headers: tuple[str, ...], scheme: str,
          client_ip: str, output: str, files: tuple[str, ...], seed: int | None) -> int:
    """Which Ingress, rule and backend an HTTP request would get (ingress-nginx semantics)."""
    from knet.ingress.decision import route_request

    hdrs = []
    for h in headers:
        if ":" not in h:
            raise UsageError(f"bad header {h!r}: expected 'Name: value'")
        k, v = h.split(":", 1)
        hdrs.append((k.strip(), v.strip()))
    cluster = load_cluster(files, seed)
    decision = route_request(
        cluster.ingresses(), cluster.ingress_classes(), cluster.services(),
        cluster.endpoint_slices(), host, path, method, hdrs, scheme=scheme, client_ip=client_ip,
        sni=host if scheme == "https" else None, seed=cluster.seed)
    if output == "json":
        emit_json(decision.to_json())
    else:
        click.echo(decision.render())
    return 0
