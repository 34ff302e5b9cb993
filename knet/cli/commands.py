"""The core commands (validate, get, rules, trace, …). Each module of commands lists them in
``COMMANDS``; ``knet.cli.register`` adds them to the group. Shared options: knet.cli.options."""

from __future__ import annotations


import click

from knet.cli.options import emit_json as emit_json
from knet.cli.options import files_option as files_option
from knet.cli.options import load_cluster as load_cluster
from knet.cli.options import read_input as read_input
from knet.cli.options import remote_get as remote_get
from knet.cli.options import seed_option as seed_option
from knet.cli.options import server_for as server_for
from knet.cli.options import server_option as server_option
from knet.errors import UsageError


@click.command()
@files_option
def validate(files: tuple[str, ...]) -> int:
    """Check manifests like the API server would; print located errors, exit 1 if any."""
    read_input(files)
    return 0


@click.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None, help="Namespace (default: default).")
@click.option("-A", "--all-namespaces", is_flag=True, help="All namespaces.")
@click.option("-o", "--output", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@files_option
@seed_option
@server_option
@click.option("--cluster", default=None, metavar="NAME",
              help="Which running knet up to ask (its --name) when several run.")
def get(kind: str, name: str | None, namespace: str | None, all_namespaces: bool,
        output: str | None, files: tuple[str, ...], seed: int | None,
        server: str | None, cluster: str | None) -> int:
    """Show converged objects the way kubectl does (pods, svc, nodes, endpointslices, …, all);
    without -f, from the running knet up."""
    from knet.printers import NoResources, run_get
    from knet.errors import KnetError

    url = server_for(server, files, cluster)
    try:
        if url is not None:
            click.echo(remote_get(url, kind, name, namespace, all_namespaces, output), nl=False)
            return 0
        if not files:
            raise UsageError("no input: give -f PATH (a file, a directory, or - for stdin), or "
                             "start a cluster with `knet up -f PATH` and run knet get without -f")
        state = load_cluster(files, seed)
        click.echo(run_get(state, kind, name, namespace, all_namespaces, output), nl=False)
    except NoResources as e:  # kubectl: the message on stderr, exit 0
        click.echo(str(e), err=True)
    except KnetError as e:
        if not str(e).startswith("No resources found"):  # the same, from a running knet up
            raise
        click.echo(str(e), err=True)
    return 0


@click.command()
@click.option("--host", default=None,
              help="Host header (and SNI for https); default: the controller's address, as "
                   "`curl http://ADDRESS/` sends it.")
@click.option("--path", "path", required=True, help="Request path, with query string.")
@click.option("--method", default="GET", show_default=True)
@click.option("-H", "--header", "headers", multiple=True, metavar="'K: V'", help="Request header.")
@click.option("--scheme", type=click.Choice(["http", "https"]), default="http", show_default=True)
@click.option("--client-ip", default="203.0.113.10", show_default=True)
@click.option("--gateway", default=None, metavar="NS/NAME",
              help="Route through this Gateway (Gateway API) instead of the Ingresses.")
@click.option("--port", type=int, default=None, help="Gateway listener port (--gateway).")
@click.option("--sni", default=None, help="TLS server name (--gateway; default: --host).")
@click.option("--grpc", is_flag=True, help="A gRPC request: --path /SERVICE/METHOD (--gateway).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@files_option
@seed_option
def route(host: str | None, path: str, method: str, headers: tuple[str, ...], scheme: str,
          client_ip: str, gateway: str | None, port: int | None, sni: str | None, grpc: bool,
          output: str, files: tuple[str, ...], seed: int | None) -> int:
    """Which route and backend an HTTP request would get: ingress-nginx semantics, or with
    --gateway the Gateway API's."""
    from knet.ingress.decision import route_request

    hdrs = []
    for h in headers:
        if ":" not in h:
            raise UsageError(f"bad header {h!r}: expected 'Name: value'")
        k, v = h.split(":", 1)
        hdrs.append((k.strip(), v.strip()))
    from knet.control import ingressnginx
    from knet.ingress import ControllerConfig

    cluster = load_cluster(files, seed)
    if gateway is not None:
        from knet.gateway.view import route as gateway_route

        gd = gateway_route(cluster, gateway, path=path, host=host, method=method, headers=hdrs,
                           port=port, scheme=scheme, sni=sni, grpc=grpc)
        if output == "json":
            emit_json(gd.to_json())
        else:
            click.echo(gd.render())
        return 0
    # the controller knet up would run: the topology's own, else kind's install (IngressClass
    # nginx, --watch-ingress-without-class=true), applied after the user's objects
    for obj in ingressnginx.builtin_objects(cluster):
        cluster.apply(obj)
    config = ControllerConfig.from_args(ingressnginx.controller_args(cluster))
    if host is None:
        host = ingressnginx.controller_address(cluster)
        if host is None:
            raise UsageError("no ingress controller Service to take the Host from: give --host")
    decision = route_request(
        cluster.ingresses(), cluster.ingress_classes(), cluster.services(),
        cluster.endpoint_slices(), host, path, method, hdrs, scheme=scheme,
        client_ip=client_ip, sni=host if scheme == "https" else None, seed=cluster.seed,
        config=config)
    if output == "json":
        emit_json(decision.to_json())
    else:
        click.echo(decision.render())
    return 0


MODES = click.Choice(["iptables", "ipvs", "nftables"])


@click.command()
@click.option("--node", required=True, help="The node whose tables to print.")
@click.option("--mode", type=MODES, default=None, help="kube-proxy mode (default: the topology's).")
@click.option("--table", type=click.Choice(["nat", "filter"]), default=None)
@click.option("--family", type=click.Choice(["4", "6"]), default=None,
              help="IP family (default: every family of the cluster).")
@click.option("--format", "fmt", type=click.Choice(["restore", "iptables-save"]), default="restore",
              help="iptables-restore input (kube-proxy's) or what iptables-save shows.")
@click.option("--grep", default=None, metavar="TEXT",
              help="Only the rule lines that contain TEXT (e.g. a service's ns/name).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@files_option
@seed_option
def rules(node: str, mode: str | None, table: str | None, family: str | None, fmt: str,
          grep: str | None, output: str, files: tuple[str, ...], seed: int | None) -> int:
    """A node's kube-proxy rules in the mode's native text (iptables-restore input by default)."""
    from knet.cli.rules import render_rules

    cluster = load_cluster(files, seed)
    out = render_rules(cluster, node, mode or cluster.config.kube_proxy.mode, table,
                       int(family) if family else None, fmt, output)
    if output == "json":
        emit_json(out)
    else:
        if grep is not None:
            out = "".join(ln for ln in out.splitlines(keepends=True) if grep in ln and
                          not ln.startswith((":", "#", "*")))
        click.echo(out, nl=False)
    return 0


@click.command()
@click.option("--from", "src", default=None, help="ns/pod, a node name, or an IP.")
@click.option("--to", "dst", default=None, help="DESTINATION:PORT.")
@click.option("--proto", type=click.Choice(["tcp", "udp", "sctp"]), default="tcp")
@click.option("--node", default=None, help="Node an outside packet enters through.")
@click.option("--mode", type=MODES, default=None)
@click.option("--all", "all_", is_flag=True, help="Every outcome the first packet could have.")
@click.option("--rules", "rules_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Trace through a real node's iptables-save / restore dump instead.")
@click.option("--local-address", "local_addresses", multiple=True,
              help="With --rules: the node's own addresses (repeatable).")
@click.option("--url", default=None, help="Live mode: run an HTTP request from --from.")
@click.option("--dns", "dns_name", default=None, help="Live mode: resolve NAME from --from.")
@click.option("--pcap", default=None, help="Live mode: write the capture as pcapng.")
@click.option("--html", default=None, metavar="FILE",
              help="Live mode: write the story as a self-contained page.")
@click.option("-v", "--verbose", is_flag=True,
              help="Live mode: every rule each packet met, not only the deciding ones.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@files_option
@seed_option
@server_option
def trace(src: str | None, dst: str | None, proto: str, node: str | None, mode: str | None,
          all_: bool, rules_file: str | None, local_addresses: tuple[str, ...], url: str | None,
          dns_name: str | None, pcap: str | None, html: str | None, verbose: bool, output: str,
          files: tuple[str, ...], seed: int | None, server: str | None) -> int:
    """The story of one packet through the tables (or a live request with --url/--dns)."""
    from knet.cli import trace as tr
    from knet.path import ClusterPath, split_host_port

    if src is None:
        raise UsageError("--from is required")
    if url or dns_name:
        from knet.cli.live import live_trace

        return live_trace(files, seed, src, url, dns_name, pcap, output,
                          server_for(server, files), verbose, html)
    if dst is None:
        raise UsageError("--to DESTINATION:PORT is required (or --url / --dns for live mode)")
    host, port = split_host_port(dst)
    if rules_file:
        return tr.trace_dump(rules_file, local_addresses, src, host, port, proto, all_, output,
                             seed or 0)
    path = ClusterPath(load_cluster(files, seed), mode)
    if all_:
        outs = path.outcomes(src, host, port, proto, node)
        data = {"outcomes": outs.outcomes, "masquerade": outs.masquerade,
                "items": [{"target": o.target, "masquerade": o.masquerade,
                           "chains": list(o.chains)} for o in outs.items]}
        if output == "json":
            emit_json(data)
        else:
            for o in outs.items:
                masq = "  (masqueraded)" if o.masquerade else ""
                click.echo(f"{o.target}{masq}    via {' → '.join(o.chains)}")
        return 0
    w = path.walk(src, host, port, proto, node)
    if output == "json":
        emit_json(tr.walk_json(w))
    else:
        click.echo(tr.render_walk(w), nl=False)
    return 0


def dns_view(cluster):
    """The cluster's DNS view (kube-system/coredns Corefile when present, else kubeadm's)."""
    from knet.dns import DnsView

    return DnsView(services=cluster.services(), endpoint_slices=cluster.endpoint_slices(),
                   pods=cluster.pods(), namespaces=cluster.namespaces(),
                   config_maps=cluster.config_maps(), cluster=cluster.config, seed=cluster.seed)


@click.command()
@click.argument("name")
@click.argument("qtype", default="A", metavar="[TYPE]")
@click.option("--from", "src", default=None,
              help="ns/pod: apply the pod's resolv.conf search path, showing every query.")
@click.option("--tcp", is_flag=True, help="Ask over TCP (no truncation).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@files_option
@seed_option
def dig(name: str, qtype: str, src: str | None, tcp: bool, output: str,
        files: tuple[str, ...], seed: int | None) -> int:
    """Ask the cluster DNS like dig (CoreDNS kubernetes-plugin semantics)."""
    from knet.dns import dig as d
    from knet.dns.answer import legal_labels
    from knet.dns.stub import resolv_conf_for_pod
    from knet.dns.wire import qtype_value

    qtype_value(qtype)  # usage errors before the (slower) load
    legal_labels(name)
    cluster = load_cluster(files, seed)
    view = dns_view(cluster)
    resolv = None
    if src is not None:
        pod = cluster.pod(src)
        dns_ips = [ip for s in cluster.services("kube-system") if s.metadata.name == "kube-dns"
                   for ip in (s.spec.cluster_ips or (s.spec.cluster_ip,))]
        resolv = resolv_conf_for_pod(pod, cluster_dns=dns_ips,
                                     cluster_domain=cluster.config.dns_domain)
    run = d.dig(view, name, qtype.upper(), resolv=resolv, tcp=tcp)
    if output == "json":
        emit_json(d.to_json(run.reply, run.queries))
        return 0
    if resolv is not None:
        for q in run.queries:
            click.echo(f";; tried {q['name']} {q['type']}: {q['rcode']}")
    if run.reply is None:
        click.echo(";; no servers could be reached")
        return 1
    click.echo(d.render(run.reply, transport="TCP" if tcp else "UDP"))
    return 0


# Commands in their own modules: listed in knet.cli.COMMAND_MODULES.


@click.command("compare-modes")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@files_option
@seed_option
def compare_modes(output: str, files: tuple[str, ...],
                  seed: int | None) -> int:
    """Run the same flows through iptables, IPVS and nftables modes: where outcomes differ, and
    what each mode's first-packet lookup costs."""
    from knet.proxy import modes

    cluster = load_cluster(files, seed)
    report = modes.compare(cluster, seed=cluster.seed)
    if output == "json":
        emit_json(modes.to_json(report))
    else:
        click.echo(modes.render_text(report), nl=False)
    return 0


COMMANDS = [validate, get, route, rules, trace, dig, compare_modes]
