"""The per-node netfilter evaluator: hooks, tables, chains, matches, targets, conntrack, NAT.

Invariants (semantics per the kube-proxy reference §3 and the kernel's netfilter):
- Hook order and table priorities are the kernel's (raw < mangle < nat-DNAT < filter <
  security < nat-SNAT). The nat table runs only for a connection's first packet; later
  packets (both directions) are translated from the conntrack entry without rule evaluation:
  the destination at PREROUTING/OUTPUT, the source at POSTROUTING, or at INPUT (nat INPUT,
  after the filter table) for packets delivered locally.
- The filter table runs for every packet and sees the post-DNAT destination.
- Rule evaluation is exactly sequential in meaning: within a rule the header (-s -d -i -o -p)
  is checked first, then matches in order, stopping at the first miss; so ``statistic``
  consumes exactly one rng draw per evaluation, in rule order. Large chains are dispatched
  through an index on (dst, proto, dport) that only skips rules which cannot match;
  ``rules_walked`` still counts what the kernel walks sequentially.
- Per-flow fast path: when a packet hits a conntrack entry, its outcome is a function of the
  entry, the direction, the packet's interfaces/mark/flags and the generation (the
  ruleset's, bumped by every change to its tables, plus this Netfilter's own, bumped when its
  local addresses change: ``Netfilter._stamp``), unless a stateful
  match (statistic, recent, ipset, addrtype over a caller-supplied predicate) was evaluated.
  So the first such packet is evaluated fully and its outcome cached on the entry; the next
  ones are one dict lookup + the header rewrite + the conntrack update. The cached outcome
  and the full evaluation are indistinguishable (same verdict, packet, steps, rules_walked).
- Chain memo (OVS-megaflow-like, per Netfilter, valid for one rule-set generation): a chain
  evaluation that met no stateful match (statistic, recent, ipset, addrtype over a caller's
  predicate) and no randomised or caller-dependent NAT (MASQUERADE, SNAT port ranges) is a
  function of the walk fields its rules may read (``_Compiled.reads``: header fields, mark,
  conntrack state). It is stored under exactly those fields' values (one dict per set of
  fields read) and replayed for any later walk that agrees on them: same verdict, mark,
  rules_walked, unknown, reject_with, NAT (each field "constant or kept") and explanation
  records. So kube-proxy's fixed chains (filter FORWARD, KUBE-POSTROUTING, a KUBE-SEP chain
  for a given source) cost one dict lookup; chains that drew from the rng run every time.
  A chain's first evaluation (per Netfilter and generation) is not stored: most KUBE-SEP
  chains are reached once, and a stored outcome costs objects the collector scans.
- Explanations cost nothing until read: the walk records raw tuples (the matched Rule, not
  its text), and ``Result.steps`` renders ``Step`` values on demand. ``explain=False`` skips
  even the tuples.
- Unknown matches never match and unknown targets continue; both are reported.
- No IO, no wall clock: time is the caller's ``now``; randomness is the injected rng.

IPVS extension point (kube-proxy IPVS mode; net/netfilter/ipvs/ip_vs_core.c): a node may carry
an ``ipvs`` object (``Netfilter(ipvs=…)`` or ``nf.ipvs = …``) with
``schedule(packet, now) -> decision | None`` (see ``IPVSScheduler``). The engine consults it
for a connection's first packet where the kernel runs IPVS:

- NF_INET_LOCAL_IN (``ip_vs_remote_request``, after filter/security INPUT, before nat INPUT):
  packets routed locally, e.g. to an address on ``kube-ipvs0``;
- NF_INET_LOCAL_OUT (``ip_vs_local_request``, after nat OUTPUT, before filter OUTPUT):
  locally generated packets.

``None`` means "not a virtual service": the packet goes on unchanged. A decision whose
``dest`` is None (no usable real server) rejects the packet with ICMP port unreachable. Else
the packet is DNATed to ``dest.address:dest.port``; the conntrack entry records the
translation (``net/ipv4/vs/conntrack=1``), so replies are un-NATed by conntrack and later
packets translated at LOCAL_IN (the entry's ``ipvs`` holds the decision). From LOCAL_IN the
packet leaves as IPVS sends it (``ip_vs_nat_send_or_cont``): through the LOCAL_OUT tables
(raw, mangle, filter, security; nat OUTPUT does not run again for the connection) and then
POSTROUTING, so KUBE-POSTROUTING's masquerade applies. The explanation step's note is
``decision.explain()``.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from operator import attrgetter, itemgetter
from typing import NamedTuple, Protocol

from knet.codegen import define
from knet.netfilter import conntrack as ct
from knet.netfilter.compiler import (
    PROTO_NUM,
    R_CT,
    R_DPORT,
    R_DST,
    R_IIF,
    R_MARK,
    R_OIF,
    R_PROTO,
    R_SPORT,
    R_SRC,
    T_JUMP,
    T_MARK,
    T_NAT,
    T_NONE,
    T_UNKNOWN,
    T_VERDICT,
    _Compiled,
    compiled,
    index_key,
)
from knet.netfilter.ipset import IPSet
from knet.netfilter.packet import IPAddress, Packet
from knet.netfilter.rules import (
    AddrTypeMatch,
    Chain,
    ConntrackMatch,
    Jump,
    MarkTarget,
    NatTarget,
    RecentAction,
    RecentMatch,
    Rule,
    RuleSet,
    SetMatch,
    StatisticMatch,
    StatisticMode,
    Table,
    UnknownMatch,
    UnknownTarget,
    Verdict,
    VerdictTarget,
)


class Hook(enum.StrEnum):
    PREROUTING = "PREROUTING"
    INPUT = "INPUT"
    FORWARD = "FORWARD"
    OUTPUT = "OUTPUT"
    POSTROUTING = "POSTROUTING"


# Tables per hook in priority order (include/uapi/linux/netfilter_ipv4.h NF_IP_PRI_*).
HOOK_TABLES: dict[str, tuple[str, ...]] = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "security", "nat"),
    "FORWARD": ("mangle", "filter", "security"),
    "OUTPUT": ("raw", "mangle", "nat", "filter", "security"),
    "POSTROUTING": ("mangle", "nat"),
}
# The hooks split where IPVS runs: LOCAL_IN between security and nat, LOCAL_OUT between nat
# and filter; IPVS-forwarded packets pass the LOCAL_OUT tables without nat.
_INPUT_BEFORE_IPVS = ("mangle", "filter", "security")
_INPUT_AFTER_IPVS = ("nat",)
_OUTPUT_BEFORE_IPVS = ("raw", "mangle", "nat")
_OUTPUT_AFTER_IPVS = ("filter", "security")
_IPVS_LOCAL_OUT = ("raw", "mangle", "filter", "security")

FINAL = ("ACCEPT", "DROP", "REJECT")
_ORIGINAL = ct.Direction.ORIGINAL
_REPLY = ct.Direction.REPLY
_DIR_S = {None: "", _ORIGINAL: "original", _REPLY: "reply"}
_ESTABLISHED = ct.TcpState.ESTABLISHED
_CLOSED = (ct.TcpState.TIME_WAIT, ct.TcpState.CLOSE)
_EST_TIMEOUT = ct.TCP_TIMEOUTS[ct.TcpState.ESTABLISHED]


# --------------------------------------------------------------------------------------------
# IPVS extension point

class IPVSDest(Protocol):
    @property
    def address(self) -> IPAddress: ...

    @property
    def port(self) -> int: ...


class IPVSDecisionLike(Protocol):
    @property
    def dest(self) -> IPVSDest | None: ...

    def explain(self) -> str: ...


class IPVSScheduler(Protocol):
    """What the engine asks an IPVS table (``knet.netfilter.ipvs.IPVS`` fits)."""

    def schedule(self, packet: Packet, now: float) -> IPVSDecisionLike | None: ...


class Engine(Protocol):
    """What every kube-proxy mode's datapath engine offers (``Netfilter`` for iptables,
    ``IPVSNetfilter`` for IPVS, ``Nftables`` for nftables): one small surface, so that what
    runs after the engine (network policy, the fabric, traces) is written once.

    - ``forward(packet, iif, now, *, explain)``: one packet through the node. ``iif`` is the
      arrival interface (``""``: generated by the node itself). ``explain=None`` means the
      engine's default. Returns a ``Result``; a connection's first accepted packet leaves a
      confirmed conntrack entry (``Result.entry``) that a later hook may still remove.
    - ``enumerate_outcomes(packet, hook_path, *, affinity)``: every first-packet outcome,
      touching no state.
    - ``conntrack``; ``is_local(addr)``; ``set_local_addresses(addrs)``.
    """

    conntrack: ct.Conntrack

    def forward(self, packet: Packet, iif: str, now: float, *,
                explain: bool | None = None) -> Result: ...

    def enumerate_outcomes(self, packet: Packet, hook_path: str = "prerouting", *,
                           affinity: bool = False) -> Outcomes: ...

    def is_local(self, addr: IPAddress) -> bool: ...

    def set_local_addresses(self, addrs: Iterable[IPAddress]) -> None: ...


@dataclass(frozen=True, slots=True)
class RealServer:
    address: IPAddress
    port: int

    @property
    def endpoint(self) -> str:
        return f"[{self.address}]:{self.port}" if self.address.version == 6 else \
            f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class IPVSDecision:
    """A minimal decision: the real server chosen (None: no usable real server) and the
    explanation text."""
    dest: RealServer | None
    note: str = ""

    def explain(self) -> str:
        return self.note


# --------------------------------------------------------------------------------------------
# Results

@dataclass(frozen=True, slots=True)
class Step:
    """One line of the explanation: a matched rule (or a policy/conntrack/routing event)."""
    hook: str
    table: str
    chain: str
    index: int        # 1-based rule number in the chain (iptables -L --line-numbers); 0: none
    rule: str         # restore-form text ("-A CHAIN …"), "" for events
    action: str       # jump goto return accept drop reject dnat snat masquerade mark continue
    #                   policy conntrack route unknown ipvs
    before: Packet | None = None
    after: Packet | None = None
    note: str = ""

    def __str__(self) -> str:
        where = f"{self.table}/{self.chain}" + (f"#{self.index}" if self.index else "")
        nat = f"  {self.before!r} ⇒ {self.after!r}" if self.before is not None else ""
        text = self.rule or self.note
        return f"[{self.hook}] {where} {self.action}: {text}{nat}"


# Placeholders in raw explanation records, resolved when the steps are rendered: the packet
# as it arrived (S0), after the conntrack destination rewrite (S1), after the source rewrite
# (S2), and the conntrack entry as it was when the packet arrived.
_S0, _S1, _S2, _CT_NOTE = object(), object(), object(), object()
_STAGES = (_S0, _S1, _S2)


def _rebuilder(*given: str) -> Callable[..., Packet]:
    """``packet.replace(<given>=…)`` without dataclasses.replace's per-call introspection:
    generated from Packet's fields (fields added later are carried over), filled through
    Packet's mutable twin (``conntrack.twin``) or, if it has none, its constructor."""
    names = [f.name for f in dataclasses.fields(Packet)]
    t = ct.twin(Packet)
    g: dict[str, object] = {"P": Packet, "T": t, "_new": object.__new__}
    if t is None:
        args = ", ".join(n if n in given else f"p.{n}" for n in names)
        body = [f"return P({args})"]
    else:
        body = ["o = _new(T)", *(f"o.{n} = {n if n in given else 'p.' + n}" for n in names),
                "o.__class__ = P", "return o"]
    return define("rebuild", ["p", *given], body, g)


_rebuild = _rebuilder("src", "sport", "dst", "dport", "mark")
_rebuild_iif = _rebuilder("src", "sport", "dst", "dport", "mark", "iif")
_with_iif = _rebuilder("iif")


def _render(trace: tuple, ctx: tuple | None) -> tuple[Step, ...]:
    stages: list[Packet] | None = None
    out = []
    for hook, table, chain, index, rule, action, before, after, note in trace:
        if type(rule) is not str:
            rule = rule.text
        if note is _CT_NOTE:
            snap = ctx[1]  # type: ignore[index]
            note = f"{snap[0]} {ct.describe(*snap[1:])}"
        elif type(note) is tuple:  # (function, args…): rendered on demand
            note = note[0](*note[1:])
        if before is _S0 or before is _S1 or before is _S2:
            if stages is None:
                stages = _stages(ctx)  # type: ignore[arg-type]
            before = stages[_STAGES.index(before)]
            after = stages[_STAGES.index(after)]
        out.append(Step(hook, table, chain, index, rule, action, before, after, note))
    return tuple(out)


def _route_note(local: bool, pkt: Packet, nxt: str) -> str:
    return f"{'local' if local else 'forward'} {pkt.endpoint_str()} → {nxt}"


def _mark_note(old: int, new: int) -> str:
    return f"mark 0x{old:x} → 0x{new:x}"


def _stages(ctx: tuple) -> list[Packet]:
    """The packet before/after the conntrack rewrites (from the entry snapshot)."""
    p0, (d, _proto, _st, o, r, _seen) = ctx[0], ctx[1]
    if len(ctx) > 2 and ctx[2] is not None:  # the arrival interface, not yet on the packet
        p0 = _with_iif(p0, ctx[2])
    if d is _ORIGINAL:
        dst = (r.src, r.sport) if (r.src != o.dst or r.sport != o.dport) else None
        src = (r.dst, r.dport) if (r.dst != o.src or r.dport != o.sport) else None
    else:
        dst = (o.src, o.sport) if (r.dst != o.src or r.dport != o.sport) else None
        src = (o.dst, o.dport) if (r.src != o.dst or r.sport != o.dport) else None
    p1 = _rebuild(p0, p0.src, p0.sport, dst[0], dst[1], p0.mark) if dst else p0
    p2 = _rebuild(p1, src[0], src[1], p1.dst, p1.dport, p1.mark) if src else p1
    return [p0, p1, p2]


class _ResultFields(NamedTuple):
    verdict: str
    """"ACCEPT" | "DROP" | "REJECT" (or the caller's values, ``Netfilter(verdicts=…)``)"""
    packet: Packet
    """after all NAT (the original object if untouched)"""
    arrived: Packet
    """the packet as it arrived (``original`` adds the arrival interface)"""
    local: bool
    """delivered to this node's own stack"""
    reject_with: str = ""
    """REJECT only, e.g. "icmp-port-unreachable", "tcp-reset\""""
    rendered: tuple[Step, ...] | None = ()
    """explanation steps given already rendered (else rendered from ``trace`` on access)"""
    rules_walked: int = 0
    """rules the kernel would have evaluated sequentially"""
    ctstate: str = "NEW"
    """NEW | ESTABLISHED | INVALID (+ "DNAT"/"SNAT" flags in ctstates)"""
    ctstates: frozenset[str] = frozenset()
    direction: str = ""
    """"original" | "reply" | "" (no conntrack entry)"""
    entry: ct.CtEntry | None = None
    unknown: tuple[str, ...] = ()
    """unknown matches/targets met (rule texts)"""
    trace: tuple = ()
    """raw explanation records (``_render``)"""
    ctx: tuple | None = None
    """what ``trace``'s placeholders refer to (packet, conntrack snapshot, iif)"""
    iif: str | None = None
    """the arrival interface when the caller gave it apart from the packet"""


class Result(_ResultFields):
    """What the node did with one packet (duck-compatible with knet.fabric.datapath.Hop).

    A named tuple rather than a frozen dataclass: the hot path builds one per packet (with
    ``tuple.__new__``) and a tuple costs a fifth. ``steps`` are rendered from the raw records
    on access; ``original`` carries the arrival interface.
    """

    __slots__ = ()

    def __new__(cls, verdict: str, packet: Packet, original: Packet, local: bool,
                reject_with: str = "", steps: tuple[Step, ...] | None = (),
                rules_walked: int = 0, ctstate: str = "NEW",
                ctstates: frozenset[str] = frozenset(), direction: str = "",
                entry: ct.CtEntry | None = None, unknown: tuple[str, ...] = (),
                trace: tuple = (), ctx: tuple | None = None, iif: str | None = None
                ) -> Result:
        return tuple.__new__(cls, (verdict, packet, original, local, reject_with, steps,
                                   rules_walked, ctstate, ctstates, direction, entry, unknown,
                                   trace, ctx, iif))

    @property
    def original(self) -> Packet:
        """the packet as it arrived (with ``iif`` set to the arrival interface)"""
        o, iif = self.arrived, self.iif
        return o if iif is None else _with_iif(o, iif)

    @property
    def steps(self) -> tuple[Step, ...]:
        s = self.rendered
        if s:
            return s
        return _render(self.trace, self.ctx) if self.trace else ()

    @property
    def explanation(self) -> tuple[Step, ...]:
        return self.steps

    @property
    def masqueraded(self) -> bool:
        if self.rendered:
            hit = any(s.action in ("masquerade", "snat") for s in self.rendered)
        else:
            hit = any(rec[5] in ("masquerade", "snat") for rec in self.trace)
        e = self.entry
        return hit or (self.direction == "original" and e is not None and e.snat)

    def with_verdict(self, verdict: str, step: Step | None = None) -> Result:
        """This result with another verdict (a later hook's decision, e.g. network policy)
        and, when given, one more explanation step."""
        steps = self.steps + (step,) if step is not None else self.rendered
        return tuple.__new__(Result, (verdict, self.packet, self.arrived,
                                      self.local and verdict == "ACCEPT", "", steps,
                                      self.rules_walked, self.ctstate, self.ctstates,
                                      self.direction, self.entry, self.unknown,
                                      self.trace if step is None else (), self.ctx, self.iif))

    def __repr__(self) -> str:
        return (f"<Result {self[0]} {self[1]!r}{' local' if self[3] else ''}"
                f"{' ' + self[9] if self[9] else ''}>")


class FlowOutcome(NamedTuple):
    """A conntrack entry's cached outcome for one kind of packet (the per-flow fast path in
    the module docstring): the key's fields, then what the full evaluation decided. Stored on
    ``CtEntry.flows``/``fast_o``/``fast_r`` as a plain tuple in this field order
    (``FlowOutcome._make(entry.fast_o)`` reads one by name); ``Netfilter._run`` reads it by
    position (the numbers below) because it is the hot path."""

    first: bool           # 0: arrived on an interface (PREROUTING) rather than OUTPUT
    seen_reply: bool      # 1
    iif: str | None       # 2
    oif: str | None       # 3
    mark: int             # 4: the packet's mark on arrival
    flags: str            # 5: TCP flags
    generation: int       # 6: Netfilter._stamp(ruleset) when stored
    ruleset: RuleSet | None  # 7: the RuleSet evaluated
    verdict: str          # 8
    local: bool           # 9
    reject_with: str      # 10
    rules_walked: int     # 11
    unknown: tuple        # 12
    ctstates: frozenset   # 13
    ctstate: str          # 14
    src: IPAddress        # 15: the packet's addresses after NAT
    sport: int            # 16
    dst: IPAddress        # 17
    dport: int            # 18
    out_mark: int         # 19: the mark it leaves with
    direction: str        # 20
    trace: tuple | None   # 21: the explanation records (None: stored without explaining)
    route_dst: IPAddress  # 22: the routing decision's destination …
    route_local: bool     # 23: … and whether it was local (re-checked by a predicate)
    translated: bool      # 24: addresses differ from the packet's


@dataclass(frozen=True, slots=True)
class Outcome:
    """One possible first-packet outcome (``enumerate_outcomes``)."""
    target: str          # "10.244.1.5:8080", "[fd00::5]:8080", "ACCEPT", "DROP", "REJECT"
    masquerade: bool
    chains: tuple[str, ...] = ()  # the chain path that led to it


@dataclass(frozen=True, slots=True)
class Outcomes:
    items: tuple[Outcome, ...]

    @property
    def outcomes(self) -> list[str]:
        """Targets in rule order, de-duplicated (``knet trace --all`` "outcomes")."""
        seen: dict[str, None] = {}
        for o in self.items:
            seen.setdefault(o.target, None)
        return list(seen)

    @property
    def masquerade(self) -> bool:
        return any(o.masquerade for o in self.items)


# Chain memo keys: walk attributes per R_* bit. Looked up with an attrgetter on the walk,
# stored with an itemgetter over the walk's state at chain entry (``_STATE``, same order).
_MEMO_FIELDS = ((R_SRC, "src"), (R_DST, "dst"), (R_PROTO, "proto"), (R_SPORT, "sport"),
                (R_DPORT, "dport"), (R_IIF, "iif"), (R_OIF, "oif"), (R_MARK, "mark"),
                (R_CT, "ctstates"))
_STATE = attrgetter(*(n for _b, n in _MEMO_FIELDS))
_MEMO_GETTERS: dict[int, tuple] = {}
_MEMO_MASKS = 8        # sets of fields read, per chain
_MEMO_KEYS = 4096      # keys per set (then that dict starts again)
_MEMO_GIVE_UP = 2      # impure evaluations of a chain never pure: stop recording it
_BEFORE, _AFTER = object(), object()  # memo trace records: the packet at chain entry / after NAT


def _memo_getters(mask: int) -> tuple:
    g = _MEMO_GETTERS.get(mask)
    if g is None:
        idx = [i for i, (bit, _n) in enumerate(_MEMO_FIELDS) if mask & bit]
        g = (None, None) if not idx else (attrgetter(*(_MEMO_FIELDS[i][1] for i in idx)), itemgetter(*idx))
        _MEMO_GETTERS[mask] = g
    return g


class _ChainCache:
    """Per chain (``Chain._index``), valid for one chain version: the rules compiled on first
    use, for large chains the index, the jump targets resolved (for one rule-set
    generation), and the chain memo (of one Netfilter, for one generation)."""
    __slots__ = ("version", "n", "family", "comp", "index", "subs", "subs_gen", "memo",
                 "memo_nf", "memo_gen", "impure", "seen")

    def __init__(self, chain: Chain, family: int) -> None:
        self.version = chain.version
        self.n = len(chain.rules)
        self.family = family
        self.comp: list[_Compiled | None] = [None] * self.n
        self.index: _Index | None = None
        # created on first use (few objects per chain for the collector)
        self.subs: dict[int, Chain | None] | None = None  # rule position → jump target
        self.subs_gen = -1
        # [[(getter, {key: outcome}, fields read)], unused] once an outcome is stored
        self.memo: list | None = None
        self.impure = 0  # evaluations that could not be stored
        self.seen = False  # evaluated once (memo stores from the second evaluation)
        self.memo_nf: Netfilter | None = None
        self.memo_gen = -1


class _Index:
    """Positions of a chain's rules by necessary condition (dst, proto, dport). Built from
    the rules' keys (``index_key``: no compilation); positions are tuples of ints, which
    the collector stops tracking."""
    __slots__ = ("full", "portonly", "dstonly", "always", "merged")

    def __init__(self, chain: Chain, family: int) -> None:
        full: dict[tuple, list[int]] = {}
        portonly: dict[tuple, list[int]] = {}
        dstonly: dict[int, list[int]] = {}
        always: list[int] = []
        for i, r in enumerate(chain.rules):
            k = index_key(r, family)
            if k is None:
                always.append(i)
            elif k[1] is None:
                dstonly.setdefault(k[0], []).append(i)
            elif k[0] is None:
                portonly.setdefault((k[1], k[2]), []).append(i)
            else:
                full.setdefault(k, []).append(i)
        self.full = {k: tuple(v) for k, v in full.items()}
        self.portonly = {k: tuple(v) for k, v in portonly.items()}
        self.dstonly = {k: tuple(v) for k, v in dstonly.items()}
        self.always = tuple(always)
        self.merged: dict[tuple, tuple[int, ...]] = {}

    def candidates(self, dst: int, proto: int, dport: int) -> tuple[int, ...]:
        key = (dst, proto, dport)
        out = self.merged.get(key)
        if out is not None:
            return out
        lists = [x for x in (self.full.get(key), self.portonly.get((proto, dport)),
                             self.dstonly.get(dst), self.always) if x]
        if not lists:
            out = ()
        elif len(lists) == 1:
            out = lists[0]
        else:
            out = tuple(sorted(i for x in lists for i in x))
        if len(self.merged) < 4096:  # bounded: one entry per (dst, proto, dport) seen
            self.merged[key] = out
        return out


# --------------------------------------------------------------------------------------------
# The walk: per-packet mutable state used by predicates and targets.

class _Walk:
    __slots__ = ("nf", "family", "pkt", "src", "dst", "proto", "sport", "dport", "iif", "oif",
                 "mark", "ctstates", "now", "trace", "walked", "hook", "table", "unknown",
                 "reject_with", "nat_done", "mode", "explain", "masq", "path", "forks",
                 "cacheable", "pure", "reads", "memo", "nat_rel")

    def __init__(self, nf: Netfilter, pkt: Packet, now: float, explain: bool) -> None:
        self.nf = nf
        self.family = pkt.src._version  # type: ignore[union-attr]  # CPython ipaddress int: hot path
        self.now = now
        self.trace: list[tuple] = []
        self.walked = 0
        self.hook = ""
        self.table = ""
        self.unknown: list[str] = []
        self.reject_with = ""
        self.nat_done = False
        self.mode = "eval"  # "eval" | "enum" | "dry"
        self.explain = explain
        self.masq = False
        self.path: tuple[str, ...] = ()
        self.forks: list[object] = []
        self.mark = pkt.mark
        self.ctstates: frozenset[str] = _NEW
        self.cacheable = True
        # the chain memo (Netfilter._run_chain): on for evaluations ("eval" walks) only
        self.memo = False
        self.pure = True
        self.reads = 0
        self.nat_rel: tuple | None = None
        self.pkt = pkt
        self.src = pkt.src._ip  # type: ignore[union-attr]  # CPython ipaddress int: hot path
        self.dst = pkt.dst._ip  # type: ignore[union-attr]  # CPython ipaddress int: hot path
        self.proto = PROTO_NUM.get(pkt.proto, 0)
        self.sport = pkt.sport
        self.dport = pkt.dport
        self.iif = pkt.iif
        self.oif = pkt.oif

    def set_packet(self, pkt: Packet) -> None:
        self.pkt = pkt
        self.src = pkt.src._ip  # type: ignore[union-attr]  # CPython ipaddress int: hot path
        self.dst = pkt.dst._ip  # type: ignore[union-attr]  # CPython ipaddress int: hot path
        self.proto = PROTO_NUM.get(pkt.proto, 0)
        self.sport = pkt.sport
        self.dport = pkt.dport
        self.iif = pkt.iif
        self.oif = pkt.oif

    # -- matches with state
    def m_mark(self, test: Callable[[int], bool]) -> bool:
        if self.mode == "enum" and self.table == "nat" and self.hook != "POSTROUTING":
            return False  # reference §9: a first packet carries no mark yet
        return test(self.mark)

    def m_addrtype(self, m: AddrTypeMatch) -> bool:
        if self.nf._local_fn is not None:
            self.cacheable = self.pure = False  # the caller's predicate may change its mind
        if m.src_type and (_addrtype(self.nf, self.pkt.src, m.src_type) == m.src_invert):
            return False
        return not (m.dst_type and (_addrtype(self.nf, self.pkt.dst, m.dst_type) == m.dst_invert))

    def m_statistic(self, m: StatisticMatch, rule: Rule) -> bool:
        if self.mode == "enum":
            return True  # both branches are explored by the enumerator
        if self.mode == "dry":
            return False
        self.cacheable = self.pure = False
        if m.mode is StatisticMode.RANDOM:
            hit = self.nf.rng.random() < m.kernel_probability
        else:
            n = self.nf._nth.get(id(rule), 0)
            hit = n == m.packet
            self.nf._nth[id(rule)] = (n + 1) % max(m.every, 1)
        return hit != m.invert

    def m_recent(self, m: RecentMatch) -> bool:
        if self.mode == "enum":  # §9: a first packet has no recent entry; --set matches
            return (m.action is RecentAction.SET) != m.invert
        if self.mode == "dry":  # affinity branch of the enumerator: assume the entry exists
            return not m.invert
        self.cacheable = self.pure = False
        addr = self.pkt.src if m.side == "source" else self.pkt.dst
        return self.nf.recent.check(m, addr, self.now)

    def m_conntrack(self, m: ConntrackMatch) -> bool:
        if self.mode == "enum" and self.table == "nat":
            return False  # reference §9
        return not (m.states and bool(m.states & self.ctstates) == m.states_invert)

    def m_set(self, m: SetMatch) -> bool:
        self.cacheable = self.pure = False  # the caller's sets may change
        s = self.nf.ipsets.get(m.name)
        if s is None:
            self.unknown.append(f"ipset {m.name} not supplied (no match)")
            return m.invert
        return s.test(self.pkt, m.flags) != m.invert

    def m_unknown(self, m: UnknownMatch) -> bool:
        self.unknown.append(f"-m {m.module} {' '.join(m.tokens)} (not evaluated: no match)")
        return False

    def step(self, chain: str, index: int, rule: str | Rule, action: str,
             before: object = None, after: object = None, note: object = "") -> None:
        if self.explain:
            self.trace.append((self.hook, self.table if chain else "", chain, index, rule,
                               action, before, after, note))

    @property
    def steps(self) -> tuple[Step, ...]:
        return _render(tuple(self.trace), None)


_NEW = frozenset({"NEW"})
_DNAT_OF: dict[frozenset[str], frozenset[str]] = {}


def _with_dnat(states: frozenset[str]) -> frozenset[str]:
    """``states | {"DNAT"}``, one shared frozenset per state set."""
    out = _DNAT_OF.get(states)
    if out is None:
        out = _DNAT_OF[states] = states | {"DNAT"}
    return out
_LIMITED_BCAST = IPv4Address("255.255.255.255")


def _addrtype(nf: Netfilter, addr: IPAddress, kind: str) -> bool:
    if kind == "LOCAL":
        return nf.is_local(addr)
    if kind == "UNICAST":
        return not (nf.is_local(addr) or addr.is_multicast or addr == _LIMITED_BCAST)
    if kind == "MULTICAST":
        return addr.is_multicast
    if kind == "BROADCAST":
        return addr == _LIMITED_BCAST
    return False


# --------------------------------------------------------------------------------------------
# -m recent lists (xt_recent) on the virtual clock

RECENT_PKT_LIST = 20  # xt_recent ip_pkt_list_tot default


class RecentLists:
    def __init__(self) -> None:
        self.lists: dict[str, dict[IPAddress, list[float]]] = {}

    def check(self, m: RecentMatch, addr: IPAddress, now: float) -> bool:
        if m.mask is not None and m.mask.version == addr.version:
            addr = ip_address(int(addr) & int(m.mask))
        lst = self.lists.setdefault(m.name, {})
        stamps = lst.get(addr)
        ret = m.invert
        if stamps is None:
            if m.action is RecentAction.SET:
                lst[addr] = [now]
                return not ret
            return ret
        if m.action is RecentAction.SET:
            stamps.append(now)
            del stamps[:-RECENT_PKT_LIST]
            return not ret
        if m.action is RecentAction.REMOVE:
            del lst[addr]
            return not ret
        if m.seconds or m.hitcount:
            start = now - m.seconds
            hits = 0
            for s in stamps:
                if m.seconds and s < start:
                    continue
                hits += 1
                if not m.hitcount or hits >= m.hitcount:
                    ret = not ret
                    break
            if m.reap and m.seconds and max(stamps) < start:
                del lst[addr]
                stamps = None
        else:
            ret = not ret
        if m.action is RecentAction.UPDATE and ret != m.invert and stamps is not None:
            stamps.append(now)
            del stamps[:-RECENT_PKT_LIST]
        return ret



_INDEX_READS = R_DST | R_PROTO | R_DPORT
_POLICY_NOTES = {"ACCEPT": "policy ACCEPT", "DROP": "policy DROP"}
_VERDICT_ACTIONS = {Verdict.ACCEPT: "accept", Verdict.DROP: "drop", Verdict.REJECT: "reject"}


# --------------------------------------------------------------------------------------------

class Netfilter:
    """One node's netfilter: its rulesets (v4/v6), conntrack, recent lists, rng.

    ``local_addresses``: the node's addresses (loopback is always local), or a predicate.
    ``masquerade_address``: ``{4: IP, 6: IP}`` (the node's primary IP per family) or a
    function ``(packet) -> IP`` giving the egress interface's primary address.
    ``ipsets``: ``{name: IPSet}`` for ``-m set`` (IPVS mode), supplied by the caller.
    ``ipvs``: the node's IPVS table (see the module docstring), or None.
    ``verdicts``: maps "ACCEPT"/"DROP"/"REJECT" to the values ``Result.verdict`` carries (e.g.
    the fabric's ``Verdict`` members, so that a Result can serve as its ``Hop``).
    ``explain``: what ``forward`` asks for (``process`` takes it per call).
    """

    def __init__(self, ruleset_v4: RuleSet | None, ruleset_v6: RuleSet | None = None, *,
                 local_addresses: Iterable[IPAddress] | Callable[[IPAddress], bool] = (),
                 masquerade_address: Mapping[int, IPAddress] | Callable[[Packet], IPAddress]
                 | None = None,
                 rng: random.Random | None = None,
                 ipsets: Mapping[str, IPSet] | None = None,
                 conntrack: ct.Conntrack | None = None,
                 index_threshold: int = 16,
                 ipvs: IPVSScheduler | None = None,
                 verdicts: Mapping[str, object] | None = None,
                 explain: bool = True) -> None:
        self.rulesets: dict[int, RuleSet] = {}
        if ruleset_v4 is not None:
            self.rulesets[4] = ruleset_v4
        if ruleset_v6 is not None:
            self.rulesets[6] = ruleset_v6
        if callable(local_addresses):
            self._local_fn: Callable[[IPAddress], bool] | None = local_addresses
            self._local: frozenset[tuple[int, int]] = frozenset()
        else:
            self._local_fn = None
            self._local = frozenset((a.version, int(a)) for a in local_addresses)
        self.masquerade_address = masquerade_address
        self.rng = rng if rng is not None else random.Random(0)
        # NAT port choices use their own stream so statistic draws stay one-per-evaluation.
        self._port_rng = random.Random(self.rng.getrandbits(64))
        self.ipsets: Mapping[str, IPSet] = ipsets if ipsets is not None else {}
        self.conntrack = conntrack if conntrack is not None else ct.Conntrack()
        self.recent = RecentLists()
        self._nth: dict[int, int] = {}
        self.index_threshold = index_threshold
        self.ipvs = ipvs
        self._verdicts: dict[str, object] = {v: v for v in FINAL}
        if verdicts is not None:
            self._verdicts.update(verdicts)
        self.explain = explain
        # the chain memo (module docstring, kept on the chains' caches); off: every chain is
        # evaluated rule by rule (the tests' reference)
        self._memo = True
        # hook runs through the memo: {(hook, tables, family): [ruleset, memo, stamp]}
        self._hook_memo: dict[tuple, list] = {}
        # this node's share of the cache stamps (``_stamp``): bumped when what is local changes
        self._gen = [0]

    # -- configuration
    def is_local(self, addr: IPAddress) -> bool:
        if self._local_fn is not None:
            return addr.is_loopback or self._local_fn(addr)
        v, ip = addr._version, addr._ip  # type: ignore[union-attr]  # CPython ipaddress int: hot path
        if (v, ip) in self._local:
            return True
        return (ip >> 24) == 127 if v == 4 else ip == 1  # is_loopback: 127.0.0.0/8, ::1

    def set_local_addresses(self, addrs: Iterable[IPAddress]) -> None:
        self._local_fn = None
        self._local = frozenset((a.version, int(a)) for a in addrs)
        self._gen[0] += 1  # cached flow outcomes depended on what was local

    def _stamp(self, rs: RuleSet | None) -> int:
        """What a cached outcome is valid for: the ruleset's generation plus this node's (both
        only grow, so any change to either changes the sum)."""
        return self._gen[0] + (rs._gen[0] if rs is not None else 0)

    # -- the Engine protocol
    def forward(self, packet: Packet, iif: str, now: float, *, explain: bool | None = None
                ) -> Result:
        """One packet through this node: ``iif`` is the interface it arrived on, ``""`` for
        a packet the node generated (OUTPUT path). ``explain``: None = ``self.explain``."""
        if explain is None:
            explain = self.explain
        if iif == "":
            return self._run(packet, False, now, explain, None)
        return self._run(packet, True, now, explain, iif)

    # -- evaluation
    def process(self, packet: Packet, hook_path: str, now: float, *,
                explain: bool = True, iif: str | None = None) -> Result:
        """Run one packet through this node: ``"prerouting"`` (arrived on an interface) or
        ``"output"`` (generated locally). Returns the verdict, translated packet, locality.
        ``iif``: the interface it arrived on, when ``packet.iif`` does not say it yet (the
        result's packets carry it)."""
        if hook_path == "prerouting":
            return self._run(packet, True, now, explain, iif)
        if hook_path == "output":
            return self._run(packet, False, now, explain, iif)
        raise ValueError(f"hook_path must be 'prerouting' or 'output', not {hook_path!r}")

    def _run(self, packet: Packet, first: bool, now: float, explain: bool, iif: str | None
             ) -> Result:
        src = packet.src
        conn = self.conntrack
        # Conntrack.lookup, inlined (one dict lookup on the hot path)
        hit = conn._by_key.get((packet.proto, src._version, src._ip, packet.sport,  # type: ignore[union-attr]
                                packet.dst._ip, packet.dport))  # type: ignore[union-attr]  # ipaddress int
        entry: ct.CtEntry | None = None
        direction: ct.Direction | None = None
        if hit is not None:
            entry, direction = hit
            if entry.expires <= now:
                conn.remove(entry)
                entry = direction = None
            elif (direction is _ORIGINAL and "S" in packet.flags and packet.proto == "tcp"
                    and "A" not in packet.flags and entry.tcp_state in _CLOSED):
                conn.remove(entry)  # a new SYN reopens a closed tuple
                entry = direction = None
            else:
                # the per-flow fast path (module docstring): the direction's last outcome,
                # else the entry's dict of outcomes
                a_iif = packet.iif if iif is None else iif
                seen = entry.seen_reply or direction is _REPLY
                fp = entry.fast_o if direction is _ORIGINAL else entry.fast_r
                # fp: a FlowOutcome as a plain tuple (first, seen_reply, iif, oif, mark, flags,
                # generation, ruleset, verdict, local, reject_with, rules_walked, unknown,
                # ctstates, ctstate, src, sport, dst, dport, out_mark, direction, trace,
                # route_dst, route_local, translated)
                if (fp is None or fp[0] is not first or fp[1] is not seen or fp[2] != a_iif
                        or fp[3] != packet.oif or fp[4] != packet.mark
                        or fp[5] != packet.flags):
                    flows = entry.flows
                    fp = None if flows is None else flows.get(
                        (first, direction, seen, a_iif, packet.oif, packet.mark, packet.flags))
                    if fp is not None:
                        if direction is _ORIGINAL:
                            entry.fast_o = fp
                        else:
                            entry.fast_r = fp
                if (fp is not None
                        and fp[7] is self.rulesets.get(src._version)  # type: ignore[union-attr]  # ipaddress int
                        and fp[6] == self._gen[0] + (fp[7]._gen[0] if fp[7] is not None else 0)
                        and (fp[21] is not None or not explain)
                        and (self._local_fn is None or self.is_local(fp[22]) == fp[23])):
                    # the cached outcome for this packet
                    if iif is not None and iif == packet.iif:
                        iif = None  # already on the packet
                    if fp[24]:  # addresses translated
                        if iif is None:
                            final = _rebuild(packet, fp[15], fp[16], fp[17], fp[18], fp[19])
                        else:  # the arrival interface, set on the packets we hand back
                            final = _rebuild_iif(packet, fp[15], fp[16], fp[17], fp[18], fp[19],
                                                 iif)
                    elif iif is not None:
                        final = _rebuild_iif(packet, packet.src, packet.sport, packet.dst,
                                             packet.dport, fp[19], iif)
                    elif fp[19] != packet.mark:
                        final = _rebuild(packet, packet.src, packet.sport, packet.dst,
                                         packet.dport, fp[19])
                    else:
                        final = packet
                    if explain:
                        ctx: tuple | None = (packet, (direction, entry.proto, entry.tcp_state,
                                                      entry.orig, entry.reply, entry.seen_reply),
                                             iif)
                        trace = fp[21]
                    else:
                        ctx, trace = None, ()
                    verdict = fp[8]
                    if verdict == "ACCEPT":
                        f = packet.flags
                        if entry.tcp_state is _ESTABLISHED and (f == "A" or f == "PA"):
                            entry.packets += 1  # ct.update's common case, inlined
                            if direction is _REPLY:
                                entry.seen_reply = True
                            entry.expires = now + _EST_TIMEOUT
                        else:
                            ct.update(entry, direction, packet, now)
                    return tuple.__new__(Result, (
                        self._verdicts[verdict], final, packet, fp[9], fp[10], (), fp[11],
                        fp[14], fp[13], fp[20], entry, fp[12], trace, ctx, iif))
        rs = self.rulesets.get(src._version)  # type: ignore[union-attr]  # CPython ipaddress int: hot path
        if iif is not None and packet.iif != iif:
            packet = _with_iif(packet, iif)
        return self._evaluate(packet, first, rs, entry, direction, now, explain)

    def _evaluate(self, packet: Packet, first: bool, rs: RuleSet | None,
                  entry: ct.CtEntry | None, direction: ct.Direction | None, now: float,
                  explain: bool) -> Result:
        w = _Walk(self, packet, now, explain)
        if self._memo:
            w.memo = True
        invalid = False
        ctx: tuple | None = None
        flow_key: tuple | None = None
        w.hook = "PREROUTING" if first else "OUTPUT"
        if entry is not None and direction is not None:
            seen = entry.seen_reply or direction is _REPLY
            flow_key = (first, direction, seen, packet.iif, packet.oif, packet.mark,
                        packet.flags)
            states = {"ESTABLISHED" if seen else "NEW"}
            if entry.dnat:
                states.add("DNAT")
            if entry.snat:
                states.add("SNAT")
            w.ctstates = frozenset(states)
            w.nat_done = True
            ctx = (packet, (direction, entry.proto, entry.tcp_state, entry.orig, entry.reply,
                            entry.seen_reply))
            w.step("", 0, "", "conntrack", note=_CT_NOTE)
        elif packet.proto == "tcp" and ct.tcp_first_packet_invalid(packet.flags):
            invalid = True
            w.ctstates = frozenset({"INVALID"})
            w.nat_done = True  # no conntrack entry, no NAT
            w.step("", 0, "", "conntrack", note="INVALID (no connection for this packet)")
        original = packet
        new_dst_nat: tuple[IPAddress, int] | None = None
        new_src_nat: tuple[IPAddress, int] | None = None
        ipvs = self.ipvs if entry is None and not invalid else None
        ipvs_decision: object = None
        # an established IPVS connection is translated where IPVS runs (LOCAL_IN)
        defer = (first and entry is not None and entry.ipvs is not None
                 and direction is _ORIGINAL)

        # DNAT-side hook (PREROUTING or OUTPUT)
        h = "PREROUTING" if first else "OUTPUT"
        if entry is not None and direction is not None and not defer:
            self._ct_translate(w, entry, direction, dst_side=True)
        if first or ipvs is None:
            verdict, dn, _sn = self._hook(w, rs, h)
        else:
            verdict, dn, _sn = self._hook(w, rs, h, _OUTPUT_BEFORE_IPVS)
            if verdict == "ACCEPT":
                verdict, ipvs_dn, ipvs_decision = self._ipvs(w, ipvs, now)
                if ipvs_dn is not None:
                    dn = ipvs_dn
                if verdict == "ACCEPT":
                    verdict, _dn, _sn = self._hook(w, rs, h, _OUTPUT_AFTER_IPVS)
        if dn is not None:
            new_dst_nat = dn
        local = False
        route_dst = w.pkt.dst
        route_local = False
        if verdict == "ACCEPT":
            local = route_local = self.is_local(route_dst)
            if first:
                nxt = "INPUT" if local else "FORWARD"
                if w.explain:
                    w.step("", 0, "", "route", note=(_route_note, local, w.pkt, nxt))
                if local:
                    verdict, _dn, sn = self._hook(w, rs, "INPUT", _INPUT_BEFORE_IPVS)
                    scheduled = False
                    if verdict == "ACCEPT":
                        if defer:
                            assert entry is not None and direction is not None
                            self._ct_translate(w, entry, direction, dst_side=True)
                            scheduled = True
                        elif ipvs is not None:
                            verdict, ipvs_dn, ipvs_decision = self._ipvs(w, ipvs, now)
                            if ipvs_dn is not None:
                                new_dst_nat = ipvs_dn
                                scheduled = True
                    if verdict == "ACCEPT" and scheduled:
                        # ip_vs_nat_send_or_cont: out through LOCAL_OUT, then POSTROUTING
                        local = False
                        w.step("", 0, "", "route", note=f"ipvs {w.pkt.endpoint_str()} → OUTPUT")
                        verdict, _dn, _sn = self._hook(w, rs, "OUTPUT", _IPVS_LOCAL_OUT)
                        if verdict == "ACCEPT":
                            verdict, _sn, new_src_nat = self._post(w, rs, entry, direction,
                                                                   new_src_nat)
                    elif verdict == "ACCEPT":
                        # nat INPUT (NF_NAT_MANIP_SRC at LOCAL_IN): a reply's un-DNAT
                        if entry is not None and direction is not None:
                            self._ct_translate(w, entry, direction, dst_side=False)
                        verdict, _dn, sn = self._hook(w, rs, "INPUT", _INPUT_AFTER_IPVS)
                        if sn is not None:
                            new_src_nat = sn
                else:
                    verdict, _dn, _sn = self._hook(w, rs, "FORWARD")
                    if verdict == "ACCEPT":
                        verdict, _sn, new_src_nat = self._post(w, rs, entry, direction,
                                                               new_src_nat)
            else:
                verdict, _sn, new_src_nat = self._post(w, rs, entry, direction, new_src_nat)
                if verdict == "ACCEPT" and local:
                    w.step("", 0, "", "route", note="loopback → INPUT")
                    verdict, _dn, sn = self._hook(w, rs, "INPUT")
                    if sn is not None:
                        new_src_nat = sn
        # conntrack: create on accepted first packets, update on later ones
        if verdict == "ACCEPT" and not invalid:
            if entry is None:
                entry = self.conntrack.new_entry(original, new_dst_nat, new_src_nat, now)
                entry.ipvs = ipvs_decision
                direction = _ORIGINAL
                if new_src_nat is not None and entry.reply.dport != new_src_nat[1]:
                    # port clash avoided: re-apply the chosen source port
                    p = w.pkt
                    w.set_packet(_rebuild(p, p.src, entry.reply.dport, p.dst, p.dport, p.mark))
                self.conntrack.confirm(entry)
            else:
                assert direction is not None
                ct.update(entry, direction, packet, now)
        fp_ = w.pkt
        final = fp_ if fp_.mark == w.mark else _rebuild(fp_, fp_.src, fp_.sport, fp_.dst,
                                                        fp_.dport, w.mark)
        state = "INVALID" if invalid else ("ESTABLISHED" if "ESTABLISHED" in w.ctstates else "NEW")
        reject_with = w.reject_with if verdict == "REJECT" else ""
        unknown = tuple(dict.fromkeys(w.unknown)) if w.unknown else ()
        dir_s = _DIR_S[direction]
        trace = tuple(w.trace)
        if flow_key is not None and w.cacheable and entry is not None:
            if entry.flows is None:
                entry.flows = {}
            addrs = None
            if (final.src, final.sport, final.dst, final.dport) != (
                    packet.src, packet.sport, packet.dst, packet.dport):
                addrs = (final.src, final.sport, final.dst, final.dport)
            # stored as a plain tuple in FlowOutcome's field order: _run reads it by position
            # (a tuple subclass forgoes CPython's exact-tuple indexing: -25% conntrack hits)
            fp = tuple(FlowOutcome(
                first=first, seen_reply=flow_key[2], iif=packet.iif, oif=packet.oif,
                mark=packet.mark, flags=packet.flags, generation=self._stamp(rs), ruleset=rs,
                verdict=verdict, local=local, reject_with=reject_with, rules_walked=w.walked,
                unknown=unknown, ctstates=w.ctstates, ctstate=state, src=final.src,
                sport=final.sport, dst=final.dst, dport=final.dport, out_mark=w.mark,
                direction=dir_s, trace=trace if explain else None, route_dst=route_dst,
                route_local=route_local, translated=addrs is not None))
            entry.flows[flow_key] = fp
            if direction is _ORIGINAL:
                entry.fast_o = fp
            else:
                entry.fast_r = fp
        return tuple.__new__(Result, (self._verdicts.get(verdict, verdict), final, original,
                                      local, reject_with, (), w.walked, state, w.ctstates,
                                      dir_s, entry, unknown, trace, ctx, None))

    def _ipvs(self, w: _Walk, ipvs: IPVSScheduler, now: float
              ) -> tuple[str, tuple[IPAddress, int] | None, object]:
        """IPVS at LOCAL_IN/LOCAL_OUT (module docstring): (verdict, DNAT, decision)."""
        w.cacheable = False
        d = ipvs.schedule(w.pkt, now)
        if d is None:
            return "ACCEPT", None, None
        w.table = ""
        if d.dest is None:
            w.reject_with = "icmp-port-unreachable" if w.family == 4 else \
                "icmp6-port-unreachable"
            w.step("", 0, "", "ipvs", note=d.explain())
            return "REJECT", None, d
        p = w.pkt
        after = _rebuild(p, p.src, p.sport, d.dest.address, d.dest.port or p.dport, p.mark)
        w.step("", 0, "", "ipvs", before=p, after=after, note=d.explain())
        w.set_packet(after)
        w.ctstates = _with_dnat(w.ctstates)
        return "ACCEPT", (after.dst, after.dport), d

    def _post(self, w: _Walk, rs: RuleSet | None, entry: ct.CtEntry | None,
              direction: ct.Direction | None, new_src_nat: tuple[IPAddress, int] | None
              ) -> tuple[str, None, tuple[IPAddress, int] | None]:
        if entry is not None and direction is not None:
            w.hook = "POSTROUTING"
            self._ct_translate(w, entry, direction, dst_side=False)
        verdict, _dn, sn = self._hook(w, rs, "POSTROUTING")
        return verdict, None, sn if sn is not None else new_src_nat

    def _ct_translate(self, w: _Walk, e: ct.CtEntry, d: ct.Direction, *, dst_side: bool) -> None:
        """Apply the entry's NAT: dst manip at PREROUTING/OUTPUT, src manip at POSTROUTING
        (or nat INPUT for local delivery)."""
        p = w.pkt
        o, r = e.orig, e.reply
        if d is _ORIGINAL:
            if dst_side and (r.src != o.dst or r.sport != o.dport):
                new = _rebuild(p, p.src, p.sport, r.src, r.sport, p.mark)
            elif not dst_side and (r.dst != o.src or r.dport != o.sport):
                new = _rebuild(p, r.dst, r.dport, p.dst, p.dport, p.mark)
            else:
                return
        else:
            if dst_side and (r.dst != o.src or r.dport != o.sport):
                new = _rebuild(p, p.src, p.sport, o.src, o.sport, p.mark)
            elif not dst_side and (r.src != o.dst or r.sport != o.dport):
                new = _rebuild(p, o.dst, o.dport, p.dst, p.dport, p.mark)
            else:
                return
        w.step("", 0, "", "conntrack", before=_S0 if dst_side else _S1,
               after=_S1 if dst_side else _S2,
               note=("un-SNAT" if dst_side else "un-DNAT") if d is _REPLY else
               ("DNAT" if dst_side else "SNAT"))
        w.set_packet(new)

    def _hook(self, w: _Walk, rs: RuleSet | None, hook: str,
              tables: tuple[str, ...] | None = None
              ) -> tuple[str, tuple[IPAddress, int] | None, tuple[IPAddress, int] | None]:
        """Run the tables of one hook (or the given part of them). Returns (verdict, dnat,
        snat). Through the chain memo as a whole (module docstring) when the run translates
        nothing: one lookup for, e.g., filter FORWARD with its policy step."""
        if not w.memo or rs is None:
            return self._hook_tables(w, rs, hook, tables)
        hm = self._hook_memo
        stamp = self._gen[0] + rs._gen[0]
        slot = hm.get((hook, tables, rs.family))
        if slot is None or slot[0] is not rs or slot[2] != stamp:
            slot = hm[(hook, tables, rs.family)] = [rs, [[], 0], stamp]
        m = slot[1]
        nat_done = w.nat_done
        for g, d, _mask in m[0]:
            hit = d.get((nat_done, () if g is None else g(w)))
            if hit is not None:
                if hit[3] is None and w.explain:
                    break  # stored without its explanation: evaluate (and store) again
                w.hook = hook
                w.nat_done, w.table = hit[9], hit[10]
                return self._memo_replay(w, hit), None, None  # type: ignore[return-value]
        if m[1] > _MEMO_GIVE_UP and not m[0]:
            return self._hook_tables(w, rs, hook, tables)
        w.reads, w.pure = 0, True
        state = _STATE(w)
        pkt0 = w.pkt
        walked0, n_trace, n_unknown = w.walked, len(w.trace), len(w.unknown)
        w.hook = hook
        out = self._hook_tables(w, rs, hook, tables)
        if w.pure and w.pkt is pkt0 and w.ctstates is state[8]:
            self._memo_store(w, m, w.reads, state, out[0], pkt0, walked0, n_trace, n_unknown,
                             (nat_done,), (w.nat_done, w.table))
        else:
            m[1] += 1
        w.reads = 0
        return out

    def _hook_tables(self, w: _Walk, rs: RuleSet | None, hook: str,
                     tables: tuple[str, ...] | None = None
                     ) -> tuple[str, tuple[IPAddress, int] | None, tuple[IPAddress, int] | None]:
        w.hook = hook
        dnat = snat = None
        if rs is None:
            return "ACCEPT", None, None
        all_tables = rs.tables
        for tname in tables or HOOK_TABLES[hook]:
            if tname == "nat" and w.nat_done:
                continue
            t = all_tables.get(tname)
            if t is None:
                continue
            c = t.chains.get(hook)
            if c is None:
                continue
            w.table = tname
            before = w.pkt
            v = self._run_chain(w, t, c, 0)
            if v is None or v == "RETURN":
                v = c._policy or "ACCEPT"
                w.step(c.name, 0, "", "policy", note=_POLICY_NOTES.get(v) or f"policy {v}")
            if tname == "nat":
                if w.pkt is not before:
                    if hook == "PREROUTING" or hook == "OUTPUT":
                        dnat = (w.pkt.dst, w.pkt.dport)
                        w.ctstates = _with_dnat(w.ctstates)
                    else:
                        snat = (w.pkt.src, w.pkt.sport)
                if hook == "POSTROUTING" or hook == "INPUT":
                    w.nat_done = True
            if v != "ACCEPT":
                return v, dnat, snat
        return "ACCEPT", dnat, snat

    def _run_chain(self, w: _Walk, t: Table, c: Chain, depth: int) -> str | None:
        """Evaluate one chain (through the chain memo, module docstring). Returns a final
        verdict, or None when the chain returns."""
        cache = c._index
        if (cache is None or cache.version != c.version  # type: ignore[attr-defined]
                or cache.n != len(c.rules) or cache.family != w.family):  # type: ignore[attr-defined]
            cache = c._index = _ChainCache(c, w.family)
        if not w.memo:
            return self._run_rules(w, t, c, cache, depth)  # type: ignore[arg-type]
        stamp = self._gen[0] + t._gen[0]
        if cache.memo_nf is not self or cache.memo_gen != stamp:  # type: ignore[attr-defined]
            cache.memo = None  # type: ignore[attr-defined]
            cache.memo_nf = self  # type: ignore[attr-defined]
            cache.memo_gen = stamp  # type: ignore[attr-defined]
            cache.impure = 0  # type: ignore[attr-defined]
            cache.seen = False  # type: ignore[attr-defined]
        m = cache.memo  # type: ignore[attr-defined]
        if m is not None:
            for g, d, mask in m[0]:
                hit = d.get(() if g is None else g(w))
                if hit is not None:
                    if hit[3] is None and w.explain:
                        break  # stored without its explanation: evaluate (and store) again
                    w.reads |= mask
                    return self._memo_replay(w, hit)
        elif cache.impure > _MEMO_GIVE_UP:  # type: ignore[attr-defined]
            return self._run_rules(w, t, c, cache, depth)  # type: ignore[arg-type]
        elif not cache.seen:  # type: ignore[attr-defined]
            # a chain's first evaluation is not stored: most KUBE-SEP chains are reached
            # once per generation, and a memo costs a few objects for the collector
            cache.seen = True  # type: ignore[attr-defined]
            return self._run_rules(w, t, c, cache, depth)  # type: ignore[arg-type]
        reads, pure = w.reads, w.pure
        w.reads, w.pure = 0, True
        state = _STATE(w)
        pkt0 = w.pkt
        walked0, n_trace, n_unknown = w.walked, len(w.trace), len(w.unknown)
        v = self._run_rules(w, t, c, cache, depth)  # type: ignore[arg-type]
        r = w.reads
        if w.pure:
            if m is None:
                m = cache.memo = [[], 0]  # type: ignore[attr-defined]
            self._memo_store(w, m, r, state, v, pkt0, walked0, n_trace, n_unknown)
        else:
            cache.impure += 1  # type: ignore[attr-defined]
        w.reads = reads | r
        w.pure = pure and w.pure
        return v

    def _memo_store(self, w: _Walk, m: list, mask: int, state: tuple, v: str | None,
                    pkt0: Packet, walked0: int, n_trace: int, n_unknown: int,
                    key0: tuple | None = None, extra: tuple = ()) -> None:
        """Store an evaluation's outcome under the values (at entry, ``state``) of the
        fields it read; ``key0`` prefixes the key (a hook's ``nat_done``), ``extra`` is
        appended to the outcome."""
        after = w.pkt
        recs: tuple | None = None
        full: tuple | None = None
        if w.explain:
            out = []
            full = tuple(w.trace[n_trace:])  # as recorded: replayed as is under the same hook
            for _h, table, chain, index, rule, action, b, a, note in full:
                if b is not None:
                    if b is pkt0:
                        b = _BEFORE
                    elif b is after:
                        b = _AFTER
                    else:
                        return
                if a is not None:
                    if a is after:
                        a = _AFTER
                    elif a is pkt0:
                        a = _BEFORE
                    else:
                        return
                    full = None  # packets: rebuilt per replay
                out.append((table, chain, index, rule, action, b, a, note))
            recs = tuple(out)
        mark0 = state[7]
        hit = (v, w.walked - walked0, None if w.mark == mark0 else w.mark, recs,
               tuple(w.unknown[n_unknown:]), w.reject_with if v == "REJECT" else "",
               w.nat_rel if after is not pkt0 else None, w.hook, full, *extra)
        g_attr, g_item = _memo_getters(mask)
        entries = m[0]
        d: dict[object, object]
        for _g, d, mk in entries:  # noqa: B007 - d (the matching entry) is used after the loop
            if mk == mask:
                break
        else:
            if len(entries) >= _MEMO_MASKS:
                return
            d = {}
            entries.append((g_attr, d, mask))
        if len(d) >= _MEMO_KEYS:
            d.clear()
        k = () if g_item is None else g_item(state)
        d[k if key0 is None else (*key0, k)] = hit

    def _memo_replay(self, w: _Walk, hit: tuple) -> str | None:
        v, walked, mark, recs, unknown, reject_with, nat, hook0, full = hit[:9]
        w.walked += walked
        if mark is not None:  # changed by a MARK target, which keyed on the mark
            w.mark = mark
        if unknown:
            w.unknown.extend(unknown)
        if v == "REJECT":
            w.reject_with = reject_with
        before = after = w.pkt
        if nat is not None:
            after = _rebuild(before, before.src if nat[0] is None else nat[0],
                             before.sport if nat[1] is None else nat[1],
                             before.dst if nat[2] is None else nat[2],
                             before.dport if nat[3] is None else nat[3], before.mark)
            w.nat_rel = nat
        if recs and w.explain:
            hook, trace = w.hook, w.trace
            if full is not None and hook == hook0:
                trace.extend(full)
            else:
                self._replay_records(w, recs, before, after)
        if nat is not None:
            w.set_packet(after)
        return v

    @staticmethod
    def _replay_records(w: _Walk, recs: tuple, before: Packet, after: Packet) -> None:
        """A memo entry's explanation records under this walk's hook and packets."""
        hook, trace = w.hook, w.trace
        for table, chain, index, rule, action, b, a, note in recs:
            if b is not None:
                b = before if b is _BEFORE else after
            if a is not None:
                a = after if a is _AFTER else before
            trace.append((hook, table, chain, index, rule, action, b, a, note))

    def _run_rules(self, w: _Walk, t: Table, c: Chain, cache: _ChainCache, depth: int
                   ) -> str | None:
        """The chain's rules in order (through its index when large)."""
        if depth > 64:
            raise RecursionError(f"chain loop at {c.name}")
        rules = c.rules
        n = len(rules)
        fam = w.family
        comp = cache.comp
        positions: Iterable[int]
        if n >= self.index_threshold:
            idx = cache.index
            if idx is None:
                idx = cache.index = _Index(c, fam)
            positions = idx.candidates(w.dst, w.proto, w.dport)
            w.reads |= _INDEX_READS
        else:
            positions = range(n)
        explain = w.explain
        draw = self.rng.random if w.mode == "eval" else None
        last = -1
        for pos in positions:
            cr = comp[pos]
            if cr is None:  # compiled on first use
                cr = comp[pos] = compiled(rules[pos], fam)
            w.walked += pos - last
            last = pos
            w.reads |= cr.reads
            rd = cr.rand
            if rd is not None and draw is not None:
                # the statistic predicate, inlined: one draw (compiler._random_pred_for)
                w.cacheable = w.pure = False
                ok = (draw() < rd[0]) != rd[1]
            else:
                ok = True
                for pred in cr.preds:
                    if not pred(w):
                        ok = False
                        break
            if ok:
                kind = cr.kind
                if cr.unknown:
                    w.unknown.append(cr.text)
                if kind == T_JUMP:
                    # the target chain, resolved once per rule-set generation
                    subs = cache.subs
                    if subs is None or cache.subs_gen != t._gen[0]:
                        subs = cache.subs = {}
                        cache.subs_gen = t._gen[0]
                    if pos in subs:
                        sub = subs[pos]
                    else:
                        sub = subs[pos] = t.chains.get(cr.jchain)
                    if explain:
                        w.step(c.name, pos + 1, cr.rule, "goto" if cr.jgoto else "jump")
                    if sub is None:
                        w.unknown.append(f"{cr.text} (chain {cr.jchain} missing)")
                        continue
                    v = self._run_chain(w, t, sub, depth + 1)
                    if cr.jgoto:
                        return v
                    if v is not None:
                        return v
                    continue
                if kind == T_VERDICT:
                    vd = cr.target.verdict  # type: ignore[union-attr]
                    if vd is Verdict.RETURN:
                        w.step(c.name, pos + 1, cr.rule, "return")
                        return None
                    if vd is Verdict.REJECT:
                        w.reject_with = cr.target.reject_with or (  # type: ignore[union-attr]
                            "icmp-port-unreachable" if fam == 4 else "icmp6-port-unreachable")
                    w.step(c.name, pos + 1, cr.rule, _VERDICT_ACTIONS[vd])
                    return vd.value
                if kind == T_NONE:
                    w.step(c.name, pos + 1, cr.rule, "continue")
                    continue
                if kind == T_MARK:
                    old = w.mark
                    w.mark = cr.target.apply(old)  # type: ignore[union-attr]
                    w.step(c.name, pos + 1, cr.rule, "mark", note=(_mark_note, old, w.mark))
                    continue
                if kind == T_NAT:
                    self._nat(w, c, pos, cr, cr.target)  # type: ignore[arg-type]
                    return "ACCEPT"
                if kind == T_UNKNOWN:
                    w.step(c.name, pos + 1, cr.rule, "unknown",
                           note=f"target {cr.target.name} not implemented: continue")  # type: ignore[union-attr]
                    continue
        w.walked += n - 1 - last
        return None

    def _nat(self, w: _Walk, c: Chain, pos: int, cr: _Compiled, tgt: NatTarget) -> None:
        before = w.pkt
        if tgt.kind == "DNAT":
            dst = tgt.addr_lo if tgt.addr_lo is not None else before.dst
            after = _rebuild(before, before.src, before.sport, dst, tgt.port_lo or before.dport,
                             before.mark)
            action = "dnat"
            # the change relative to ``before`` (None: kept), for the chain memo
            w.nat_rel = (None, None, tgt.addr_lo, tgt.port_lo or None)
        elif tgt.kind == "SNAT":
            src = tgt.addr_lo if tgt.addr_lo is not None else before.src
            after = _rebuild(before, src, self._nat_port(tgt, before.sport, w), before.dst,
                             before.dport, before.mark)
            action = "snat"
            w.nat_rel = (tgt.addr_lo, tgt.port_lo if tgt.port_lo and tgt.port_lo == tgt.port_hi
                         else None, None, None)
        else:
            w.pure = False  # the egress address is the caller's (a mapping or a function)
            masq = self._masq_addr(before)
            if masq is None:
                w.unknown.append(f"{cr.text} (no masquerade address known: source kept)")
            src = masq if masq is not None else before.src
            after = _rebuild(before, src, self._nat_port(tgt, before.sport, w), before.dst,
                             before.dport, before.mark)
            action = "masquerade"
        w.step(c.name, pos + 1, cr.rule, action, before=before, after=after)
        w.set_packet(after)

    def _nat_port(self, tgt: NatTarget, sport: int, w: _Walk) -> int:
        if tgt.port_lo:
            if tgt.port_lo == tgt.port_hi:
                return tgt.port_lo
            w.pure = False
            return self._port_rng.randint(tgt.port_lo, tgt.port_hi)
        if "--random-fully" in tgt.flags or "--random" in tgt.flags:
            w.pure = False
            return self._port_rng.randint(1024, 65535)
        return sport

    def _masq_addr(self, pkt: Packet) -> IPAddress | None:
        m = self.masquerade_address
        if m is None:
            return None
        if callable(m):
            return m(pkt)
        return m.get(pkt.src.version)

    # -- enumeration (knet trace --all), reference §9
    def enumerate_outcomes(self, packet: Packet, hook_path: str = "prerouting", *,
                           affinity: bool = False,
                           filter_chains: tuple[str, ...] = ("KUBE-SERVICES",
                                                             "KUBE-EXTERNAL-SERVICES",
                                                             "KUBE-NODEPORTS",
                                                             "KUBE-PROXY-FIREWALL"),
                           ) -> Outcomes:
        """Every possible first-packet outcome, in rule order, without touching any state
        (no rng draw, no conntrack, no recent list). Statistic branches (and, with
        ``affinity``, recent --rcheck branches) are explored both ways; each DNAT branch is
        then run through nat POSTROUTING to decide whether it is masqueraded."""
        rs = self.rulesets.get(packet.src.version)
        if rs is None:
            return Outcomes(())
        items: list[Outcome] = []
        nat = rs.tables.get("nat")
        start = "PREROUTING" if hook_path == "prerouting" else "OUTPUT"
        first_dnat: Packet | None = None
        if nat is not None:
            c = nat.chains.get(start)
            if c is None or (not c.rules and "KUBE-SERVICES" in nat.chains):
                c = nat.chains.get("KUBE-SERVICES")
            if c is not None:
                w = _Walk(self, packet, 0.0, explain=False)
                w.mode, w.table, w.hook = "enum", "nat", start
                found: list[tuple[str, Packet, int, tuple[str, ...]]] = []
                self._enum_chain(w, nat, c, found, affinity, 0)
                for kind, pkt, mark, path in found:
                    if kind == "DNAT":
                        if first_dnat is None:
                            first_dnat = pkt
                        items.append(Outcome(pkt.endpoint_str(), self._would_masq(
                            rs, pkt, mark), path))
                    else:
                        items.append(Outcome(kind, False, path))
        flt = rs.tables.get("filter")
        if flt is not None:
            pkt = first_dnat or packet
            for name in filter_chains:
                c = flt.chains.get(name)
                if c is None:
                    continue
                w = _Walk(self, pkt, 0.0, explain=False)
                w.mode, w.table, w.hook = "enum", "filter", "FORWARD"
                found = []
                self._enum_chain(w, flt, c, found, affinity, 0)
                items.extend(Outcome(k, False, path) for k, _p, _m, path in found
                             if k in FINAL)
        return Outcomes(tuple(items))

    def _enum_chain(self, w: _Walk, t: Table, c: Chain, found: list, affinity: bool,
                    depth: int) -> bool:
        """§9 walk. Returns True when the walk ended (a verdict/DNAT on a non-branching path)."""
        if depth > 64:
            return True
        path = w.path + (c.name,)
        for rule in c.rules:
            cr = compiled(rule, w.family)
            ok = True
            for pred in cr.preds:
                if not pred(w):
                    ok = False
                    break
            branch = cr.stat or (affinity and cr.recent_check)
            if not ok:
                if affinity and cr.recent_check and not cr.stat:
                    ok = self._preds_without_recent(w, cr)
                if not ok:
                    continue
            tgt = cr.target
            if tgt is None or isinstance(tgt, UnknownTarget):
                continue
            if isinstance(tgt, MarkTarget):
                w.mark = tgt.apply(w.mark)
                continue
            if isinstance(tgt, Jump):
                sub = t.chains.get(tgt.chain)
                if sub is None:
                    continue
                if branch:
                    fork = _Walk(self, w.pkt, 0.0, explain=False)
                    fork.mode, fork.table, fork.hook, fork.mark = w.mode, w.table, w.hook, w.mark
                    fork.path = path
                    self._enum_chain(fork, t, sub, found, affinity, depth + 1)
                    continue
                saved = w.path
                w.path = path
                ended = self._enum_chain(w, t, sub, found, affinity, depth + 1)
                w.path = saved
                if tgt.goto or ended:
                    return ended
                continue
            if isinstance(tgt, VerdictTarget):
                if tgt.verdict is Verdict.RETURN:
                    return False
                found.append((str(tgt.verdict), w.pkt, w.mark, path))
                return True
            if isinstance(tgt, NatTarget):
                if tgt.kind == "DNAT":
                    dst = tgt.addr_lo if tgt.addr_lo is not None else w.pkt.dst
                    found.append(("DNAT", w.pkt.replace(dst=dst, dport=tgt.port_lo or
                                                        w.pkt.dport), w.mark, path))
                return True
        return False

    def _preds_without_recent(self, w: _Walk, cr: _Compiled) -> bool:
        saved = w.mode
        w.mode = "dry"  # recent → matches (the affinity branch)
        try:
            return all(pred(w) for pred in cr.preds)
        finally:
            w.mode = saved

    def _would_masq(self, rs: RuleSet, pkt: Packet, mark: int) -> bool:
        nat = rs.tables.get("nat")
        if nat is None:
            return False
        post = nat.chains.get("POSTROUTING")
        if post is None or not post.rules:
            # no built-in jumps in the ruleset (restore text only): start at kube-proxy's chain
            post = nat.chains.get("KUBE-POSTROUTING")
        if post is None:
            return False
        w = _Walk(self, pkt, 0.0, explain=True)
        w.mode, w.table, w.hook, w.mark = "dry", "nat", "POSTROUTING", mark
        self._run_chain(w, nat, post, 0)
        return any(rec[5] in ("masquerade", "snat") for rec in w.trace)


__all__ = ["Hook", "IPVSDecision", "IPVSScheduler", "Netfilter", "Outcome", "Outcomes",
           "RealServer", "RecentLists", "Result", "Step"]
