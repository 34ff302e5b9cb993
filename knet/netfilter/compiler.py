"""Rules compiled for the evaluator: a tuple of predicates over a walk, a target, an index key.

Invariants:
- ``compiled(rule, family)`` is a pure function of the rule's tokens and the family, cached on
  the Rule (``Rule._compiled``); the same Rule shared by many nodes compiles once.
- Three compilers give the same result: ``_compile_shape`` recognises kube-proxy's most
  frequent rules by their exact token layout (KUBE-SERVICES, KUBE-SVC, KUBE-SEP rules, with
  or without comments); ``_compile_fast`` reads the token shapes kube-proxy writes (header
  options, comment, tcp/udp/sctp ports, random statistic, jumps, verdicts, DNAT to
  ``IP:port``) straight from the tokens, without building the typed ``ParsedRule`` (~10x
  cheaper: a never-touched Service costs ~10 rule compilations on its first packet);
  everything else goes through ``Rule.parsed`` (the full parser).
  ``tests/test_netfilter_fastpath.py`` checks they agree; ``index_key`` (a token scan for
  the index of a large chain, no compilation) is checked against them in
  ``tests/test_netfilter_index.py``.
- Predicates are shared: equal conditions (by value) are one cached function, and a jump
  keeps its chain name (``Jump`` made on demand), so a compiled rule adds ~2-4 objects for
  the garbage collector.
- Predicates are called in rule order (header, then matches in order) and stop at the first
  miss, so stateful matches (statistic, recent) see exactly the packets the kernel shows them.
- ``_Compiled.reads`` over-approximates the walk fields (``R_*`` bits: packet header fields,
  mark, conntrack state) the rule's predicates and target can observe (a MARK target reads
  the mark it rewrites). The evaluator's chain memo (``knet.netfilter.engine``) keys on these
  bits: a field a rule may read that is missing from its bits would make the memo replay
  another packet's outcome.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from knet.errors import RulesError
from knet.netfilter.rules import (_KNOWN_TARGETS, AddrTypeMatch, CommentMatch, ConntrackMatch,
                                  Jump, MarkMatch, MarkTarget, MultiportMatch,
                                  NatTarget, NfacctMatch, PhysdevMatch, PortMatch, RecentAction,
                                  RecentMatch, Rule, SetMatch, StatisticMatch, StatisticMode,
                                  Target, UnknownMatch, Verdict, VerdictTarget,
                                  _looks_like_chain, _net)

if TYPE_CHECKING:
    from knet.netfilter.engine import _Walk

PROTO_NUM = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}

# target kinds (dispatch without isinstance chains)
T_NONE, T_JUMP, T_VERDICT, T_MARK, T_NAT, T_UNKNOWN = range(6)

# A predicate is called with the walk only; the lambdas below bind their constants as default
# arguments (the fastest closure in CPython), which ``Callable[[_Walk], bool]`` cannot express.
Pred = Callable[..., bool]

# packet fields a rule may read (``_Compiled.reads``)
R_SRC, R_DST, R_PROTO, R_SPORT, R_DPORT, R_IIF, R_OIF, R_MARK, R_CT = (1 << i for i in range(9))
R_ALL = (1 << 9) - 1


class _Compiled:
    __slots__ = ("preds", "_target", "jchain", "jgoto", "kind", "key", "rule", "family",
                 "unknown", "stat", "recent_check", "reads", "rand")

    def __init__(self, rule: Rule, family: int, preds: tuple[Pred, ...],
                 target: Target | str | None, key: tuple | None, unknown: tuple[str, ...] = (),
                 stat: bool = False, recent_check: bool = False, reads: int = R_ALL) -> None:
        self.rule = rule
        self.family = family
        self.preds = preds
        # a jump's chain name and goto flag (``target``: the Jump, made on demand when the
        # compiler gave the bare chain name: one object less per rule for the collector)
        if type(target) is str:
            self._target: Target | None = None
            self.jchain, self.jgoto, self.kind = target, False, T_JUMP
        else:
            self._target = target  # type: ignore[assignment]
            self.kind = _kind(target)  # type: ignore[arg-type]
            if self.kind == T_JUMP:
                self.jchain, self.jgoto = target.chain, target.goto  # type: ignore[union-attr]
            else:
                self.jchain, self.jgoto = "", False
        self.reads = reads | R_MARK if self.kind == T_MARK else reads
        # (threshold, invert) when the only condition is ``-m statistic --mode random``
        # (KUBE-SVC rules): the evaluator draws inline instead of calling the predicate
        self.rand: tuple[float, bool] | None = None
        self.key = key
        self.unknown = unknown
        self.stat = stat
        self.recent_check = recent_check

    @property
    def target(self) -> Target | None:
        t = self._target
        if t is None and self.kind == T_JUMP:
            return Jump(self.jchain, self.jgoto)
        return t

    @property
    def text(self) -> str:
        return self.rule.text


def _kind(t: Target | None) -> int:
    if t is None:
        return T_NONE
    if type(t) is Jump:
        return T_JUMP
    if type(t) is VerdictTarget:
        return T_VERDICT
    if type(t) is MarkTarget:
        return T_MARK
    if type(t) is NatTarget:
        return T_NAT
    return T_UNKNOWN


def compiled(rule: Rule, family: int) -> _Compiled:
    c = rule._compiled
    if c is None or c.family != family:  # type: ignore[attr-defined]
        c = _compile_shape(rule, family) or _compile_fast(rule, family)
        if c is None:
            c = _compile_full(rule, family)
        rule._compiled = c
    return c  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# The full compiler (any rule the parser accepts)

def _compile_full(rule: Rule, family: int) -> _Compiled:
    p = rule.parsed(family)
    preds: list[Pred] = []
    key_dst: int | None = None
    key_proto: int | None = None
    key_dport: int | None = None
    reads = 0
    for am, attr in ((p.src, "src"), (p.dst, "dst")):
        if am is None:
            continue
        reads |= R_SRC if attr == "src" else R_DST
        net_i = int(am.net.network_address)
        mask_i = int(am.net.netmask)
        inv = am.invert
        if attr == "dst" and am.host and not inv:
            key_dst = net_i
        preds.append(_addr_pred(attr, net_i, mask_i, inv))
    if p.iif is not None:
        reads |= R_IIF
        preds.append(lambda w, t=p.iif.test: t(w.iif))
    if p.oif is not None:
        reads |= R_OIF
        preds.append(lambda w, t=p.oif.test: t(w.oif))
    if p.proto:
        reads |= R_PROTO
        preds.append(_proto_pred(p.proto, p.proto_invert))
        if not p.proto_invert:
            key_proto = p.proto
    for m in p.matches:
        pred = _match_pred(m, rule)
        if pred is not None:
            preds.append(pred)
            reads |= _match_reads(m)
        if (isinstance(m, PortMatch) and m.dport is not None and not m.dport_invert
                and m.dport[0] == m.dport[1]):
            key_dport = m.dport[0]
    return _Compiled(
        rule, family, tuple(preds), p.target, _key(key_dst, key_proto, key_dport), p.unknown,
        stat=any(isinstance(m, StatisticMatch) for m in p.matches),
        recent_check=any(isinstance(m, RecentMatch) and m.action in
                         (RecentAction.RCHECK, RecentAction.UPDATE) for m in p.matches),
        reads=reads)


def _match_reads(m: object) -> int:
    """The packet fields a match predicate may read (anything unlisted: all of them)."""
    if isinstance(m, PortMatch):
        return R_PROTO | (R_SPORT if m.sport is not None else 0) | (
            R_DPORT if m.dport is not None else 0)
    if isinstance(m, MultiportMatch):
        return R_PROTO | R_SPORT | R_DPORT
    if isinstance(m, MarkMatch):
        return R_MARK
    if isinstance(m, AddrTypeMatch):
        return R_SRC | R_DST
    if isinstance(m, ConntrackMatch):
        return R_CT
    if isinstance(m, (StatisticMatch, PhysdevMatch, UnknownMatch)):
        return 0  # rng (impure anyway) / constant / reported
    return R_ALL


def _key(dst: int | None, proto: int | None, dport: int | None) -> tuple | None:
    if proto is not None and dport is not None:
        return (dst, proto, dport)
    if dst is not None:
        return (dst, None, None)
    return None


# Predicate factories are cached: equal conditions share one function (a ClusterIP's test
# serves its KUBE-SERVICES rule and its KUBE-SVC masquerade rule; every rule testing
# "-p tcp --dport 80" shares one), so compiled rules add few objects for the collector.
# Predicates take their constants as defaults (no closure cells).
_PRED_CACHE = 1 << 16


@functools.lru_cache(maxsize=_PRED_CACHE)
def _addr_pred(attr: str, net_i: int, mask_i: int, inv: bool) -> Pred:
    if attr == "src":
        if mask_i == 0xFFFFFFFF and not inv:
            return lambda w, n=net_i: w.src == n
        return lambda w, n=net_i, m=mask_i, v=inv: ((w.src & m) == n) != v
    if mask_i == 0xFFFFFFFF and not inv:
        return lambda w, n=net_i: w.dst == n
    return lambda w, n=net_i, m=mask_i, v=inv: ((w.dst & m) == n) != v


@functools.cache
def _proto_pred(num: int, inv: bool) -> Pred:
    if not inv:
        return lambda w, n=num: w.proto == n
    return lambda w, n=num: w.proto != n


@functools.lru_cache(maxsize=_PRED_CACHE)
def _port_pred(num: int, sp: tuple[int, int] | None, si: bool, dp: tuple[int, int] | None,
               di: bool) -> Pred:
    if sp is None and dp is not None and not di and dp[0] == dp[1]:
        return lambda w, n=num, port=dp[0]: w.proto == n and w.dport == port
    if sp is None and dp is None:
        return lambda w, n=num: w.proto == n

    def port_pred(w: _Walk, num: int = num, sp: tuple[int, int] | None = sp, si: bool = si,
                  dp: tuple[int, int] | None = dp, di: bool = di) -> bool:
        if w.proto != num:
            return False
        if sp is not None and (sp[0] <= w.sport <= sp[1]) == si:
            return False
        return dp is None or (dp[0] <= w.dport <= dp[1]) != di
    return port_pred


def _random_pred(m: StatisticMatch) -> Pred:
    """``-m statistic --mode random``: one rng draw per evaluation, in rule order (enumeration:
    matches, both branches are explored; dry runs: no match, no draw). ``_Walk.m_statistic``
    for the nth mode."""
    return _random_pred_for(m.kernel_probability, m.invert)


@functools.lru_cache(maxsize=_PRED_CACHE)
def _random_pred_for(kp: float, inv: bool) -> Pred:
    def random_pred(w: _Walk, kp: float = kp, inv: bool = inv) -> bool:
        mode = w.mode
        if mode != "eval":
            return mode == "enum"
        w.cacheable = w.pure = False
        return (w.nf.rng.random() < kp) != inv
    return random_pred


def _match_pred(m: object, rule: Rule) -> Pred | None:
    if isinstance(m, (CommentMatch, NfacctMatch)):
        return None
    if isinstance(m, PortMatch):
        return _port_pred(PROTO_NUM[m.module], m.sport, m.sport_invert, m.dport, m.dport_invert)
    if isinstance(m, MultiportMatch):
        return lambda w, t=m.test: w.proto in (6, 17, 132) and t(w.sport, w.dport)
    if isinstance(m, MarkMatch):
        return lambda w, t=m.test: w.m_mark(t)
    if isinstance(m, AddrTypeMatch):
        return lambda w, mm=m: w.m_addrtype(mm)
    if isinstance(m, StatisticMatch):
        if m.mode is StatisticMode.RANDOM:
            return _random_pred(m)
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


# --------------------------------------------------------------------------------------------
# The fast compiler (kube-proxy's shapes, IPv4)

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_V4_ENDPOINT = re.compile(rf"({_OCTET}(?:\.{_OCTET}){{3}}):([1-9][0-9]{{0,4}})")
_PORT = re.compile(r"[1-9][0-9]{0,4}|0")
_VERDICTS = {v: VerdictTarget(Verdict(v)) for v in ("ACCEPT", "DROP", "RETURN")}
_REJECT = VerdictTarget(Verdict.REJECT)
_JUMPS: dict[tuple[str, bool], Jump] = {}
_STATS: dict[str, StatisticMatch | None] = {}


def _v4_int(text: str) -> int:
    a, b, c, d = text.split(".")
    return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)


def _jump(chain: str, goto: bool) -> Jump:
    j = _JUMPS.get((chain, goto))
    if j is None:
        j = _JUMPS[(chain, goto)] = Jump(chain, goto)
    return j


def _statistic(value: str) -> StatisticMatch | None:
    if value in _STATS:
        return _STATS[value]
    try:
        p = float(value)
    except ValueError:
        p = -1.0
    m = StatisticMatch(StatisticMode.RANDOM, probability=p) if 0.0 <= p <= 1.0 else None
    _STATS[value] = m
    return m


@functools.lru_cache(maxsize=1 << 14)
def _dnat(spec: str) -> NatTarget | None:
    m = _V4_ENDPOINT.fullmatch(spec)
    if m is None or int(m.group(2)) > 65535:
        return None
    addr = IPv4Address(_v4_int(m.group(1)))
    port = int(m.group(2))
    return NatTarget("DNAT", addr, addr, port, port, (), spec)


@functools.lru_cache(maxsize=1 << 16)
def _v4_host(val: str) -> int | None:
    """"a.b.c.d" or "a.b.c.d/32" as an integer, else None (cached: a Service's addresses
    recur in its KUBE-SERVICES, KUBE-SVC and KUBE-SEP rules)."""
    if _V4.fullmatch(val):
        return _v4_int(val)
    if val.endswith("/32") and _V4.fullmatch(val, 0, len(val) - 3):
        return _v4_int(val[:-3])
    return None


_STAT_PREDS: dict[str, tuple[Pred, tuple[float, bool]] | None] = {}


def _stat_pred(value: str) -> tuple[Pred, tuple[float, bool]] | None:
    """``--probability value``: (predicate, (threshold, invert)), or None if invalid."""
    try:
        return _STAT_PREDS[value]
    except KeyError:
        sm = _statistic(value)
        out = None if sm is None else (_random_pred(sm), (sm.kernel_probability, sm.invert))
        _STAT_PREDS[value] = out
        return out


def _chain_target(val: str) -> Target | str | None:
    """``-j val`` with nothing after it, as ``_compile_fast`` reads it (None: not a chain or
    a plain verdict)."""
    if val == "REJECT":
        return _REJECT
    if val in _VERDICTS:
        return _VERDICTS[val]
    if val not in _KNOWN_TARGETS and _looks_like_chain(val):
        return val  # a jump (_Compiled keeps the name)
    return None


def _compiled_of(rule: Rule, preds: tuple[Pred, ...], target: Target | str,
                 key: tuple | None,
                 stat: bool, reads: int, rand: tuple[float, bool] | None = None) -> _Compiled:
    preds = _PREDS.setdefault(preds, preds) if len(_PREDS) < _PRED_CACHE else preds
    c = _Compiled(rule, 4, preds, target, key, (), stat, False, reads)
    c.rand = rand
    return c


def _compile_shape(rule: Rule, family: int) -> _Compiled | None:
    """kube-proxy's most frequent rules, recognised by their exact token layout (restore
    order, with or without the leading comment: large clusters drop most comments; no token
    loop): what ``_compile_fast`` makes of them, with the same shared predicates (tests/
    test_netfilter_fastpath.py checks they agree); None for any other rule."""
    args = rule.args
    n = len(args)
    if family != 4 or n < 2 or args[n - 2] != "-j" and args[n - 2] != "--to-destination":
        return None
    o = 4 if n >= 6 and args[0] == "-m" and args[1] == "comment" and args[2] == "--comment" \
        else 0
    m = n - o
    if m == 2:  # [comment] -j CHAIN  (KUBE-SVC's last rule, built-in jumps)
        target = _chain_target(args[n - 1])
        return None if target is None else _compiled_of(rule, (), target, None, False, 0)
    if m == 4:  # [comment] -s ADDR -j CHAIN  (KUBE-SEP's hairpin mark)
        if args[o] != "-s":
            return None
        h = _v4_host(args[o + 1])
        target = _chain_target(args[n - 1])
        if h is None or target is None:
            return None
        return _compiled_of(rule, (_addr_pred("src", h, 0xFFFFFFFF, False),), target, None,
                            False, R_SRC)
    if args[o] != "-m":
        return None
    if m == 8 and args[o + 1] == "statistic":
        # [comment] -m statistic --mode random --probability P -j CHAIN
        if args[o + 2] != "--mode" or args[o + 3] != "random" or args[o + 4] != "--probability":
            return None
        sp = _stat_pred(args[o + 5])
        target = _chain_target(args[n - 1])
        if sp is None or target is None:
            return None
        return _compiled_of(rule, (sp[0],), target, None, True, 0, sp[1])
    proto = args[o + 1]
    if m < 8 or proto not in _PORT_PROTOS or args[o + 2] != "-p" or args[o + 3] != proto:
        return None
    num = PROTO_NUM[proto]
    if m == 8:  # [comment] -m P -p P -j DNAT --to-destination IP:PORT
        if args[o + 4] != "-j" or args[o + 5] != "DNAT" or args[o + 6] != "--to-destination":
            return None
        target = _dnat(args[n - 1])
        if target is None:
            return None
        return _compiled_of(rule, (_proto_pred(num, False),
                                   _port_pred(num, None, False, None, False)),
                            target, None, False, R_PROTO)
    # [comment] -m P -p P -d ADDR --dport N [! -s CIDR] -j CHAIN
    # (KUBE-SERVICES; KUBE-SVC's masquerade rule)
    if (m != 10 and m != 13 or args[o + 4] != "-d" or args[o + 6] != "--dport"
            or args[n - 2] != "-j"):
        return None
    h = _v4_host(args[o + 5])
    port_s = args[o + 7]
    target = _chain_target(args[n - 1])
    if h is None or target is None or not _PORT.fullmatch(port_s) or int(port_s) > 65535:
        return None
    port = int(port_s)
    dst_p = _addr_pred("dst", h, 0xFFFFFFFF, False)
    rest = (_proto_pred(num, False), _port_pred(num, None, False, (port, port), False))
    if m == 10:
        return _compiled_of(rule, (dst_p, *rest), target, (h, num, port), False,
                            R_DST | R_PROTO | R_DPORT)
    if args[o + 8] != "!" or args[o + 9] != "-s":
        return None
    net = _v4_net(args[o + 10])
    if net is None:
        return None
    return _compiled_of(rule, (_addr_pred("src", net[0], net[1], True), dst_p, *rest),
                        target, (h, num, port), False, R_SRC | R_DST | R_PROTO | R_DPORT)


@functools.lru_cache(maxsize=1 << 10)
def _v4_net(val: str) -> tuple[int, int] | None:
    """"a.b.c.d/len" as (network, mask) integers, as ``_net`` reads it (host bits cleared)."""
    m = _V4_NET.fullmatch(val)
    if m is None:
        return None
    plen = int(m.group(2))
    mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
    return _v4_int(m.group(1)) & mask, mask


_PORT_PROTOS = frozenset(("tcp", "udp", "sctp"))


def _compile_fast(rule: Rule, family: int) -> _Compiled | None:
    """The common shapes; None for anything else (the full compiler decides, and raises)."""
    if family != 4:
        return None
    args = rule.args
    preds: list[Pred] = []
    src_p: Pred | None = None
    dst_p: Pred | None = None
    proto_p: Pred | None = None
    key_dst: int | None = None
    key_proto: int | None = None
    target: Target | None = None
    stat = False
    rand: tuple[float, bool] | None = None
    port_mod = ""
    port_at = -1
    sport: tuple[int, bool] | None = None
    dport: tuple[int, bool] | None = None
    i, n = 0, len(args)
    while i < n:
        tok = args[i]
        inv = tok == "!"
        if inv:
            i += 1
            if i + 1 >= n:
                return None
            tok = args[i]
        if i + 1 >= n:
            return None
        val = args[i + 1]
        if tok == "-d" or tok == "-s":
            h = _v4_host(val)
            if h is not None:
                net_i, mask_i, host = h, 0xFFFFFFFF, True
            elif "/" in val and '"' not in val:
                try:
                    net = _net(val)
                except RulesError:
                    return None
                if net.version != 4:
                    return None
                net_i, mask_i = int(net.network_address), int(net.netmask)
                host = net.prefixlen == 32
            else:
                return None
            if tok == "-d":
                if dst_p is not None:
                    return None
                dst_p = _addr_pred("dst", net_i, mask_i, inv)
                if host and not inv:
                    key_dst = net_i
            else:
                if src_p is not None:
                    return None
                src_p = _addr_pred("src", net_i, mask_i, inv)
        elif tok == "-p":
            if inv or val not in ("tcp", "udp", "sctp") or proto_p is not None:
                return None
            key_proto = PROTO_NUM[val]
            proto_p = _proto_pred(key_proto, False)
        elif tok == "--dport" or tok == "--sport":
            if not port_mod or not _PORT.fullmatch(val):
                return None
            port = int(val)
            if port > 65535:
                return None
            if tok == "--dport":
                if dport is not None:
                    return None
                dport = (port, inv)
            else:
                if sport is not None:
                    return None
                sport = (port, inv)
        elif inv:
            return None
        elif tok == "-m":
            if val == "comment":
                if i + 3 >= n or args[i + 2] != "--comment":
                    return None
                port_mod = ""
                i += 4
                continue
            if val in ("tcp", "udp", "sctp"):
                if port_at >= 0:
                    return None
                port_mod = val
                port_at = len(preds)
                preds.append(_never)  # replaced below once its options are known
            elif val == "statistic":
                if (i + 5 >= n or args[i + 2] != "--mode" or args[i + 3] != "random"
                        or args[i + 4] != "--probability"):
                    return None
                sp_ = _stat_pred(args[i + 5])
                if sp_ is None:
                    return None
                preds.append(sp_[0])
                rand = sp_[1]
                stat = True
                port_mod = ""
                i += 6
                continue
            else:
                return None
        elif tok == "-j" or tok == "-g":
            rest = args[i + 2:]
            if tok == "-g":
                if rest or val in _KNOWN_TARGETS:
                    return None
                target = _jump(val, True)
            elif not rest:
                if val == "REJECT":
                    target = _REJECT
                elif val in _VERDICTS:
                    target = _VERDICTS[val]
                elif val not in _KNOWN_TARGETS and _looks_like_chain(val):
                    target = val  # type: ignore[assignment]  # a jump (see _Compiled)
                else:
                    return None
            elif val == "DNAT" and len(rest) == 2 and rest[0] == "--to-destination":
                target = _dnat(rest[1])
                if target is None:
                    return None
            else:
                return None
            break
        else:
            return None
        i += 2
    key_dport: int | None = None
    if port_at >= 0:
        if proto_p is None:
            return None
        num = PROTO_NUM[port_mod or _port_name(args)]
        sp = (sport[0], sport[0]) if sport is not None else None
        dp = (dport[0], dport[0]) if dport is not None else None
        preds[port_at] = _port_pred(num, sp, sport[1] if sport else False, dp,
                                    dport[1] if dport else False)
        if dport is not None and not dport[1]:
            key_dport = dport[0]
    elif sport is not None or dport is not None:
        return None
    header = [p for p in (src_p, dst_p, proto_p) if p is not None]
    all_preds = tuple(header + preds)
    all_preds = _PREDS.setdefault(all_preds, all_preds) if len(_PREDS) < _PRED_CACHE else all_preds
    reads = ((R_SRC if src_p is not None else 0) | (R_DST if dst_p is not None else 0)
             | (R_PROTO if proto_p is not None or port_at >= 0 else 0)
             | (R_SPORT if sport is not None else 0) | (R_DPORT if dport is not None else 0))
    c = _Compiled(rule, family, all_preds, target, _key(key_dst, key_proto, key_dport), (),
                  stat, False, reads)
    if stat and len(all_preds) == 1:
        c.rand = rand
    return c


_PREDS: dict[tuple, tuple] = {}  # one tuple per combination of (shared) predicates


_UNSURE = object()
_V4_NET = re.compile(rf"({_OCTET}(?:\.{_OCTET}){{3}})/(3[0-2]|[12]?[0-9])")


def index_key(rule: Rule, family: int) -> tuple | None:
    """``compiled(rule, family).key`` without compiling the rule when its tokens are one of
    the fast compiler's shapes: an index reads every rule of a large chain (10,000 Services:
    10,000 KUBE-SERVICES rules); compiling waits for a packet to reach the rule."""
    c = rule._compiled
    if c is not None and c.family == family:  # type: ignore[attr-defined]
        return c.key  # type: ignore[attr-defined]
    if family == 4:
        k = _scan_key(rule.args)
        if k is not _UNSURE:
            return k  # type: ignore[return-value]
    return compiled(rule, family).key


def _scan_key(args: tuple[str, ...]) -> object:
    """The key ``_compile_fast`` would give (same token rules), or _UNSURE where it might not
    accept the rule (the compilers then decide, and report errors)."""
    key_dst: int | None = None
    key_proto: int | None = None
    dport: int | None = None
    seen_dst = seen_src = seen_sport = seen_dport = False
    port_mod = ""
    port_seen = False
    i, n = 0, len(args)
    while i < n:
        tok = args[i]
        inv = tok == "!"
        if inv:
            i += 1
            if i + 1 >= n:
                return _UNSURE
            tok = args[i]
        if i + 1 >= n:
            return _UNSURE
        val = args[i + 1]
        if tok == "-d" or tok == "-s":
            if _V4.fullmatch(val):
                host = _v4_int(val)
            elif val.endswith("/32") and _V4.fullmatch(val, 0, len(val) - 3):
                host = _v4_int(val[:-3])
            elif _V4_NET.fullmatch(val):
                host = None
            else:
                return _UNSURE
            if tok == "-d":
                if seen_dst:
                    return _UNSURE
                seen_dst = True
                if host is not None and not inv:
                    key_dst = host
            else:
                if seen_src:
                    return _UNSURE
                seen_src = True
        elif tok == "-p":
            if inv or val not in ("tcp", "udp", "sctp") or key_proto is not None:
                return _UNSURE
            key_proto = PROTO_NUM[val]
        elif tok == "--dport" or tok == "--sport":
            if not port_mod or not _PORT.fullmatch(val) or int(val) > 65535:
                return _UNSURE
            if tok == "--dport":
                if seen_dport:
                    return _UNSURE
                seen_dport = True
                if not inv:
                    dport = int(val)
            else:
                if seen_sport:
                    return _UNSURE
                seen_sport = True
        elif inv:
            return _UNSURE
        elif tok == "-m":
            if val == "comment":
                if i + 3 >= n or args[i + 2] != "--comment":
                    return _UNSURE
                port_mod = ""
                i += 4
                continue
            if val in ("tcp", "udp", "sctp"):
                if port_seen:
                    return _UNSURE
                port_mod = val
                port_seen = True
            elif val == "statistic":
                if (i + 5 >= n or args[i + 2] != "--mode" or args[i + 3] != "random"
                        or args[i + 4] != "--probability" or _statistic(args[i + 5]) is None):
                    return _UNSURE
                port_mod = ""
                i += 6
                continue
            else:
                return _UNSURE
        elif tok == "-j" or tok == "-g":
            rest = args[i + 2:]
            if tok == "-g":
                if rest or val in _KNOWN_TARGETS:
                    return _UNSURE
            elif not rest:
                if not (val == "REJECT" or val in _VERDICTS
                        or (val not in _KNOWN_TARGETS and _looks_like_chain(val))):
                    return _UNSURE
            elif val == "DNAT" and len(rest) == 2 and rest[0] == "--to-destination":
                m = _V4_ENDPOINT.fullmatch(rest[1])
                if m is None or int(m.group(2)) > 65535:
                    return _UNSURE
            else:
                return _UNSURE
            break
        else:
            return _UNSURE
        i += 2
    if port_seen:
        if key_proto is None:
            return _UNSURE
        return _key(key_dst, key_proto, dport)
    if seen_sport or seen_dport:
        return _UNSURE
    return _key(key_dst, key_proto, None)


def _port_name(args: tuple[str, ...]) -> str:
    for i, tok in enumerate(args):
        if tok == "-m" and i + 1 < len(args) and args[i + 1] in PROTO_NUM:
            return args[i + 1]
    raise RulesError("no port module")  # unreachable: port_at >= 0 implies one


def _never(w: _Walk) -> bool:
    return False
