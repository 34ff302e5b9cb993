"""The iptables rules IR: Rule, Chain, Table, RuleSet; restore/save renderers; the text parser.

Invariants:
- ``Rule(chain, args)`` stores the argument tokens exactly as they appear in iptables-restore
  input (kube-proxy's own order). A comment with spaces is passed *with* its double quotes, as
  kube-proxy writes it (``'"shop/cart:http cluster IP"'``); a one-word comment without them.
  ``render_restore`` joins the tokens with single spaces, so restore text is byte-exact.
- Typed matches/target are parsed lazily from ``args`` on first use and cached on the Rule; a
  Rule is immutable in meaning and may be shared by many tables (nodes).
- ``render_save`` reproduces iptables-save v1.8 (libxtables) normalisation: header fields
  first (-s -d -i -o -p), host addresses with /32 (/128), matches in order with their save
  options, ``--set-xmark`` MARK, 11-decimal probabilities, default REJECT/recent options;
  built-in chains first (kernel order), user chains and their rules sorted by chain name.
  This was checked against iptables-nft-save and iptables-legacy-save 1.8.9.
- Unknown match modules and targets are kept as generic tokens and never raise.
"""

from __future__ import annotations

import enum
import functools
import gc
import heapq
import re
from typing import Any
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import (IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address,
                       ip_network)

from knet.errors import RulesError

Network = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address

# Built-in chains per table in kernel hook order (what iptables-save prints first).
BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58,
                 "udplite": 136, "dccp": 33, "gre": 47, "esp": 50, "ah": 51, "all": 0}
PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp", 58: "ipv6-icmp", 136: "udplite",
               33: "dccp", 47: "gre", 50: "esp", 51: "ah"}

# conntrack state bits in the order libxt_conntrack prints them.
CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")

TERMINAL_TARGETS = frozenset({"ACCEPT", "DROP", "REJECT", "DNAT", "SNAT", "MASQUERADE", "RETURN"})

# libxt_REJECT aliases → canonical --reject-with names (IPv4 and IPv6).
_REJECT_ALIASES = {
    "icmp-net-unreachable": "icmp-net-unreachable", "net-unreach": "icmp-net-unreachable",
    "icmp-host-unreachable": "icmp-host-unreachable", "host-unreach": "icmp-host-unreachable",
    "icmp-proto-unreachable": "icmp-proto-unreachable", "proto-unreach": "icmp-proto-unreachable",
    "icmp-port-unreachable": "icmp-port-unreachable", "port-unreach": "icmp-port-unreachable",
    "icmp-net-prohibited": "icmp-net-prohibited", "net-prohib": "icmp-net-prohibited",
    "icmp-host-prohibited": "icmp-host-prohibited", "host-prohib": "icmp-host-prohibited",
    "icmp-admin-prohibited": "icmp-admin-prohibited", "admin-prohib": "icmp-admin-prohibited",
    "tcp-reset": "tcp-reset",
    "icmp6-no-route": "icmp6-no-route", "no-route": "icmp6-no-route",
    "icmp6-adm-prohibited": "icmp6-adm-prohibited", "adm-prohibited": "icmp6-adm-prohibited",
    "icmp6-addr-unreachable": "icmp6-addr-unreachable", "addr-unreach": "icmp6-addr-unreachable",
    "icmp6-port-unreachable": "icmp6-port-unreachable",
    "icmp6-policy-fail": "icmp6-policy-fail", "policy-fail": "icmp6-policy-fail",
    "icmp6-reject-route": "icmp6-reject-route", "reject-route": "icmp6-reject-route",
}


# --------------------------------------------------------------------------------------------
# Tokens (iptables-restore's add_param_to_argv: double quotes group, backslash escapes inside)

def split_tokens(line: str) -> list[str]:
    """Split a rule line into raw tokens, keeping quotes/escapes as written."""
    if '"' not in line:
        return line.split()
    out: list[str] = []
    start = -1
    quote = esc = False
    for i, ch in enumerate(line):
        if start < 0:
            if ch in " \t\r\n":
                continue
            start = i
        if quote:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
        elif ch in " \t\r\n":
            out.append(line[start:i])
            start = -1
    if quote:
        raise RulesError("unterminated quoted string")
    if start >= 0:
        out.append(line[start:])
    return out


def unquote(token: str) -> str:
    """The value iptables sees for a raw token (quotes removed, escapes resolved)."""
    if '"' not in token:
        return token
    buf: list[str] = []
    quote = esc = False
    for ch in token:
        if quote:
            if esc:
                buf.append(ch)
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                quote = False
            else:
                buf.append(ch)
        elif ch == '"':
            quote = True
        else:
            buf.append(ch)
    return "".join(buf)


_NO_QUOTE = frozenset("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def save_string(value: str) -> str:
    """libxtables ``xtables_save_string``: quote unless only [A-Za-z0-9_-]; escape \" \\ '."""
    if value and all(c in _NO_QUOTE for c in value):
        return value
    return '"' + "".join("\\" + c if c in "\"\\'" else c for c in value) + '"'


# --------------------------------------------------------------------------------------------
# Typed matches

@functools.lru_cache(maxsize=1 << 16)
def _net(text: str) -> Network:
    try:
        if "/" in text:
            addr, _, mask = text.partition("/")
            if "." in mask:  # dotted netmask (-s 10.0.0.0/255.255.0.0)
                return ip_network(f"{addr}/{mask}", strict=False)
            return ip_network(text, strict=False)
        return ip_network(text)
    except ValueError as e:
        raise RulesError(f"invalid address {text!r}") from e


def _addr_save(net: Network) -> str:
    return f"{net.network_address}/{net.prefixlen}"


def _ports(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition(":")
    try:
        a = int(lo) if lo else 0
        b = int(hi) if sep and hi else (65535 if sep else a)
    except ValueError as e:
        raise RulesError(f"invalid port {text!r}") from e
    if not (0 <= a <= 65535 and 0 <= b <= 65535):
        raise RulesError(f"invalid port {text!r}")
    return (a, b)


def _port_save(r: tuple[int, int]) -> str:
    return str(r[0]) if r[0] == r[1] else f"{r[0]}:{r[1]}"


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError as e:
        raise RulesError(f"invalid number {text!r}") from e


def _inv(invert: bool) -> list[str]:
    return ["!"] if invert else []


@dataclass(frozen=True, slots=True)
class AddrMatch:
    """``[!] -s/-d CIDR``."""
    side: str  # "s" | "d"
    net: Network
    invert: bool = False

    def save(self) -> list[str]:
        return [*_inv(self.invert), f"-{self.side}", _addr_save(self.net)]

    @property
    def host(self) -> bool:
        return self.net.prefixlen == self.net.max_prefixlen


@dataclass(frozen=True, slots=True)
class IfaceMatch:
    """``[!] -i/-o NAME`` (``+`` suffix is a prefix wildcard)."""
    side: str  # "i" | "o"
    name: str
    invert: bool = False

    def test(self, iface: str) -> bool:
        ok = iface.startswith(self.name[:-1]) if self.name.endswith("+") else iface == self.name
        return ok != self.invert

    def save(self) -> list[str]:
        return [*_inv(self.invert), f"-{self.side}", self.name]


@dataclass(frozen=True, slots=True)
class PortMatch:
    """``-m tcp|udp|sctp [!] --sport A[:B] [!] --dport A[:B]`` (plus --tcp-flags/--syn kept)."""
    module: str
    sport: tuple[int, int] | None = None
    sport_invert: bool = False
    dport: tuple[int, int] | None = None
    dport_invert: bool = False
    extra: tuple[str, ...] = ()

    def save(self) -> list[str]:
        out = ["-m", self.module]
        if self.sport is not None:
            out += [*_inv(self.sport_invert), "--sport", _port_save(self.sport)]
        if self.dport is not None:
            out += [*_inv(self.dport_invert), "--dport", _port_save(self.dport)]
        return out + list(self.extra)


@dataclass(frozen=True, slots=True)
class MultiportMatch:
    """``-m multiport [!] --dports|--sports|--ports a,b:c``."""
    side: str  # "dports" | "sports" | "ports"
    ranges: tuple[tuple[int, int], ...]
    invert: bool = False

    def test(self, sport: int, dport: int) -> bool:
        def hit(p: int) -> bool:
            return any(a <= p <= b for a, b in self.ranges)
        if self.side == "dports":
            ok = hit(dport)
        elif self.side == "sports":
            ok = hit(sport)
        else:
            ok = hit(sport) or hit(dport)
        return ok != self.invert

    def save(self) -> list[str]:
        return ["-m", "multiport", *_inv(self.invert), f"--{self.side}",
                ",".join(_port_save(r) for r in self.ranges)]


@dataclass(frozen=True, slots=True)
class AddrTypeMatch:
    """``-m addrtype [!] --src-type T [!] --dst-type T [--limit-iface-in|out]``."""
    src_type: str | None = None
    src_invert: bool = False
    dst_type: str | None = None
    dst_invert: bool = False
    limit_iface: str = ""  # "" | "in" | "out"

    def save(self) -> list[str]:
        out = ["-m", "addrtype"]
        if self.src_type:
            out += [*_inv(self.src_invert), "--src-type", self.src_type]
        if self.dst_type:
            out += [*_inv(self.dst_invert), "--dst-type", self.dst_type]
        if self.limit_iface:
            out.append(f"--limit-iface-{self.limit_iface}")
        return out


@dataclass(frozen=True, slots=True)
class CommentMatch:
    text: str

    def save(self) -> list[str]:
        return ["-m", "comment", "--comment", save_string(self.text)]


class StatisticMode(enum.StrEnum):
    RANDOM = "random"
    NTH = "nth"


@dataclass(frozen=True, slots=True)
class StatisticMatch:
    """``-m statistic --mode random --probability P`` / ``--mode nth --every N --packet P``.

    The kernel stores ``round(P·2^31)`` (xt_statistic); ``threshold`` is that integer.
    """
    mode: StatisticMode
    probability: float = 0.0
    every: int = 0
    packet: int = 0
    invert: bool = False

    @property
    def threshold(self) -> int:
        return int(self.probability * 0x80000000 + 0.5)

    @property
    def kernel_probability(self) -> float:
        return self.threshold / 0x80000000

    def save(self) -> list[str]:
        if self.mode is StatisticMode.RANDOM:
            return ["-m", "statistic", "--mode", "random", *_inv(self.invert), "--probability",
                    f"{self.kernel_probability:.11f}"]
        return ["-m", "statistic", "--mode", "nth", *_inv(self.invert), "--every",
                str(self.every), "--packet", str(self.packet)]


class RecentAction(enum.StrEnum):
    SET = "set"
    RCHECK = "rcheck"
    UPDATE = "update"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class RecentMatch:
    """``-m recent`` (xt_recent): lists keyed by the masked source (or dest) address."""
    action: RecentAction
    name: str = "DEFAULT"
    seconds: int = 0
    hitcount: int = 0
    reap: bool = False
    rttl: bool = False
    mask: IPAddress | None = None  # None: all-ones of the rule's family
    side: str = "source"  # "source" | "dest"
    invert: bool = False

    def save(self, family: int) -> list[str]:
        out = ["-m", "recent", *_inv(self.invert), f"--{self.action}"]
        if self.seconds:
            out += ["--seconds", str(self.seconds)]
        if self.reap:
            out.append("--reap")
        if self.hitcount:
            out += ["--hitcount", str(self.hitcount)]
        if self.rttl:
            out.append("--rttl")
        mask = self.mask or (IPv4Address("255.255.255.255") if family == 4
                             else IPv6Address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
        out += ["--name", self.name, "--mask", str(mask),
                "--rsource" if self.side == "source" else "--rdest"]
        return out


@dataclass(frozen=True, slots=True)
class MarkMatch:
    """``-m mark [!] --mark V[/M]``: ``(mark & M) == V``."""
    value: int
    mask: int = 0xFFFFFFFF
    invert: bool = False

    def test(self, mark: int) -> bool:
        return ((mark & self.mask) == self.value) != self.invert

    def save(self) -> list[str]:
        v = f"0x{self.value:x}" + ("" if self.mask == 0xFFFFFFFF else f"/0x{self.mask:x}")
        return ["-m", "mark", *_inv(self.invert), "--mark", v]


@dataclass(frozen=True, slots=True)
class ConntrackMatch:
    """``-m conntrack [!] --ctstate S,..`` (``-m state --state`` too), ``--ctorig*``."""
    states: frozenset[str] = frozenset()
    states_invert: bool = False
    module: str = "conntrack"  # "conntrack" | "state"
    orig_src: tuple[Network, bool] | None = None
    orig_dst: tuple[Network, bool] | None = None
    orig_src_port: tuple[tuple[int, int], bool] | None = None
    orig_dst_port: tuple[tuple[int, int], bool] | None = None
    extra: tuple[str, ...] = ()

    def save(self) -> list[str]:
        out = ["-m", self.module]
        if self.states:
            opt = "--state" if self.module == "state" else "--ctstate"
            out += [*_inv(self.states_invert), opt,
                    ",".join(s for s in CT_STATES if s in self.states)]
        for opt, v in (("--ctorigsrc", self.orig_src), ("--ctorigdst", self.orig_dst)):
            if v is not None:
                out += [*_inv(v[1]), opt, str(v[0].network_address) if v[0].prefixlen ==
                        v[0].max_prefixlen else _addr_save(v[0])]
        for opt, p in (("--ctorigsrcport", self.orig_src_port),
                       ("--ctorigdstport", self.orig_dst_port)):
            if p is not None:
                out += [*_inv(p[1]), opt, _port_save(p[0])]
        return out + list(self.extra)


@dataclass(frozen=True, slots=True)
class SetMatch:
    """``-m set [!] --match-set NAME dir[,dir..]`` — sets come from the caller (IPVS mode)."""
    name: str
    flags: tuple[str, ...]
    invert: bool = False
    extra: tuple[str, ...] = ()

    def save(self) -> list[str]:
        return ["-m", "set", *_inv(self.invert), "--match-set", self.name, ",".join(self.flags),
                *self.extra]


@dataclass(frozen=True, slots=True)
class NfacctMatch:
    """``-m nfacct --nfacct-name N``: a counter, always matches."""
    name: str

    def save(self) -> list[str]:
        return ["-m", "nfacct", "--nfacct-name", self.name]


@dataclass(frozen=True, slots=True)
class PhysdevMatch:
    """``-m physdev``: knet has no bridge netfilter, so no packet is ever bridged."""
    options: tuple[tuple[str, str, bool], ...]  # (option, value, invert)

    def test(self) -> bool:
        # every positive physdev condition is false without a bridge
        return all(inv for _opt, _val, inv in self.options)

    def save(self) -> list[str]:
        out = ["-m", "physdev"]
        for opt, val, inv in self.options:
            out += [*_inv(inv), opt] + ([val] if val else [])
        return out


@dataclass(frozen=True, slots=True)
class UnknownMatch:
    """A module knet does not evaluate; kept verbatim (raw tokens) and reported."""
    module: str
    tokens: tuple[str, ...]

    def save(self) -> list[str]:
        return ["-m", self.module, *self.tokens]


Match = (PortMatch | MultiportMatch | AddrTypeMatch | CommentMatch | StatisticMatch
         | RecentMatch | MarkMatch | ConntrackMatch | SetMatch | NfacctMatch | PhysdevMatch
         | UnknownMatch)


# --------------------------------------------------------------------------------------------
# Typed targets

@dataclass(frozen=True, slots=True)
class Jump:
    chain: str
    goto: bool = False

    def save(self) -> list[str]:
        return ["-g" if self.goto else "-j", self.chain]


class Verdict(enum.StrEnum):
    ACCEPT = "ACCEPT"
    DROP = "DROP"
    REJECT = "REJECT"
    RETURN = "RETURN"


@dataclass(frozen=True, slots=True)
class VerdictTarget:
    verdict: Verdict
    reject_with: str = ""  # REJECT only; "" = family default

    def save(self, family: int) -> list[str]:
        if self.verdict is Verdict.REJECT:
            rw = self.reject_with or ("icmp-port-unreachable" if family == 4
                                      else "icmp6-port-unreachable")
            return ["-j", "REJECT", "--reject-with", rw]
        return ["-j", str(self.verdict)]


@dataclass(frozen=True, slots=True)
class NatTarget:
    """DNAT --to-destination / SNAT --to-source / MASQUERADE --to-ports."""
    kind: str  # "DNAT" | "SNAT" | "MASQUERADE"
    addr_lo: IPAddress | None = None
    addr_hi: IPAddress | None = None
    port_lo: int = 0
    port_hi: int = 0
    flags: tuple[str, ...] = ()  # --random, --random-fully, --persistent (save order kept)
    spec: str = ""  # the address spec as written (for save)

    @property
    def endpoint(self) -> str:
        """The first translation as ``IP:port`` (``[v6]:port``), or just the address."""
        if self.addr_lo is None:
            return str(self.port_lo) if self.port_lo else ""
        a = f"[{self.addr_lo}]" if self.addr_lo.version == 6 and self.port_lo else str(self.addr_lo)
        return f"{a}:{self.port_lo}" if self.port_lo else a

    def save(self) -> list[str]:
        out = ["-j", self.kind]
        if self.kind == "DNAT" and self.spec:
            out += ["--to-destination", self.spec]
        elif self.kind == "SNAT" and self.spec:
            out += ["--to-source", self.spec]
        elif self.kind == "MASQUERADE" and self.spec:
            out += ["--to-ports", self.spec]
        order = ("--random", "--random-fully", "--persistent")
        return out + [f for f in order if f in self.flags]


@dataclass(frozen=True, slots=True)
class MarkTarget:
    """MARK: ``mark = (mark & ~mask) ^ value`` (xt_MARK --set-xmark; the other ops map onto it)."""
    value: int
    mask: int

    def apply(self, mark: int) -> int:
        return ((mark & ~self.mask) ^ self.value) & 0xFFFFFFFF

    def save(self) -> list[str]:
        return ["-j", "MARK", "--set-xmark", f"0x{self.value:x}/0x{self.mask:x}"]


@dataclass(frozen=True, slots=True)
class UnknownTarget:
    """A target knet does not implement (LOG, CT, CONNMARK, …): treated as non-terminating."""
    name: str
    tokens: tuple[str, ...]

    def save(self) -> list[str]:
        return ["-j", self.name, *self.tokens]


Target = Jump | VerdictTarget | NatTarget | MarkTarget | UnknownTarget


# --------------------------------------------------------------------------------------------
# Parsed rule

@dataclass(frozen=True, slots=True)
class ParsedRule:
    family: int
    src: AddrMatch | None = None
    dst: AddrMatch | None = None
    iif: IfaceMatch | None = None
    oif: IfaceMatch | None = None
    proto: int | None = None  # None: any
    proto_invert: bool = False
    proto_name: str = ""
    fragment: bool | None = None
    matches: tuple[Match, ...] = ()
    target: Target | None = None

    @property
    def unknown(self) -> tuple[str, ...]:
        out = [f"-m {m.module}" for m in self.matches if isinstance(m, UnknownMatch)]
        if isinstance(self.target, UnknownTarget):
            out.append(f"-j {self.target.name}")
        return tuple(out)

    @property
    def comment(self) -> str:
        for m in self.matches:
            if isinstance(m, CommentMatch):
                return m.text
        return ""

    def save_tokens(self) -> list[str]:
        out: list[str] = []
        if self.src:
            out += self.src.save()
        if self.dst:
            out += self.dst.save()
        if self.iif:
            out += self.iif.save()
        if self.oif:
            out += self.oif.save()
        if self.proto is not None and self.proto != 0:
            out += [*_inv(self.proto_invert), "-p", PROTO_NAMES.get(self.proto, str(self.proto))]
        if self.fragment is not None:
            out += (["!"] if not self.fragment else []) + ["-f"]
        for m in self.matches:
            out += m.save(self.family) if isinstance(m, RecentMatch) else m.save()
        t = self.target
        if isinstance(t, VerdictTarget):
            out += t.save(self.family)
        elif t is not None:
            out += t.save()
        return out


_HEADER_OPTS = {"-s": "s", "--source": "s", "--src": "s", "-d": "d", "--destination": "d",
                "--dst": "d", "-i": "i", "--in-interface": "i", "-o": "o",
                "--out-interface": "o", "-p": "p", "--protocol": "p"}
_FLAG_OPTS = frozenset({
    "--set", "--rcheck", "--update", "--remove", "--reap", "--rttl", "--rsource", "--rdest",
    "--random", "--random-fully", "--persistent", "--limit-iface-in", "--limit-iface-out",
    "--physdev-is-in", "--physdev-is-out", "--physdev-is-bridged", "--syn",
    "--return-nomatch", "--log-tcp-sequence", "--log-tcp-options", "--log-ip-options",
    "--log-uid", "--notrack", "--checksum-fill", "--ctdir-original"})
_ARITY2 = frozenset({"--match-set", "--tcp-flags"})
_KNOWN_MODULES = frozenset({"tcp", "udp", "sctp", "multiport", "addrtype", "comment", "statistic",
                            "recent", "mark", "conntrack", "state", "set", "nfacct", "physdev"})
_KNOWN_TARGETS = frozenset({"ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "SNAT", "MASQUERADE",
                            "MARK"})


def _group_options(raw: list[str], known: bool) -> list[tuple[str, list[str], bool, list[str]]]:
    """Split module/target option tokens into (option, values, invert, raw tokens)."""
    out: list[tuple[str, list[str], bool, list[str]]] = []
    i, n = 0, len(raw)
    while i < n:
        start = i
        inv = False
        if raw[i] == "!":
            inv = True
            i += 1
            if i >= n:
                raise RulesError("'!' at end of rule")
        opt = raw[i]
        if not opt.startswith("-"):
            raise RulesError(f"unexpected argument {opt!r}")
        i += 1
        if opt in _FLAG_OPTS:
            arity = 0
        elif opt in _ARITY2:
            arity = 2
        elif known:
            arity = 1
        else:
            arity = 0
            while i + arity < n and raw[i + arity] != "!" and not raw[i + arity].startswith("-"):
                arity += 1
        vals = raw[i:i + arity]
        if len(vals) < arity:
            raise RulesError(f"option {opt} needs {arity} argument(s)")
        # old-style inversion: "--opt ! value"
        if arity == 1 and vals and vals[0] == "!" and i + 1 < n:
            inv = True
            vals = [raw[i + 1]]
            i += 1
        i += arity
        out.append((opt, [unquote(v) for v in vals], inv, raw[start:i]))
    return out


def _parse_module(module: str, raw: list[str], family: int) -> Match:
    if module not in _KNOWN_MODULES:
        return UnknownMatch(module, tuple(raw))
    opts = _group_options(raw, True)
    if module in ("tcp", "udp", "sctp"):
        sport = dport = None
        si = di = False
        extra: list[str] = []
        for opt, vals, inv, toks in opts:
            if opt in ("--sport", "--source-port"):
                sport, si = _ports(vals[0]), inv
            elif opt in ("--dport", "--destination-port"):
                dport, di = _ports(vals[0]), inv
            else:
                extra += toks
        return PortMatch(module, sport, si, dport, di, tuple(extra))
    if module == "multiport":
        for opt, vals, inv, _t in opts:
            side = {"--dports": "dports", "--destination-ports": "dports", "--sports": "sports",
                    "--source-ports": "sports", "--ports": "ports"}.get(opt)
            if side:
                ranges = tuple(_ports(p) for p in vals[0].split(","))
                return MultiportMatch(side, ranges, inv)
        raise RulesError("multiport needs --dports, --sports or --ports")
    if module == "addrtype":
        kw: dict[str, object] = {}
        for opt, vals, inv, _t in opts:
            if opt == "--src-type":
                kw["src_type"], kw["src_invert"] = vals[0].upper(), inv
            elif opt == "--dst-type":
                kw["dst_type"], kw["dst_invert"] = vals[0].upper(), inv
            elif opt in ("--limit-iface-in", "--limit-iface-out"):
                kw["limit_iface"] = opt.rsplit("-", 1)[1]
            else:
                raise RulesError(f"addrtype: unknown option {opt}")
        return AddrTypeMatch(**kw)  # type: ignore[arg-type]
    if module == "comment":
        for opt, vals, _inv, _t in opts:
            if opt == "--comment":
                return CommentMatch(vals[0])
        raise RulesError("comment needs --comment")
    if module == "statistic":
        d = {opt: (vals, inv) for opt, vals, inv, _t in opts}
        mode = d.get("--mode", (["random"], False))[0][0]
        if mode == "random":
            if "--probability" not in d:
                raise RulesError("statistic --mode random needs --probability")
            vals, inv = d["--probability"]
            try:
                p = float(vals[0])
            except ValueError as e:
                raise RulesError(f"invalid probability {vals[0]!r}") from e
            if not 0.0 <= p <= 1.0:
                raise RulesError(f"probability {vals[0]} out of range")
            return StatisticMatch(StatisticMode.RANDOM, probability=p, invert=inv)
        if mode == "nth":
            ev, inv = d.get("--every", (["0"], False))
            pk = d.get("--packet", (["0"], False))[0]
            return StatisticMatch(StatisticMode.NTH, every=_int(ev[0]), packet=_int(pk[0]),
                                  invert=inv)
        raise RulesError(f"statistic: bad mode {mode!r}")
    if module == "recent":
        action: RecentAction | None = None
        rkw: dict[str, object] = {}
        inv_any = False
        for opt, vals, inv, _t in opts:
            inv_any = inv_any or inv
            if opt in ("--set", "--rcheck", "--update", "--remove"):
                action = RecentAction(opt[2:])
            elif opt == "--name":
                rkw["name"] = vals[0]
            elif opt == "--seconds":
                rkw["seconds"] = _int(vals[0])
            elif opt == "--hitcount":
                rkw["hitcount"] = _int(vals[0])
            elif opt == "--reap":
                rkw["reap"] = True
            elif opt == "--rttl":
                rkw["rttl"] = True
            elif opt == "--mask":
                try:
                    rkw["mask"] = ip_address(vals[0])
                except ValueError as e:
                    raise RulesError(f"recent: bad mask {vals[0]!r}") from e
            elif opt == "--rsource":
                rkw["side"] = "source"
            elif opt == "--rdest":
                rkw["side"] = "dest"
            else:
                raise RulesError(f"recent: unknown option {opt}")
        if action is None:
            raise RulesError("recent needs one of --set, --rcheck, --update, --remove")
        return RecentMatch(action, invert=inv_any, **rkw)  # type: ignore[arg-type]
    if module == "mark":
        for opt, vals, inv, _t in opts:
            if opt == "--mark":
                v, _, m = vals[0].partition("/")
                return MarkMatch(_int(v), _int(m) if m else 0xFFFFFFFF, inv)
        raise RulesError("mark needs --mark")
    if module in ("conntrack", "state"):
        ckw: dict[str, object] = {"module": module}
        extra = []
        for opt, vals, inv, toks in opts:
            if opt in ("--ctstate", "--state"):
                states = frozenset(s.strip().upper() for s in vals[0].split(","))
                bad = states - set(CT_STATES)
                if bad:
                    raise RulesError(f"conntrack: bad state {sorted(bad)[0]!r}")
                ckw["states"], ckw["states_invert"] = states, inv
            elif opt == "--ctorigsrc":
                ckw["orig_src"] = (_net(vals[0]), inv)
            elif opt == "--ctorigdst":
                ckw["orig_dst"] = (_net(vals[0]), inv)
            elif opt == "--ctorigsrcport":
                ckw["orig_src_port"] = (_ports(vals[0]), inv)
            elif opt == "--ctorigdstport":
                ckw["orig_dst_port"] = (_ports(vals[0]), inv)
            else:
                extra += toks
        ckw["extra"] = tuple(extra)
        return ConntrackMatch(**ckw)  # type: ignore[arg-type]
    if module == "set":
        name: str | None = None
        flags: tuple[str, ...] = ()
        inv_set = False
        extra = []
        for opt, vals, inv, toks in opts:
            if opt in ("--match-set", "--set"):
                name, flags, inv_set = vals[0], tuple(vals[1].split(",")), inv
            else:
                extra += toks
        if name is None:
            raise RulesError("set needs --match-set NAME FLAGS")
        return SetMatch(name, flags, inv_set, tuple(extra))
    if module == "nfacct":
        for opt, vals, _inv, _t in opts:
            if opt == "--nfacct-name":
                return NfacctMatch(vals[0])
        raise RulesError("nfacct needs --nfacct-name")
    # physdev
    return PhysdevMatch(tuple((opt, vals[0] if vals else "", inv) for opt, vals, inv, _t in opts))


def _parse_target(name: str, raw: list[str], family: int) -> Target:
    if name not in _KNOWN_TARGETS:
        return UnknownTarget(name, tuple(raw))
    opts = _group_options(raw, True)
    if name in ("ACCEPT", "DROP", "RETURN"):
        if opts:
            raise RulesError(f"{name} takes no options")
        return VerdictTarget(Verdict(name))
    if name == "REJECT":
        rw = ""
        for opt, vals, _inv, _t in opts:
            if opt != "--reject-with":
                raise RulesError(f"REJECT: unknown option {opt}")
            rw = _REJECT_ALIASES.get(vals[0], "")
            if not rw:
                raise RulesError(f"REJECT: unknown --reject-with {vals[0]!r}")
        return VerdictTarget(Verdict.REJECT, rw)
    if name == "MARK":
        for opt, vals, _inv, _t in opts:
            v, _, m = vals[0].partition("/")
            val = _int(v)
            if opt == "--set-xmark":
                return MarkTarget(val, _int(m) if m else 0xFFFFFFFF)
            if opt == "--set-mark":
                mk = _int(m) if m else 0xFFFFFFFF
                return MarkTarget(val, mk | val)
            if opt == "--or-mark":
                return MarkTarget(val, val)
            if opt == "--xor-mark":
                return MarkTarget(val, 0)
            if opt == "--and-mark":
                return MarkTarget(0, (~val) & 0xFFFFFFFF)
            raise RulesError(f"MARK: unknown option {opt}")
        raise RulesError("MARK needs an operation")
    flags = tuple(opt for opt, _v, _i, _t in opts
                  if opt in ("--random", "--random-fully", "--persistent"))
    spec = ""
    for opt, vals, _inv, _t in opts:
        if opt in ("--to-destination", "--to-source", "--to-ports", "--to"):
            spec = vals[0]
        elif opt not in flags:
            raise RulesError(f"{name}: unknown option {opt}")
    if name == "MASQUERADE":
        lo, _, hi = spec.partition("-")
        plo = _int(lo) if lo else 0
        return NatTarget(name, None, None, plo, _int(hi) if hi else plo, flags, spec)
    if not spec:
        raise RulesError(f"{name} needs --to-{'destination' if name == 'DNAT' else 'source'}")
    return _nat_spec(name, spec, flags, family)


def _nat_spec(kind: str, spec: str, flags: tuple[str, ...], family: int) -> NatTarget:
    addrs, ports = spec, ""
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0:
            raise RulesError(f"{kind}: bad address {spec!r}")
        addrs, rest = spec[1:end], spec[end + 1:]
        if rest.startswith(":"):
            ports = rest[1:]
    elif spec.count(":") == 1:
        addrs, _, ports = spec.partition(":")
    lo: IPAddress | None
    hi: IPAddress | None
    try:
        if addrs:
            a, _, b = addrs.partition("-") if "." in addrs else (addrs, "", "")
            lo = ip_address(a)
            hi = ip_address(b) if b else lo
        else:
            lo = hi = None
        plo = phi = 0
        if ports:
            p1, _, p2 = ports.partition("-")
            plo = int(p1)
            phi = int(p2) if p2 else plo
    except ValueError as e:
        raise RulesError(f"{kind}: bad address {spec!r}") from e
    return NatTarget(kind, lo, hi, plo, phi, flags, spec)


def parse_args(args: tuple[str, ...] | list[str], family: int = 4) -> ParsedRule:
    """Parse a rule's raw argument tokens into typed header fields, matches and target."""
    kw: dict[str, object] = {}
    matches: list[Match] = []
    target: Target | None = None
    i, n = 0, len(args)
    inv = False
    cur_mod: str | None = None  # the module collecting --options
    cur_raw: list[str] = []
    mod_list: list[tuple[str, list[str], bool]] = []  # (module, raw opts, implicit)
    tgt_name: str | None = None
    tgt_goto = False
    tgt_raw: list[str] = []
    proto_name = ""

    def flush() -> None:
        nonlocal cur_mod, cur_raw
        if cur_mod is not None:
            mod_list.append((cur_mod, cur_raw, False))
        cur_mod, cur_raw = None, []

    while i < n:
        tok = args[i]
        if tok == "!":
            if tgt_name is not None or cur_mod is not None:
                # an inversion inside module/target options: keep for the module parser
                if i + 1 < n and args[i + 1] in _HEADER_OPTS:
                    inv = True
                    i += 1
                    continue
                (tgt_raw if tgt_name is not None else cur_raw).append(tok)
                i += 1
                continue
            inv = True
            i += 1
            continue
        if tok in _HEADER_OPTS:
            # header options do not end the current module: its --options may follow
            # (kube-proxy writes "-m tcp -p tcp -d X --dport N")
            if tgt_name is not None:
                raise RulesError(f"{tok} after the target")
            if i + 1 >= n:
                raise RulesError(f"option {tok} needs a value")
            val = unquote(args[i + 1])
            i += 2
            if val == "!":  # old style: -s ! 10.0.0.0/8
                inv = True
                if i >= n:
                    raise RulesError(f"option {tok} needs a value")
                val = unquote(args[i])
                i += 1
            h = _HEADER_OPTS[tok]
            if h in "sd":
                net = _net(val)
                if net.version != family:
                    raise RulesError(f"address {val} is not IPv{family}")
                if ("src" if h == "s" else "dst") in kw:
                    raise RulesError(f"multiple -{h} flags not allowed")
                kw["src" if h == "s" else "dst"] = AddrMatch(h, net, inv)
            elif h in "io":
                kw["iif" if h == "i" else "oif"] = IfaceMatch(h, val, inv)
            else:
                pname = val.lower()
                if pname.isdigit():
                    num = int(pname)
                elif pname in PROTO_NUMBERS:
                    num = PROTO_NUMBERS[pname]
                else:
                    raise RulesError(f"unknown protocol {val!r}")
                kw["proto"], kw["proto_invert"] = num, inv
                proto_name = PROTO_NAMES.get(num, "")
                kw["proto_name"] = proto_name
            inv = False
            continue
        if tok in ("-f", "--fragment"):
            kw["fragment"] = not inv
            inv = False
            i += 1
            continue
        if tok in ("-m", "--match"):
            flush()
            if i + 1 >= n:
                raise RulesError("-m needs a module name")
            cur_mod = args[i + 1]
            i += 2
            continue
        if tok in ("-j", "--jump", "-g", "--goto"):
            flush()
            if tgt_name is not None:
                raise RulesError("more than one target")
            if i + 1 >= n:
                raise RulesError(f"{tok} needs a target")
            tgt_name = args[i + 1]
            tgt_goto = tok in ("-g", "--goto")
            i += 2
            continue
        if tok == "-c" or tok == "--set-counters":
            i += 3
            continue
        if tgt_name is None and cur_mod is None:
            if tok.startswith("--") and proto_name in ("tcp", "udp", "sctp"):
                # implicit protocol match (iptables loads -m <proto> for --dport after -p)
                cur_mod, cur_raw = proto_name, []
            else:
                raise RulesError(f"unexpected argument {tok!r}")
        dest = tgt_raw if tgt_name is not None else cur_raw
        if inv:
            dest.append("!")
            inv = False
        dest.append(tok)
        i += 1
    flush()
    for mod, raw, _imp in mod_list:
        matches.append(_parse_module(mod, raw, family))
    if tgt_name is not None:
        if tgt_goto:
            target = Jump(tgt_name, goto=True)
        elif tgt_name in _KNOWN_TARGETS or tgt_raw or not _looks_like_chain(tgt_name):
            target = _parse_target(tgt_name, tgt_raw, family)
        else:
            target = Jump(tgt_name)
    return ParsedRule(family=family, matches=tuple(matches), target=target,
                      **kw)  # type: ignore[arg-type]


_EXTENSION_TARGETS = frozenset({"LOG", "NFLOG", "NOTRACK", "CT", "CONNMARK", "TPROXY", "TRACE",
                                "CHECKSUM", "TCPMSS", "NFQUEUE", "REDIRECT", "AUDIT", "CLASSIFY",
                                "ULOG", "NETMAP", "SET", "DSCP", "TOS", "TTL", "HL", "SECMARK"})


def _looks_like_chain(name: str) -> bool:
    return name not in _EXTENSION_TARGETS


# --------------------------------------------------------------------------------------------
# Fast save: kube-proxy's common rule shapes reordered straight from the tokens

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_V4_ENDPOINT = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}:([1-9][0-9]{{0,4}})")
_PORT = re.compile(r"[1-9][0-9]{0,4}|0")
_SAVE_PLAIN = re.compile(r"[A-Za-z0-9_-]+")
_PROB_SAVE: dict[str, str] = {}


def _fast_addr(value: str, family: int) -> str | None:
    if family == 4 and _V4.fullmatch(value):
        return value + "/32"  # canonical dotted quad: what iptables-save prints, plus /32
    if "/" in value and '"' not in value:
        try:
            net = _net(value)
        except RulesError:
            return None
        return _addr_save(net) if net.version == family else None
    return None


def _fast_prob(value: str) -> str | None:
    out = _PROB_SAVE.get(value)
    if out is None:
        try:
            p = float(value)
        except ValueError:
            return None
        if not 0.0 <= p <= 1.0:
            return None
        out = _PROB_SAVE[value] = f"{int(p * 0x80000000 + 0.5) / 0x80000000:.11f}"
    return out


def _fast_comment(token: str) -> str:
    value = unquote(token)
    if _SAVE_PLAIN.fullmatch(value):
        return value
    return save_string(value)


def _fast_save(args: tuple[str, ...], family: int) -> str | None:
    """``ParsedRule.save_tokens`` for the shapes kube-proxy writes (header options, comment,
    tcp/udp/sctp ports, random statistic, plain jumps/verdicts, DNAT to ``IP:port``), without
    building the typed rule. None for anything else (the caller parses fully)."""
    src = dst = iif = oif = proto = ""
    matches: list[str] = []
    target = ""
    port_mod = port_name = ""  # the active tcp/udp/sctp module (its --sport/--dport follow)
    port_at = -1
    sport = dport = ""
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
            a = _fast_addr(val, family)
            if a is None:
                return None
            text = f"! {tok} {a}" if inv else f"{tok} {a}"
            if tok == "-d":
                if dst:
                    return None
                dst = text
            else:
                if src:
                    return None
                src = text
        elif tok == "-p":
            if inv or val not in ("tcp", "udp", "sctp") or proto:
                return None
            proto = val
        elif tok == "-i" or tok == "-o":
            if '"' in val or val == "!" or val.startswith("-"):
                return None
            text = f"! {tok} {val}" if inv else f"{tok} {val}"
            if tok == "-i":
                iif = text
            else:
                oif = text
        elif tok == "--dport" or tok == "--sport":
            if not port_mod or not _PORT.fullmatch(val) or int(val) > 65535:
                return None
            text = f"! {tok} {int(val)}" if inv else f"{tok} {int(val)}"
            if tok == "--dport":
                if dport:
                    return None
                dport = text
            else:
                if sport:
                    return None
                sport = text
        elif inv:
            return None
        elif tok == "-m":
            if val == "comment":
                if i + 3 >= n or args[i + 2] != "--comment":
                    return None
                matches.append(f"-m comment --comment {_fast_comment(args[i + 3])}")
                port_mod = ""
                i += 4
                continue
            if val in ("tcp", "udp", "sctp"):
                if port_at >= 0:
                    return None
                port_mod = port_name = val
                port_at = len(matches)
                matches.append("")  # filled in below (its options may come later)
            elif val == "statistic":
                if (i + 5 >= n or args[i + 2] != "--mode" or args[i + 3] != "random"
                        or args[i + 4] != "--probability"):
                    return None
                prob = _fast_prob(args[i + 5])
                if prob is None:
                    return None
                matches.append(f"-m statistic --mode random --probability {prob}")
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
                target = f"-g {val}"
            elif not rest:
                if val == "REJECT":
                    target = ("-j REJECT --reject-with "
                              + ("icmp-port-unreachable" if family == 4
                                 else "icmp6-port-unreachable"))
                elif val in ("ACCEPT", "DROP", "RETURN") or (
                        val not in _KNOWN_TARGETS and _looks_like_chain(val)):
                    target = f"-j {val}"
                else:
                    return None
            elif (val == "DNAT" and len(rest) == 2 and rest[0] == "--to-destination"
                  and family == 4):
                m = _V4_ENDPOINT.fullmatch(rest[1])
                if m is None or int(m.group(1)) > 65535:
                    return None
                target = f"-j DNAT --to-destination {rest[1]}"
            else:
                return None
            break
        else:
            return None
        i += 2
    if port_at >= 0:
        if not proto:
            return None  # "-m tcp" without "-p tcp": let the full parser decide
        matches[port_at] = " ".join(x for x in (f"-m {port_name}", sport, dport) if x)
    elif sport or dport:
        return None
    return " ".join(x for x in (src, dst, iif, oif, f"-p {proto}" if proto else "",
                                *matches, target) if x)


# --------------------------------------------------------------------------------------------
# Rule / Chain / Table / RuleSet

# Generations. A RuleSet's generation (``RuleSet.generation``) is bumped by every change made
# through the methods of the RuleSet, its tables and chains (rules added/removed/replaced,
# chains created/deleted, policies set). The evaluator's per-flow caches are valid only for
# the generation they were made in. Mutating ``Chain.rules`` in place bypasses it: use the
# Table methods. The counter is a one-element list shared by the RuleSet, its tables, their
# chain dicts and chains (``_gen``): a change bumps its own ruleset only, so two clusters in
# one process never invalidate each other's caches. A chain belongs to the table it was last
# put in.

Generation = list[int]  # [n]: one mutable cell, shared


class ChainDict(dict[str, "Chain"]):
    """``Table.chains``: a dict that bumps the generation when chains come and go, and puts
    the chains it receives on its table's generation."""

    __slots__ = ("_gen",)

    def __init__(self, gen: Generation) -> None:
        super().__init__()
        self._gen = gen

    def __setitem__(self, key: str, value: Chain) -> None:
        dict.__setitem__(self, key, value)
        value._gen = self._gen
        self._gen[0] += 1

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        self._gen[0] += 1

    def pop(self, *args: Any) -> Any:
        self._gen[0] += 1
        return dict.pop(self, *args)

    def clear(self) -> None:
        dict.clear(self)
        self._gen[0] += 1

    def update(self, *args: Any, **kw: Any) -> None:
        dict.update(self, *args, **kw)
        for c in self.values():
            c._gen = self._gen
        self._gen[0] += 1

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._gen[0] += 1
        c = dict.setdefault(self, key, default)
        if c is not None:
            c._gen = self._gen
        return c


@contextmanager
def bulk_build() -> Iterator[None]:
    """Build many Rules (a full kube-proxy sync) without paying for the cyclic GC.

    Inside, the collector is disabled: a full build allocates ~10^6 acyclic objects (Rules,
    argument tuples, strings) and generational passes would otherwise triple its cost. On
    exit the collector is restored as it was; nested uses restore it once, at the outermost.
    Moving the long-lived result out of later collections (``gc.freeze()``) is a process-wide
    choice left to entry points: ``knet.heap.settle``.
    """
    was = gc.isenabled()
    depth = _BULK_DEPTH[0]
    _BULK_DEPTH[0] = depth + 1
    gc.disable()
    try:
        yield
    finally:
        _BULK_DEPTH[0] = depth
        if depth == 0 and was:
            gc.enable()


_BULK_DEPTH = [0]

class Rule:
    """One rule: its chain and raw argument tokens (restore order). Parsed lazily, cached.

    Cheap to build: one slotted object of four slots, no ``__dict__`` (kube-proxy's builder
    makes ~320k of them per full sync at 10,000 Services). Share freely between
    tables/nodes. ``_parsed`` caches the typed form (its ``family`` says for which family);
    ``_compiled`` is the evaluator's compiled form (``knet.netfilter.engine``).
    """

    __slots__ = ("chain", "args", "_parsed", "_compiled")

    def __init__(self, chain: str, args: tuple[str, ...] | list[str] = ()) -> None:
        self.chain = chain
        self.args = args if type(args) is tuple else tuple(args)
        self._parsed: ParsedRule | None = None
        self._compiled: object = None

    def parsed(self, family: int = 4) -> ParsedRule:
        p = self._parsed
        if p is None or p.family != family:
            p = self._parsed = parse_args(self.args, family)
        return p

    @property
    def text(self) -> str:
        """The rule as an iptables-restore line (``-A CHAIN args``)."""
        return f"-A {self.chain} {' '.join(self.args)}" if self.args else f"-A {self.chain}"

    def save_text(self, family: int = 4) -> str:
        fast = _fast_save(self.args, family)
        if fast is not None:
            return f"-A {self.chain} {fast}" if fast else f"-A {self.chain}"
        toks = self.parsed(family).save_tokens()
        return f"-A {self.chain} {' '.join(toks)}" if toks else f"-A {self.chain}"

    def __repr__(self) -> str:
        return f"<Rule {self.text}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self.chain == other.chain and self.args == other.args

    def __hash__(self) -> int:
        return hash((self.chain, self.args))


class Chain:
    """A chain: name, policy (built-ins only) and rules. Mutate through Table/Chain methods
    so that the evaluator's per-chain index is invalidated (``version`` bumps)."""

    __slots__ = ("name", "_policy", "rules", "seqs", "version", "declared", "_index", "_gen")

    def __init__(self, name: str, policy: str | None = None, declared: bool = True) -> None:
        self._gen: Generation = [0]  # its table's, once in one
        self.name = name
        self._policy = policy  # "ACCEPT"/"DROP" for built-ins, None for user chains
        self.rules: list[Rule] = []
        self.seqs: list[int] = []  # restore-text position of each rule within its table
        self.version = 0
        self.declared = declared  # written as a ":CHAIN" line in restore text
        self._index: object = None

    @property
    def policy(self) -> str | None:
        return self._policy

    @policy.setter
    def policy(self, value: str | None) -> None:
        self._policy = value
        self._gen[0] += 1

    @property
    def builtin(self) -> bool:
        return self._policy is not None

    def _touch(self) -> None:
        self.version += 1
        self._index = None
        self._gen[0] += 1

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"<Chain {self.name} {self.policy or '-'} rules={len(self.rules)}>"


class Table:
    """One table: chains in declaration order (built-ins always present)."""

    __slots__ = ("name", "family", "chains", "_seq", "stale", "version", "_gen")

    def __init__(self, name: str, family: int = 4, gen: Generation | None = None) -> None:
        self.name = name
        self.family = family
        self._gen: Generation = gen if gen is not None else [0]  # its ruleset's
        self.chains: dict[str, Chain] = ChainDict(self._gen)
        for b in BUILTIN_CHAINS.get(name, ()):
            self.chains[b] = Chain(b, "ACCEPT", declared=False)
        self._seq = 0
        self.stale: list[tuple[int, str]] = []  # (seq, chain): "-X CHAIN" in restore text
        self.version = 0

    # -- chains
    def chain(self, name: str) -> Chain:
        try:
            return self.chains[name]
        except KeyError:
            raise RulesError(f"chain {name!r} does not exist in table {self.name}") from None

    def declare(self, name: str, policy: str | None = None) -> Chain:
        """``:NAME POLICY`` semantics: create, or flush if it exists; mark declared."""
        c = self.chains.get(name)
        if c is None:
            c = Chain(name, policy if name in BUILTIN_CHAINS.get(self.name, ()) else None)
            self.chains[name] = c
        else:
            if c.rules:
                c.rules, c.seqs = [], []
            c._touch()
            if policy is not None and c.builtin:
                c.policy = policy
        c.declared = True
        self.version += 1
        return c

    def new_chain(self, name: str) -> Chain:
        """``-N``: create a user chain (error if it exists)."""
        if name in self.chains:
            raise RulesError(f"chain {name} already exists")
        return self.declare(name)

    def delete_chain(self, name: str, *, record: bool = False) -> None:
        """``-X``; with ``record`` the restore text shows ``:NAME`` + ``-X NAME`` (stale chain)."""
        c = self.chain(name)
        if c.builtin:
            raise RulesError(f"cannot delete built-in chain {name}")
        del self.chains[name]
        c._touch()
        if record:
            self.stale.append((self._seq, name))
            self._seq += 1
        self.version += 1

    def flush(self, name: str | None = None) -> None:
        for c in ([self.chain(name)] if name else list(self.chains.values())):
            c.rules, c.seqs = [], []
            c._touch()
        self.version += 1

    def replace_chain(self, name: str, rules: Iterable[Rule]) -> Chain:
        """Create or replace one chain's rules (partial sync); other chains are untouched."""
        c = self.chains.get(name) or self.declare(name)
        c.rules, c.seqs = [], []
        for r in rules:
            c.rules.append(r)
            c.seqs.append(self._seq)
            self._seq += 1
        c._touch()
        self.version += 1
        return c

    # -- rules
    def append(self, rule: Rule) -> None:
        c = self.chains.get(rule.chain)
        if c is None:
            raise RulesError(f"chain {rule.chain!r} does not exist in table {self.name}")
        c.rules.append(rule)
        c.seqs.append(self._seq)
        self._seq += 1
        c._touch()

    def extend(self, rules: Iterable[Rule]) -> None:
        chains = self.chains
        seq = self._seq
        touched = set()
        for r in rules:
            c = chains.get(r.chain)
            if c is None:
                self._seq = seq
                raise RulesError(f"chain {r.chain!r} does not exist in table {self.name}")
            c.rules.append(r)
            c.seqs.append(seq)
            seq += 1
            touched.add(c)
        self._seq = seq
        for c in touched:
            c._touch()
        self.version += 1

    def insert(self, rule: Rule, position: int = 1) -> None:
        """``-I CHAIN [position]`` (1-based)."""
        c = self.chain(rule.chain)
        if not 1 <= position <= len(c.rules) + 1:
            raise RulesError(f"index of insertion too big: {position}")
        c.rules.insert(position - 1, rule)
        c.seqs.insert(position - 1, self._seq)
        self._seq += 1
        c._touch()
        self.version += 1

    def delete_rule(self, chain: str, position: int) -> None:
        c = self.chain(chain)
        if not 1 <= position <= len(c.rules):
            raise RulesError(f"index of deletion too big: {position}")
        del c.rules[position - 1]
        del c.seqs[position - 1]
        c._touch()
        self.version += 1

    def rule_count(self) -> int:
        return sum(len(c.rules) for c in self.chains.values())

    def _adopt(self, gen: Generation) -> None:
        """Move this table (its chain dict and chains) onto ``gen``."""
        self._gen = gen
        chains = self.chains
        if isinstance(chains, ChainDict):
            chains._gen = gen
        for c in chains.values():
            c._gen = gen
        gen[0] += 1

    def __repr__(self) -> str:
        return f"<Table {self.name} chains={len(self.chains)} rules={self.rule_count()}>"


@dataclass(slots=True)
class RuleSet:
    """A node's tables for one family: ``{"filter": Table, "nat": Table, ...}``."""
    family: int = 4
    tables: dict[str, Table] = field(default_factory=dict)
    _gen: Generation = field(default_factory=lambda: [0], repr=False, compare=False)

    def __post_init__(self) -> None:
        for t in self.tables.values():
            t._adopt(self._gen)

    @property
    def generation(self) -> int:
        """Bumped by every change to this ruleset's tables, chains and rules."""
        return self._gen[0]

    def bump(self) -> None:
        """Invalidate what was cached about this ruleset (e.g. the node's addresses changed)."""
        self._gen[0] += 1

    def table(self, name: str) -> Table:
        t = self.tables.get(name)
        if t is None:
            t = self.tables[name] = Table(name, self.family, self._gen)
            self._gen[0] += 1
        return t

    def __getitem__(self, name: str) -> Table:
        return self.tables[name]

    def __contains__(self, name: object) -> bool:
        return name in self.tables

    def apply(self, delta: RuleSet) -> None:
        """Apply another RuleSet as ``iptables-restore --noflush`` would: every declared chain
        of ``delta`` replaces (or creates) this chain; recorded stale chains are deleted;
        rules of undeclared (built-in) chains are appended."""
        for tname, dt in delta.tables.items():
            t = self.table(tname)
            for c in dt.chains.values():
                if c.declared:
                    nc = t.replace_chain(c.name, c.rules)
                    if c.builtin:
                        nc.policy = c.policy
                elif c.rules:
                    t.extend(c.rules)
            for _seq, name in dt.stale:
                if name in t.chains and not t.chains[name].builtin:
                    t.delete_chain(name)

    def rule_count(self) -> int:
        return sum(t.rule_count() for t in self.tables.values())


# --------------------------------------------------------------------------------------------
# Renderers

def render_restore(ruleset: RuleSet, *, include_builtin: bool = False) -> str:
    """kube-proxy's iptables-restore input: per table ``*name``, ``:CHAIN - [0:0]`` lines in
    declaration order, rules in the order they were written, ``-X`` for recorded stale chains,
    ``COMMIT``. Built-in chains appear only if declared (or with ``include_builtin``)."""
    out: list[str] = []
    for t in ruleset.tables.values():
        chains = [c for c in t.chains.values() if c.declared or (include_builtin and c.builtin)]
        if include_builtin:
            chains.sort(key=lambda c: not c.builtin)  # built-ins first, stable otherwise
        out.append(f"*{t.name}")
        for c in chains:
            out.append(f":{c.name} {c.policy or '-'} [0:0]")
        for _seq, name in t.stale:
            out.append(f":{name} - [0:0]")
        streams: list[Iterator[tuple[int, str]]] = [
            zip(c.seqs, (r.text for r in c.rules)) for c in chains if c.rules]
        if t.stale:
            streams.append(iter([(s, f"-X {n}") for s, n in t.stale]))
        out.extend(line for _s, line in heapq.merge(*streams, key=lambda x: x[0]))
        out.append("COMMIT")
    return "\n".join(out) + "\n"


SAVE_HEADER_DATE = "Thu Jan  1 00:00:00 1970"


def render_save(ruleset: RuleSet, *, variant: str = "nft", header: bool = True,
                counters: bool = False) -> str:
    """What ``iptables-save`` (1.8.9) prints after loading the rules (see module docstring).

    Header/footer lines start with ``#`` (the date is fixed: no wall clock). ``variant``
    picks the banner (``"nft"``: ``iptables-nft-save v1.8.9 (nf_tables)``, ``"legacy"``:
    ``iptables-save v1.8.9``). Tables are printed in the RuleSet's order (a real legacy
    iptables-save prints them in kernel registration order).
    """
    prog = "ip6tables" if ruleset.family == 6 else "iptables"
    banner = (f"{prog}-nft-save v1.8.9 (nf_tables)" if variant == "nft"
              else f"{prog}-save v1.8.9")
    out: list[str] = []
    fam = ruleset.family
    for t in ruleset.tables.values():
        if header:
            out.append(f"# Generated by {banner} on {SAVE_HEADER_DATE}")
        out.append(f"*{t.name}")
        builtin = [t.chains[b] for b in BUILTIN_CHAINS.get(t.name, ()) if b in t.chains]
        user = sorted((c for c in t.chains.values() if not c.builtin), key=lambda c: c.name)
        for c in builtin:
            out.append(f":{c.name} {c.policy} [0:0]")
        for c in user:
            out.append(f":{c.name} - [0:0]")
        for c in builtin + user:
            for r in c.rules:
                line = r.save_text(fam)
                out.append(f"[0:0] {line}" if counters else line)
        out.append("COMMIT")
        if header:
            out.append(f"# Completed on {SAVE_HEADER_DATE}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Parser (iptables-restore input and iptables-save output)

def parse_rules(text: str, family: int | None = None, *, validate: bool = True) -> RuleSet:
    """Parse restore input or save output (``-N -A -I -D -X -F -P``, ``:CHAIN`` lines,
    ``[n:m]`` counters, ``#`` comments) into a RuleSet. Errors: RulesError naming the line.

    ``family`` defaults to the first address family seen (4 if none). Every rule is parsed
    eagerly (``validate``) so that a bad rule is reported with its line number.
    """
    if family is None:
        family = _guess_family(text)
    rs = RuleSet(family)
    table: Table | None = None
    where: dict[int, int] = {}  # id(rule) → its line, for errors found at COMMIT
    for lineno, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("*"):
                if table is not None:
                    raise RulesError(f"table {table.name} not committed before *{line[1:]}")
                name = line[1:].strip()
                if name not in BUILTIN_CHAINS:
                    raise RulesError(f"unknown table {name!r}")
                table = rs.table(name)
                continue
            if line == "COMMIT":
                if table is None:
                    raise RulesError("COMMIT outside a table")
                _check_jumps(table, where)
                table = None
                continue
            if table is None:
                raise RulesError("rule outside a table (missing *table line)")
            if line.startswith(":"):
                parts = line[1:].split()
                if not parts:
                    raise RulesError("empty chain name")
                name = parts[0]
                policy = parts[1] if len(parts) > 1 else "-"
                builtin = name in BUILTIN_CHAINS[table.name]
                # iptables-restore: "-" on a built-in chain keeps its current policy (kube-proxy's
                # own test dumps declare ":INPUT - [0:0]")
                if builtin and policy not in ("ACCEPT", "DROP", "-"):
                    raise RulesError(f"bad policy {policy!r} for built-in chain {name}")
                if not builtin and policy != "-":
                    raise RulesError(f"user chain {name} cannot have policy {policy}")
                table.declare(name, policy if builtin and policy != "-" else None)
                continue
            if line.startswith("["):  # "[pkts:bytes] -A ..." (iptables-save -c)
                end = line.find("]")
                if end < 0:
                    raise RulesError("bad counters")
                line = line[end + 1:].strip()
            toks = split_tokens(line)
            if not toks:
                raise RulesError("counters without a command")
            cmd = toks[0]
            if cmd in ("-A", "--append", "-I", "--insert", "-D", "--delete"):
                if len(toks) < 2:
                    raise RulesError(f"{cmd} needs a chain")
                chain = toks[1]
                args = toks[2:]
                pos = 1
                if cmd in ("-I", "--insert", "-D", "--delete") and args and args[0].isdigit():
                    pos = int(args[0])
                    args = args[1:]
                    if cmd in ("-D", "--delete"):
                        table.delete_rule(chain, pos)
                        continue
                if chain not in table.chains:
                    raise RulesError(f"chain {chain!r} does not exist")
                rule = Rule(chain, tuple(args))
                if validate:
                    rule.parsed(family)
                where[id(rule)] = lineno
                if cmd in ("-A", "--append"):
                    table.append(rule)
                elif cmd in ("-I", "--insert"):
                    table.insert(rule, pos)
                else:
                    c = table.chain(chain)
                    for i, r in enumerate(c.rules):
                        if r.args == rule.args:
                            table.delete_rule(chain, i + 1)
                            break
                    else:
                        raise RulesError("bad rule (does a matching rule exist in that chain?)")
            elif cmd in ("-N", "--new-chain"):
                table.new_chain(_arg(toks, cmd))
            elif cmd in ("-X", "--delete-chain"):
                if len(toks) > 1:
                    table.delete_chain(toks[1], record=True)  # kept for restore round-trips
                else:
                    for n in [c.name for c in table.chains.values() if not c.builtin]:
                        table.delete_chain(n)
            elif cmd in ("-F", "--flush"):
                table.flush(toks[1] if len(toks) > 1 else None)
            elif cmd in ("-P", "--policy"):
                if len(toks) < 3:
                    raise RulesError("-P needs a chain and a policy")
                c = table.chain(toks[1])
                if not c.builtin or toks[2] not in ("ACCEPT", "DROP"):
                    raise RulesError(f"bad policy {toks[2]!r} for chain {toks[1]}")
                c.policy = toks[2]
            else:
                raise RulesError(f"unknown command {cmd!r}")
        except RulesError as e:
            raise RulesError(f"line {getattr(e, 'lineno', lineno)}: {e}") from None
        except (ValueError, IndexError, KeyError, TypeError) as e:  # foreign input: never escape
            raise RulesError(f"line {lineno}: cannot parse {line[:60]!r}: {e}") from None
    if table is not None:
        raise RulesError(f"line {lineno}: table {table.name} not committed (missing COMMIT)")
    return rs


def _arg(toks: list[str], cmd: str) -> str:
    if len(toks) < 2:
        raise RulesError(f"{cmd} needs a chain name")
    return toks[1]


# knet's evaluator follows at most this many nested jumps (engine.py raises beyond it); the
# kernel has no such bound for acyclic tables, but kube-proxy's deepest path is 5.
MAX_JUMP_DEPTH = 64


def _located(message: str, lineno: int | None) -> RulesError:
    e = RulesError(message)
    if lineno is not None:
        e.lineno = lineno  # type: ignore[attr-defined]  # read by parse_rules' handler
    return e


def _check_jumps(table: Table, where: Mapping[int, int] | None = None) -> None:
    """COMMIT-time checks of the jump graph, as the kernel's ``mark_source_chains`` does:
    every target exists, no loop (the kernel answers ELOOP and iptables-restore fails), and
    no path longer than ``MAX_JUMP_DEPTH`` (knet's bound). Iterative: any depth is safe."""
    where = where or {}
    edges: dict[str, list[tuple[str, Rule]]] = {}
    for c in table.chains.values():
        out = edges.setdefault(c.name, [])
        for r in c.rules:
            p = r._parsed
            if p is not None and isinstance(p.target, Jump):
                if p.target.chain not in table.chains:
                    raise _located(f"chain {c.name}: jump to unknown chain {p.target.chain!r}",
                                   where.get(id(r)))
                out.append((p.target.chain, r))
    height: dict[str, int] = {}  # longest jump path below a chain
    for root in edges:
        if root in height:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path: dict[str, Rule | None] = {root: None}
        while stack:
            name, i = stack[-1]
            out = edges[name]
            if i < len(out):
                stack[-1] = (name, i + 1)
                sub, rule = out[i]
                if sub in on_path:
                    names = [n for n, _ in stack] + [sub]
                    loop = " → ".join(names[names.index(sub):])
                    raise _located(f"chain loop {loop} (the kernel refuses it: "
                                   "Too many levels of symbolic links)", where.get(id(rule)))
                if sub not in height:
                    on_path[sub] = rule
                    stack.append((sub, 0))
                continue
            stack.pop()
            del on_path[name]
            height[name] = max((height[s] + 1 for s, _ in out), default=0)
            if height[name] > MAX_JUMP_DEPTH:
                rule = out[max(range(len(out)), key=lambda k: height[out[k][0]])][1]
                raise _located(f"chain {name}: jumps nest {height[name]} deep, beyond knet's "
                               f"limit of {MAX_JUMP_DEPTH}", where.get(id(rule)))


def _guess_family(text: str) -> int:
    for tok in ("-s ", "-d ", "--to-destination ", "--to-source "):
        i = text.find(tok)
        while i >= 0:
            val = text[i + len(tok):].split(None, 1)[0] if text[i + len(tok):].strip() else ""
            if val and val[0] == "[" or (":" in val.split("/")[0] and "." not in val):
                return 6
            if val and val[0].isdigit():
                return 4
            i = text.find(tok, i + 1)
    return 4
