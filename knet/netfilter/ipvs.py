"""IPVS: one node's virtual-server table, its schedulers and its connection table.

Invariants (Linux ``net/netfilter/ipvs``, ipvsadm 1.31; kube-proxy.md §4.1):
- A virtual server is keyed by (protocol, address, port); its real servers by (address,
  port), kept in the order they were added. Weight-0 ("quiescent") real servers are never
  chosen for a new connection, but keep serving their existing connections.
- Every scheduler is the kernel's algorithm over the same inputs: ``rr``/``wrr`` keep their
  position per virtual server; ``lc``/``wlc``/``sed``/``nq``/``lblc``/``lblcr`` read the live
  ActiveConn/InActConn counters of this table (``ip_vs_dest_conn_overhead`` =
  active·256 + inactive); ``sh``/``dh``/``mh`` hash the source/destination into a bucket
  table (the hash function is knet's, deterministic; the kernel's uses jhash/siphash).
- A connection is counted *inactive* until IPVS sees it ESTABLISHED (TCP), and UDP/SCTP
  connections are always inactive, as IPVS counts them. Connections expire on the caller's
  ``now`` with IPVS's own timeouts (``ip_vs_proto_tcp.c`` tcp_timeouts, udp 300 s).
- Persistence (``-p TIMEOUT``): a template (client IP, VIP, port) pins the real server until
  ``timeout`` seconds after its last use; a template whose real server became quiescent is
  dropped (``expire_quiescent_template=1``, set by kube-proxy).
- No IO, no wall clock; ``rr`` state and hashing are deterministic (Known ambiguity 8).
"""

from __future__ import annotations

import enum
import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from knet.netfilter import conntrack as ct
from knet.netfilter.engine import Netfilter, Outcome, Outcomes, Result
from knet.netfilter.packet import Packet

IPAddress = IPv4Address | IPv6Address

IPVS_VERSION = "1.2.1"
CONN_TAB_SIZE = 4096  # 1 << CONFIG_IP_VS_TAB_BITS (12)
SH_TAB_SIZE = 256     # IP_VS_SH_TAB_SIZE / IP_VS_DH_TAB_SIZE
MH_TAB_SIZE = 251     # knet's Maglev table (kernel default is prime index 12 = 4093)

# ip_vs_proto_tcp.c tcp_timeouts (seconds) and ip_vs_proto_udp.c
TCP_TIMEOUTS: dict[str, float] = {"NONE": 2, "ESTABLISHED": 900, "SYN_SENT": 120, "SYN_RECV": 60,
                "FIN_WAIT": 120, "TIME_WAIT": 120, "CLOSE": 10, "CLOSE_WAIT": 60,
                "LAST_ACK": 30, "LISTEN": 120, "SYNACK": 120}
UDP_TIMEOUT = 300
SCTP_TIMEOUT = 900


class Scheduler(enum.StrEnum):
    RR = "rr"
    WRR = "wrr"
    LC = "lc"
    WLC = "wlc"
    LBLC = "lblc"
    LBLCR = "lblcr"
    SH = "sh"
    DH = "dh"
    SED = "sed"
    NQ = "nq"
    MH = "mh"


SCHEDULERS = tuple(s.value for s in Scheduler)


@dataclass(frozen=True, slots=True)
class RealServer:
    address: IPAddress
    port: int
    weight: int = 1
    forward: str = "Masq"  # kube-proxy always uses NAT (masquerading) forwarding

    @property
    def endpoint(self) -> str:
        a = self.address
        return f"[{a}]:{self.port}" if a.version == 6 else f"{a}:{self.port}"


@dataclass(frozen=True, slots=True)
class VirtualServer:
    """What kube-proxy asks for (``utilipvs.VirtualServer`` + its real servers)."""
    address: IPAddress
    port: int
    protocol: str  # "TCP" | "UDP" | "SCTP"
    scheduler: str = "rr"
    flags: tuple[str, ...] = ()  # "persistent", "mh-port"
    timeout: int = 0             # persistence timeout (seconds)
    real_servers: tuple[RealServer, ...] = ()
    comment: str = ""            # which service port this is (knet's annotation)

    @property
    def key(self) -> tuple[str, int, int, int]:
        return (self.protocol, self.address.version, int(self.address), self.port)

    @property
    def endpoint(self) -> str:
        a = self.address
        return f"[{a}]:{self.port}" if a.version == 6 else f"{a}:{self.port}"

    def __str__(self) -> str:  # utilipvs.VirtualServer.String()
        return f"{self.endpoint}/{self.protocol}"


@dataclass(slots=True, eq=False)
class Dest:
    """A real server as the kernel holds it (weight and live counters)."""
    address: IPAddress
    port: int
    weight: int
    activeconns: int = 0
    inactconns: int = 0

    @property
    def endpoint(self) -> str:
        a = self.address
        return f"[{a}]:{self.port}" if a.version == 6 else f"{a}:{self.port}"

    @property
    def overhead(self) -> int:  # ip_vs_dest_conn_overhead
        return (self.activeconns << 8) + self.inactconns


@dataclass(slots=True, eq=False)
class Service:
    spec: VirtualServer
    dests: dict[tuple[int, int, int], Dest] = field(default_factory=dict)  # (family, address, port)
    rr_pos: int = -1
    wrr_cw: int = 0
    wrr_pos: int = -1
    lblc: dict[int, Dest] = field(default_factory=dict)
    lblcr: dict[int, list[Dest]] = field(default_factory=dict)
    table: list[Dest | None] | None = None  # sh/dh/mh buckets

    def dest_list(self) -> list[Dest]:
        return list(self.dests.values())


@dataclass(slots=True, eq=False)
class Conn:
    """An IPVS connection (``struct ip_vs_conn``): client → VIP mapped to a real server."""
    protocol: str
    client: IPAddress
    cport: int
    vaddr: IPAddress
    vport: int
    dest: Dest
    state: str
    expires: float
    active: bool = False
    ct_entry: object = None  # the netfilter conntrack entry IPVS updated (conntrack=1)


@dataclass(frozen=True, slots=True)
class Decision:
    """The scheduler's choice for one new connection (or the connection it belongs to)."""
    virtual_server: VirtualServer
    dest: Dest | None             # None: no usable real server → ICMP port unreachable
    scheduler: str
    index: int = 0                # 0-based position of ``dest`` among the real servers
    count: int = 0                # number of real servers (all, weight 0 included)
    how: str = "scheduled"        # scheduled | persistent | existing
    conn: Conn | None = None

    @property
    def endpoint(self) -> str:
        return self.dest.endpoint if self.dest is not None else ""

    def explain(self) -> str:
        if self.dest is None:
            return (f"IPVS {self.scheduler}: {self.virtual_server} has no usable real server "
                    "→ ICMP port unreachable")
        how = {"persistent": " (persistence template)", "existing": " (existing connection)"}
        return (f"IPVS {self.scheduler} → {self.dest.endpoint} ({_ordinal(self.index + 1)} of "
                f"{self.count}){how.get(self.how, '')}")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def _gcd_weight(dests: list[Dest]) -> int:
    from math import gcd
    g = 0
    for d in dests:
        if d.weight > 0:
            g = gcd(g, d.weight)
    return g or 1


class IPVS:
    """One node's IPVS: virtual servers, real servers, connections, persistence templates."""

    def __init__(self, *, tcp_timeout: float = 0.0, tcp_fin_timeout: float = 0.0,
                 udp_timeout: float = 0.0) -> None:
        # ``ipvsadm --set TCP TCPFIN UDP`` (KubeProxyConfiguration ipvs.tcpTimeout,
        # tcpFinTimeout, udpTimeout); 0 keeps the kernel's default for that state.
        self.tcp_timeouts = dict(TCP_TIMEOUTS)
        if tcp_timeout > 0:
            self.tcp_timeouts["ESTABLISHED"] = tcp_timeout
        if tcp_fin_timeout > 0:
            self.tcp_timeouts["FIN_WAIT"] = tcp_fin_timeout
        self.udp_timeout = udp_timeout if udp_timeout > 0 else UDP_TIMEOUT
        self.services: dict[tuple[str, int, int, int], Service] = {}
        self.conns: dict[tuple, Conn] = {}
        self.templates: dict[tuple, tuple[Dest, float, Service]] = {}
        self.lookups = 0  # hash lookups performed (cost reporting)

    # -- configuration (kube-proxy's sync) ---------------------------------------------
    def apply(self, virtual_servers: Iterable[VirtualServer], now: float = 0.0) -> None:
        """Make the table match ``virtual_servers`` as kube-proxy's sync does: add/update
        services and real servers, delete unused services; a removed real server is set to
        weight 0 and deleted once it has no connections (graceful termination; UDP and SCTP
        real servers are deleted at once, ``IsRsGracefulTerminationNeeded``)."""
        self.expire(now)
        wanted: dict[tuple, VirtualServer] = {vs.key: vs for vs in virtual_servers}
        for key in [k for k in self.services if k not in wanted]:
            self._delete_service(key)
        for key, vs in wanted.items():
            svc = self.services.get(key)
            if svc is None:
                svc = self.services[key] = Service(vs)
            elif svc.spec.scheduler != vs.scheduler:
                svc.rr_pos, svc.wrr_pos, svc.wrr_cw = -1, -1, 0
                svc.lblc.clear()
                svc.lblcr.clear()
            svc.spec = vs
            new_keys = set()
            for rs in vs.real_servers:
                k = (rs.address.version, int(rs.address), rs.port)
                new_keys.add(k)
                d = svc.dests.get(k)
                if d is None:
                    svc.dests[k] = Dest(rs.address, rs.port, rs.weight)
                else:
                    d.weight = rs.weight  # a terminating server that came back
            for dk, d in list(svc.dests.items()):
                if dk in new_keys:
                    continue
                graceful = vs.protocol == "TCP"
                if graceful and d.activeconns + d.inactconns > 0:
                    d.weight = 0
                else:
                    self._delete_dest(svc, dk)
            svc.table = None

    def sweep(self, now: float) -> None:
        """The graceful-termination manager: delete weight-0 real servers that kube-proxy no
        longer wants once their connections have drained."""
        self.expire(now)
        for svc in self.services.values():
            wanted = {(r.address.version, int(r.address), r.port)
                      for r in svc.spec.real_servers}
            for k, d in list(svc.dests.items()):
                if k not in wanted and d.activeconns + d.inactconns == 0:
                    self._delete_dest(svc, k)

    def _delete_service(self, key: tuple) -> None:
        svc = self.services.pop(key)
        for ck, c in list(self.conns.items()):
            if c.dest in svc.dests.values():
                del self.conns[ck]
        for tk, (_d, _e, s) in list(self.templates.items()):
            if s is svc:
                del self.templates[tk]

    def _delete_dest(self, svc: Service, k: tuple) -> None:
        d = svc.dests.pop(k)
        for tk, (td, _e, _s) in list(self.templates.items()):
            if td is d:
                del self.templates[tk]
        svc.lblc = {h: x for h, x in svc.lblc.items() if x is not d}
        svc.lblcr = {h: [x for x in xs if x is not d] for h, xs in svc.lblcr.items()}
        svc.table = None

    def virtual_servers(self) -> list[tuple[VirtualServer, list[Dest]]]:
        return [(s.spec, s.dest_list()) for s in self.services.values()]

    def service(self, protocol: str, address: IPAddress, port: int) -> Service | None:
        self.lookups += 1
        return self.services.get((protocol.upper(), address.version, int(address), port))

    # -- packets -----------------------------------------------------------------------
    def expire(self, now: float) -> None:
        for k, c in list(self.conns.items()):
            if c.expires <= now:
                self._drop_conn(k, c)
        for k, (d, exp, _s) in list(self.templates.items()):
            if exp <= now and not any(c.dest is d for c in self.conns.values()):
                del self.templates[k]

    def _drop_conn(self, k: tuple, c: Conn) -> None:
        del self.conns[k]
        if c.active:
            c.dest.activeconns -= 1
        else:
            c.dest.inactconns -= 1

    def conn_for(self, packet: Packet, now: float) -> Conn | None:
        k = (str(packet.proto).upper(), packet.src, packet.sport, packet.dst, packet.dport)
        c = self.conns.get(k)
        if c is not None and c.expires <= now:
            self._drop_conn(k, c)
            return None
        return c

    def schedule(self, packet: Packet, now: float) -> Decision | None:
        """IPVS at LOCAL_IN/LOCAL_OUT (``ip_vs_in``): the connection this packet belongs to,
        or a new scheduling decision; None when no virtual server matches."""
        proto = str(packet.proto).upper()
        c = self.conn_for(packet, now)
        if c is not None:
            svc = self.services.get((proto, packet.dst.version, int(packet.dst), packet.dport))
            self.observe(c, packet, "original", now)
            if svc is not None:
                dl = svc.dest_list()
                idx = dl.index(c.dest) if c.dest in dl else 0
                return Decision(svc.spec, c.dest, svc.spec.scheduler or "rr", idx, len(dl),
                                "existing", c)
        svc = self.service(proto, packet.dst, packet.dport)
        if svc is None:
            return None
        self.expire(now)
        spec = svc.spec
        sched = spec.scheduler or "rr"
        dl = svc.dest_list()
        dest: Dest | None = None
        how = "scheduled"
        tkey = (proto, packet.src, packet.dst, packet.dport)
        if "persistent" in spec.flags:
            t = self.templates.get(tkey)
            if t is not None:
                td = t[0]
                if td.weight > 0 and any(x is td for x in dl):
                    dest, how = td, "persistent"
                else:
                    del self.templates[tkey]  # expire_quiescent_template
        if dest is None:
            dest = self._pick(svc, sched, packet)
        if dest is None:
            return Decision(spec, None, sched, 0, len(dl), how)
        if "persistent" in spec.flags:
            self.templates[tkey] = (dest, now + spec.timeout, svc)
        state = "SYN_RECV" if proto == "TCP" else ("NORMAL" if proto == "UDP" else "ESTABLISHED")
        conn = Conn(proto, packet.src, packet.sport, packet.dst, packet.dport, dest, state,
                    now + self._timeout(proto, state))
        dest.inactconns += 1
        self.conns[(proto, packet.src, packet.sport, packet.dst, packet.dport)] = conn
        if proto == "TCP" and packet.flags and "S" not in packet.flags:
            self._set_state(conn, "ESTABLISHED", now)  # loose pickup of a mid-stream packet
        return Decision(spec, dest, sched, dl.index(dest), len(dl), how, conn)

    def _timeout(self, proto: str, state: str) -> float:
        if proto == "TCP":
            return float(self.tcp_timeouts.get(state, 120))
        return float(self.udp_timeout if proto == "UDP" else SCTP_TIMEOUT)

    def _set_state(self, c: Conn, state: str, now: float) -> None:
        active = state == "ESTABLISHED" and c.protocol == "TCP"
        if active != c.active:
            if active:
                c.dest.inactconns -= 1
                c.dest.activeconns += 1
            else:
                c.dest.activeconns -= 1
                c.dest.inactconns += 1
            c.active = active
        c.state = state
        c.expires = now + self._timeout(c.protocol, state)

    def observe(self, c: Conn, packet: Packet, direction: str, now: float) -> None:
        """Advance a connection's state for one packet (``ip_vs_set_state``)."""
        if c.protocol != "TCP":
            c.expires = now + self._timeout(c.protocol, c.state)
            return
        f = packet.flags
        st = c.state
        if "R" in f:
            st = "CLOSE"
        elif "F" in f:
            st = "FIN_WAIT" if st in ("ESTABLISHED", "SYN_RECV") else (
                "TIME_WAIT" if st in ("FIN_WAIT", "CLOSE_WAIT") else st)
        elif "S" in f and "A" in f:
            st = "SYN_RECV"
        elif "S" in f:
            st = "SYN_RECV" if st in ("SYN_RECV", "CLOSE", "TIME_WAIT") else st
        elif "A" in f or not f:
            if st == "SYN_RECV" and (direction == "original" or not f):
                st = "ESTABLISHED"
            elif st == "FIN_WAIT" and direction == "reply":
                st = "TIME_WAIT" if "F" in f else "FIN_WAIT"
        self._set_state(c, st, now)

    # -- schedulers (net/netfilter/ipvs/ip_vs_*.c) ------------------------------------------
    def _pick(self, svc: Service, sched: str, pkt: Packet) -> Dest | None:
        dl = svc.dest_list()
        usable = [d for d in dl if d.weight > 0]
        if not usable:
            return None
        if sched in ("rr", ""):
            n = len(dl)
            for step in range(1, n + 1):
                i = (svc.rr_pos + step) % n
                if dl[i].weight > 0:
                    svc.rr_pos = i
                    return dl[i]
            return None
        if sched == "wrr":
            mw = max(d.weight for d in dl)
            g = _gcd_weight(dl)
            n = len(dl)
            for _ in range(n * (mw // g + 1) + 1):
                svc.wrr_pos = (svc.wrr_pos + 1) % n
                if svc.wrr_pos == 0:
                    svc.wrr_cw -= g
                    if svc.wrr_cw <= 0:
                        svc.wrr_cw = mw
                d = dl[svc.wrr_pos]
                if d.weight >= svc.wrr_cw and d.weight > 0:
                    return d
            return None
        if sched == "lc":
            return min(usable, key=lambda d: d.overhead)  # first minimum in list order
        if sched == "wlc":
            return self._wlc(usable, lambda d: d.overhead)
        if sched == "sed":
            return self._wlc(usable, lambda d: d.activeconns + 1)
        if sched == "nq":
            for d in usable:
                if d.activeconns == 0:
                    return d
            return self._wlc(usable, lambda d: d.activeconns + 1)
        if sched == "lblc":
            key = int(pkt.dst)
            pick = svc.lblc.get(key)
            if pick is None or pick.weight <= 0 or self._overloaded(pick, usable):
                pick = self._wlc(usable, lambda x: x.activeconns * 50 + x.inactconns)
                if pick is None:
                    return None
                svc.lblc[key] = pick
            return pick
        if sched == "lblcr":
            key = int(pkt.dst)
            group = [x for x in svc.lblcr.get(key, []) if x.weight > 0]
            pick = self._wlc(group, lambda x: x.activeconns * 50 + x.inactconns) if group else None
            if pick is None or self._overloaded(pick, usable):
                pick = self._wlc(usable, lambda x: x.activeconns * 50 + x.inactconns)
                if pick is None:
                    return None
                if pick not in group:
                    group.append(pick)
            svc.lblcr[key] = group
            return pick
        if sched in ("sh", "dh", "mh"):
            if svc.table is None:
                svc.table = self._mh_table(dl) if sched == "mh" else self._sh_table(dl)
            if sched == "dh":
                h = _h(pkt.dst)
            elif sched == "sh":
                h = _h(pkt.src)
            else:
                h = _h(pkt.src, pkt.sport if "mh-port" in svc.spec.flags else 0)
            slot = svc.table[h % len(svc.table)]
            return slot if slot is not None and slot.weight > 0 else None
        raise ValueError(f"unknown IPVS scheduler {sched!r}")

    @staticmethod
    def _wlc(dests: list[Dest], overhead) -> Dest | None:  # noqa: ANN001
        least: Dest | None = None
        loh = 0
        for d in dests:
            if d.weight <= 0:
                continue
            doh = overhead(d)
            if least is None or loh * d.weight > doh * least.weight:
                least, loh = d, doh
        return least

    @staticmethod
    def _overloaded(d: Dest, dests: list[Dest]) -> bool:  # ip_vs_lblc.c is_overloaded
        if d.activeconns > d.weight:
            return any(x.activeconns * 2 < x.weight for x in dests)
        return False

    @staticmethod
    def _sh_table(dests: list[Dest]) -> list[Dest | None]:
        """ip_vs_sh_reassign: buckets filled round-robin, each server ``weight`` times."""
        live = [d for d in dests if d.weight > 0]
        if not live:
            return [None] * SH_TAB_SIZE
        seq: list[Dest] = []
        for d in live:
            seq.extend([d] * d.weight)
        return [seq[i % len(seq)] for i in range(SH_TAB_SIZE)]

    @staticmethod
    def _mh_table(dests: list[Dest]) -> list[Dest | None]:
        """Maglev lookup table (ip_vs_mh.c ip_vs_mh_populate), weights as turns."""
        live = [d for d in dests if d.weight > 0]
        m = MH_TAB_SIZE
        table: list[Dest | None] = [None] * m
        if not live:
            return table
        perms = []
        for d in live:
            off = _h("o", d.endpoint) % m
            skip = _h("s", d.endpoint) % (m - 1) + 1
            perms.append([off, skip, 0])
        filled = 0
        while filled < m:
            for i, d in enumerate(live):
                for _turn in range(d.weight):
                    off, skip, nxt = perms[i]
                    c = (off + nxt * skip) % m
                    while table[c] is not None:
                        nxt += 1
                        c = (off + nxt * skip) % m
                    table[c] = d
                    perms[i][2] = nxt + 1
                    filled += 1
                    if filled == m:
                        return table
        return table


# --- rendering (ipvsadm -Ln) -------------------------------------------------------------

def _sched_flags(vs: VirtualServer) -> str:
    fl = [f for f in vs.flags if f.startswith(("sh-", "mh-"))]
    return f" ({','.join(fl)})" if fl else ""


def render_ipvsadm(entries: Iterable[tuple[VirtualServer, Iterable[Dest | RealServer]]]) -> str:
    """``ipvsadm -Ln`` (ipvsadm.c print_title/print_service_entry): the service line is
    ``"%s  %s %s"`` (+ `` persistent %u``), each destination ``"  -> %-28s %-7s %-6d %-10u
    %-10u"``, trailing blanks included as ipvsadm prints them."""
    out = [f"IP Virtual Server version {IPVS_VERSION} (size={CONN_TAB_SIZE})",
           "Prot LocalAddress:Port Scheduler Flags",
           "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]
    for vs, dests in entries:
        line = f"{vs.protocol}  {vs.endpoint} {vs.scheduler or 'rr'}"
        if "persistent" in vs.flags:
            line += f" persistent {vs.timeout}"
        line += _sched_flags(vs)
        out.append(line)
        for d in dests:
            active = getattr(d, "activeconns", 0)
            inact = getattr(d, "inactconns", 0)
            fwd = getattr(d, "forward", "Masq")
            out.append(f"  -> {d.endpoint:<28} {fwd:<7} {d.weight:<6} {active:<10} {inact:<10}")
    return "\n".join(out) + "\n"


def sort_key(vs: VirtualServer) -> tuple:
    return (vs.address.version, int(vs.address), vs.protocol, vs.port)


def dest_sort_key(d: Dest | RealServer) -> tuple:
    return (d.address.version, int(d.address), d.port)


# --- execution: netfilter glue + IPVS at LOCAL_IN/LOCAL_OUT -----------------------------------

class IPVSNetfilter:
    """One IPVS-mode node (the ``Engine`` protocol): the glue ``Netfilter`` (ipsets, kube-ipvs0
    addresses local) whose IPVS hook consults this node's IPVS table at LOCAL_IN/LOCAL_OUT.

    A first packet runs the glue hooks (nat PREROUTING/OUTPUT marks, filter INPUT's
    KUBE-IPVS-FILTER/KUBE-PROXY-FIREWALL); if it is then delivered locally to a virtual
    server, IPVS schedules a real server, DNATs it and sends it out through nat POSTROUTING
    (KUBE-POSTROUTING: mark or KUBE-LOOP-BACK ⇒ MASQUERADE), recording the translation in the
    conntrack entry (``net/ipv4/vs/conntrack=1``), so that later packets and replies are
    translated by conntrack (all of it in ``knet.netfilter.engine``). This wrapper only feeds
    later packets to IPVS's own connection state (ActiveConn/InActConn). A virtual server
    without a usable real server answers ICMP port unreachable.
    """

    def __init__(self, netfilter: Netfilter, ipvs: IPVS, mark: int = 0x4000) -> None:
        self.nf = netfilter
        self.ipvs = ipvs
        self.mark = mark
        netfilter.ipvs = ipvs
        self._scratch: Netfilter | None = None
        self.last_lookups = 0

    @property
    def conntrack(self) -> ct.Conntrack:
        return self.nf.conntrack

    @property
    def rng(self) -> random.Random:
        return self.nf.rng

    def is_local(self, addr: IPAddress) -> bool:
        return self.nf.is_local(addr)

    def set_local_addresses(self, addrs: Iterable[IPAddress]) -> None:
        self.nf.set_local_addresses(addrs)

    def reset(self) -> None:
        """Forget connections (conntrack and IPVS), keep the configuration."""
        self.nf.conntrack.flush()
        for k, c in list(self.ipvs.conns.items()):
            self.ipvs._drop_conn(k, c)
        self.ipvs.templates.clear()

    def forward(self, packet: Packet, iif: str, now: float, *, explain: bool | None = None
                ) -> Result:
        before = self.ipvs.lookups
        return self._observe(self.nf.forward(packet, iif, now, explain=explain), packet, now,
                             before)

    def process(self, packet: Packet, hook_path: str, now: float, *,
                explain: bool = True) -> Result:
        """``forward`` by hook path name: ``"prerouting"`` (arrived on ``packet.iif``) or
        ``"output"`` (generated locally)."""
        before = self.ipvs.lookups
        return self._observe(self.nf.process(packet, hook_path, now, explain=explain), packet,
                             now, before)

    def _observe(self, r: Result, packet: Packet, now: float, before_lookups: int) -> Result:
        d = r.entry.ipvs if r.entry is not None else None
        conn = getattr(d, "conn", None)
        if isinstance(conn, Conn):
            if conn.ct_entry is None:
                conn.ct_entry = r.entry  # the first packet: scheduled by the engine
            else:
                self.ipvs.observe(conn, packet, r.direction, now)
        self.last_lookups = self.ipvs.lookups - before_lookups
        return r

    def _would_masq(self, pkt: Packet, mark: int) -> bool:
        """Does nat POSTROUTING (KUBE-POSTROUTING) masquerade this DNATed packet?"""
        rs = self.nf.rulesets.get(pkt.src.version)
        return rs is not None and bool(self.nf._would_masq(rs, pkt, mark))

    def _scratch_nf(self) -> Netfilter:
        if self._scratch is None:
            nf = self.nf
            self._scratch = Netfilter(nf.rulesets.get(4), nf.rulesets.get(6),
                                      local_addresses=nf.is_local,
                                      masquerade_address=nf.masquerade_address,
                                      ipsets=nf.ipsets)
        return self._scratch

    def enumerate_outcomes(self, packet: Packet, hook_path: str = "prerouting", *,
                           affinity: bool = False) -> Outcomes:
        """Every first-packet outcome: the glue's verdict, then every usable real server of
        the virtual server (rule order = real-server order), masquerade per KUBE-POSTROUTING.
        Persistence does not add outcomes (a template only repeats an earlier choice)."""
        nf = self._scratch_nf()
        nf.conntrack.flush()
        r = nf.process(packet, hook_path, 0.0, explain=False)
        nf.conntrack.flush()
        if r.verdict != "ACCEPT":
            return Outcomes((Outcome(r.verdict, False, ("glue",)),))
        if not r.local:
            return Outcomes(())
        p = r.packet
        svc = self.ipvs.services.get((str(p.proto).upper(), p.dst.version, int(p.dst), p.dport))
        if svc is None:
            return Outcomes(())
        dests = [d for d in svc.dest_list() if d.weight > 0]
        if not dests:
            return Outcomes((Outcome("REJECT", False, (str(svc.spec),)),))
        items = []
        for d in dests:
            dn = p.replace(dst=d.address, dport=d.port)
            m = r.masqueraded or self._would_masq(dn, p.mark)
            items.append(Outcome(d.endpoint, m, (str(svc.spec),)))
        return Outcomes(tuple(items))


__all__ = ["CONN_TAB_SIZE", "IPVSNetfilter", "Conn", "Decision", "Dest", "IPVS", "RealServer", "SCHEDULERS",
           "Scheduler", "VirtualServer", "render_ipvsadm", "sort_key", "dest_sort_key"]
