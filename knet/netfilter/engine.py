"""The per-node netfilter evaluator: hooks, tables, chains, matches, targets, conntrack, NAT.

Invariants (semantics per the kube-proxy reference §3 and the kernel's netfilter):
- Hook order and table priorities are the kernel's (raw < mangle < nat-DNAT < filter <
  security < nat-SNAT). The nat table runs only for a connection's first packet; later
  packets (both directions) are translated from the conntrack entry without rule evaluation.
  The filter table runs for every packet and sees the post-DNAT destination.
- Rule evaluation is exactly sequential in meaning: within a rule the header (-s -d -i -o -p)
  is checked first, then matches in order, stopping at the first miss; so ``statistic``
  consumes exactly one rng draw per evaluation, in rule order. Large chains are dispatched
  through an index on (dst, proto, dport) that only skips rules which cannot match;
  ``rules_walked`` still counts what the kernel walks sequentially.
- Unknown matches never match and unknown targets continue; both are reported.
- No IO, no wall clock: time is the caller's ``now``; randomness is the injected rng.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address

from knet.netfilter import conntrack as ct
from knet.netfilter.ipset import IPSet
from knet.netfilter.packet import IPAddress, Packet
from knet.netfilter.rules import (AddrTypeMatch, Chain, CommentMatch, ConntrackMatch, Jump,
                                  MarkMatch, MarkTarget, MultiportMatch, NatTarget,
                                  NfacctMatch, PhysdevMatch, PortMatch, RecentAction,
                                  RecentMatch, Rule, RuleSet, SetMatch, StatisticMatch,
                                  StatisticMode, Table, UnknownMatch, UnknownTarget, Verdict,
                                  VerdictTarget)


class Hook(enum.StrEnum):
    PREROUTING = "PREROUTING"
    INPUT = "INPUT"
    FORWARD = "FORWARD"
    OUTPUT = "OUTPUT"
    POSTROUTING = "POSTROUTING"


# Tables per hook in priority order (include/uapi/linux/netfilter_ipv4.h NF_IP_PRI_*).
HOOK_TABLES: dict[Hook, tuple[str, ...]] = {
    Hook.PREROUTING: ("raw", "mangle", "nat"),
    Hook.INPUT: ("mangle", "filter", "security", "nat"),
    Hook.FORWARD: ("mangle", "filter", "security"),
    Hook.OUTPUT: ("raw", "mangle", "nat", "filter", "security"),
    Hook.POSTROUTING: ("mangle", "nat"),
}

FINAL = ("ACCEPT", "DROP", "REJECT")
PROTO_NUM = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the explanation: a matched rule (or a policy/conntrack/routing event)."""
    hook: str
    table: str
    chain: str
    index: int        # 1-based rule number in the chain (iptables -L --line-numbers); 0: none
    rule: str         # restore-form text ("-A CHAIN …"), "" for events
    action: str       # jump goto return accept drop reject dnat snat masquerade mark continue
    #                   policy conntrack route unknown
    before: Packet | None = None
    after: Packet | None = None
    note: str = ""

    def __str__(self) -> str:
        where = f"{self.table}/{self.chain}" + (f"#{self.index}" if self.index else "")
        nat = f"  {self.before!r} ⇒ {self.after!r}" if self.before is not None else ""
        text = self.rule or self.note
        return f"[{self.hook}] {where} {self.action}: {text}{nat}"


@dataclass(frozen=True, slots=True)
class Result:
    """What the node did with one packet (duck-compatible with knet.fabric.datapath.Hop)."""
    verdict: str            # "ACCEPT" | "DROP" | "REJECT"
    packet: Packet          # after all NAT (original if untouched)
    original: Packet
    local: bool             # delivered to this node's own stack
    reject_with: str = ""   # REJECT only, e.g. "icmp-port-unreachable", "tcp-reset"
    steps: tuple[Step, ...] = ()
    rules_walked: int = 0   # rules the kernel would have evaluated sequentially
    ctstate: str = "NEW"    # NEW | ESTABLISHED | INVALID (+ "DNAT"/"SNAT" flags in ctstates)
    ctstates: frozenset[str] = frozenset()
    direction: str = ""     # "original" | "reply" | "" (no conntrack entry)
    entry: ct.CtEntry | None = None
    unknown: tuple[str, ...] = ()  # unknown matches/targets met (rule texts)

    @property
    def explanation(self) -> tuple[Step, ...]:
        return self.steps

    @property
    def masqueraded(self) -> bool:
        return any(s.action in ("masquerade", "snat") for s in self.steps) or (
            self.direction == "original" and self.entry is not None and self.entry.snat)


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


# --------------------------------------------------------------------------------------------
# Compiled rules: a tuple of predicates over a walk, the target, and an index key.

class _Compiled:
    __slots__ = ("preds", "target", "key", "parsed", "text", "unknown", "stat", "recent_check")

    def __init__(self, rule: Rule, family: int) -> None:
        p = rule.parsed(family)
        self.parsed = p
        self.text = rule.text
        self.target = p.target
        self.unknown = p.unknown
        preds: list[Callable[[_Walk], bool]] = []
        self.stat = any(isinstance(m, StatisticMatch) for m in p.matches)
        self.recent_check = any(isinstance(m, RecentMatch) and m.action in
                                (RecentAction.RCHECK, RecentAction.UPDATE) for m in p.matches)
        key_dst: int | None = None
        key_proto: int | None = None
        key_dport: int | None = None
        for am, attr in ((p.src, "src"), (p.dst, "dst")):
            if am is None:
                continue
            net_i = int(am.net.network_address)
            mask_i = int(am.net.netmask)
            inv = am.invert
            if attr == "src":
                preds.append(lambda w, n=net_i, m=mask_i, v=inv: ((w.src & m) == n) != v)
            else:
                preds.append(lambda w, n=net_i, m=mask_i, v=inv: ((w.dst & m) == n) != v)
                if am.host and not inv:
                    key_dst = net_i
        if p.iif is not None:
            preds.append(lambda w, t=p.iif.test: t(w.iif))
        if p.oif is not None:
            preds.append(lambda w, t=p.oif.test: t(w.oif))
        if p.proto:
            preds.append(lambda w, n=p.proto, v=p.proto_invert: (w.proto == n) != v)
            if not p.proto_invert:
                key_proto = p.proto
        for m in p.matches:
            pred = _match_pred(m, rule)
            if pred is not None:
                preds.append(pred)
            if (isinstance(m, PortMatch) and m.dport is not None and not m.dport_invert
                    and m.dport[0] == m.dport[1]):
                key_dport = m.dport[0]
        self.preds = tuple(preds)
        if key_proto is not None and key_dport is not None:
            self.key: tuple | None = (key_dst, key_proto, key_dport)
        elif key_dst is not None:
            self.key = (key_dst, None, None)
        else:
            self.key = None


def _match_pred(m: object, rule: Rule) -> Callable[[_Walk], bool] | None:
    if isinstance(m, CommentMatch) or isinstance(m, NfacctMatch):
        return None
    if isinstance(m, PortMatch):
        num = PROTO_NUM[m.module]
        sp, si, dp, di = m.sport, m.sport_invert, m.dport, m.dport_invert

        def port_pred(w: _Walk) -> bool:
            if w.proto != num:
                return False
            if sp is not None and (sp[0] <= w.sport <= sp[1]) == si:
                return False
            if dp is not None and (dp[0] <= w.dport <= dp[1]) == di:
                return False
            return True
        return port_pred
    if isinstance(m, MultiportMatch):
        return lambda w, t=m.test: w.proto in (6, 17, 132) and t(w.sport, w.dport)
    if isinstance(m, MarkMatch):
        return lambda w, t=m.test: w.m_mark(t)
    if isinstance(m, AddrTypeMatch):
        return lambda w, mm=m: w.m_addrtype(mm)
    if isinstance(m, StatisticMatch):
        return lambda w, mm=m, r=rule: w.m_statistic(mm, r)
    if isinstance(m, RecentMatch):
        return lambda w, mm=m: w.m_recent(mm)
    if isinstance(m, ConntrackMatch):
        return lambda w, mm=m: w.m_conntrack(mm)
    if isinstance(m, SetMatch):
        return lambda w, mm=m: w.m_set(mm)
    if isinstance(m, PhysdevMatch):
        return lambda w, t=m.test: t()
    if isinstance(m, UnknownMatch):
        return lambda w, mm=m: w.m_unknown(mm)
    return None


def compiled(rule: Rule, family: int) -> _Compiled:
    c = rule._compiled
    if c is None or c.parsed.family != family:  # type: ignore[attr-defined]
        c = rule._compiled = _Compiled(rule, family)
    return c  # type: ignore[return-value]


class _Index:
    """Positions of a chain's rules by necessary condition (dst, proto, dport)."""
    __slots__ = ("version", "n", "full", "portonly", "dstonly", "always", "comp")

    def __init__(self, chain: Chain, family: int) -> None:
        self.version = chain.version
        self.n = len(chain.rules)
        self.full: dict[tuple, list[int]] = {}
        self.portonly: dict[tuple, list[int]] = {}
        self.dstonly: dict[int, list[int]] = {}
        self.always: list[int] = []
        self.comp = [compiled(r, family) for r in chain.rules]
        for i, c in enumerate(self.comp):
            k = c.key
            if k is None:
                self.always.append(i)
            elif k[1] is None:
                self.dstonly.setdefault(k[0], []).append(i)
            elif k[0] is None:
                self.portonly.setdefault((k[1], k[2]), []).append(i)
            else:
                self.full.setdefault(k, []).append(i)

    def candidates(self, dst: int, proto: int, dport: int) -> list[int]:
        lists = [x for x in (self.full.get((dst, proto, dport)), self.portonly.get((proto, dport)),
                             self.dstonly.get(dst), self.always) if x]
        if not lists:
            return []
        if len(lists) == 1:
            return lists[0]
        out: list[int] = []
        for x in lists:
            out.extend(x)
        out.sort()
        return out


# --------------------------------------------------------------------------------------------
# The walk: per-packet mutable state used by predicates and targets.

class _Walk:
    __slots__ = ("nf", "family", "pkt", "src", "dst", "proto", "sport", "dport", "iif", "oif",
                 "mark", "ctstates", "now", "steps", "walked", "hook", "table", "unknown",
                 "reject_with", "nat_done", "mode", "explain", "masq", "path", "forks")

    def __init__(self, nf: Netfilter, pkt: Packet, now: float, explain: bool) -> None:
        self.nf = nf
        self.family = pkt.src.version
        self.now = now
        self.steps: list[Step] = []
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
        self.ctstates: frozenset[str] = frozenset({"NEW"})
        self.set_packet(pkt)

    def set_packet(self, pkt: Packet) -> None:
        self.pkt = pkt
        self.src = int(pkt.src)
        self.dst = int(pkt.dst)
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
        if m.src_type and (_addrtype(self.nf, self.pkt.src, m.src_type) == m.src_invert):
            return False
        if m.dst_type and (_addrtype(self.nf, self.pkt.dst, m.dst_type) == m.dst_invert):
            return False
        return True

    def m_statistic(self, m: StatisticMatch, rule: Rule) -> bool:
        if self.mode == "enum":
            return True  # both branches are explored by the enumerator
        if self.mode == "dry":
            return False
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
        addr = self.pkt.src if m.side == "source" else self.pkt.dst
        return self.nf.recent.check(m, addr, self.now)

    def m_conntrack(self, m: ConntrackMatch) -> bool:
        if self.mode == "enum" and self.table == "nat":
            return False  # reference §9
        if m.states:
            if bool(m.states & self.ctstates) == m.states_invert:
                return False
        return True

    def m_set(self, m: SetMatch) -> bool:
        s = self.nf.ipsets.get(m.name)
        if s is None:
            self.unknown.append(f"ipset {m.name} not supplied (no match)")
            return m.invert
        return s.test(self.pkt, m.flags) != m.invert

    def m_unknown(self, m: UnknownMatch) -> bool:
        self.unknown.append(f"-m {m.module} {' '.join(m.tokens)} (not evaluated: no match)")
        return False

    def step(self, chain: str, index: int, rule: str, action: str, before: Packet | None = None,
             after: Packet | None = None, note: str = "") -> None:
        if self.explain:
            table = self.table if chain else ""
            self.steps.append(Step(self.hook, table, chain, index, rule, action, before,
                                   after, note))


def _addrtype(nf: Netfilter, addr: IPAddress, kind: str) -> bool:
    if kind == "LOCAL":
        return nf.is_local(addr)
    if kind == "UNICAST":
        return not (nf.is_local(addr) or addr.is_multicast or
                    addr == IPv4Address("255.255.255.255"))
    if kind == "MULTICAST":
        return addr.is_multicast
    if kind == "BROADCAST":
        return addr == IPv4Address("255.255.255.255")
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


# --------------------------------------------------------------------------------------------

class Netfilter:
    """One node's netfilter: its rulesets (v4/v6), conntrack, recent lists, rng.

    ``local_addresses``: the node's addresses (loopback is always local), or a predicate.
    ``masquerade_address``: ``{4: IP, 6: IP}`` (the node's primary IP per family) or a
    function ``(packet) -> IP`` giving the egress interface's primary address.
    ``ipsets``: ``{name: IPSet}`` for ``-m set`` (IPVS mode), supplied by the caller.
    """

    def __init__(self, ruleset_v4: RuleSet | None, ruleset_v6: RuleSet | None = None, *,
                 local_addresses: Iterable[IPAddress] | Callable[[IPAddress], bool] = (),
                 masquerade_address: Mapping[int, IPAddress] | Callable[[Packet], IPAddress]
                 | None = None,
                 rng: random.Random | None = None,
                 ipsets: Mapping[str, IPSet] | None = None,
                 conntrack: ct.Conntrack | None = None,
                 index_threshold: int = 16) -> None:
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

    # -- configuration
    def is_local(self, addr: IPAddress) -> bool:
        if addr.is_loopback:
            return True
        if self._local_fn is not None:
            return self._local_fn(addr)
        return (addr.version, int(addr)) in self._local

    def set_local_addresses(self, addrs: Iterable[IPAddress]) -> None:
        self._local_fn = None
        self._local = frozenset((a.version, int(a)) for a in addrs)

    # -- the fabric's Datapath protocol
    def forward(self, packet: Packet, entered_from: str, now: float) -> Result:
        if entered_from == "":
            return self.process(packet, "output", now)
        if packet.iif != entered_from:
            packet = packet.replace(iif=entered_from)
        return self.process(packet, "prerouting", now)

    # -- evaluation
    def process(self, packet: Packet, hook_path: str, now: float, *,
                explain: bool = True) -> Result:
        """Run one packet through this node: ``"prerouting"`` (arrived on an interface) or
        ``"output"`` (generated locally). Returns the verdict, translated packet, locality."""
        if hook_path not in ("prerouting", "output"):
            raise ValueError(f"hook_path must be 'prerouting' or 'output', not {hook_path!r}")
        w = _Walk(self, packet, now, explain)
        rs = self.rulesets.get(w.family)
        hit = self.conntrack.lookup(packet, now)
        entry: ct.CtEntry | None = None
        direction: ct.Direction | None = None
        invalid = False
        if hit is not None:
            entry, direction = hit
            if (direction is ct.Direction.ORIGINAL and packet.proto == "tcp" and "S" in packet.flags
                    and "A" not in packet.flags and entry.tcp_state in
                    (ct.TcpState.TIME_WAIT, ct.TcpState.CLOSE)):
                self.conntrack.remove(entry)  # a new SYN reopens a closed tuple
                entry = direction = None
        w.hook = "PREROUTING" if hook_path == "prerouting" else "OUTPUT"
        if entry is not None and direction is not None:
            seen = entry.seen_reply or direction is ct.Direction.REPLY
            states = {"ESTABLISHED" if seen else "NEW"}
            if entry.dnat:
                states.add("DNAT")
            if entry.snat:
                states.add("SNAT")
            w.ctstates = frozenset(states)
            w.nat_done = True
            w.step("", 0, "", "conntrack", note=f"{direction} {entry!r}")
        elif packet.proto == "tcp" and ct.tcp_first_packet_invalid(packet.flags):
            invalid = True
            w.ctstates = frozenset({"INVALID"})
            w.nat_done = True  # no conntrack entry, no NAT
            w.step("", 0, "", "conntrack", note="INVALID (no connection for this packet)")
        original = packet
        first = hook_path == "prerouting"
        hooks = (Hook.PREROUTING,) if first else (Hook.OUTPUT,)
        verdict = "ACCEPT"
        new_dst_nat: tuple[IPAddress, int] | None = None
        new_src_nat: tuple[IPAddress, int] | None = None

        # DNAT-side hook (PREROUTING or OUTPUT)
        h = hooks[0]
        w.hook = str(h)
        if entry is not None and direction is not None:
            self._ct_translate(w, entry, direction, dst_side=True)
        verdict, dn, _sn = self._hook(w, rs, h)
        if dn is not None:
            new_dst_nat = dn
        local = False
        if verdict == "ACCEPT":
            local = self.is_local(w.pkt.dst)
            if first:
                nxt = Hook.INPUT if local else Hook.FORWARD
                w.step("", 0, "", "route", note=f"{'local' if local else 'forward'} "
                       f"{w.pkt.endpoint_str()} → {nxt}")
                verdict, _dn, sn = self._hook(w, rs, nxt)
                if sn is not None:
                    new_src_nat = sn
                if verdict == "ACCEPT" and not local:
                    verdict, sn, new_src_nat = self._post(w, rs, entry, direction, new_src_nat)
            else:
                verdict, sn, new_src_nat = self._post(w, rs, entry, direction, new_src_nat)
                if verdict == "ACCEPT" and local:
                    w.step("", 0, "", "route", note="loopback → INPUT")
                    verdict, _dn, sn = self._hook(w, rs, Hook.INPUT)
                    if sn is not None:
                        new_src_nat = sn
        # conntrack: create on accepted first packets, update on later ones
        if verdict == "ACCEPT" and not invalid:
            if entry is None:
                entry = self._create_entry(original, new_dst_nat, new_src_nat, w, now)
                direction = ct.Direction.ORIGINAL
                if new_src_nat is not None and entry.reply.dport != new_src_nat[1]:
                    # port clash avoided: re-apply the chosen source port
                    w.set_packet(w.pkt.replace(sport=entry.reply.dport))
                self.conntrack.confirm(entry)
            else:
                assert direction is not None
                ct.update(entry, direction, packet, now)
        final = w.pkt if w.pkt.mark == w.mark else w.pkt.replace(mark=w.mark)
        state = "INVALID" if invalid else ("ESTABLISHED" if "ESTABLISHED" in w.ctstates else "NEW")
        return Result(verdict=verdict, packet=final, original=original, local=local,
                      reject_with=w.reject_with if verdict == "REJECT" else "",
                      steps=tuple(w.steps), rules_walked=w.walked, ctstate=state,
                      ctstates=w.ctstates, direction=str(direction) if direction else "",
                      entry=entry, unknown=tuple(dict.fromkeys(w.unknown)))

    def _post(self, w: _Walk, rs: RuleSet | None, entry: ct.CtEntry | None,
              direction: ct.Direction | None, new_src_nat: tuple[IPAddress, int] | None
              ) -> tuple[str, object, tuple[IPAddress, int] | None]:
        if entry is not None and direction is not None:
            w.hook = str(Hook.POSTROUTING)
            self._ct_translate(w, entry, direction, dst_side=False)
        verdict, _dn, sn = self._hook(w, rs, Hook.POSTROUTING)
        return verdict, None, sn if sn is not None else new_src_nat

    def _ct_translate(self, w: _Walk, e: ct.CtEntry, d: ct.Direction, *, dst_side: bool) -> None:
        """Apply the entry's NAT: dst manip at PREROUTING/OUTPUT, src manip at POSTROUTING."""
        p = w.pkt
        if d is ct.Direction.ORIGINAL:
            if dst_side and e.dnat:
                new = p.replace(dst=e.reply.src, dport=e.reply.sport)
            elif not dst_side and e.snat:
                new = p.replace(src=e.reply.dst, sport=e.reply.dport)
            else:
                return
        else:
            if dst_side and e.snat:
                new = p.replace(dst=e.orig.src, dport=e.orig.sport)
            elif not dst_side and e.dnat:
                new = p.replace(src=e.orig.dst, sport=e.orig.dport)
            else:
                return
        w.step("", 0, "", "conntrack", before=p, after=new,
               note=("un-SNAT" if dst_side else "un-DNAT") if d is ct.Direction.REPLY else
               ("DNAT" if dst_side else "SNAT"))
        w.set_packet(new)

    def _create_entry(self, original: Packet, dnat: tuple[IPAddress, int] | None,
                      snat: tuple[IPAddress, int] | None, w: _Walk, now: float) -> ct.CtEntry:
        o = ct.Tuple(original.src, original.sport, original.dst, original.dport)
        r_src, r_sport = dnat if dnat is not None else (original.dst, original.dport)
        r_dst, r_dport = snat if snat is not None else (original.src, original.sport)
        reply = ct.Tuple(r_src, r_sport, r_dst, r_dport)
        if self.conntrack.reply_taken(original.proto, reply):
            # nf_nat_used_tuple: pick another source port for the translated tuple
            port = r_dport
            for _ in range(65536):
                port = 1024 + (port - 1024 + 1) % (65536 - 1024)
                reply = ct.Tuple(r_src, r_sport, r_dst, port)
                if not self.conntrack.reply_taken(original.proto, reply):
                    break
        timeout, tcp_state = ct.initial_timeout(original.proto, original.flags)
        return ct.CtEntry(original.proto, o, reply, now + timeout, tcp_state=tcp_state,
                          created=now)

    def _hook(self, w: _Walk, rs: RuleSet | None, hook: Hook
              ) -> tuple[str, tuple[IPAddress, int] | None, tuple[IPAddress, int] | None]:
        """Run every table of one hook. Returns (verdict, dnat, snat)."""
        w.hook = str(hook)
        dnat = snat = None
        if rs is None:
            return "ACCEPT", None, None
        for tname in HOOK_TABLES[hook]:
            if tname == "nat" and w.nat_done:
                continue
            t = rs.tables.get(tname)
            if t is None:
                continue
            c = t.chains.get(hook)
            if c is None:
                continue
            w.table = tname
            before = w.pkt
            v = self._run_chain(w, t, c, 0)
            if v is None or v == "RETURN":
                v = c.policy or "ACCEPT"
                w.step(c.name, 0, "", "policy", note=f"policy {v}")
            if tname == "nat":
                if w.pkt is not before:
                    if hook in (Hook.PREROUTING, Hook.OUTPUT):
                        dnat = (w.pkt.dst, w.pkt.dport)
                        w.ctstates = w.ctstates | {"DNAT"}
                    else:
                        snat = (w.pkt.src, w.pkt.sport)
                if hook in (Hook.POSTROUTING, Hook.INPUT):
                    w.nat_done = True
            if v != "ACCEPT":
                return v, dnat, snat
        return "ACCEPT", dnat, snat

    def _run_chain(self, w: _Walk, t: Table, c: Chain, depth: int) -> str | None:
        """Evaluate one chain. Returns a final verdict, or None when the chain returns."""
        if depth > 64:
            raise RecursionError(f"chain loop at {c.name}")
        rules = c.rules
        n = len(rules)
        fam = w.family
        idx = c._index
        if n >= self.index_threshold:
            if not isinstance(idx, _Index) or idx.version != c.version or idx.n != n:
                idx = c._index = _Index(c, fam)
            positions: Iterable[int] = idx.candidates(w.dst, w.proto, w.dport)
            comp = idx.comp
        else:
            positions = range(n)
            comp = None
        last = -1
        for pos in positions:
            cr = comp[pos] if comp is not None else compiled(rules[pos], fam)
            w.walked += pos - last
            last = pos
            ok = True
            for pred in cr.preds:
                if not pred(w):
                    ok = False
                    break
            if not ok:
                continue
            tgt = cr.target
            if cr.unknown:
                w.unknown.append(cr.text)
            if tgt is None:
                w.step(c.name, pos + 1, cr.text, "continue")
                continue
            if isinstance(tgt, Jump):
                sub = t.chains.get(tgt.chain)
                w.step(c.name, pos + 1, cr.text, "goto" if tgt.goto else "jump")
                if sub is None:
                    w.unknown.append(f"{cr.text} (chain {tgt.chain} missing)")
                    continue
                v = self._run_chain(w, t, sub, depth + 1)
                if tgt.goto:
                    return v
                if v is not None:
                    return v
                continue
            if isinstance(tgt, VerdictTarget):
                vd = tgt.verdict
                if vd is Verdict.RETURN:
                    w.step(c.name, pos + 1, cr.text, "return")
                    return None
                if vd is Verdict.REJECT:
                    w.reject_with = tgt.reject_with or ("icmp-port-unreachable" if fam == 4
                                                        else "icmp6-port-unreachable")
                w.step(c.name, pos + 1, cr.text, str(vd).lower())
                return str(vd)
            if isinstance(tgt, MarkTarget):
                old = w.mark
                w.mark = tgt.apply(old)
                w.step(c.name, pos + 1, cr.text, "mark", note=f"mark 0x{old:x} → 0x{w.mark:x}")
                continue
            if isinstance(tgt, NatTarget):
                self._nat(w, c, pos, cr, tgt)
                return "ACCEPT"
            if isinstance(tgt, UnknownTarget):
                w.step(c.name, pos + 1, cr.text, "unknown",
                       note=f"target {tgt.name} not implemented: continue")
                continue
        w.walked += n - 1 - last
        return None

    def _nat(self, w: _Walk, c: Chain, pos: int, cr: _Compiled, tgt: NatTarget) -> None:
        before = w.pkt
        if tgt.kind == "DNAT":
            dst = tgt.addr_lo if tgt.addr_lo is not None else before.dst
            after = before.replace(dst=dst, dport=tgt.port_lo or before.dport)
            action = "dnat"
        elif tgt.kind == "SNAT":
            src = tgt.addr_lo if tgt.addr_lo is not None else before.src
            after = before.replace(src=src, sport=self._nat_port(tgt, before.sport))
            action = "snat"
        else:
            src = self._masq_addr(before)
            if src is None:
                w.unknown.append(f"{cr.text} (no masquerade address known: source kept)")
                src = before.src
            after = before.replace(src=src, sport=self._nat_port(tgt, before.sport))
            action = "masquerade"
        w.step(c.name, pos + 1, cr.text, action, before=before, after=after)
        w.set_packet(after)

    def _nat_port(self, tgt: NatTarget, sport: int) -> int:
        if tgt.port_lo:
            return tgt.port_lo if tgt.port_lo == tgt.port_hi else self._port_rng.randint(
                tgt.port_lo, tgt.port_hi)
        if "--random-fully" in tgt.flags or "--random" in tgt.flags:
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
        return any(s.action in ("masquerade", "snat") for s in w.steps)


__all__ = ["Hook", "Netfilter", "Outcome", "Outcomes", "RecentLists", "Result", "Step"]
