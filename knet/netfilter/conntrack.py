"""Connection tracking: one table per node, O(1) lookups in both directions, virtual time.

Invariants:
- An entry is keyed twice: by its original tuple and by its reply tuple (as the kernel's
  nf_conntrack hash does), so a packet in either direction finds it with one dict lookup.
- The reply tuple carries the NAT decision: ``reply.src`` is the DNAT target (else the
  original destination), ``reply.dst`` is the SNAT/MASQUERADE source (else the original source).
- Entries expire at ``expires`` (caller's ``now``); expired entries are dropped on lookup.
- Timeouts: kernel defaults (nf_conntrack_proto_{tcp,udp}.c) except where kube-proxy sets the
  sysctls (``--conntrack-tcp-timeout-established`` 24h, ``--conntrack-tcp-timeout-close-wait``
  1h, cmd/kube-proxy/app/options.go). See ``TCP_TIMEOUTS``/``UDP_TIMEOUT*``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, TypeVar
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from knet.codegen import define
from knet.netfilter.packet import IPAddress, Packet, Proto

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T", bound="DataclassInstance")


class TcpState(enum.StrEnum):
    SYN_SENT = "SYN_SENT"
    SYN_RECV = "SYN_RECV"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT = "FIN_WAIT"
    CLOSE_WAIT = "CLOSE_WAIT"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"
    CLOSE = "CLOSE"


TCP_TIMEOUTS: dict[TcpState, float] = {
    TcpState.SYN_SENT: 120.0,
    TcpState.SYN_RECV: 60.0,
    TcpState.ESTABLISHED: 86400.0,   # kube-proxy conntrack.tcpEstablishedTimeout (kernel: 5 days)
    TcpState.FIN_WAIT: 120.0,
    TcpState.CLOSE_WAIT: 3600.0,     # kube-proxy conntrack.tcpCloseWaitTimeout (kernel: 60 s)
    TcpState.LAST_ACK: 30.0,
    TcpState.TIME_WAIT: 120.0,
    TcpState.CLOSE: 10.0,
}
UDP_TIMEOUT = 30.0          # nf_conntrack_udp_timeout (unreplied)
UDP_TIMEOUT_STREAM = 120.0  # nf_conntrack_udp_timeout_stream (seen reply)
SCTP_TIMEOUT = 210.0        # nf_conntrack_sctp_timeout_established
ICMP_TIMEOUT = 30.0         # nf_conntrack_icmp_timeout


@dataclass(frozen=True, slots=True)
class Tuple:
    src: IPAddress
    sport: int
    dst: IPAddress
    dport: int

    def __str__(self) -> str:
        def ep(a: IPAddress, p: int) -> str:
            return f"[{a}]:{p}" if a.version == 6 else f"{a}:{p}"
        return f"{ep(self.src, self.sport)} → {ep(self.dst, self.dport)}"


def twin(cls: type) -> type | None:
    """A plain class with the slot layout of ``cls``, a frozen slotted dataclass without
    ``__post_init__``: an instance filled by attribute stores, then given ``__class__ =
    cls``, is a ``cls`` value built at a third of the cost of its ``__init__`` (one
    ``object.__setattr__`` per field). None when the layouts differ (the caller then uses
    the constructor)."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    if (cls.__mro__ != (cls, object) or tuple(getattr(cls, "__slots__", ())) != names
            or hasattr(cls, "__post_init__")):
        return None
    t = type(f"_{cls.__name__}Twin", (), {"__slots__": names})
    try:
        probe: object = object.__new__(t)
        probe.__class__ = cls
    except TypeError:
        return None
    return t


def _maker(cls: type[_T]) -> Callable[..., _T]:
    """``cls(*all fields)`` through ``twin(cls)`` (or the constructor)."""
    names = [f.name for f in dataclasses.fields(cls)]
    t = twin(cls)
    if t is None:
        return cls
    body = ["o = _new(T)", *(f"o.{n} = {n}" for n in names), "o.__class__ = C", "return o"]
    return define("make", names, body, {"T": t, "C": cls, "_new": object.__new__})


def _key(proto: str, src: IPAddress, sport: int, dst: IPAddress, dport: int) -> tuple:
    # ``_version``/``_ip`` are the ipaddress objects' own fields (the public properties cost
    # a call each, and this runs for every packet)
    return (proto, src._version, src._ip, sport, dst._ip, dport)  # type: ignore[union-attr]  # ipaddress int


_tuple = _maker(Tuple)  # Tuple(src, sport, dst, dport)


class Direction(enum.StrEnum):
    ORIGINAL = "original"
    REPLY = "reply"


@dataclass(slots=True, eq=False)
class CtEntry:
    proto: Proto
    orig: Tuple
    reply: Tuple
    expires: float
    seen_reply: bool = False
    tcp_state: TcpState | None = None
    fin_dir: Direction | None = None
    created: float = 0.0
    packets: int = 1
    mark: int = 0
    # The IPVS decision that created this connection (IPVS mode, net/ipv4/vs/conntrack=1):
    # later packets in the original direction are translated at LOCAL_IN, where IPVS does.
    ipvs: object = None
    # The network-policy verdict this connection was accepted with (kube-network-policies
    # marks accepted connections with a conntrack label): None until a policy hook judged it.
    policy: object = None
    # The evaluator's per-flow fast path: {(hook path, direction, …): cached outcome}, valid
    # for one rule-set generation (knet.netfilter.engine), and the outcome used last in each
    # direction (checked first: no key tuple, no dict).
    flows: dict | None = field(default=None, repr=False)
    fast_o: tuple | None = field(default=None, repr=False)
    fast_r: tuple | None = field(default=None, repr=False)

    @property
    def dnat(self) -> bool:
        return self.reply.src != self.orig.dst or self.reply.sport != self.orig.dport

    @property
    def snat(self) -> bool:
        return self.reply.dst != self.orig.src or self.reply.dport != self.orig.sport

    def __repr__(self) -> str:
        return describe(self.proto, self.tcp_state, self.orig, self.reply, self.seen_reply)


_ORIGINAL, _REPLY = Direction.ORIGINAL, Direction.REPLY


def describe(proto: str, tcp_state: TcpState | None, orig: Tuple, reply: Tuple,
             seen_reply: bool) -> str:
    """``repr(CtEntry)`` from a snapshot of its fields (explanations render it later)."""
    st = f" {tcp_state}" if tcp_state else ""
    return (f"<ct {proto}{st} {orig} | reply {reply}"
            f"{' [ASSURED]' if seen_reply else ' [UNREPLIED]'}>")


@dataclass(slots=True)
class Conntrack:
    """The conntrack table of one node (both families)."""
    _by_key: dict[tuple, tuple[CtEntry, Direction]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._by_key) // 2

    def entries(self) -> Iterator[CtEntry]:
        for e, d in list(self._by_key.values()):
            if d is Direction.ORIGINAL:
                yield e

    def lookup(self, pkt: Packet, now: float) -> tuple[CtEntry, Direction] | None:
        hit = self._by_key.get(_key(pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport))
        if hit is None:
            return None
        if hit[0].expires <= now:
            self.remove(hit[0])
            return None
        return hit

    def reply_taken(self, proto: str, t: Tuple) -> bool:
        """Is ``t`` already some entry's tuple (in either direction)? (NAT port clash check.)"""
        return _key(proto, t.src, t.sport, t.dst, t.dport) in self._by_key

    def new_entry(self, original: Packet, dnat: tuple[IPAddress, int] | None,
                  snat: tuple[IPAddress, int] | None, now: float) -> CtEntry:
        """The (unconfirmed) entry for a first packet and the NAT decided for it. If the
        translated reply tuple is taken, another source port is picked (nf_nat_used_tuple)."""
        proto, src, sport, dst, dport = (original.proto, original.src, original.sport,
                                         original.dst, original.dport)
        o = _tuple(src, sport, dst, dport)
        r_src, r_sport = dnat if dnat is not None else (dst, dport)
        r_dst, r_dport = snat if snat is not None else (src, sport)
        by_key = self._by_key
        if (proto, r_src._version, r_src._ip, r_sport, r_dst._ip, r_dport) in by_key:  # type: ignore[union-attr]
            port = r_dport
            for _ in range(65536):
                port = 1024 + (port - 1024 + 1) % (65536 - 1024)
                if (proto, r_src._version, r_src._ip, r_sport, r_dst._ip, port) not in by_key:  # type: ignore[union-attr]
                    break
            r_dport = port
        reply = _tuple(r_src, r_sport, r_dst, r_dport)
        if proto == Proto.TCP:
            f = original.flags
            st = TcpState.SYN_SENT if ("S" in f or not f) else TcpState.ESTABLISHED
            timeout: float = TCP_TIMEOUTS[st]
            tcp_state: TcpState | None = st
        else:
            timeout, tcp_state = initial_timeout(proto, original.flags)
        return CtEntry(proto, o, reply, now + timeout, False, tcp_state, None, now, 1, 0, None,
                       None, None, None)

    def confirm(self, entry: CtEntry) -> None:
        o, r, proto = entry.orig, entry.reply, entry.proto
        by_key = self._by_key
        by_key[(proto, o.src._version, o.src._ip, o.sport, o.dst._ip, o.dport)] = (  # type: ignore[union-attr]
            entry, _ORIGINAL)
        by_key[(proto, r.src._version, r.src._ip, r.sport, r.dst._ip, r.dport)] = (  # type: ignore[union-attr]
            entry, _REPLY)

    def remove(self, entry: CtEntry) -> None:
        o, r = entry.orig, entry.reply
        for k in (_key(entry.proto, o.src, o.sport, o.dst, o.dport),
                  _key(entry.proto, r.src, r.sport, r.dst, r.dport)):
            hit = self._by_key.get(k)
            if hit is not None and hit[0] is entry:
                del self._by_key[k]

    def expire(self, now: float) -> int:
        """Drop every expired entry; returns how many."""
        dead = [e for e in self.entries() if e.expires <= now]
        for e in dead:
            self.remove(e)
        return len(dead)

    def next_deadline(self) -> float | None:
        return min((e.expires for e in self.entries()), default=None)

    def flush(self) -> None:
        self._by_key.clear()

    def delete(self, *, proto: str | None = None, orig_dst: IPAddress | None = None,
               reply_src: IPAddress | None = None) -> int:
        """``conntrack -D`` with filters (kube-proxy clears UDP entries of stale endpoints:
        ``-p udp --orig-dst <svcIP>`` and ``--reply-src <epIP>``)."""
        dead = [e for e in self.entries()
                if (proto is None or e.proto == proto)
                and (orig_dst is None or e.orig.dst == orig_dst)
                and (reply_src is None or e.reply.src == reply_src)]
        for e in dead:
            self.remove(e)
        return len(dead)


def initial_timeout(proto: str, flags: str) -> tuple[float, TcpState | None]:
    if proto == Proto.TCP:
        st = TcpState.SYN_SENT if ("S" in flags or not flags) else TcpState.ESTABLISHED
        return TCP_TIMEOUTS[st], st
    if proto == Proto.UDP:
        return UDP_TIMEOUT, None
    if proto == Proto.SCTP:
        return SCTP_TIMEOUT, None
    return ICMP_TIMEOUT, None


def tcp_first_packet_invalid(flags: str) -> bool:
    """nf_conntrack_proto_tcp: a new connection cannot start with RST, FIN or SYN+ACK
    (ACK-only pickup is allowed: nf_conntrack_tcp_loose=1)."""
    return "R" in flags or ("F" in flags and "S" not in flags) or ("S" in flags and "A" in flags)


def update(entry: CtEntry, direction: Direction, pkt: Packet, now: float) -> None:
    """Advance the entry's state for one packet and refresh its timeout."""
    entry.packets += 1
    if direction is Direction.REPLY:
        entry.seen_reply = True
    if entry.proto == Proto.TCP:
        st = entry.tcp_state or TcpState.SYN_SENT
        f = pkt.flags
        if st is TcpState.ESTABLISHED and (f == "A" or f == "PA"):  # the common case
            entry.expires = now + TCP_TIMEOUTS[st]
            return
        if "R" in f:
            st = TcpState.CLOSE
        elif not f:  # flag-less model: a reply establishes the connection
            if entry.seen_reply and st in (TcpState.SYN_SENT, TcpState.SYN_RECV):
                st = TcpState.ESTABLISHED
        elif "S" in f and "A" in f and direction is Direction.REPLY and st is TcpState.SYN_SENT:
            st = TcpState.SYN_RECV
        elif "F" in f:
            if st in (TcpState.ESTABLISHED, TcpState.SYN_RECV):
                st, entry.fin_dir = TcpState.FIN_WAIT, direction
            elif st in (TcpState.FIN_WAIT, TcpState.CLOSE_WAIT) and direction is not entry.fin_dir:
                st = TcpState.LAST_ACK
        elif "A" in f:
            if st is TcpState.SYN_RECV and direction is Direction.ORIGINAL:
                st = TcpState.ESTABLISHED
            elif st is TcpState.FIN_WAIT and direction is not entry.fin_dir:
                st = TcpState.CLOSE_WAIT
            elif st is TcpState.LAST_ACK and direction is entry.fin_dir:
                st = TcpState.TIME_WAIT
            elif st is TcpState.SYN_SENT and entry.seen_reply:
                st = TcpState.ESTABLISHED
        entry.tcp_state = st
        entry.expires = now + TCP_TIMEOUTS[st]
    elif entry.proto == Proto.UDP:
        entry.expires = now + (UDP_TIMEOUT_STREAM if entry.seen_reply else UDP_TIMEOUT)
    elif entry.proto == Proto.SCTP:
        entry.expires = now + SCTP_TIMEOUT
    else:
        entry.expires = now + ICMP_TIMEOUT
