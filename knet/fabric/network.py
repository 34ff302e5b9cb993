"""The virtual L3 network: nodes, pod network namespaces, external hosts, and packet delivery.

Invariants:
- Flat L3 routing (kindnet/flannel-host-gw style): a destination inside a node's pod CIDR or
  equal to a node address is routed to that node; any other destination is "outside" and
  reaches an attached external host with that IP, or is dropped (no route).
- A packet leaving a pod enters its node's ``Datapath`` from the pod's veth; the fabric then
  routes on the destination the datapath hands back (after DNAT). Crossing to another node
  (or to/from outside) crosses a wire, where partitions, loss and latency apply, and enters
  that node's datapath from ``WIRE``. Pod-local traffic (own IPs, loopback) never leaves the
  pod's namespace, as on Linux. Every node crossed sees the packet exactly once.
- The routing decision is synchronous (the sender learns at once whether the wire or a
  datapath dropped its packet); delivery to the destination socket is a loop callback (after
  the link latency, FIFO per destination namespace), never a nested call into the sender.
- Everything is deterministic: ports count up from 32768 (ip_local_port_range 32768-60999),
  ISNs and loss come from ``random.Random`` seeded by the fabric seed.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import random
import socket
import ssl as ssl_module
from asyncio import sslproto
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from knet.errors import NotFound, UsageError
from knet.fabric.clock import Clock, clock_of
from knet.fabric.datapath import LOCAL, WIRE, Datapath, Hop, PassThroughDatapath, RejectWith, Verdict
from knet.fabric.tcp import M32, SYN_RECV, SYN_SENT, TCP, FabricServer, FabricTransport, Listener
from knet.fabric.transport import addr_key
from knet.fabric.udp import UDP, FabricDatagramTransport
from knet.netfilter.packet import Packet, Proto, veth_name

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

OUTSIDE = "outside"
"""Pseudo node name for the world outside the cluster, in link and partition faults."""

EPHEMERAL_FIRST, EPHEMERAL_LAST = 32768, 60999  # net.ipv4.ip_local_port_range
SYNACK_TIMEOUT = 63.0  # tcp_synack_retries=5: 1+2+4+8+16+32 s
MAX_HOPS = 16
_LOOPBACK = (IPv4Address("127.0.0.1"), IPv6Address("::1"))
_ACCEPT = Verdict.ACCEPT
_REJECT = Verdict.REJECT


class EventKind(enum.StrEnum):
    HOP = "hop"  # a node's datapath decided (``hop`` set)
    DELIVERED = "delivered"  # handed to a namespace (``netns`` set)
    DROPPED = "dropped"  # lost on a wire, partitioned, no route (``reason`` says which)
    ICMP = "icmp"  # an ICMP error / RST generated for a REJECT or a closed UDP port


@dataclass(frozen=True, slots=True)
class FabricEvent:
    """What a tap sees; only built when a tap is attached."""

    kind: EventKind
    time: float
    packet: Packet
    node: str = ""
    entered_from: str = ""
    hop: Hop | None = None
    netns: str = ""
    reason: str = ""


@dataclass(slots=True)
class Link:
    latency: float = 0.0
    loss: float = 0.0


class Node:
    """A node: addresses, pod CIDRs, its datapath, and its own (host) network namespace."""

    __slots__ = ("name", "addresses", "pod_cidrs", "datapath", "netns", "pods")

    def __init__(self, fabric: Fabric, name: str, addresses: tuple[IPAddress, ...],
                 pod_cidrs: tuple[IPNetwork, ...], datapath: Datapath) -> None:
        self.name = name
        self.addresses = addresses
        self.pod_cidrs = pod_cidrs
        self.datapath = datapath
        self.pods: dict[str, Namespace] = {}
        self.netns = Namespace(fabric, name, "node", self, addresses)

    def __repr__(self) -> str:
        return (f"<Node {self.name} {','.join(map(str, self.addresses))} "
                f"pods={','.join(map(str, self.pod_cidrs))}>")


_ICMP6_NAMES = {"icmp6-port-unreachable": RejectWith.ICMP_PORT_UNREACHABLE,
                "port-unreach": RejectWith.ICMP_PORT_UNREACHABLE,
                "icmp6-adm-prohibited": RejectWith.ICMP_ADMIN_PROHIBITED,
                "adm-prohibited": RejectWith.ICMP_ADMIN_PROHIBITED,
                "icmp6-no-route": RejectWith.ICMP_NET_UNREACHABLE,
                "no-route": RejectWith.ICMP_NET_UNREACHABLE,
                "icmp6-addr-unreachable": RejectWith.ICMP_HOST_UNREACHABLE,
                "addr-unreach": RejectWith.ICMP_HOST_UNREACHABLE}


def reject_kind(value: object) -> RejectWith:
    """A datapath's ``reject_with`` (iptables/ip6tables/nft spelling) as the fabric's enum."""
    if isinstance(value, RejectWith):
        return value
    text = str(value or "icmp-port-unreachable")
    try:
        return RejectWith(text)
    except ValueError:
        return _ICMP6_NAMES.get(text, RejectWith.ICMP_PORT_UNREACHABLE)


def as_hop(hop: Any) -> Hop:
    """A datapath's answer as a ``Hop``: a datapath may return any object with ``verdict``,
    ``packet``, ``local`` and ``reject_with`` (e.g. a netfilter ``Result``, with the engines'
    plain-string verdicts); taps get a ``Hop`` whose ``explanation`` is that object."""
    if type(hop) is Hop:
        return hop
    verdict = hop.verdict
    verdict = verdict if isinstance(verdict, Verdict) else Verdict(str(verdict))
    reject = (reject_kind(hop.reject_with) if verdict is _REJECT
              else RejectWith.ICMP_PORT_UNREACHABLE)
    return Hop(verdict, hop.packet, bool(hop.local), reject, hop)


def _ip(value: object) -> IPAddress:
    if isinstance(value, (IPv4Address, IPv6Address)):
        return value
    return ip_address(str(value))


class Namespace:
    """A network namespace (a pod's, a node's, or an external host's) and its socket table."""

    def __init__(self, fabric: Fabric, name: str, kind: str, node: Node | None,
                 ips: Iterable[IPAddress]) -> None:
        self.fabric = fabric
        self.name = name
        self.kind = kind  # "pod" | "node" | "external"
        self.node = node
        self.ips: tuple[IPAddress, ...] = tuple(ips)
        self.veth = LOCAL if kind == "node" else veth_name(name)
        # Pods and external hosts deliver to themselves without a datapath (their own netns has
        # no kube-proxy rules); a node's own traffic goes through OUTPUT of its datapath.
        self._shortcut = kind != "node"
        self._local: frozenset[object] = frozenset(addr_key(a) for a in (*self.ips, *_LOOPBACK))
        self._tcp: dict[tuple, FabricTransport] = {}
        self._listeners: dict[tuple[IPAddress | None, int], Listener] = {}
        self._udp: dict[tuple[IPAddress | None, int], FabricDatagramTransport] = {}
        self._ports: dict[str, set[int]] = {"tcp": set(), "udp": set()}
        self._next_port = {"tcp": EPHEMERAL_FIRST, "udp": EPHEMERAL_FIRST}
        self._delayq: deque[tuple[Packet, Namespace | None, Packet | None]] = deque()
        self._last_when = 0.0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.fabric.loop

    def __repr__(self) -> str:
        where = f" on {self.node.name}" if self.node is not None and self.kind == "pod" else ""
        return f"<Namespace {self.kind} {self.name}{where} {','.join(map(str, self.ips))}>"

    # ----------------------------------------------------------------- addresses and ports

    def parse_addr(self, addr: Any) -> tuple[IPAddress, int]:
        host, port = addr[0], addr[1]
        return self.resolve_literal(host), int(port)

    def resolve_literal(self, host: object) -> IPAddress:
        if isinstance(host, (IPv4Address, IPv6Address)):
            return host
        if host == "localhost":
            return _LOOPBACK[0]
        try:
            return ip_address(str(host).split("%", 1)[0])
        except ValueError:
            # The fabric does not resolve names; the caller's resolver (knet DNS) does.
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None

    def source_for(self, dst: IPAddress) -> IPAddress:
        if addr_key(dst) in self._local:
            return dst
        if dst.is_loopback:
            return _LOOPBACK[0] if dst.version == 4 else _LOOPBACK[1]
        for ip in self.ips:
            if ip.version == dst.version:
                return ip
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    def _alloc_port(self, proto: str) -> int:
        used = self._ports[proto]
        span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
        port = self._next_port[proto]
        for _ in range(span):
            candidate = port
            port = port + 1 if port < EPHEMERAL_LAST else EPHEMERAL_FIRST
            if candidate not in used:
                self._next_port[proto] = port
                used.add(candidate)
                return candidate
        raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")

    def _check_bind(self, ip: IPAddress | None) -> None:
        if ip is not None and addr_key(ip) not in self._local and not ip.is_loopback:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")

    # ----------------------------------------------------------------- packets

    def send(self, pkt: Packet) -> bool:
        """Put ``pkt`` on the network; False when it was dropped or rejected on the way."""
        dst = pkt.dst
        if self._shortcut and (dst._ip if dst._version == 4 else dst) in self._local:  # type: ignore[union-attr]
            self.fabric.loop.call_soon(self._receive, pkt, self, pkt)
            return True
        return self.fabric._carry(self, pkt)

    def _receive(self, pkt: Packet, origin: Namespace | None, orig: Packet | None) -> None:
        proto = pkt.proto
        if proto is TCP:
            dst, src = pkt.dst, pkt.src
            conn = self._tcp.get((dst._ip if dst._version == 4 else dst, pkt.dport,  # type: ignore[union-attr]
                                  src._ip if src._version == 4 else src, pkt.sport))  # type: ignore[union-attr]
            if conn is not None:
                conn._segment(pkt)
                return
            flags = pkt.flags
            if flags == "S":
                lst = (self._listeners.get((pkt.dst, pkt.dport))
                       or self._listeners.get((None, pkt.dport)))
                if lst is not None and not lst.closed:
                    self._accept(lst, pkt)
                    return
            if "R" in flags:
                return
            # No socket: answer RST (RFC 9293 3.10.7.1).
            if "A" in flags:
                rst = Packet(pkt.dst, pkt.src, TCP, pkt.dport, pkt.sport, "R", pkt.ack, 0)
            else:
                seg_len = len(pkt.payload) + ("S" in flags) + ("F" in flags)
                rst = Packet(pkt.dst, pkt.src, TCP, pkt.dport, pkt.sport, "RA", 0,
                             (pkt.seq + seg_len) % M32)
            self.send(rst)
        elif proto is UDP:
            sock = self._udp.get((pkt.dst, pkt.dport)) or self._udp.get((None, pkt.dport))
            if sock is not None:
                sock._datagram(pkt)
            elif origin is not None and orig is not None:
                # No socket: ICMP port unreachable (RFC 1122 4.1.3.1) back to the sender.
                self.fabric._icmp(origin, orig, RejectWith.ICMP_PORT_UNREACHABLE, self.name)

    def _pop_delayed(self) -> None:
        pkt, origin, orig = self._delayq.popleft()
        self._receive(pkt, origin, orig)

    def _icmp_error(self, orig: Packet, kind: RejectWith) -> None:
        if orig.proto is TCP:
            conn = self._tcp.get((addr_key(orig.src), orig.sport, addr_key(orig.dst), orig.dport))
            if conn is not None:
                conn._icmp(kind)
        elif orig.proto is UDP:
            sock = self._udp.get((orig.src, orig.sport)) or self._udp.get((None, orig.sport))
            if sock is not None:
                sock._icmp(kind)

    # ----------------------------------------------------------------- TCP table

    def _accept(self, lst: Listener, syn: Packet) -> None:
        iss = self.fabric._isn()
        conn = FabricTransport(self, syn.dst, syn.dport, syn.src, syn.sport, iss, SYN_RECV)
        conn._rcv_nxt = (syn.seq + 1) % M32
        conn._snd_nxt = (iss + 1) % M32
        conn._listener = lst
        self._tcp[conn._key] = conn
        conn._timer = self.loop.call_at(self.loop.time() + SYNACK_TIMEOUT, conn._finish)
        conn._emit("SA", iss)

    def _tcp_forget(self, conn: FabricTransport) -> None:
        if self._tcp.get(conn._key) is conn:
            del self._tcp[conn._key]
            if conn._ephemeral:
                self._ports["tcp"].discard(conn._lport)

    def _tcp_unlisten(self, lst: Listener) -> None:
        if self._listeners.get((lst.ip, lst.port)) is lst:
            del self._listeners[(lst.ip, lst.port)]
            self._ports["tcp"].discard(lst.port)

    def _udp_forget(self, sock: FabricDatagramTransport) -> None:
        if self._udp.get(sock.key) is sock:
            del self._udp[sock.key]
            self._ports["udp"].discard(sock.key[1])

    @property
    def connections(self) -> list[FabricTransport]:
        return list(self._tcp.values())

    @property
    def listening(self) -> list[tuple[IPAddress | None, int]]:
        return sorted(self._listeners, key=lambda k: (k[1], str(k[0])))

    @property
    def udp_bound(self) -> list[tuple[IPAddress | None, int]]:
        return sorted(self._udp, key=lambda k: (k[1], str(k[0])))

    # ----------------------------------------------------------------- asyncio API

    async def create_connection(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: Any = None,
        port: int | None = None, *, ssl: Any = None, server_hostname: str | None = None,
        local_addr: tuple[str, int] | None = None, ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None, **_: Any,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """``loop.create_connection`` inside this namespace (host must be an IP literal)."""
        if host is None or port is None:
            raise UsageError("create_connection needs host and port")
        rip = self.resolve_literal(host)
        rport = int(port)
        loop = self.loop
        if local_addr is not None:
            lip, lport = self.parse_addr(local_addr)
            self._check_bind(lip)
            if lport == 0:
                lport = self._alloc_port("tcp")
                ephemeral = True
            else:
                ephemeral = False
        else:
            lip = self.source_for(rip)
            lport = self._alloc_port("tcp")
            ephemeral = True
        conn = FabricTransport(self, lip, lport, rip, rport, self.fabric._isn(), SYN_SENT)
        conn._ephemeral = ephemeral
        if conn._key in self._tcp:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        self._tcp[conn._key] = conn
        waiter: asyncio.Future[None] = loop.create_future()
        conn._waiter = waiter
        conn._send_syn(0)
        try:
            await waiter
        except BaseException:
            conn._waiter = None
            conn._finish()
            raise
        conn._waiter = None
        if ssl:
            app_protocol = protocol_factory()
            context = ssl if isinstance(ssl, ssl_module.SSLContext) else ssl_module.create_default_context()
            hostname = server_hostname if server_hostname is not None else (
                host if isinstance(host, str) else str(host))
            done: asyncio.Future[None] = loop.create_future()
            wrapper = sslproto.SSLProtocol(
                loop, app_protocol, context, done, server_side=False,
                server_hostname=hostname or None,
                # typeshed: int; asyncio takes any number of seconds
                ssl_handshake_timeout=ssl_handshake_timeout,  # type: ignore[arg-type]
                ssl_shutdown_timeout=ssl_shutdown_timeout)
            conn._attach(wrapper)
            try:
                await done
            except BaseException:
                conn.abort()
                raise
            return wrapper._app_transport, app_protocol
        protocol = protocol_factory()
        conn._attach(protocol)
        return conn, protocol

    async def create_server(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: Any = None,
        port: int = 0, *, ssl: Any = None, ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None, **_: Any,
    ) -> FabricServer:
        """``loop.create_server`` inside this namespace; ``host`` None/''/'0.0.0.0'/'::' = any."""
        hosts: list[Any] = list(host) if isinstance(host, (list, tuple)) else [host]
        ips: list[IPAddress | None] = []
        for h in hosts:
            if h in (None, "", "0.0.0.0", "::"):
                ips.append(None)
            else:
                lit = self.resolve_literal(h)
                self._check_bind(lit)
                ips.append(lit)
        port = int(port)
        factory = protocol_factory
        if ssl is not None:
            loop = self.loop

            def factory() -> asyncio.BaseProtocol:
                # typeshed: waiter is a Future (asyncio's own server passes None); int timeouts
                return sslproto.SSLProtocol(
                    loop, protocol_factory(), ssl, None, server_side=True,  # type: ignore[arg-type]
                    ssl_handshake_timeout=ssl_handshake_timeout,  # type: ignore[arg-type]
                    ssl_shutdown_timeout=ssl_shutdown_timeout)

        if port == 0:
            port = self._alloc_port("tcp")
        else:
            for ip in ips:
                for bound_ip, bound_port in self._listeners:
                    if bound_port == port and (ip is None or bound_ip is None or ip == bound_ip):
                        addr = ("0.0.0.0" if ip is None else str(ip), port)
                        raise OSError(errno.EADDRINUSE, f"error while attempting to bind on "
                                      f"address {addr}: address already in use")
            self._ports["tcp"].add(port)
        listeners = []
        for ip in dict.fromkeys(ips):
            family = socket.AF_INET6 if ip is not None and ip.version == 6 else socket.AF_INET
            lst = Listener(self, ip, port, factory, family)
            self._listeners[(ip, port)] = lst
            listeners.append(lst)
        return FabricServer(self, listeners)

    async def create_datagram_endpoint(
        self, protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[Any, int] | None = None, remote_addr: tuple[Any, int] | None = None,
        *, family: int = 0, **_: Any,
    ) -> tuple[FabricDatagramTransport, asyncio.DatagramProtocol]:
        """``loop.create_datagram_endpoint`` inside this namespace."""
        remote = self.parse_addr(remote_addr) if remote_addr is not None else None
        if local_addr is not None:
            host, lport = local_addr[0], int(local_addr[1])
            lip = None if host in (None, "", "0.0.0.0", "::") else self.resolve_literal(host)
            self._check_bind(lip)
        else:
            lip, lport = None, 0
        if lport == 0:
            lport = self._alloc_port("udp")
        elif lport in self._ports["udp"] and any(
                p == lport and (lip is None or i is None or i == lip) for i, p in self._udp):
            raise OSError(errno.EADDRINUSE, "Address already in use")
        else:
            self._ports["udp"].add(lport)
        fam = family or (socket.AF_INET6 if (lip or (remote[0] if remote else None) or
                                             _LOOPBACK[0]).version == 6 else socket.AF_INET)
        transport = FabricDatagramTransport(self, lip, lport, remote, fam)
        self._udp[(lip, lport)] = transport
        protocol = protocol_factory()
        transport._protocol = protocol
        protocol.connection_made(transport)
        return transport, protocol

    async def open_connection(self, host: Any = None, port: int | None = None, *,
                              limit: int = 2 ** 16, **kwds: Any
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = self.loop
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await self.create_connection(lambda: protocol, host, port, **kwds)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    async def start_server(self, client_connected_cb: Callable[..., Any], host: Any = None,
                           port: int = 0, *, limit: int = 2 ** 16, **kwds: Any) -> FabricServer:
        loop = self.loop

        def factory() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

        return await self.create_server(factory, host, port, **kwds)

    def close(self) -> None:
        """Tear the namespace down as a killed process would: RST connections, close sockets."""
        for conn in list(self._tcp.values()):
            conn.abort()
        for lst in list(self._listeners.values()):
            lst.closed = True
            self._tcp_unlisten(lst)
        for sock in list(self._udp.values()):
            sock.close()


class Fabric:
    """The whole virtual network. Create it, add nodes, pods and external hosts, then talk."""

    def __init__(self, clock: Clock | None = None, *, seed: int = 0) -> None:
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self.seed = seed
        self._loss_rng = random.Random(f"knet-fabric-loss/{seed}")
        self._isn_rng = random.Random(f"knet-fabric-isn/{seed}")
        self.nodes: dict[str, Node] = {}
        self.namespaces: dict[str, Namespace] = {}
        self._hosts: dict[object, Namespace] = {}  # addr_key → namespace
        self._cidrs: list[tuple[IPNetwork, Node]] = []
        self._extra_routes: dict[IPNetwork, Node] = {}
        self._route_cache: dict[IPAddress, Node | None] = {}
        self._links: dict[tuple[str, str], Link] = {}
        self._default_link: Link | None = None
        self._partitions: set[tuple[str, str]] = set()
        self._taps: list[Callable[[FabricEvent], None]] = []
        self.delivered = 0  # packets handed to a namespace (knet_fabric_packets_total)
        self.dropped = 0
        self._wired = False  # any link fault configured (else wire crossings are free)

    # ----------------------------------------------------------------- time

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = clock_of()
        return self._clock

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = self.clock.loop
        return loop

    def _isn(self) -> int:
        return self._isn_rng.getrandbits(32)

    # ----------------------------------------------------------------- topology

    def add_node(self, name: str, addresses: Iterable[object], pod_cidrs: Iterable[object] = (),
                 *, datapath: Datapath | None = None) -> Node:
        if name in self.nodes or name in self.namespaces or name == OUTSIDE:
            raise UsageError(f"node {name!r} already exists")
        addrs = tuple(_ip(a) for a in addresses)
        cidrs = tuple(ip_network(str(c)) for c in pod_cidrs)
        self._check_free(addrs)
        node = Node(self, name, addrs, cidrs,
                    datapath if datapath is not None else PassThroughDatapath(set(addrs)))
        self.nodes[name] = node
        self.namespaces[name] = node.netns
        for a in addrs:
            self._hosts[addr_key(a)] = node.netns
        for c in cidrs:
            self._cidrs.append((c, node))
        self._route_cache.clear()
        return node

    def set_datapath(self, node: str, datapath: Datapath) -> None:
        self.node(node).datapath = datapath

    def add_pod(self, netns_name: str, node: str, ips: Iterable[object]) -> Namespace:
        """A pod network namespace on ``node`` (containers of the pod share it)."""
        if netns_name in self.namespaces:
            raise UsageError(f"network namespace {netns_name!r} already exists")
        n = self.node(node)
        addrs = tuple(_ip(a) for a in ips)
        self._check_free(addrs)
        ns = Namespace(self, netns_name, "pod", n, addrs)
        n.pods[netns_name] = ns
        self.namespaces[netns_name] = ns
        for a in addrs:
            self._hosts[addr_key(a)] = ns
        return ns

    def set_route(self, prefix: object, node: str | None) -> None:
        """Route ``prefix`` (an address or CIDR outside every pod CIDR) to ``node``, as a
        MetalLB L2 speaker or a cloud load balancer delivers a LoadBalancer IP (or a network
        admin an externalIP) to one node; ``node=None`` removes the route. More specific
        routes win."""
        net = ip_network(str(prefix), strict=False)
        self._extra_routes.pop(net, None)
        if node is not None:
            self._extra_routes[net] = self.node(node)
        self._route_cache.clear()

    def add_external(self, name: str, ips: Iterable[object]) -> Namespace:
        """A host outside the cluster (e.g. a client at 203.0.113.10)."""
        if name in self.namespaces:
            raise UsageError(f"network namespace {name!r} already exists")
        addrs = tuple(_ip(a) for a in ips)
        self._check_free(addrs)
        ns = Namespace(self, name, "external", None, addrs)
        self.namespaces[name] = ns
        for a in addrs:
            self._hosts[addr_key(a)] = ns
        return ns

    def remove_namespace(self, name: str) -> None:
        """Delete a pod or external namespace (its sockets are torn down first)."""
        ns = self.namespace(name)
        if ns.kind == "node":
            raise UsageError("nodes are not removed through remove_namespace")
        ns.close()
        for a in ns.ips:
            if self._hosts.get(addr_key(a)) is ns:
                del self._hosts[addr_key(a)]
        del self.namespaces[name]
        if ns.node is not None:
            ns.node.pods.pop(name, None)

    def _check_free(self, addrs: tuple[IPAddress, ...]) -> None:
        taken = [str(a) for a in addrs if addr_key(a) in self._hosts]
        if taken:
            raise UsageError(f"address already assigned: {', '.join(taken)}")

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise NotFound(f"node {name!r} not found") from None

    def namespace(self, name: str) -> Namespace:
        try:
            return self.namespaces[name]
        except KeyError:
            raise NotFound(f"network namespace {name!r} not found") from None

    def owner(self, ip: object) -> Namespace | None:
        """The namespace an address is assigned to, if any."""
        return self._hosts.get(addr_key(_ip(ip)))

    def _route_node(self, dst: IPAddress) -> Node | None:
        cache = self._route_cache
        if dst in cache:
            return cache[dst]
        found = None
        for net, node in self._cidrs:
            if dst.version == net.version and dst in net:
                found = node
                break
        if found is None and self._extra_routes:
            best = -1
            for net, node in self._extra_routes.items():
                if dst.version == net.version and dst in net and net.prefixlen > best:
                    found, best = node, net.prefixlen
        if len(cache) > 65536:
            cache.clear()
        cache[dst] = found
        return found

    # ----------------------------------------------------------------- faults

    @staticmethod
    def _pair(a: str, b: str) -> tuple[str, str]:
        return (a, b) if a <= b else (b, a)

    def set_link(self, a: str, b: str, *, latency: float = 0.0, loss: float = 0.0) -> None:
        """Latency (seconds, one way) and loss probability on the wire between two nodes
        (or a node and ``OUTSIDE``)."""
        if not 0.0 <= loss <= 1.0 or latency < 0:
            raise UsageError("loss must be within [0, 1] and latency >= 0")
        self._links[self._pair(a, b)] = Link(latency, loss)
        self._rewire()

    def set_default_link(self, *, latency: float = 0.0, loss: float = 0.0) -> None:
        if not 0.0 <= loss <= 1.0 or latency < 0:
            raise UsageError("loss must be within [0, 1] and latency >= 0")
        self._default_link = Link(latency, loss) if (latency or loss) else None
        self._rewire()

    def partition(self, a: str, b: str) -> None:
        """Every packet between ``a`` and ``b`` (node names or ``OUTSIDE``) is dropped."""
        self._partitions.add(self._pair(a, b))
        self._rewire()

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        if a is None or b is None:
            self._partitions.clear()
        else:
            self._partitions.discard(self._pair(a, b))
        self._rewire()

    def _rewire(self) -> None:
        self._wired = bool(self._links or self._partitions or self._default_link)

    def add_tap(self, tap: Callable[[FabricEvent], None]) -> Callable[[], None]:
        """Observe every hop/delivery/drop; returns a function that removes the tap."""
        self._taps.append(tap)
        return lambda: self._taps.remove(tap) if tap in self._taps else None

    @property
    def tap_count(self) -> int:
        """How many observers are attached (0: the hot path records nothing)."""
        return len(self._taps)

    # ----------------------------------------------------------------- carrying packets

    def _cross(self, a: str, b: str, pkt: Packet) -> float | None:
        """A wire crossing: the added latency, or None when the packet is lost."""
        key = (a, b) if a <= b else (b, a)
        if key in self._partitions:
            self._drop(pkt, a, "partition")
            return None
        link = self._links.get(key) or self._default_link
        if link is None:
            return 0.0
        if link.loss and self._loss_rng.random() < link.loss:
            self._drop(pkt, a, "loss")
            return None
        return link.latency

    def _drop(self, pkt: Packet, node: str, reason: str) -> bool:
        self.dropped += 1
        if self._taps:
            self._emit(FabricEvent(EventKind.DROPPED, self.clock.now(), pkt, node=node, reason=reason))
        return False

    def _emit(self, event: FabricEvent) -> None:
        for tap in list(self._taps):
            tap(event)

    def _carry(self, origin: Namespace, pkt: Packet) -> bool:
        orig = pkt
        wired = self._wired
        delay = 0.0
        node = origin.node
        if node is None:  # from outside: the first router is the owner of the destination
            dst = pkt.dst
            target = self._hosts.get(dst._ip if dst._version == 4 else dst)  # type: ignore[union-attr]  # ipaddress int
            node = target.node if target is not None else self._route_node(dst)
            if node is None:
                if target is None:
                    return self._drop(pkt, OUTSIDE, "no route")
                return self._deliver(target, pkt, 0.0, origin, orig)
            if wired:
                d = self._cross(OUTSIDE, node.name, pkt)
                if d is None:
                    return False
                delay += d
            iface = WIRE
        else:
            iface = origin.veth
        now = self.loop.time()  # the clock is the loop's time (virtual or real)
        taps = self._taps
        for _ in range(MAX_HOPS):
            hop = node.datapath.forward(pkt, iface, now)
            if taps:
                self._emit(FabricEvent(EventKind.HOP, now, pkt, node=node.name,
                                       entered_from=iface, hop=as_hop(hop)))
            verdict = hop.verdict
            if verdict is not _ACCEPT and verdict != _ACCEPT:  # enum or plain str
                if verdict == _REJECT:
                    self._icmp(origin, orig, reject_kind(hop.reject_with), node.name)
                return False
            pkt = hop.packet
            if hop.local:
                return self._deliver(node.netns, pkt, delay, origin, orig)
            dst = pkt.dst
            target = self._hosts.get(dst._ip if dst._version == 4 else dst)  # type: ignore[union-attr]  # ipaddress int
            nxt = target.node if target is not None else self._route_node(dst)
            if nxt is node:
                if target is None:
                    return self._drop(pkt, node.name, "no such pod")
                return self._deliver(target, pkt, delay, origin, orig)
            if nxt is None:
                if target is None:
                    return self._drop(pkt, node.name, "no route")
                if wired:
                    d = self._cross(node.name, OUTSIDE, pkt)
                    if d is None:
                        return False
                    delay += d
                return self._deliver(target, pkt, delay, origin, orig)
            if wired:
                d = self._cross(node.name, nxt.name, pkt)
                if d is None:
                    return False
                delay += d
            node = nxt
            iface = WIRE
        return self._drop(pkt, node.name, "routing loop")

    def _deliver(self, target: Namespace, pkt: Packet, delay: float, origin: Namespace,
                 orig: Packet) -> bool:
        loop = self._loop or self.loop
        self.delivered += 1
        if self._taps:
            self._emit(FabricEvent(EventKind.DELIVERED, loop.time() + delay, pkt,
                                   node=target.node.name if target.node else OUTSIDE,
                                   netns=target.name))
        if delay <= 0.0 and not target._delayq:
            loop.call_soon(target._receive, pkt, origin, orig)
        else:
            when = max(loop.time() + delay, target._last_when)
            target._last_when = when
            target._delayq.append((pkt, origin, orig))
            loop.call_at(when, target._pop_delayed)
        return True

    def _icmp(self, origin: Namespace, orig: Packet, kind: RejectWith, at: str) -> None:
        """The error a REJECT (or a closed UDP port) sends back to the packet's sender."""
        if kind == RejectWith.TCP_RESET and orig.proto is TCP:
            seg_len = len(orig.payload) + ("S" in orig.flags) + ("F" in orig.flags)
            err = Packet(orig.dst, orig.src, TCP, orig.dport, orig.sport, "RA", 0,
                         (orig.seq + seg_len) % M32)
            self.loop.call_soon(origin._receive, err, None, None)
        else:
            # icmp_send() picks the address of the interface the error leaves by: the node's.
            node = self.nodes.get(at)
            src = next((a for a in node.addresses if a.version == orig.src.version), orig.dst) \
                if node is not None else orig.dst
            err = Packet(src, orig.src, Proto.ICMP)
            self.loop.call_soon(origin._icmp_error, orig, kind)
        if self._taps:
            self._emit(FabricEvent(EventKind.ICMP, self.clock.now(), err, node=at, netns=origin.name,
                                   reason=str(kind)))
