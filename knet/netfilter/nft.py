"""A small nftables: the table IR kube-proxy's ``nft -f`` transactions build, and its evaluator.

Invariants (nftables semantics, kube-proxy.md §5; nft 1.0 syntax as knftables writes it):
- ``NftTable.apply(text)`` executes transaction lines (``add/flush/delete`` of table, chain,
  set, map, rule, element) exactly as ``nft -f`` would on a live table; the evaluator runs
  the resulting objects, so what ``knet rules --mode nftables`` prints is what routes.
- Base chains run per hook in priority order; a ``nat`` chain only for a connection's first
  packet (conntrack NEW); later packets in both directions are translated by conntrack
  (``knet.netfilter.conntrack``) without rule evaluation.
- Rules are a sequence of expressions evaluated left to right; the first failing match ends
  the rule. ``jump`` returns, ``goto`` does not; the end of a regular chain returns; the end
  of a base chain is its policy (accept). ``accept`` ends the base chain only; ``drop`` and
  ``reject`` end the packet; ``dnat``/``masquerade`` are terminal (accept).
- Sets and verdict maps are dicts: one O(1) lookup; a vmap miss continues with the next rule.
  ``numgen random mod N`` draws from the injected rng (one draw per evaluation); dynamic
  sets with timeouts expire on the caller's ``now``.
- Only the expressions kube-proxy writes are understood; anything else raises RulesError at
  load time (never silently mis-evaluated).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address, ip_network

from knet.errors import RulesError
from knet.netfilter import conntrack as ct
from knet.netfilter.engine import Outcome, Outcomes, Result, Step
from knet.netfilter.packet import IPAddress, Packet

HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{};]|[^\s{};]+')


def tokenize(line: str) -> list[str]:
    return _TOKEN.findall(line)


# --------------------------------------------------------------------------------------------
# Objects

@dataclass(slots=True, eq=False)
class NftRule:
    chain: str
    text: str               # the rule expression as written (``ip daddr … jump x``)
    ops: tuple = ()         # compiled


@dataclass(slots=True, eq=False)
class NftChain:
    name: str
    type: str = ""          # filter | nat  (base chains only)
    hook: str = ""
    priority: int = 0
    comment: str = ""
    rules: list[NftRule] = field(default_factory=list)

    @property
    def base(self) -> bool:
        return bool(self.hook)


@dataclass(slots=True, eq=False)
class NftSet:
    """A named set or map. Keys are tuples of typed values; map values are verdicts
    ``("goto"|"jump", chain)`` or ``("drop"|"accept"|"return", "")``."""
    name: str
    types: tuple[str, ...]
    is_map: bool = False
    flags: tuple[str, ...] = ()
    timeout: float = 0.0
    comment: str = ""
    elements: dict[tuple, tuple[str, str] | None] = field(default_factory=dict)  # map value: verdict
    expires: dict[tuple, float] = field(default_factory=dict)
    intervals: list = field(default_factory=list)  # networks (flags interval)
    comments: dict[tuple, str] = field(default_factory=dict)

    def contains(self, key: tuple, now: float) -> bool:
        if key in self.elements:
            exp = self.expires.get(key)
            if exp is not None and exp <= now:
                del self.elements[key]
                del self.expires[key]
                return False
            return True
        if self.intervals and len(key) == 1:
            return any(key[0] in n for n in self.intervals)
        return False


@functools.lru_cache(maxsize=1 << 16)
def _ip(text: str) -> IPAddress:
    parts = text.split(".")  # fast path for dotted quads (ipaddress' parser is slow at 10^5 rules)
    if len(parts) == 4 and all(p.isdigit() and 0 < len(p) <= 3 for p in parts):
        a, b, c, d = map(int, parts)
        if a <= 255 and b <= 255 and c <= 255 and d <= 255:
            return IPv4Address(a << 24 | b << 16 | c << 8 | d)
    return ip_address(text)


def _parse_value(tok: str, typ: str) -> object:
    if typ in ("ipv4_addr", "ipv6_addr"):
        if "/" in tok:
            return ip_network(tok, strict=False)
        return _ip(tok)
    if typ == "inet_proto":
        return tok
    if typ == "inet_service":
        return int(tok)
    return tok


def _verdict(toks: list[str]) -> tuple[str, str]:
    if toks[0] in ("goto", "jump"):
        return (toks[0], toks[1])
    if toks[0] in ("drop", "accept", "return", "continue"):
        return (toks[0], "")
    raise RulesError(f"bad verdict {' '.join(toks)!r}")


class NftTable:
    """``table <family> <name>``: chains, sets and maps, mutated by transaction lines."""

    def __init__(self, family: str = "ip", name: str = "kube-proxy") -> None:
        self.family = family
        self.name = name
        self.comment = ""
        self.chains: dict[str, NftChain] = {}
        self.sets: dict[str, NftSet] = {}
        self.exists = False
        self._base: dict[str, list[NftChain]] | None = None

    @property
    def ipversion(self) -> int:
        return 6 if self.family == "ip6" else 4

    def base_chains(self, hook: str) -> list[NftChain]:
        if self._base is None:
            base: dict[str, list[NftChain]] = {h: [] for h in HOOKS}
            for c in self.chains.values():
                if c.hook:
                    base.setdefault(c.hook, []).append(c)
            for v in base.values():
                v.sort(key=lambda c: c.priority)
            self._base = base
        return self._base.get(hook, [])

    def rule_count(self) -> int:
        return sum(len(c.rules) for c in self.chains.values())

    # -- the transaction -------------------------------------------------------------------
    def apply(self, text: str | Iterable[str]) -> None:
        lines = text.splitlines() if isinstance(text, str) else text
        self._base = None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                self._command(tokenize(line))
            except (RulesError, ValueError, IndexError, KeyError) as e:
                raise RulesError(f"nft line {n}: {line}: {e}") from e

    def _command(self, t: list[str]) -> None:
        verb, obj = t[0], t[1]
        if obj == "table":
            self._check(t[2], t[3])
            if verb == "add":
                self.exists = True
                body = _block(t[4:])
                if "comment" in body:
                    self.comment = body["comment"]
            elif verb == "flush":
                for c in self.chains.values():
                    c.rules.clear()
                for s in self.sets.values():
                    s.elements.clear()
                    s.expires.clear()
            elif verb == "delete":
                self.chains.clear()
                self.sets.clear()
                self.exists = False
            return
        self._check(t[2], t[3])
        name = t[4]
        rest = t[5:]
        if obj == "chain":
            if verb == "add":
                if name not in self.chains:
                    body = _block(rest)
                    c = NftChain(name, body.get("type", ""), body.get("hook", ""),
                                 int(body.get("priority", 0) or 0), body.get("comment", ""))
                    self.chains[name] = c
            elif verb == "flush":
                self.chains[name].rules.clear()
            elif verb == "delete":
                del self.chains[name]
            else:
                raise RulesError(f"unsupported: {verb} chain")
        elif obj in ("set", "map"):
            if verb == "add":
                if name not in self.sets:
                    body = _block(rest)
                    typ = body.get("type", "")
                    types = tuple(x.strip() for x in typ.split(":")[0].split(" . "))
                    to = body.get("timeout", "")
                    self.sets[name] = NftSet(
                        name, types, obj == "map", tuple(body.get("flags", "").split(","))
                        if body.get("flags") else (), float(to.rstrip("s")) if to else 0.0,
                        body.get("comment", ""))
            elif verb == "flush":
                s = self.sets[name]
                s.elements.clear()
                s.expires.clear()
                s.intervals.clear()
                s.comments.clear()
            elif verb == "delete":
                del self.sets[name]
            else:
                raise RulesError(f"unsupported: {verb} {obj}")
        elif obj == "element":
            s = self.sets[name]
            for key, val, comment in _elements(rest, s):
                if verb == "add":
                    if len(key) == 1 and not isinstance(key[0], (IPv4Address,)) and hasattr(
                            key[0], "prefixlen"):
                        s.intervals.append(key[0])
                        continue
                    s.elements[key] = val
                    if comment:
                        s.comments[key] = comment
                elif verb == "delete":
                    s.elements.pop(key, None)
                    s.comments.pop(key, None)
        elif obj == "rule":
            chain = self.chains[name]
            text = " ".join(rest)
            r = NftRule(name, text)
            r.ops = compile_rule(rest, self)
            if verb == "add":
                chain.rules.append(r)
            elif verb == "insert":
                chain.rules.insert(0, r)
            else:
                raise RulesError(f"unsupported: {verb} rule")
        else:
            raise RulesError(f"unsupported object {obj!r}")

    def _check(self, family: str, name: str) -> None:
        if family != self.family or name != self.name:
            raise RulesError(f"table {family} {name} is not {self.family} {self.name}")


def _block(t: list[str]) -> dict[str, str]:
    """``{ type filter hook input priority 0 ; comment "x" ; }`` → dict."""
    out: dict[str, str] = {}
    if not t:
        return out
    if t[0] != "{" or t[-1] != "}":
        raise RulesError(f"expected a {{ … }} block, got {' '.join(t)!r}")
    stmt: list[str] = []
    for tok in t[1:-1] + [";"]:
        if tok != ";":
            stmt.append(tok)
            continue
        if not stmt:
            continue
        k = stmt[0]
        if k == "type" and "hook" in stmt:  # chain: type filter hook input priority 0
            out["type"] = stmt[1]
            out["hook"] = stmt[stmt.index("hook") + 1]
            if "priority" in stmt:
                out["priority"] = stmt[stmt.index("priority") + 1]
        elif k == "type":
            out["type"] = " ".join(stmt[1:])
        elif k == "comment":
            out["comment"] = _unquote(stmt[1])
        else:
            out[k] = " ".join(stmt[1:])
        stmt = []
    return out


def _unquote(tok: str) -> str:
    return tok[1:-1].replace('\\"', '"') if tok.startswith('"') else tok


def _elements(t: list[str], s: NftSet) -> list[tuple[tuple, tuple[str, str] | None, str]]:
    if t[0] != "{" or t[-1] != "}":
        raise RulesError("elements must be in { }")
    inner = t[1:-1]
    groups: list[list[str]] = [[]]
    for tok in inner:
        if tok == ",":
            groups.append([])
        else:
            groups[-1].append(tok)
    out = []
    for g in groups:
        if not g:
            continue
        val: tuple[str, str] | None = None
        if ":" in g:
            i = g.index(":")
            val = _verdict(g[i + 1:])
            g = g[:i]
        comment = ""
        if "comment" in g:
            i = g.index("comment")
            comment = _unquote(g[i + 1])
            g = g[:i]
        parts = [x for x in g if x != "."]
        if len(parts) != len(s.types):
            raise RulesError(f"element {' '.join(g)!r} does not match type {s.types}")
        key = tuple(_parse_value(p, typ) for p, typ in zip(parts, s.types))
        out.append((key, val, comment))
    return out


# --------------------------------------------------------------------------------------------
# Rule compilation: ops are tuples interpreted by the evaluator.
#   ("match", selector-fn, kind, value, negate)  kind: eq | net | set | anon
#   ("fib", side)                                fib <side> type local
#   ("ct", states)                               ct state …
#   ("markeq", mask, value)                      mark and M == V
#   ("setmark", op, value)                       mark set mark or|xor V
#   ("vmap", key-fn, setname)                    … vmap @name
#   ("numgen", n, {i: verdict})                  numgen random mod n vmap { … }
#   ("update", setname, selector)                update @name { ip saddr }
#   ("verdict", kind, chain)                     jump/goto/return/accept/drop/continue
#   ("reject",) ("dnat", addr, port) ("masq", fully_random)
#   ("l4proto", name)                            meta l4proto tcp

def _selector(t: list[str], i: int) -> tuple[Callable[[Packet], object], int, str]:
    a = t[i]
    if a in ("ip", "ip6") and t[i + 1] in ("saddr", "daddr"):
        side = t[i + 1]
        typ = "ipv6_addr" if a == "ip6" else "ipv4_addr"
        return ((lambda p: p.src) if side == "saddr" else (lambda p: p.dst)), i + 2, typ
    if a == "meta" and t[i + 1] == "l4proto":
        return (lambda p: str(p.proto)), i + 2, "inet_proto"
    if a == "th" and t[i + 1] == "dport":
        return (lambda p: p.dport), i + 2, "inet_service"
    if a == "th" and t[i + 1] == "sport":
        return (lambda p: p.sport), i + 2, "inet_service"
    raise RulesError(f"unsupported selector at {' '.join(t[i:i + 3])!r}")


def compile_rule(t: list[str], table: NftTable) -> tuple:
    ops: list[tuple] = []
    i = 0
    n = len(t)
    while i < n:
        a = t[i]
        if a == "comment":
            i += 2
            continue
        if a == "counter":
            i += 1
            continue
        if a in ("ip", "ip6", "th") or (a == "meta" and i + 2 < n and t[i + 2] == "."):
            fns = []
            fn, i, typ = _selector(t, i)
            fns.append(fn)
            while i < n and t[i] == ".":
                fn, i, _typ = _selector(t, i + 1)
                fns.append(fn)
            key: Callable[[Packet], tuple[object, ...]]
            if len(fns) > 1:
                def key(p: Packet, fs: tuple[Callable[[Packet], object], ...] = tuple(fns)) -> tuple[object, ...]:
                    return tuple(f(p) for f in fs)
            else:
                def key(p: Packet, f: Callable[[Packet], object] = fns[0]) -> tuple[object, ...]:
                    return (f(p),)
            if i < n and t[i] == "vmap":
                name = t[i + 1].lstrip("@")
                ops.append(("vmap", key, name))
                i += 2
                continue
            neg = False
            if i < n and t[i] == "!=":
                neg = True
                i += 1
            if t[i].startswith("@"):
                ops.append(("match", key, "set", t[i][1:], neg))
                i += 1
            elif t[i] == "{":
                j = t.index("}", i)
                vals = [x for x in t[i + 1:j] if x != ","]
                nets = [ip_network(v, strict=False) for v in vals]
                ops.append(("match", key, "anon", tuple(nets), neg))
                i = j + 1
            else:
                v = t[i]
                if "/" in v:
                    ops.append(("match", key, "net", ip_network(v, strict=False), neg))
                else:
                    ops.append(("match", key, "eq", (_parse_value(v, typ),), neg))
                i += 1
            continue
        if a in ("iifname", "oifname"):
            neg = t[i + 1] == "!="
            v = _unquote(t[i + 2 if neg else i + 1])
            ops.append(("ifname", a, v, neg))
            i += 3 if neg else 2
            continue
        if a == "meta" and t[i + 1] == "l4proto":
            ops.append(("l4proto", t[i + 2]))
            i += 3
            continue
        if a == "fib":
            if t[i + 2:i + 4] != ["type", "local"]:
                raise RulesError("only 'fib saddr|daddr type local' is supported")
            ops.append(("fib", t[i + 1]))
            i += 4
            continue
        if a == "ct" and t[i + 1] == "state":
            ops.append(("ct", frozenset(s.upper() for s in t[i + 2].split(","))))
            i += 3
            continue
        if a == "mark" and t[i + 1] == "and":
            if t[i + 3] != "==":
                raise RulesError("expected 'mark and M == V'")
            ops.append(("markeq", int(t[i + 2], 0), int(t[i + 4], 0)))
            i += 5
            continue
        if a == "mark" and t[i + 1] == "set":
            if t[i + 2] != "mark" or t[i + 3] not in ("or", "xor"):
                raise RulesError("expected 'mark set mark or|xor V'")
            ops.append(("setmark", t[i + 3], int(t[i + 4], 0)))
            i += 5
            continue
        if a == "numgen":
            if t[i + 1:i + 3] != ["random", "mod"] or t[i + 4] != "vmap":
                raise RulesError("expected 'numgen random mod N vmap { … }'")
            mod = int(t[i + 3])
            j = t.index("}", i)
            body = t[i + 6:j]
            verdicts: dict[int, tuple[str, str]] = {}
            for g in " ".join(body).split(" , "):
                k, _, v = g.partition(" : ")
                verdicts[int(k)] = _verdict(v.split())
            ops.append(("numgen", mod, verdicts))
            i = j + 1
            continue
        if a == "update":
            name = t[i + 1].lstrip("@")
            j = t.index("}", i)
            fn, _k, _typ = _selector(t[i + 3:j], 0)
            ops.append(("update", name, fn))
            i = j + 1
            continue
        if a in ("jump", "goto"):
            ops.append(("verdict", a, t[i + 1]))
            i += 2
            continue
        if a in ("return", "accept", "drop", "continue"):
            ops.append(("verdict", a, ""))
            i += 1
            continue
        if a == "reject":
            ops.append(("reject",))
            i += 1
            continue
        if a == "dnat":
            j = i + 1
            if t[j] in ("ip", "ip6"):
                j += 1
            if t[j] != "to":
                raise RulesError("expected 'dnat to ADDR:PORT'")
            spec = t[j + 1]
            if spec.startswith("["):
                host, _, port = spec[1:].partition("]:")
            else:
                host, _, port = spec.rpartition(":") if spec.count(":") == 1 else (spec, "", "")
            ops.append(("dnat", _ip(host), int(port) if port else 0))
            i = j + 2
            continue
        if a == "masquerade":
            fully = i + 1 < n and t[i + 1] == "fully-random"
            ops.append(("masq", fully))
            i += 2 if fully else 1
            continue
        raise RulesError(f"unsupported expression at {' '.join(t[i:i + 4])!r}")
    return tuple(ops)


def _ifmatch(p: Packet, op: tuple) -> bool:
    name = p.iif if op[1] == "iifname" else p.oif
    v = op[2]
    return name.startswith(v[:-1]) if v.endswith("*") else name == v


# --------------------------------------------------------------------------------------------
# The evaluator

class _W:
    __slots__ = ("pkt", "mark", "now", "steps", "walked", "lookups", "hook", "states",
                 "reject", "explain", "enum", "masq")

    def __init__(self, pkt: Packet, now: float, explain: bool) -> None:
        self.pkt = pkt
        self.mark = pkt.mark
        self.now = now
        self.steps: list[Step] = []
        self.walked = 0
        self.lookups = 0
        self.hook = ""
        self.states: frozenset[str] = frozenset({"NEW"})
        self.reject = False
        self.explain = explain
        self.enum = False
        self.masq = False

    def step(self, chain: str, index: int, rule: str, action: str, before: Packet | None = None,
             after: Packet | None = None, note: str = "") -> None:
        if self.explain:
            self.steps.append(Step(self.hook.upper(), "kube-proxy" if chain else "", chain, index,
                                   rule, action, before, after, note))


class Nftables:
    """One node's nftables datapath (kube-proxy's table per family) with conntrack.

    The same interface as ``knet.netfilter.Netfilter``: ``forward``, ``process``,
    ``enumerate_outcomes``; ``Result``/``Step`` are the engine's types."""

    def __init__(self, tables: Mapping[int, NftTable], *,
                 local_addresses: Iterable[IPAddress] = (),
                 masquerade_address: Mapping[int, IPAddress] | Callable[[Packet], IPAddress]
                 | None = None,
                 rng: random.Random | None = None,
                 conntrack: ct.Conntrack | None = None) -> None:
        self.tables = dict(tables)
        self._local = frozenset((a.version, int(a)) for a in local_addresses)
        self.masquerade_address = masquerade_address
        self.rng = rng if rng is not None else random.Random(0)
        self._port_rng = random.Random(self.rng.getrandbits(64))
        self.conntrack = conntrack if conntrack is not None else ct.Conntrack()
        self.last_lookups = 0
        self.explain = True

    def is_local(self, addr: IPAddress) -> bool:
        return addr.is_loopback or (addr.version, int(addr)) in self._local

    def set_local_addresses(self, addrs: Iterable[IPAddress]) -> None:
        self._local = frozenset((a.version, int(a)) for a in addrs)

    # -- the Engine protocol (knet.netfilter.engine.Engine)
    def forward(self, packet: Packet, iif: str, now: float, *, explain: bool | None = None
                ) -> Result:
        if explain is None:
            explain = self.explain
        if iif == "":
            return self.process(packet, "output", now, explain=explain)
        if packet.iif != iif:
            packet = packet.replace(iif=iif)
        return self.process(packet, "prerouting", now, explain=explain)

    def process(self, packet: Packet, hook_path: str, now: float, *,
                explain: bool = True) -> Result:
        if hook_path not in ("prerouting", "output"):
            raise ValueError(f"hook_path must be 'prerouting' or 'output', not {hook_path!r}")
        w = _W(packet, now, explain)
        table = self.tables.get(packet.src.version)
        hit = self.conntrack.lookup(packet, now)
        entry = direction = None
        invalid = False
        if hit is not None:
            entry, direction = hit
            if (direction is ct.Direction.ORIGINAL and packet.proto == "tcp"
                    and "S" in packet.flags and "A" not in packet.flags
                    and entry.tcp_state in (ct.TcpState.TIME_WAIT, ct.TcpState.CLOSE)):
                self.conntrack.remove(entry)
                entry = direction = None
        w.hook = hook_path
        if entry is not None and direction is not None:
            seen = entry.seen_reply or direction is ct.Direction.REPLY
            st = {"ESTABLISHED" if seen else "NEW"}
            w.states = frozenset(st)
            w.step("", 0, "", "conntrack", note=f"{direction} {entry!r}")
            self._translate(w, entry, direction, dst_side=True)
        elif packet.proto == "tcp" and ct.tcp_first_packet_invalid(packet.flags):
            invalid = True
            w.states = frozenset({"INVALID"})
            w.step("", 0, "", "conntrack", note="INVALID (no connection for this packet)")
        first = entry is None and not invalid
        dnat: tuple[IPAddress, int] | None = None
        snat: tuple[IPAddress, int] | None = None
        before = w.pkt
        verdict = self._hook(w, table, hook_path, first)
        if w.pkt is not before and first:
            dnat = (w.pkt.dst, w.pkt.dport)
        local = False
        if verdict == "ACCEPT":
            local = self.is_local(w.pkt.dst)
            if hook_path == "prerouting":
                nxt = "input" if local else "forward"
                w.step("", 0, "", "route", note=f"{'local' if local else 'forward'} "
                       f"{w.pkt.endpoint_str()} → {nxt.upper()}")
                verdict = self._hook(w, table, nxt, first)
                if verdict == "ACCEPT" and not local:
                    verdict, snat = self._post(w, table, entry, direction, first)
            else:
                verdict, snat = self._post(w, table, entry, direction, first)
                if verdict == "ACCEPT" and local:
                    w.step("", 0, "", "route", note="loopback → INPUT")
                    verdict = self._hook(w, table, "input", first)
        if verdict == "ACCEPT" and not invalid:
            if entry is None:
                entry = self.conntrack.new_entry(packet, dnat, snat, now)
                if snat is not None and entry.reply.dport != snat[1]:
                    w.pkt = w.pkt.replace(sport=entry.reply.dport)
                self.conntrack.confirm(entry)
                direction = ct.Direction.ORIGINAL
            else:
                assert direction is not None
                ct.update(entry, direction, packet, now)
        self.last_lookups = w.lookups
        final = w.pkt if w.pkt.mark == w.mark else w.pkt.replace(mark=w.mark)
        state = "INVALID" if invalid else ("ESTABLISHED" if "ESTABLISHED" in w.states else "NEW")
        states = set(w.states)
        if entry is not None and entry.dnat:
            states.add("DNAT")
        return Result(verdict=verdict, packet=final, original=packet, local=local,
                      reject_with=(("icmp-port-unreachable" if packet.src.version == 4 else
                                    "icmp6-port-unreachable") if verdict == "REJECT" else ""),
                      steps=tuple(w.steps), rules_walked=w.walked, ctstate=state,
                      ctstates=frozenset(states),
                      direction=str(direction) if direction else "", entry=entry)

    def _post(self, w: _W, table: NftTable | None, entry: ct.CtEntry | None,
              direction: ct.Direction | None, first: bool
              ) -> tuple[str, tuple[IPAddress, int] | None]:
        if entry is not None and direction is not None:
            w.hook = "postrouting"
            self._translate(w, entry, direction, dst_side=False)
        before = w.pkt
        v = self._hook(w, table, "postrouting", first)
        snat = (w.pkt.src, w.pkt.sport) if (first and w.pkt.src != before.src) else None
        return v, snat

    def _translate(self, w: _W, e: ct.CtEntry, d: ct.Direction, *, dst_side: bool) -> None:
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
        w.pkt = new

    def _hook(self, w: _W, table: NftTable | None, hook: str, first: bool) -> str:
        w.hook = hook
        if table is None:
            return "ACCEPT"
        for c in table.base_chains(hook):
            if c.type == "nat" and not first:
                continue
            v = self._run(w, table, c, 0)
            if v in (None, "RETURN", "ACCEPT"):
                if v is None:
                    w.step(c.name, 0, "", "policy", note="policy accept")
                continue
            return v
        return "ACCEPT"

    def _run(self, w: _W, table: NftTable, c: NftChain, depth: int) -> str | None:
        """Run a chain. Returns "ACCEPT"/"DROP"/"REJECT", "RETURN" or None (end of chain)."""
        if depth > 32:
            raise RulesError(f"nft chain loop at {c.name}")
        for idx, r in enumerate(c.rules, 1):
            w.walked += 1
            res = self._rule(w, table, c, idx, r, depth)
            if res is not None:
                if res == "RETURN":
                    return None
                return res
        return None

    def _rule(self, w: _W, table: NftTable, c: NftChain, idx: int, r: NftRule,
              depth: int) -> str | None:
        p = w.pkt
        for op in r.ops:
            k = op[0]
            if k == "match":
                _k, key, kind, val, neg = op
                kv = key(w.pkt)
                if kind == "eq":
                    hit = kv == val
                elif kind == "net":
                    hit = kv[0].version == val.version and kv[0] in val
                elif kind == "anon":
                    hit = any(kv[0].version == n.version and kv[0] in n for n in val)
                else:
                    w.lookups += 1
                    s = table.sets.get(val)
                    hit = s is not None and s.contains(kv, w.now)
                if hit == neg:
                    return None
            elif k == "l4proto":
                if str(w.pkt.proto) != op[1]:
                    return None
            elif k == "ifname":
                if _ifmatch(w.pkt, op) == op[3]:
                    return None
            elif k == "fib":
                addr = w.pkt.src if op[1] == "saddr" else w.pkt.dst
                if not self.is_local(addr):
                    return None
            elif k == "ct":
                if not (op[1] & w.states):
                    return None
            elif k == "markeq":
                if (w.mark & op[1]) != op[2]:
                    return None
            elif k == "setmark":
                old = w.mark
                w.mark = (old | op[2]) if op[1] == "or" else (old ^ op[2])
                w.step(c.name, idx, r.text, "mark", note=f"mark 0x{old:x} → 0x{w.mark:x}")
            elif k == "update":
                s = table.sets[op[1]]
                key = (op[2](w.pkt),)
                s.elements[key] = None
                if s.timeout:
                    s.expires[key] = w.now + s.timeout
                w.lookups += 1
            elif k == "vmap":
                w.lookups += 1
                s = table.sets.get(op[2])
                v = s.elements.get(op[1](w.pkt)) if s is not None else None
                if v is None:
                    return None  # no element: continue with the next rule
                return self._verdict(w, table, c, idx, r, v, depth, note=f"vmap @{op[2]}")
            elif k == "numgen":
                n = op[1]
                draw = self.rng.randrange(n)
                v = op[2].get(draw)
                if v is None:
                    return None
                return self._verdict(w, table, c, idx, r, v, depth,
                                     note=f"numgen {draw} of {n}")
            elif k == "verdict":
                return self._verdict(w, table, c, idx, r, (op[1], op[2]), depth)
            elif k == "reject":
                w.step(c.name, idx, r.text, "reject")
                return "REJECT"
            elif k == "dnat":
                after = w.pkt.replace(dst=op[1], dport=op[2] or w.pkt.dport)
                w.step(c.name, idx, r.text, "dnat", before=w.pkt, after=after)
                w.pkt = after
                return "ACCEPT"
            elif k == "masq":
                src = self._masq_addr(w.pkt)
                if src is None:
                    src = w.pkt.src
                sport = self._port_rng.randint(1024, 65535) if op[1] else w.pkt.sport
                after = w.pkt.replace(src=src, sport=sport)
                w.step(c.name, idx, r.text, "masquerade", before=w.pkt, after=after)
                w.pkt = after
                return "ACCEPT"
        del p
        w.step(c.name, idx, r.text, "continue")
        return None

    def _verdict(self, w: _W, table: NftTable, c: NftChain, idx: int, r: NftRule,
                 v: tuple[str, str], depth: int, note: str = "") -> str | None:
        kind, target = v
        if kind in ("jump", "goto"):
            w.step(c.name, idx, r.text, kind, note=(f"{note} → " if note else "") + target)
            sub = table.chains.get(target)
            if sub is None:
                raise RulesError(f"chain {target} does not exist")
            res = self._run(w, table, sub, depth + 1)
            if kind == "goto":
                return res if res is not None else "RETURN"
            return res
        if kind == "return":
            w.step(c.name, idx, r.text, "return", note=note)
            return "RETURN"
        if kind == "continue":
            return None
        w.step(c.name, idx, r.text, kind, note=note)
        return kind.upper()

    def _masq_addr(self, pkt: Packet) -> IPAddress | None:
        m = self.masquerade_address
        if m is None:
            return None
        if callable(m):
            return m(pkt)
        return m.get(pkt.src.version)

    # -- enumeration (knet trace --all) ----------------------------------------------------
    def enumerate_outcomes(self, packet: Packet, hook_path: str = "prerouting", *,
                           affinity: bool = False) -> Outcomes:
        """Every possible first-packet outcome, without touching state: the pre-DNAT filter
        chains (firewall), then the nat chain with every ``numgen`` element (and, with
        ``affinity``, every affinity-set branch) explored; then the post-DNAT filter chain
        (no-endpoint reject/drop, cluster-ips-check) with the first DNAT target."""
        table = self.tables.get(packet.src.version)
        if table is None:
            return Outcomes(())
        items: list[Outcome] = []
        pre = "prerouting" if hook_path == "prerouting" else "output"
        for c in table.base_chains(pre):
            if c.type == "nat":
                continue
            if c.priority >= -100:
                continue
            found = self._enum_chain(table, c, packet, packet.mark, affinity, (), 0)
            for kind, _p, _m, path in found:
                if kind in ("DROP", "REJECT"):
                    return Outcomes((Outcome(kind, False, path),))
        first_dnat: Packet | None = None
        for c in table.base_chains(pre):
            if c.type != "nat":
                continue
            found = self._enum_chain(table, c, packet, packet.mark, affinity, (), 0)
            for kind, p, mark, path in found:
                if kind == "DNAT":
                    if first_dnat is None:
                        first_dnat = p
                    items.append(Outcome(p.endpoint_str(), self._would_masq(table, p, mark),
                                         path))
                elif kind in ("DROP", "REJECT"):
                    items.append(Outcome(kind, False, path))
            if found:
                break
        pkt = first_dnat or packet
        post = ("input" if self.is_local(pkt.dst) else "forward") if pre == "prerouting" else "output"
        for c in table.base_chains(post):
            if c.type == "nat" or (post == "output" and c.priority < -100):
                continue
            found = self._enum_chain(table, c, pkt, packet.mark, affinity, (), 0)
            items.extend(Outcome(k, False, path) for k, _p, _m, path in found
                         if k in ("DROP", "REJECT"))
        return Outcomes(tuple(items))

    def _enum_chain(self, table: NftTable, c: NftChain, pkt: Packet, mark: int,
                    affinity: bool, path: tuple[str, ...], depth: int) -> list[tuple]:
        """Returns [(kind, packet, mark, path)], kind DNAT/DROP/REJECT/ACCEPT/RETURN."""
        out: list[tuple] = []
        self._enum_rules(table, c, 0, pkt, mark, affinity, path + (c.name,), depth, out)
        return out

    def _enum_rules(self, table: NftTable, c: NftChain, start: int, pkt: Packet, mark: int,
                    affinity: bool, path: tuple[str, ...], depth: int, out: list
                    ) -> tuple[str | None, int]:
        """Walk rules from ``start``; append terminal outcomes. Returns ("END", mark) when
        every branch ended, ("RETURN", mark) when the chain returned, (None, mark) at the
        chain's end."""
        if depth > 32:
            return "END", mark
        for r in c.rules[start:]:
            res = self._enum_rule(table, c, r, pkt, mark, affinity, path, depth, out)
            if res is None:
                continue
            kind, mark = res
            if kind == "CONT":
                continue
            return kind, mark
        return None, mark

    def _enum_rule(self, table: NftTable, c: NftChain, r: NftRule, pkt: Packet, mark: int,
                   affinity: bool, path: tuple[str, ...], depth: int, out: list
                   ) -> tuple[str, int] | None:
        for op in r.ops:
            k = op[0]
            if k == "match":
                _k, key, kind, val, neg = op
                kv = key(pkt)
                if kind == "eq":
                    hit = kv == val
                elif kind == "net":
                    hit = kv[0].version == val.version and kv[0] in val
                elif kind == "anon":
                    hit = any(kv[0].version == n.version and kv[0] in n for n in val)
                else:
                    s = table.sets.get(val)
                    if s is not None and s.timeout and "dynamic" in s.flags:
                        hit = affinity  # affinity branch: assume the entry exists
                    else:
                        hit = s is not None and s.contains(kv, 0.0)
                if hit == neg:
                    return None
            elif k == "l4proto":
                if str(pkt.proto) != op[1]:
                    return None
            elif k == "ifname":
                if _ifmatch(pkt, op) == op[3]:
                    return None
            elif k == "fib":
                if not self.is_local(pkt.src if op[1] == "saddr" else pkt.dst):
                    return None
            elif k == "ct":
                if "NEW" not in op[1]:
                    return None
            elif k == "markeq":
                if (mark & op[1]) != op[2]:
                    return None
            elif k == "setmark":
                mark = (mark | op[2]) if op[1] == "or" else (mark ^ op[2])
            elif k == "update":
                continue
            elif k in ("vmap", "verdict", "numgen"):
                if k == "vmap":
                    s = table.sets.get(op[2])
                    v = s.elements.get(op[1](pkt)) if s is not None else None
                    if v is None:
                        return None
                    verdicts = [v]
                elif k == "verdict":
                    verdicts = [(op[1], op[2])]
                else:
                    verdicts = [op[2][i] for i in sorted(op[2])]
                fork = k == "numgen"
                ended_all = True
                for kind, target in verdicts:
                    if kind in ("jump", "goto"):
                        sub = table.chains[target]
                        res, mark2 = self._enum_rules(table, sub, 0, pkt, mark, affinity,
                                                      path + (sub.name,), depth + 1, out)
                        if fork:
                            ended_all = ended_all and res == "END"
                            continue
                        if res == "END":
                            return ("END", mark2)
                        if kind == "goto":
                            return ("RETURN", mark2)
                        return ("CONT", mark2)
                    if kind == "return":
                        return ("RETURN", mark)
                    if kind == "continue":
                        return ("CONT", mark)
                    out.append((kind.upper(), pkt, mark, path))
                    if not fork:
                        return ("END", mark)
                if fork:
                    return ("END", mark) if ended_all else ("CONT", mark)
            elif k == "reject":
                out.append(("REJECT", pkt, mark, path))
                return ("END", mark)
            elif k == "dnat":
                out.append(("DNAT", pkt.replace(dst=op[1], dport=op[2] or pkt.dport), mark, path))
                return ("END", mark)
            elif k == "masq":
                return ("END", mark)
        return ("CONT", mark)

    def _would_masq(self, table: NftTable, pkt: Packet, mark: int) -> bool:
        for c in table.base_chains("postrouting"):
            if c.type != "nat":
                continue
            w = _W(pkt.replace(mark=mark), 0.0, explain=True)
            w.mark = mark
            w.hook = "postrouting"
            saved = self._port_rng.getstate()
            self._run(w, table, c, 0)
            self._port_rng.setstate(saved)
            if any(s.action == "masquerade" for s in w.steps):
                return True
        return False


__all__ = ["NftChain", "NftRule", "NftSet", "NftTable", "Nftables", "compile_rule", "tokenize"]
