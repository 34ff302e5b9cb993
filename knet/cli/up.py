"""``knet up``: run the cluster in real time and expose it to real tools on loopback.

Also the client side for commands that talk to a running ``knet up`` (its control endpoint):
"""

from __future__ import annotations

from typing import Any

import click

from knet.cli.options import files_option, seed_option


def _listen(value: str | None, what: str) -> tuple[str, int] | None:
    from knet.expose.plan import parse_listen

    return None if value is None else parse_listen(value, what)


def _gateway(value: str) -> tuple[str, int | None, str, int]:
    """``NS/NAME[:PORT]=HOST:P`` → (ns/name, gateway port or None, host, port)."""
    from knet.errors import UsageError

    target, sep, listen = value.partition("=")
    if not sep or "/" not in target:
        raise UsageError(f"--gateway: expected NS/NAME[:PORT]=127.0.0.1:P, got {value!r}")
    name, _, gw_port = target.partition(":")
    if gw_port and not gw_port.isdigit():
        raise UsageError(f"--gateway: bad port in {value!r}")
    addr = _listen(listen, "--gateway")
    assert addr is not None
    return name, int(gw_port) if gw_port else None, addr[0], addr[1]


@click.command()
@files_option
@seed_option
@click.option("--dns", default=None, metavar="127.0.0.1:P",
              help="Serve the cluster DNS on loopback UDP+TCP (port 0: pick one).")
@click.option("--ingress", default=None, metavar="127.0.0.1:P",
              help="Relay HTTP to the ingress-nginx controller Service (port 80).")
@click.option("--ingress-tls", default=None, metavar="127.0.0.1:P",
              help="Relay HTTPS (TLS passthrough) to the controller Service (port 443).")
@click.option("--gateway", "gateways", multiple=True, metavar="NS/NAME[:PORT]=127.0.0.1:P",
              help="Relay a loopback port to a Gateway's listener port (repeatable).")
@click.option("--gateways", "all_gateways", is_flag=True,
              help="List every Gateway's listeners at their LoadBalancer loopback addresses.")
@click.option("--control", default="127.0.0.1:0", show_default=True, metavar="127.0.0.1:P",
              help="HTTP/JSON control endpoint (get, trace, faults).")
@click.option("--no-control", is_flag=True, help="Do not open the control endpoint.")
@click.option("--ui", default=None, metavar="127.0.0.1:P",
              help="Serve the web page: service map, live flows, request stories, rules.")
@click.option("--metrics", default=None, metavar="127.0.0.1:P",
              help="Serve Prometheus metrics of kube-proxy, CoreDNS, ingress-nginx, kubelet.")
@click.option("--api", default="127.0.0.1:0", show_default=True, metavar="127.0.0.1:P",
              help="HTTPS Kubernetes API for kubectl (writes a kubeconfig; docs/api.md).")
@click.option("--no-api", is_flag=True, help="Do not serve the Kubernetes API.")
@click.option("--token-file", default=None, metavar="CSV",
              help='Static bearer tokens for the API: token,user,uid,"group1,group2".')
@click.option("--capture-limit", default=None, metavar="N|SIZE",
              help="Keep the capture to N packets or SIZE (50MB) per file, with FILE.1 holding "
                   "the previous ones (a two-file ring, like tshark -b).")
@click.option("--capture", default=None, metavar="FILE",
              help="Record every packet while up, streamed to a pcapng file every second.")
@click.option("--watch", is_flag=True, help="Re-apply the files when they change.")
@click.option("--no-nodeports", is_flag=True,
              help="Do not expose NodePorts on the per-node loopback addresses.")
@click.option("--real-boot", is_flag=True,
              help="Boot on real time (default: converge on virtual time, then go real).")
@click.option("--boot-timeout", type=float, default=600.0, show_default=True,
              help="Cluster seconds to wait for every pod to be Ready (> 0).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait (up to --boot-timeout) for every pod to be Ready before printing the "
                   "table; pods still not Ready are listed with why, and the cluster serves "
                   "anyway.")
@click.option("--name", default=None, metavar="NAME",
              help="The cluster's name (default: the topology's); one state file per name.")
def up(**kw: Any) -> int:
    """Run the cluster in real time until Ctrl-C, exposed on loopback only.

    Node i (name order) serves its NodePorts on 127.0.1.(i+1); LoadBalancer IPs are mapped to
    127.0.2.N; --dns/--ingress/--ingress-tls/--control take 127.0.0.1:PORT (port 0 picks one;
    the bound ports are printed). Anything outside 127.0.0.0/8 and ::1 is refused.
    """
    from knet.expose.session import catch_signals_early

    restore = catch_signals_early()  # from here on SIGINT/SIGTERM are a clean stop
    try:
        return _up(**kw)
    finally:
        restore()


def _up(files: tuple[str, ...], seed: int | None, dns: str | None, ingress: str | None,
        ingress_tls: str | None, gateways: tuple[str, ...], all_gateways: bool, control: str, no_control: bool,
        ui: str | None,
        metrics: str | None, api: str, no_api: bool,
        token_file: str | None, capture: str | None, capture_limit: str | None, watch: bool,
        no_nodeports: bool,
        real_boot: bool, boot_timeout: float, wait: bool, name: str | None) -> int:
    from knet.errors import UsageError
    from knet.expose.session import UpOptions
    from knet.expose.session import up as run

    if not files:
        raise UsageError("no input: give -f PATH (a file, a directory, or - for stdin)")
    if not boot_timeout > 0 or boot_timeout == float("inf"):
        raise UsageError(f"--boot-timeout: expected a number of seconds > 0, got {boot_timeout:g}")
    if name is not None:
        from knet.expose.state import check_name

        check_name(name)
    opts = UpOptions(
        files=files, seed=seed, dns=_listen(dns, "--dns"), ingress=_listen(ingress, "--ingress"),
        ingress_tls=_listen(ingress_tls, "--ingress-tls"),
        gateways=tuple(_gateway(g) for g in gateways), all_gateways=all_gateways,
        control=None if no_control else _listen(control, "--control"),
        ui=_listen(ui, "--ui"), metrics=_listen(metrics, "--metrics"),
        api=None if no_api else _listen(api, "--api"), token_file=token_file,
        capture=capture, capture_limit=capture_limit, watch=watch,
        nodeports=not no_nodeports, real_boot=real_boot,
        boot_timeout=boot_timeout, wait=wait, name=name)
    return run(opts)


@click.command()
@click.option("--name", default=None, help="The cluster (default: the running knet up's).")
def kubeconfig(name: str | None) -> int:
    """Print the running cluster's kubeconfig (admin client certificate)."""
    from knet.api.up import kubeconfig_path
    from knet.errors import KnetError
    from knet.expose import state

    if name is None:
        live = state.running()
        if not live:
            raise KnetError("no knet up is running (start one with: knet up -f …)")
        if len(live) > 1:
            raise KnetError(f"{len(live)} clusters are running ({', '.join(live)}): choose one "
                            f"with --name NAME")
        name = next(iter(live))
    path = kubeconfig_path(name)
    try:
        click.echo(path.read_text(), nl=False)
    except OSError:
        raise KnetError(f'no kubeconfig for cluster "{name}": is knet up running with the API '
                        "(not --no-api)?") from None
    return 0


COMMANDS = [up, kubeconfig]
