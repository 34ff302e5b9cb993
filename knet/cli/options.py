"""Options and helpers shared by the commands: ``-f`` (repeatable), ``--seed``, ``--server``;
reading input, loading a cluster, asking a running ``knet up``, printing JSON.

Imports nothing of knet.cli: the command modules build on it, and knet.cli registers them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

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


def server_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--server", default=None, metavar="URL",
        help="A running knet up's control endpoint (default without -f: $KNET_SERVER, else the "
             "running knet up recorded in $XDG_RUNTIME_DIR/knet/NAME.json or "
             "/tmp/knet-$UID/NAME.json)."
    )(fn)


def server_for(server: str | None, files: tuple[str, ...],
               cluster: str | None = None) -> str | None:
    """The control endpoint to ask: ``--server``, or (without ``-f``) the running knet up
    (``--cluster NAME`` when several run)."""
    if server is None and files:
        if cluster is not None:
            raise UsageError("--cluster asks a running knet up: drop -f")
        return None
    from knet.expose.control import server_url

    return server_url(server, cluster)


def remote_get(server: str, kind: str, name: str | None, namespace: str | None,
               all_namespaces: bool, output: str | None) -> str:
    """``knet get`` of a running ``knet up``: the same text as the local form."""
    from knet.expose.control import remote_get as _get

    return _get(server, kind, name, namespace, all_namespaces, output)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))
