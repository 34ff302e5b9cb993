"""The loopback exposure of ``knet up``: real sockets on 127.0.0.0/8 relayed into the fabric.

Invariants:
- Real sockets bind loopback addresses only (``plan.check_loopback`` on every user address;
  node and LoadBalancer addresses are generated inside 127.0.0.0/8).
- A real client never bypasses kube-proxy: every relayed connection is a virtual connection
  from an outside host (``plan.outside_ips``) to a node address (NodePort) or a LoadBalancer IP
  routed to its announcing node, so it enters that node's datapath from the wire and crosses
  PREROUTING → KUBE-SERVICES/KUBE-NODEPORTS → … exactly like traffic from outside a cluster
  (externalTrafficPolicy, masquerade, loadBalancerSourceRanges apply).
- Listeners follow the cluster: after any Service/EndpointSlice/Node change the wanted set is
  recomputed (``plan.listeners``); targets are looked up when a connection arrives, so a new
  announcer or a new node address applies to the next connection.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import sys
from collections.abc import Callable
from ipaddress import IPv4Address, ip_address
from typing import Any

from knet.errors import NetworkError, UsageError
from knet.expose import plan
from knet.expose.plan import AddressBook, ListenKey, Target
from knet.expose.relay import RealTcpRelay, RealUdpRelay

INGRESS_NAMESPACE = "ingress-nginx"
INGRESS_SERVICE = "ingress-nginx-controller"


class Listener:
    """One real loopback socket (TCP server or UDP endpoint) and its relays."""

    def __init__(self, key: ListenKey, server: asyncio.Server | asyncio.DatagramTransport) -> None:
        self.key = key
        self.server = server

    def close(self) -> None:
        self.server.close()


class Loopback:
    """Expose a running cluster (``RuntimeCluster``) on loopback."""

    def __init__(self, rt: Any, *, nodeports: bool = True, warn: Callable[[str], None] | None = None,
                 slot: int = 0) -> None:
        self.rt = rt
        self.book = AddressBook(slot)
        self.nodeports = nodeports
        self.targets: dict[ListenKey, Target] = {}
        self.listeners: dict[ListenKey, Listener] = {}
        self.failed: dict[ListenKey, str] = {}
        self.extra: dict[str, dict[str, Any]] = {}  # dns / ingress / ingress-tls / control
        self._extra_servers: list[Any] = []
        self._outside: dict[IPv4Address, Any] = {}
        self.stats: dict[str, int] = {}
        self._warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr, flush=True))
        self._sync_task: asyncio.Task[None] | None = None
        self._dirty = False
        self._unwatch: list[Callable[[], None]] = []
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        await self._sync()
        self._unwatch.append(self.rt.watch(self.request_sync))
        self._unwatch.append(self.rt.state.subscribe(self._on_event))

    async def aclose(self) -> None:
        self._closed = True
        for u in self._unwatch:
            u()
        if self._sync_task is not None:
            self._sync_task.cancel()
        for lst in self.listeners.values():
            lst.close()
        self.listeners.clear()
        for s in self._extra_servers:
            close = getattr(s, "aclose", None)
            if close is not None:
                await close()
            else:
                s.close()
        self._extra_servers.clear()

    def _on_event(self, ev: Any) -> None:
        if ev.kind == "Node":
            self.request_sync()

    def request_sync(self) -> None:
        if self._closed:
            return
        if self._sync_task is not None and not self._sync_task.done():
            self._dirty = True
            return
        self._sync_task = asyncio.get_running_loop().create_task(self._sync_loop())

    async def _sync_loop(self) -> None:
        while True:
            self._dirty = False
            await self._sync()
            if not self._dirty or self._closed:
                return

    # -- planning -----------------------------------------------------------------------------
    def _plan(self) -> dict[ListenKey, Target]:
        st = self.rt.state
        want = plan.listeners(self.book, st.nodes(), st.services(), st.endpoint_slices())
        if not self.nodeports:
            want = {k: t for k, t in want.items() if t.kind != "nodeport"}
        return want

    async def _sync(self) -> None:
        want = self._plan()
        self.targets = want
        loop = asyncio.get_running_loop()
        for key in [k for k in self.listeners if k not in want]:
            self.listeners.pop(key).close()
        for key in [k for k in self.failed if k not in want]:
            del self.failed[key]
        for key in sorted(want, key=lambda k: (ip_address(k[0]), k[1], k[2])):
            if key in self.listeners or key in self.failed:
                continue
            host, port, proto = key
            server: asyncio.Server | asyncio.DatagramTransport
            try:
                if proto == "tcp":
                    server = await loop.create_server(
                        functools.partial(RealTcpRelay, functools.partial(self._open_tcp, key),
                                          self.stats), host, port, reuse_address=True)
                else:
                    server, _ = await loop.create_datagram_endpoint(
                        functools.partial(RealUdpRelay, functools.partial(self._open_udp, key)),
                        local_addr=(host, port))
            except OSError as e:
                self.failed[key] = e.strerror or str(e)
                self._warn(f"cannot listen on {host}:{port}/{proto} for "
                           f"{want[key].service}: {e.strerror or e}")
                continue
            self.listeners[key] = Listener(key, server)

    # -- relaying -----------------------------------------------------------------------------
    def outside(self, client_host: str) -> tuple[Any, Any, Any]:
        """The outside host (fabric namespace) standing for a real client address."""
        v4, v6 = plan.outside_ips(client_host)
        ns = self._outside.get(v4)
        if ns is None:
            ns = self.rt.fabric.add_external(f"gateway-client-{v4}", [v4, v6])
            self._outside[v4] = ns
        return ns, v4, v6

    def _route(self, t: Target) -> None:
        if t.kind != "loadbalancer":
            return
        if not self.rt.lb_announcer(str(t.dst)):  # the runtime's MetalLB speaker routes it
            raise NetworkError(f"no node announces {t.dst}")

    def _target(self, key: ListenKey) -> Target:
        t = self.targets.get(key)
        if t is None:
            raise NetworkError(f"nothing behind {key[0]}:{key[1]}/{key[2]} any more")
        self._route(t)
        return t

    async def _dial_tcp(self, t: Target, peer: tuple[str, int],
                        factory: Callable[[], asyncio.Protocol]) -> asyncio.Transport:
        ns, v4, v6 = self.outside(peer[0])
        src = v4 if t.dst.version == 4 else v6
        try:
            tr, _ = await ns.create_connection(factory, str(t.dst), t.port,
                                               local_addr=(str(src), peer[1]))
        except OSError as e:
            if e.errno not in (errno.EADDRNOTAVAIL, errno.EADDRINUSE):
                raise
            tr, _ = await ns.create_connection(factory, str(t.dst), t.port,
                                               local_addr=(str(src), 0))
        return tr

    async def _open_tcp(self, key: ListenKey, peer: tuple[str, int],
                        factory: Callable[[], asyncio.Protocol]) -> asyncio.Transport:
        return await self._dial_tcp(self._target(key), peer, factory)

    async def _open_udp(self, key: ListenKey, peer: tuple[str, int],
                        factory: Callable[[], asyncio.DatagramProtocol]) -> Any:
        t = self._target(key)
        ns, v4, v6 = self.outside(peer[0])
        src = v4 if t.dst.version == 4 else v6
        try:
            tr, _ = await ns.create_datagram_endpoint(factory, local_addr=(str(src), peer[1]),
                                                      remote_addr=(str(t.dst), t.port))
        except OSError:
            tr, _ = await ns.create_datagram_endpoint(factory, local_addr=(str(src), 0),
                                                      remote_addr=(str(t.dst), t.port))
        return tr

    # -- ingress --------------------------------------------------------------------------------
    def ingress_target(self, port: int, service: str | None = None) -> Target:
        """The ingress-nginx controller Service (or ``service`` ns/name, e.g. a Gateway's) as
        seen from outside: LoadBalancer IP:port via its announcer, else the NodePort on the
        first Ready node."""
        st = self.rt.state
        svc = None
        if service is not None:
            svc = next((s for s in st.services() if s.metadata.key == service), None)
            if svc is None:
                raise NetworkError(f"no Service {service} in the cluster")
        for s in st.services(INGRESS_NAMESPACE) if svc is None else ():
            if s.metadata.name == INGRESS_SERVICE:
                svc = s
        if svc is None:
            for s in st.services():
                lbl = s.metadata.labels
                if (lbl.get("app.kubernetes.io/name") == "ingress-nginx"
                        and lbl.get("app.kubernetes.io/component") == "controller"
                        and str(s.spec.type) in ("LoadBalancer", "NodePort")):
                    svc = s
                    break
        if svc is None:
            raise NetworkError("no ingress-nginx controller Service in the cluster")
        sp = next((p for p in svc.spec.ports if p.port == port), None)
        if sp is None:
            raise NetworkError(f"{svc.key} has no port {port}")
        for ip in plan.lb_ips(svc):
            who = plan.announcer(ip, svc, st.nodes(), st.endpoint_slices())
            if who:
                return Target("loadbalancer", svc.key, ip, port, who)
        if sp.node_port:
            for n in sorted(st.nodes(), key=lambda n: n.name):
                dst = plan.node_ip(n)
                if n.ready and dst is not None:
                    return Target("nodeport", svc.key, dst, sp.node_port, n.name)
        raise NetworkError(f"{svc.key} is not reachable from outside (no LoadBalancer IP "
                           f"announced, no NodePort)")

    async def _open_ingress(self, port: int, peer: tuple[str, int],
                            factory: Callable[[], asyncio.Protocol],
                            service: str | None = None) -> asyncio.Transport:
        t = self.ingress_target(port, service)
        self._route(t)
        return await self._dial_tcp(t, peer, factory)

    async def serve_ingress(self, name: str, host: str, port: int, service_port: int) -> int:
        host = plan.check_loopback(host, f"--{name}")
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                functools.partial(RealTcpRelay, functools.partial(self._open_ingress, service_port),
                                  self.stats), host, port, reuse_address=True)
        except OSError as e:
            from knet.expose.control import in_use

            raise UsageError(in_use(f"--{name}", host, port, e)) from None
        bound = server.sockets[0].getsockname()[1]
        self._extra_servers.append(server)
        self.extra[name] = {"address": f"{host}:{bound}", "host": host, "port": bound,
                            "servicePort": service_port}
        return int(bound)

    async def serve_gateway(self, gateway: str, service: str, gateway_port: int, host: str,
                            port: int) -> int:
        """``--gateway NS/NAME=HOST:P``: relay to the Gateway's data-plane Service port."""
        host = plan.check_loopback(host, "--gateway")
        loop = asyncio.get_running_loop()

        async def open_gateway(peer: tuple[str, int],
                               factory: Callable[[], asyncio.Protocol]) -> asyncio.Transport:
            return await self._open_ingress(gateway_port, peer, factory, service)
        try:
            server = await loop.create_server(
                functools.partial(RealTcpRelay, open_gateway, self.stats), host, port,
                reuse_address=True)
        except OSError as e:
            raise UsageError(f"--gateway: cannot listen on {host}:{port}: {e.strerror or e}") from None
        bound = server.sockets[0].getsockname()[1]
        self._extra_servers.append(server)
        self.extra[f"gateway {gateway}:{gateway_port}"] = {
            "address": f"{host}:{bound}", "host": host, "port": bound, "servicePort": gateway_port}
        return int(bound)

    async def serve_dns(self, host: str, port: int) -> int:
        from knet.expose.dnsloop import LoopbackDns

        srv = LoopbackDns(self.rt.dns_view)
        bound = await srv.start(host, port)
        self._extra_servers.append(srv)
        self.extra["dns"] = {"address": f"{srv.host}:{bound}", "host": srv.host, "port": bound,
                             "transports": ["udp", "tcp"]}
        return bound

    # -- the address table -----------------------------------------------------------------------
    def table(self) -> dict[str, Any]:
        st = self.rt.state
        nodes = []
        for n in sorted(st.nodes(), key=lambda n: str(self.book.nodes.get(n.name, ""))):
            lo = self.book.nodes.get(n.name)
            ports = sorted({f"{k[1]}/{k[2].upper()}" for k, t in self.targets.items()
                            if t.kind == "nodeport" and t.node == n.name},
                           key=lambda s: (int(s.split("/")[0]), s))
            nodes.append({"name": n.name, "internalIP": str(plan.node_ip(n) or ""),
                          "loopback": str(lo) if lo is not None and self.nodeports else None,
                          "ready": n.ready, "nodePorts": ports})
        lbs: dict[str, dict[str, Any]] = {}
        for k, t in sorted(self.targets.items(), key=lambda kv: (ip_address(kv[0][0]), kv[0][1])):
            if t.kind != "loadbalancer":
                continue
            e = lbs.setdefault(str(t.dst), {"ip": str(t.dst), "loopback": k[0], "services": [],
                                            "announcedBy": t.node or None, "ports": []})
            if t.service not in e["services"]:
                e["services"].append(t.service)
            e["ports"].append(f"{k[1]}/{k[2].upper()}")
        nodeports = sorted({(t.service, k[1], k[2].upper()) for k, t in self.targets.items()
                            if t.kind == "nodeport"})
        return {
            "nodes": nodes,
            "nodePorts": [{"service": s, "nodePort": p, "protocol": pr} for s, p, pr in nodeports],
            "loadBalancers": list(lbs.values()),
            "unavailable": [{"address": f"{k[0]}:{k[1]}/{k[2]}", "error": e}
                            for k, e in sorted(self.failed.items())],
            **{k: v for k, v in self.extra.items()},
        }

    def render_table(self) -> str:
        t = self.table()
        out: list[str] = []
        rows: list[tuple[str, ...]] = [("NODE", "INTERNAL-IP", "LOOPBACK", "NODEPORTS")]
        for n in t["nodes"]:
            rows.append((n["name"], n["internalIP"], n["loopback"] or "-",
                         ",".join(n["nodePorts"]) or "<none>"))
        out += _columns(rows)
        if t["loadBalancers"]:
            out.append("")
            rows = [("LOADBALANCER-IP", "LOOPBACK", "ANNOUNCED-BY", "SERVICE", "PORTS")]
            for lb in t["loadBalancers"]:
                rows.append((lb["ip"], lb["loopback"], lb["announcedBy"] or "<none>",
                             ",".join(lb["services"]), ",".join(lb["ports"])))
            out += _columns(rows)
        out.append("")
        rows = []
        if "dns" in t:
            rows.append(("DNS", t["dns"]["address"], "udp+tcp, the cluster DNS (CoreDNS view)"))
        if "ingress" in t:
            rows.append(("INGRESS", t["ingress"]["address"],
                         "http → ingress-nginx controller Service port 80"))
        if "ingress-tls" in t:
            rows.append(("INGRESS-TLS", t["ingress-tls"]["address"],
                         "https → ingress-nginx controller Service port 443"))
        for k in sorted(k for k in t if k.startswith(("gateway ", "gateway-lb "))):
            lb = k.startswith("gateway-lb ")
            rows.append(("GATEWAY", t[k]["address"], f"{k.split(' ', 1)[1]} (Gateway listener"
                         + (" at its LoadBalancer IP)" if lb else ", relayed)")))
        if "control" in t:
            rows.append(("CONTROL", t["control"]["address"], "http JSON control endpoint"))
        if "ui" in t:
            rows.append(("UI", t["ui"]["address"], f"web page: {t['ui']['url']}"))
        if "metrics" in t:
            rows.append(("METRICS", t["metrics"]["address"], f"Prometheus: {t['metrics']['url']}"))
        if "api" in t:
            rows.append(("API", t["api"]["address"], "https Kubernetes API (kubectl)"))
        out += _columns(rows)
        for u in t["unavailable"]:
            out.append(f"unavailable: {u['address']}: {u['error']}")
        return "\n".join(out) + "\n"


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
