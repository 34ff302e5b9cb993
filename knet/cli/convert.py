"""``knet convert ingress-to-gateway``: Gateway API objects for the Ingresses, and ``--check``."""

from __future__ import annotations

import click

from knet.cli.options import files_option, load_cluster, seed_option
from knet.errors import UsageError


@click.group()
def convert() -> None:
    """Convert objects between APIs (ingress-to-gateway)."""


def _requests(path: str) -> list[tuple[str, str, str]]:
    """``--requests FILE``: one URL per line (``http[s]://HOST/PATH?QUERY``); # comments."""
    from urllib.parse import urlsplit

    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--requests: cannot read {path}: {e}") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        u = urlsplit(line)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise UsageError(f"{path}:{n}: expected an http(s) URL, got {line!r}")
        out.append((u.scheme, u.hostname, (u.path or "/") + (f"?{u.query}" if u.query else "")))
    return out


@convert.command("ingress-to-gateway")
@click.option("--gateway-class", default="knet", show_default=True,
              help="gatewayClassName of the generated Gateways.")
@click.option("--check", is_flag=True,
              help="Route requests through the Ingresses and through the generated routes; "
                   "list every difference (exit 1 if any).")
@click.option("--requests", "requests_file", default=None, metavar="FILE",
              help="With --check: the requests to replay (one URL per line) instead of the "
                   "generated set.")
@files_option
@seed_option
def ingress_to_gateway(gateway_class: str, check: bool, requests_file: str | None,
                       files: tuple[str, ...], seed: int | None) -> int:
    """Gateway + HTTPRoutes for the Ingresses ingress-nginx serves; what cannot be expressed
    is listed (as comments, and on stderr)."""
    from knet.control import ingressnginx
    from knet.gateway import convert as conv
    from knet.ingress import ControllerConfig
    from knet.manifests import to_yaml

    if requests_file is not None and not check:
        raise UsageError("--requests needs --check")
    cluster = load_cluster(files, seed)
    for obj in ingressnginx.builtin_objects(cluster):
        cluster.apply(obj)
    config = ControllerConfig.from_args(ingressnginx.controller_args(cluster))
    ings = cluster.ingresses()
    result = conv.convert(ings, cluster.ingress_classes(), cluster.services(),
                          gateway_class=gateway_class, config=config)
    if not check:
        out = [f"# not converted: {n}\n" for n in result.notes]
        out += ["---\n" + to_yaml(o) for o in result.objects]
        click.echo("".join(out), nl=False)
        for n in result.notes:
            click.echo(f"note: {n}", err=True)
        return 0
    reqs = _requests(requests_file) if requests_file else None
    diffs, total = conv.check(ings, cluster.ingress_classes(), cluster.services(),
                              cluster.endpoint_slices(), cluster.secrets(), result, reqs,
                              config=config, seed=cluster.seed)
    for d in diffs:
        click.echo(d.render())
    for n in result.notes:
        click.echo(f"not converted: {n}")
    click.echo(f"{total} requests replayed, {len(diffs)} differ")
    return 1 if diffs else 0


COMMANDS = [convert]
