"""answer(view, query_bytes, client) -> reply bytes: CoreDNS with the kubernetes plugin, sans IO.

Invariants:
- Pure apart from the view's answer cache and its seeded RNG: same view state + same bytes ⇒
  same reply (loadbalance variants are drawn from the view's ``random.Random``).
- Never raises. Unparsable headers and responses are dropped (None); malformed queries get
  FORMERR, unsupported opcodes NOTIMP (miekg/dns server.go); internal failures SERVFAIL.
- The plugin chain runs in CoreDNS's fixed ``plugin.cfg`` order, whatever the Corefile order:
  loadbalance → cache → rewrite → hosts → kubernetes → forward. ``forward`` never leaves the
  process: it answers from ``ClusterConfig.external_hosts`` and SERVFAILs otherwise (a cluster
  without internet; reference §9).
- Kubernetes answers follow plugin/kubernetes (handler.go, kubernetes.go, parse.go, reverse.go,
  ns.go) and plugin/backend_lookup.go at CoreDNS 1.14.x; each function names its Go original.
- Cached replies are keyed by the query bytes after the ID (+ transport), so EDNS options,
  flags and 0x20 case all take part in the key; the hit path patches the ID (and SOA serial).
"""

from __future__ import annotations

import ipaddress
import math
import re
import struct
from dataclasses import dataclass, field, replace
from typing import Any

from dnslib import A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT, DNSLabel, RR

from knet.dns.corefile import (CacheConfig, ForwardConfig, HostsConfig, KubernetesConfig, PodsMode,
                               RewriteKind, RewriteRule, ServerBlock)
from knet.dns.view import CacheEntry, DnsView, EpAddr, SvcInfo, Token, canon_ip
from knet.dns.wire import (AA, BADVERS, CD, FORMERR, MAX_MSG_SIZE, MIN_UDP_SIZE, NOERROR, NOTIMP,
                           NXDOMAIN, QR, RA, RD, REFUSED, SERVFAIL, SUPPORTED_EDNS_OPTIONS, T_A,
                           T_AAAA, T_AXFR, T_CNAME, T_IXFR, T_MX, T_NS, T_OPT, T_PTR, T_SOA, T_SRV,
                           T_TXT, TC, AD, Labels, Message, Query, WireError, is_subdomain, lower,
                           name_text, opt_rr, parse_header, parse_query, reply_to, text_labels)

DNS_SCHEMA_VERSION = "1.1.0"
DNS_VERSION_TTL = 28800
MAX_CNAME_CHAIN = 10          # CoreDNS 1.14 (7 in 1.12.0)
EXTERNAL_TTL = 300            # TTL of answers from the emulated upstream (external hosts)
MAX_LOOKUP_DEPTH = 8
_SVC, _POD = b"svc", b"pod"
_IN_ADDR, _IP6, _ARPA = b"in-addr", b"ip6", b"arpa"


# --- results -----------------------------------------------------------------------------------------

@dataclass(slots=True)
class Result:
    rcode: int
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    aa: bool = False
    ra: bool = False
    tc: bool = False
    written: bool = True  # False: the plugin returned an rcode; the server writes a bare reply


NEXT = None  # a plugin passing the query down the chain (plugin.NextOrFailure)


@dataclass(slots=True)
class Ctx:
    view: DnsView
    deps: set[Token]
    depth: int = 0


# --- helpers -------------------------------------------------------------------------------------------

_HOST_TYPES: dict[str, tuple[int, Any]] = {}


def host_type(host: str) -> tuple[int, Any]:
    """msg.Service.HostType: A / AAAA for an IP (IPv4-mapped IPv6 counts as A), else CNAME."""
    r = _HOST_TYPES.get(host)
    if r is not None:
        return r
    try:
        if "%" in host:
            raise ValueError(host)
        ip = ipaddress.ip_address(host)
        if ip.version == 6 and ip.ipv4_mapped is not None:
            r = (T_A, str(ip.ipv4_mapped))
        else:
            r = (T_A if ip.version == 4 else T_AAAA, str(ip))
    except ValueError:
        r = (T_CNAME, None)
    if len(_HOST_TYPES) < 200_000:
        _HOST_TYPES[host] = r
    return r


def _fold(a: str, b: str) -> bool:
    """plugin/kubernetes match(): an empty request part matches everything; EqualFold."""
    return a == "" or a.lower() == b.lower()


def _s(label: bytes) -> str:
    return label.decode("latin-1")


def _b(text: str) -> bytes:
    return text.encode("latin-1", "replace")


def _fqdn_labels(host: str) -> Labels:
    return text_labels(host)


def _addr_rr(owner: Labels, rtype: int, ip: str, ttl: int) -> RR:
    return RR(DNSLabel(owner), rtype, 1, ttl, A(ip) if rtype == T_A else AAAA(ip))


def extract_address_from_reverse(name: Labels) -> str | None:
    """dnsutil.ExtractAddressFromReverse (lower-case labels in, canonical IP or None out)."""
    if len(name) > 2 and name[-2:] == (_IN_ADDR, _ARPA):
        parts = [_s(x) for x in reversed(name[:-2])]
        try:
            ip = ipaddress.ip_address(".".join(parts))
        except ValueError:
            return None
        return str(ip) if ip.version == 4 else None
    if len(name) > 2 and name[-2:] == (_IP6, _ARPA):
        nib = [_s(x) for x in reversed(name[:-2])]
        if len(nib) != 32 or any(len(x) != 1 for x in nib):
            return None
        groups = ["".join(nib[i:i + 4]) for i in range(0, 32, 4)]
        try:
            return str(ipaddress.IPv6Address(":".join(groups)))
        except ValueError:
            return None
    return None


def is_reverse(name: Labels) -> bool:
    return len(name) > 2 and name[-2:] in ((_IN_ADDR, _ARPA), (_IP6, _ARPA))


def _match_zone(zones: list[Labels], lname: Labels) -> Labels | None:
    """plugin.Zones.Matches: the longest zone that ``lname`` is in."""
    best: Labels | None = None
    for z in zones:
        if is_subdomain(lname, z) and (best is None or len(z) > len(best)):
            best = z
    return best


def _fall_through(fall: list[Labels] | None, lname: Labels) -> bool:
    if fall is None:
        return False
    return not fall or _match_zone(fall, lname) is not None


# --- kubernetes plugin -------------------------------------------------------------------------------

@dataclass(slots=True)
class _Rec:
    """msg.Service: Host is an IP or a name; ``target`` is msg.Domain(Key)."""

    host: str
    port: int
    ttl: int
    target: Labels = ()
    text: str | None = None


@dataclass(slots=True)
class _Q:
    """request.Request reduced: the question as the plugin sees it."""

    qlabels: Labels      # QName(), case as sent
    lname: Labels        # Name(), lower case
    zone: Labels         # the matched zone as spelled in the query (state.Zone)
    zl: Labels           # the matched zone, lower case


@dataclass(slots=True)
class _Req:
    """parse.go recordRequest."""

    pod_or_svc: str = ""
    namespace: str = ""
    service: str = ""
    endpoint: str = ""
    port: str = ""
    protocol: str = ""


class _Invalid(Exception):
    pass


def _strip_underscore(s: str) -> str:
    return s[1:] if s.startswith("_") else s


def parse_request(lname: Labels, zl: Labels) -> _Req:
    """parse.go parseRequest. Raises _Invalid (errInvalidRequest → NXDOMAIN)."""
    base = lname[: len(lname) - len(zl)]
    r = _Req()
    if not base or base in ((_SVC,), (_POD,)):
        return r
    segs = [_s(x) for x in base]
    last = len(segs) - 1
    r.pod_or_svc = segs[last]
    if r.pod_or_svc not in ("svc", "pod"):
        raise _Invalid()
    last -= 1
    if last < 0:
        return r
    r.namespace = segs[last]
    last -= 1
    if last < 0:
        return r
    r.service = segs[last]
    last -= 1
    if last < 0:
        return r
    if last == 0:
        r.endpoint = segs[0]
    elif last == 1:
        r.protocol = _strip_underscore(segs[1])
        r.port = _strip_underscore(segs[0])
    else:
        raise _Invalid()
    return r


def endpoint_hostname(addr: EpAddr, endpoint_pod_names: bool) -> str:
    """kubernetes.go endpointHostname."""
    if addr.hostname:
        return addr.hostname
    if endpoint_pod_names and addr.target_ref_name:
        return addr.target_ref_name
    if "." in addr.ip:
        return addr.ip.replace(".", "-")
    if ":" in addr.ip:
        h = addr.ip.replace(":", "-")
        return h + "0" if h.endswith("-") else h
    return ""


class Kubernetes:
    def __init__(self, cfg: KubernetesConfig) -> None:
        self.cfg = cfg
        self.ttl = cfg.ttl
        self.zones = [text_labels(z) for z in cfg.zones]
        fwd = [z for z in self.zones if not (z and z[-1] == _ARPA)]
        self.primary = fwd[0] if fwd else (self.zones[0] if self.zones else ())
        self.fall = None if cfg.fallthrough is None else [text_labels(z) for z in cfg.fallthrough]

    # handler.go ServeDNS
    def serve(self, ctx: Ctx, qlabels: Labels, qtype: int) -> Result | None:
        lname = lower(qlabels)
        zl = _match_zone(self.zones, lname)
        if zl is None:
            return NEXT
        st = _Q(qlabels, lname, qlabels[len(qlabels) - len(zl):] if zl else (), zl)
        records: list[RR] = []
        extra: list[RR] = []
        err = False
        if qtype in (T_AXFR, T_IXFR):
            return Result(REFUSED, written=False)
        if qtype in (T_A, T_AAAA):
            records, err = self.address(ctx, st, qtype, [])
        elif qtype == T_TXT:
            records, err = self.txt(ctx, st)
        elif qtype == T_CNAME:
            records, err = self.cname(ctx, st)
        elif qtype == T_PTR:
            records, err = self.ptr(ctx, st)
        elif qtype == T_SRV:
            records, extra, err = self.srv(ctx, st)
        elif qtype == T_SOA:
            if lname == zl:
                records = [self.soa(ctx, st.zone)]
        elif qtype == T_NS and lname == zl:
            records, extra, err = self.ns(ctx, st)
        else:
            # "Do a fake A lookup, so we can distinguish between NODATA and NXDOMAIN" (MX too)
            _, err = self.address(ctx, st, T_A, [])
        if err:
            if _fall_through(self.fall, lname):
                return NEXT
            return Result(NXDOMAIN, authority=[self.soa(ctx, st.zone)], aa=True)
        if not records:
            return Result(NOERROR, authority=[self.soa(ctx, st.zone)], aa=True)
        return Result(NOERROR, answer=records, additional=extra, aa=True)

    # backend_lookup.go SOA
    def soa(self, ctx: Ctx, zone: Labels) -> RR:
        ttl = self.ttl
        return RR(DNSLabel(zone), T_SOA, 1, min(ttl, 300),
                  SOA(DNSLabel((b"ns", b"dns") + zone), DNSLabel((b"hostmaster",) + zone),
                      (ctx.view.serial & 0xFFFFFFFF, 7200, 1800, 86400, ttl)))

    # kubernetes.go Services
    def services(self, ctx: Ctx, st: _Q, qtype: int) -> tuple[list[_Rec], bool]:
        if qtype == T_TXT:
            base = st.lname[: len(st.lname) - len(st.zl)]
            if base == (b"dns-version",):
                return [_Rec(host="", port=0, ttl=DNS_VERSION_TTL, text=DNS_SCHEMA_VERSION)], False
            recs, _ = self.records(ctx, st)
            if recs:
                return [], False
            return [], True
        if qtype == T_NS:
            return [_Rec(host=ip, port=0, ttl=self.ttl, target=name)
                    for name, ip in self.ns_addrs(ctx, st.zone)], False
        if st.lname == (b"ns", b"dns") + st.zl:  # isDefaultNS
            want = T_A if qtype == T_A else (T_AAAA if qtype == T_AAAA else 0)
            return [_Rec(host=ip, port=0, ttl=self.ttl, target=st.qlabels)
                    for _, ip in self.ns_addrs(ctx, st.zone) if host_type(ip)[0] == want], False
        recs, err = self.records(ctx, st)
        if qtype != T_SRV:
            return recs, err
        return [r for r in recs if host_type(r.host)[0] != T_CNAME], err

    # kubernetes.go Records
    def records(self, ctx: Ctx, st: _Q) -> tuple[list[_Rec], bool]:
        try:
            r = parse_request(st.lname, st.zl)
        except _Invalid:
            return [], True
        if not r.pod_or_svc:
            return [], False
        if is_reverse(st.lname):
            return [], True
        if not self.namespace_exposed(ctx, r.namespace):
            return [], True
        if r.pod_or_svc == "pod":
            return self.find_pods(ctx, r, st.zone)
        return self.find_services(ctx, r, st.zone)

    def namespace_exposed(self, ctx: Ctx, ns: str) -> bool:
        if self.cfg.namespaces and ns not in self.cfg.namespaces:
            return False
        ctx.deps.add(("ns", ns))
        return ctx.view.namespace_exists(ns)

    def _ready_addresses(self, ctx: Ctx, svc: SvcInfo):
        if self.cfg.noendpoints:
            return []
        return ctx.view.slices_of(svc.namespace, svc.name)

    # kubernetes.go findPods
    def find_pods(self, ctx: Ctx, r: _Req, zone: Labels) -> tuple[list[_Rec], bool]:
        if self.cfg.pods == PodsMode.DISABLED:
            return [], True
        if not self.namespace_exposed(ctx, r.namespace):
            return [], True
        podname = r.service
        if not podname:
            return [], False
        ip = podname.replace("-", ".") if podname.count("-") == 3 and "--" not in podname else podname.replace("-", ":")
        target = (_b(podname), _b(r.namespace), _POD) + zone
        if self.cfg.pods == PodsMode.INSECURE:
            if host_type(ip)[0] == T_CNAME:
                return [], True
            return [_Rec(host=ip, port=0, ttl=self.ttl, target=target)], False
        ctx.deps.add(("podip", ip))
        out = [_Rec(host=ip, port=0, ttl=self.ttl, target=target)
               for p in ctx.view.pods_by_ip(ip)
               if not p.terminating and _fold(r.namespace, p.namespace)]
        return out, not out

    # kubernetes.go findServices
    def find_services(self, ctx: Ctx, r: _Req, zone: Labels) -> tuple[list[_Rec], bool]:
        if not self.namespace_exposed(ctx, r.namespace):
            return [], True
        if not r.service:
            return [], False
        ctx.deps.add(("svc", r.namespace, r.service))
        svc = ctx.view.service(r.namespace, r.service)
        if svc is None:
            return [], True
        err = True
        out: list[_Rec] = []
        base = (_b(svc.name), _b(svc.namespace), _SVC) + zone
        if (self.cfg.ignore_empty_service and svc.type != "ExternalName" and not svc.headless
                and not any(sl.addresses for sl in self._ready_addresses(ctx, svc))):
            return [], True
        if svc.type == "ExternalName":
            # External services have no endpoints or ports: x.<svc>… and _p._t.<svc>… are
            # NXDOMAIN (reference §2 table).
            if r.endpoint or r.port or r.protocol:
                return [], True
            rec = _Rec(host=svc.external_name, port=0, ttl=self.ttl, target=base)
            if host_type(svc.external_name)[0] == T_CNAME:
                return [rec], False
            return [], True
        if svc.headless or r.endpoint:
            epn = self.cfg.endpoint_pod_names
            for sl in self._ready_addresses(ctx, svc):
                for addr in sl.addresses:
                    hn = endpoint_hostname(addr, epn)
                    if r.endpoint and not _fold(r.endpoint, hn):
                        continue
                    for port, pname, proto in sl.ports:
                        if not (_fold(r.port, pname) and _fold(r.protocol, proto)):
                            continue
                        out.append(_Rec(host=addr.ip, port=port, ttl=self.ttl,
                                        target=(_b(hn),) + base))
                        err = False
            return out, err
        for port, pname, proto in svc.ports:
            if not (_fold(r.port, pname) and _fold(r.protocol, proto)):
                continue
            err = False
            for ip in svc.cluster_ips:
                out.append(_Rec(host=ip, port=port, ttl=self.ttl, target=base))
        return out, err

    # backend_lookup.go A / AAAA
    def address(self, ctx: Ctx, st: _Q, want: int, previous: list[RR]) -> tuple[list[RR], bool]:
        svcs, err = self.services(ctx, st, want)
        if err:
            return [], True
        out: list[RR] = []
        dup: set[str] = set()
        for s in svcs:
            what, ip = host_type(s.host)
            if what == T_CNAME:
                target = _fqdn_labels(s.host)
                tl = lower(target)
                if is_subdomain(tl, st.lname) and (tl == st.lname or len(tl) > len(st.lname)):
                    continue  # x CNAME x (or below x) is a direct loop
                if len(previous) >= MAX_CNAME_CHAIN:
                    continue
                new = RR(DNSLabel(st.qlabels), T_CNAME, 1, s.ttl, CNAME(DNSLabel(target)))
                if any(p.rtype == T_CNAME and lower(p.rname.label) == lower(st.qlabels)
                       and lower(p.rdata.label.label) == tl for p in previous):
                    continue
                if is_subdomain(tl, st.zl):
                    st1 = _Q(target, tl, st.zone, st.zl)
                    nxt, e1 = self.address(ctx, st1, want, previous + [new])
                    if not e1 and nxt:
                        out.append(new)
                        out.extend(nxt)
                    continue
                upstream = lookup(ctx, target, want)
                out.append(new)
                out.extend(upstream)
                continue
            if what == want and s.host not in dup:
                dup.add(s.host)
                out.append(_addr_rr(st.qlabels, want, ip, s.ttl))
        return out, False

    # backend_lookup.go TXT
    def txt(self, ctx: Ctx, st: _Q) -> tuple[list[RR], bool]:
        svcs, err = self.services(ctx, st, T_TXT)
        if err:
            return [], True
        return [RR(DNSLabel(st.qlabels), T_TXT, 1, s.ttl, TXT(s.text))
                for s in svcs if s.text is not None], False

    # backend_lookup.go CNAME
    def cname(self, ctx: Ctx, st: _Q) -> tuple[list[RR], bool]:
        svcs, err = self.services(ctx, st, T_CNAME)
        if err:
            return [], True
        if svcs and host_type(svcs[0].host)[0] == T_CNAME:
            s = svcs[0]
            return [RR(DNSLabel(st.qlabels), T_CNAME, 1, s.ttl,
                       CNAME(DNSLabel(_fqdn_labels(s.host))))], False
        return [], False

    # backend_lookup.go PTR + reverse.go Reverse / serviceRecordForIP
    def ptr(self, ctx: Ctx, st: _Q) -> tuple[list[RR], bool]:
        ip = extract_address_from_reverse(st.lname)
        if ip is None:
            _, err = self.records(ctx, st)
            return [], err
        ctx.deps.add(("ip", ip))
        names: list[Labels] = []
        for svc in ctx.view.services_by_cluster_ip(ip):
            if self.cfg.namespaces and not self.namespace_exposed(ctx, svc.namespace):
                continue
            names = [(_b(svc.name), _b(svc.namespace), _SVC) + self.primary]
            break
        if not names:
            for sl in ctx.view.slices_by_ip(ip):
                if self.cfg.noendpoints:
                    break
                if self.cfg.namespaces and not self.namespace_exposed(ctx, sl.namespace):
                    continue
                for addr in sl.addresses:
                    if canon_ip(addr.ip) == ip:
                        hn = endpoint_hostname(addr, self.cfg.endpoint_pod_names)
                        names.append((_b(hn), _b(sl.service), _b(sl.namespace), _SVC) + self.primary)
        if not names:
            return [], True
        out: list[RR] = []
        seen: set[Labels] = set()
        for n in names:
            if n not in seen:
                seen.add(n)
                out.append(RR(DNSLabel(st.qlabels), T_PTR, 1, self.ttl, PTR(DNSLabel(n))))
        return out, False

    # backend_lookup.go SRV
    def srv(self, ctx: Ctx, st: _Q) -> tuple[list[RR], list[RR], bool]:
        svcs, err = self.services(ctx, st, T_SRV)
        if err:
            return [], [], True
        total = 100 * len(svcs)  # every entry: priority 0, weight 0 → 100
        records: list[RR] = []
        extra: list[RR] = []
        dup: set[tuple[Labels, str, int]] = set()
        for s in svcs:
            if s.port == -1:
                continue
            weight = int(math.floor(100.0 / float(total) * 100.0))
            weight = weight if weight > 0 else 1
            what, ip = host_type(s.host)
            if what == T_CNAME:
                continue
            tkey = lower(s.target)
            if (tkey, "", s.port) not in dup:
                dup.add((tkey, "", s.port))
                records.append(RR(DNSLabel(st.qlabels), T_SRV, 1, s.ttl,
                                  SRV(0, weight, s.port, DNSLabel(s.target))))
            if (tkey, s.host, 0) not in dup:
                dup.add((tkey, s.host, 0))
                extra.append(_addr_rr(s.target, what, ip, s.ttl))
        return records, extra, False

    # ns.go nsAddrs + backend_lookup.go NS
    def ns_addrs(self, ctx: Ctx, zone: Labels) -> list[tuple[Labels, str]]:
        ctx.deps.add(("nsaddrs",))
        view = ctx.view
        out: list[tuple[Labels, str]] = []
        for local in view.local_ips():
            for sl in view.slices_by_ip(local):
                svc = view.service(sl.namespace, sl.service)
                if svc is None:
                    continue
                name = (_b(svc.name), _b(svc.namespace), _SVC) + zone
                if svc.headless:
                    for a in sl.addresses:
                        hn = endpoint_hostname(a, self.cfg.endpoint_pod_names)
                        out.append(((_b(hn),) + name, a.ip))
                else:
                    for ip in svc.cluster_ips:
                        out.append((name, ip))
        if not out:
            out = [((b"ns", b"dns") + zone, ip) for ip in view.local_ips()]
        return out

    def ns(self, ctx: Ctx, st: _Q) -> tuple[list[RR], list[RR], bool]:
        svcs, _ = self.services(ctx, st, T_NS)
        records: list[RR] = []
        extra: list[RR] = []
        seen: set[Labels] = set()
        for s in svcs:
            what, ip = host_type(s.host)
            if what == T_CNAME:
                continue
            extra.append(_addr_rr(s.target, what, ip, s.ttl))
            if lower(s.target) in seen:
                continue
            seen.add(lower(s.target))
            records.append(RR(DNSLabel(st.qlabels), T_NS, 1, s.ttl, NS(DNSLabel(s.target))))
        return records, extra, False


# --- hosts plugin (plugin/hosts/hosts.go) ---------------------------------------------------------------

class Hosts:
    def __init__(self, cfg: HostsConfig) -> None:
        self.cfg = cfg
        self.zones = [text_labels(z) for z in cfg.zones]
        self.fall = None if cfg.fallthrough is None else [text_labels(z) for z in cfg.fallthrough]
        self.v4: dict[Labels, list[str]] = {}
        self.v6: dict[Labels, list[str]] = {}
        self.rev: dict[str, list[Labels]] = {}
        for ip_text, names in cfg.entries:
            try:
                ip = ipaddress.ip_address(ip_text.split("%")[0])
            except ValueError:
                continue
            fam = self.v4 if ip.version == 4 else self.v6
            for n in names:
                nl = lower(text_labels(n))
                if str(ip) not in fam.setdefault(nl, []):
                    fam[nl].append(str(ip))
                if not cfg.no_reverse:
                    lst = self.rev.setdefault(str(ip), [])
                    if nl not in lst:
                        lst.append(nl)

    def serve(self, ctx: Ctx, qlabels: Labels, qtype: int) -> Result | None:
        lname = lower(qlabels)
        zone = _match_zone(self.zones, lname)
        if zone is None and qtype != T_PTR:
            return NEXT
        ttl = self.cfg.ttl
        answers: list[RR] = []
        if qtype == T_PTR:
            ip = extract_address_from_reverse(lname)
            names = self.rev.get(ip, []) if ip else []
            if not names:
                return NEXT
            answers = [RR(DNSLabel(lname), T_PTR, 1, ttl, PTR(DNSLabel(n))) for n in names]
        elif qtype == T_A:
            answers = [_addr_rr(lname, T_A, ip, ttl) for ip in self.v4.get(lname, ())]
        elif qtype == T_AAAA:
            answers = [_addr_rr(lname, T_AAAA, ip, ttl) for ip in self.v6.get(lname, ())]
        if not answers and lname not in self.v4 and lname not in self.v6:
            if _fall_through(self.fall, lname):
                return NEXT
            return Result(SERVFAIL, written=False)
        return Result(NOERROR, answer=answers, aa=True)


# --- forward plugin, emulated (no upstream: external hosts or SERVFAIL) -------------------------------

class Forward:
    def __init__(self, cfg: ForwardConfig) -> None:
        self.zone = text_labels(cfg.zone)
        self.excepted = [text_labels(z) for z in cfg.excepted]

    def serve(self, ctx: Ctx, qlabels: Labels, qtype: int) -> Result | None:
        lname = lower(qlabels)
        if not is_subdomain(lname, self.zone) or _match_zone(self.excepted, lname) is not None:
            return NEXT
        view = ctx.view
        if qtype == T_PTR and is_reverse(lname):
            ip = extract_address_from_reverse(lname)
            names = view.external_reverse.get(ip, []) if ip else []
            if not names:
                return Result(SERVFAIL, written=False)
            return Result(NOERROR, ra=True, answer=[
                RR(DNSLabel(qlabels), T_PTR, 1, EXTERNAL_TTL, PTR(DNSLabel(text_labels(n))))
                for n in names])
        ips = view.external_hosts.get(name_text(lname))
        if ips is None:
            return Result(SERVFAIL, written=False)
        ans: list[RR] = []
        for ip in ips:
            what, norm = host_type(ip)
            if what == qtype:
                ans.append(_addr_rr(qlabels, what, norm, EXTERNAL_TTL))
        return Result(NOERROR, answer=ans, ra=True)


# --- rewrite (plugin/rewrite/name.go) -------------------------------------------------------------------

def _rewrite(rule: RewriteRule, name: str) -> str | None:
    k = rule.kind
    if k == RewriteKind.EXACT:
        return rule.target if name == rule.source else None
    if k == RewriteKind.PREFIX:
        return rule.target + name[len(rule.source):] if name.startswith(rule.source) else None
    if k == RewriteKind.SUFFIX:
        return name[: len(name) - len(rule.source)] + rule.target if name.endswith(rule.source) else None
    if k == RewriteKind.SUBSTRING:
        return name.replace(rule.source, rule.target) if rule.source in name else None
    m = re.search(rule.source, name)
    if m is None:
        return None
    out = rule.target
    for i, g in enumerate((m.group(0),) + m.groups()):
        out = out.replace(f"{{{i}}}", g or "")
    return out if out.endswith(".") else out + "."


def _rewrite_answer_name(rules: list[RewriteRule], name: str) -> str:
    for rule in rules:
        for pattern, template in rule.answer_name:
            m = re.search(pattern, name)
            if m is None:
                continue
            out = template
            for i, g in enumerate((m.group(0),) + m.groups()):
                out = out.replace(f"{{{i}}}", g or "")
            return out if out.endswith(".") else out + "."
    return name


# --- the server: block selection, chain, post-processing -------------------------------------------

@dataclass(slots=True)
class _Compiled:
    block: ServerBlock
    hosts: Hosts | None
    kubernetes: Kubernetes | None
    forward: Forward | None


def _compiled(view: DnsView) -> tuple[dict[Labels, _Compiled], list[int]]:
    st = view.plugins_state.get(0)
    if st is None:
        zones: dict[Labels, _Compiled] = {}
        for b in view.corefile.blocks:
            c = _Compiled(b, Hosts(b.hosts) if b.hosts else None,
                          Kubernetes(b.kubernetes) if b.kubernetes else None,
                          Forward(b.forward) if b.forward else None)
            for z in b.zones:
                zones.setdefault(text_labels(z), c)
        lens = sorted({len(z) for z in zones}, reverse=True)
        st = (zones, lens)
        view.plugins_state[0] = st
    return st


def _select_block(view: DnsView, lname: Labels) -> _Compiled | None:
    zones, lens = _compiled(view)
    for n in lens:
        if n <= len(lname):
            c = zones.get(lname[len(lname) - n:] if n else ())
            if c is not None:
                return c
    return None


def serve(ctx: Ctx, qlabels: Labels, qtype: int) -> tuple[Result, _Compiled | None]:
    """core/dnsserver Server.ServeDNS without the wire: one question through its server block."""
    lname = lower(qlabels)
    c = _select_block(ctx.view, lname)
    if c is None:
        return Result(REFUSED, written=False), None
    b = c.block
    name = qlabels
    rewritten = False
    applied: list[RewriteRule] = []
    if b.rewrites:
        text = name_text(lname)
        for rule in b.rewrites:
            new = _rewrite(rule, text)
            if new is None:
                continue
            text, rewritten = new.lower(), True
            applied.append(rule)
            if rule.stop:
                break
        if rewritten:
            name = text_labels(text)
    res: Result | None = None
    for plugin in (c.hosts, c.kubernetes, c.forward):
        if plugin is None:
            continue
        res = plugin.serve(ctx, name, qtype)
        if res is not None:
            break
    if res is None:
        res = Result(SERVFAIL, written=False)  # "no next plugin found"
    if not res.written:
        return res, c
    if rewritten:
        _revert(res, lower(name), qlabels, applied)
    if b.cache is not None:
        _cap_ttls(b.cache, lname, res)
    return res, c


def _revert(res: Result, rewritten: Labels, original: Labels, rules: list[RewriteRule]) -> None:
    # ResponseReverter: the question is always the client's; answers owned by the rewritten
    # name go back to the original name ("answer auto"), then explicit ``answer name`` rules.
    for rr in res.answer:
        owner = lower(rr.rname.label)
        if owner == rewritten:
            rr.rname = DNSLabel(original)
        elif any(r.answer_name for r in rules):
            rr.rname = DNSLabel(text_labels(_rewrite_answer_name(rules, name_text(owner))))


def _cap_ttls(cfg: CacheConfig, lname: Labels, res: Result) -> None:
    """cache.go ResponseWriter.WriteMsg: 'Apply capped TTL to this reply'."""
    zones = [text_labels(z) for z in cfg.zones]
    if _match_zone(zones, lname) is None:
        return
    rrs = res.answer + res.authority + res.additional
    if res.rcode == NXDOMAIN or (res.rcode == NOERROR and not res.answer):
        lo, hi = cfg.denial_min, cfg.denial_max
    elif res.rcode == NOERROR:
        lo, hi = cfg.success_min, cfg.success_max
    elif res.rcode == SERVFAIL:
        lo = hi = cfg.servfail_ttl
    else:
        lo = hi = 5
    if not (res.answer or res.authority) and all(r.rtype == T_OPT for r in res.additional):
        msg_ttl = 5  # dnsutil.MinimalTTL: no records → MinimalDefaultTTL
    else:
        msg_ttl = min([3600] + [r.ttl for r in rrs if r.rtype != T_OPT])
    ttl = max(lo, min(msg_ttl, hi))
    for r in rrs:
        if r.rtype != T_OPT:
            r.ttl = ttl


def lookup(ctx: Ctx, name: Labels, qtype: int) -> list[RR]:
    """upstream.Lookup: the question through the whole server again; the ANSWER section."""
    if ctx.depth >= MAX_LOOKUP_DEPTH:
        return []
    ctx.depth += 1
    try:
        res, _ = serve(ctx, name, qtype)
    finally:
        ctx.depth -= 1
    return list(res.answer) if res.written else []


def _round_robin(rrs: list[RR], rng) -> list[RR]:
    """loadbalance.go roundRobin: CNAMEs, then the rest, then shuffled A/AAAA, then shuffled MX."""
    cname = [r for r in rrs if r.rtype == T_CNAME]
    addr = [r for r in rrs if r.rtype in (T_A, T_AAAA)]
    mx = [r for r in rrs if r.rtype == T_MX]
    rest = [r for r in rrs if r.rtype not in (T_CNAME, T_A, T_AAAA, T_MX)]
    for group in (addr, mx):
        n = len(group)
        if n == 2:
            if rng.randrange(65536) % 2 == 0:
                group[0], group[1] = group[1], group[0]
        elif n > 2:
            for j in range(n):
                p = j + rng.randrange(65536) % (n - j)
                if p != j:
                    group[j], group[p] = group[p], group[j]
    return cname + rest + addr + mx


# --- the wire entry point --------------------------------------------------------------------------

def _bare_error(data: bytes, rcode: int, keep_opcode: bool) -> bytes | None:
    """miekg/dns server.go: header-only FORMERR / NOTIMP built from the request header."""
    try:
        qid, flags, *_ = parse_header(data)
    except WireError:
        return None
    keep = flags & (TC | RD | RA | AD | CD)
    opcode = (flags >> 11) & 0xF if keep_opcode else 0
    return struct.pack("!HHHHHH", qid, QR | (opcode << 11) | keep | rcode, 0, 0, 0, 0)


CLASS_CH, CLASS_HS = 3, 4


def _edns_echo(q: Query) -> RR | None:
    """request.Request.SizeAndDo: reuse the request's OPT: version 0, DO kept, options filtered."""
    if q.opt is None:
        return None
    opts = tuple((c, d) for c, d in q.opt.options if c in SUPPORTED_EDNS_OPTIONS)
    return opt_rr(q.opt.udp_size, 0, 0, q.opt.flags & 0xFF00, opts)


def _limit(q: Query, tcp: bool) -> int:
    """request.Request.Size via edns.Size: TCP 65535; UDP max(512, advertised)."""
    if tcp:
        return MAX_MSG_SIZE
    size = q.opt.udp_size if q.opt is not None else 0
    return max(size, MIN_UDP_SIZE)


def answer(view: DnsView, query: bytes, client: Any = None, *, tcp: bool = False) -> bytes | None:
    """The reply CoreDNS would send to ``query`` (bytes), or None when it would stay silent.

    ``client`` (address tuple) is accepted for interface stability; no enabled plugin reads it.
    """
    key = (tcp, bytes(query[2:]))
    entry = view.cache.get(key)
    if entry is not None:
        view.stats["hits"] += 1
        return bytes(query[:2]) + _pick(view, entry)
    view.stats["misses"] += 1
    try:
        reply = _answer_miss(view, bytes(query), tcp, key)
        return reply if reply is None or type(reply) is bytes else bytes(reply)
    except Exception:  # a bug must never kill the server: answer SERVFAIL like CoreDNS's recover
        try:
            q = parse_query(bytes(query))
            return reply_to(q, SERVFAIL).pack()
        except Exception:
            return None


def _pick(view: DnsView, e: CacheEntry) -> bytes:
    if e.serial_offset >= 0 and e.serial != view.serial:
        patched = []
        for v in e.variants:
            b = bytearray(v)
            struct.pack_into("!I", b, e.serial_offset - 2, view.serial & 0xFFFFFFFF)
            patched.append(bytes(b))
        e.variants, e.serial = patched, view.serial
    n = len(e.variants)
    return e.variants[0] if n == 1 else e.variants[view.rng.randrange(n)]


def _answer_miss(view: DnsView, data: bytes, tcp: bool, key: tuple[bool, bytes]) -> bytes | None:
    try:
        _, flags, qd, an, ns, ar = parse_header(data)
    except WireError:
        return None  # "Let client hang, they are sending crap"
    if flags & QR:
        return None
    opcode = (flags >> 11) & 0xF
    if opcode not in (0, 4):  # QUERY, NOTIFY
        return _bare_error(data, NOTIMP, keep_opcode=True)
    if qd != 1 or an > 1 or ns > 1 or ar > 2:
        return _bare_error(data, FORMERR, keep_opcode=False)
    try:
        q = parse_query(data)
    except WireError:
        return _bare_error(data, FORMERR, keep_opcode=False)

    if q.opt is not None and q.opt.version != 0:  # edns.Version: BADVERS, no scrubbing
        m = reply_to(q, BADVERS)
        m.opt = opt_rr(0, BADVERS >> 4, 0, 0, ())
        return m.pack()

    if q.qclass in (CLASS_CH, CLASS_HS):
        # CHAOS/Hesiod: knet's zones are class IN and the Corefile has no chaos plugin; BIND
        # and CoreDNS answer such queries REFUSED (never IN data)
        m = reply_to(q, REFUSED)
        m.opt = _edns_echo(q)
        return m.pack()

    ctx = Ctx(view, set())
    res, comp = serve(ctx, q.labels, q.qtype)
    msg = reply_to(q, res.rcode)
    msg.opt = _edns_echo(q)
    if res.written:
        msg.flags |= (AA if res.aa else 0) | (RA if res.ra else 0) | (TC if res.tc else 0)
        msg.answer, msg.authority, msg.additional = res.answer, res.authority, res.additional
    limit = _limit(q, tcp)
    lb = (res.written and comp is not None and comp.block.loadbalance and view.shuffle
          and res.rcode == NOERROR and q.qtype not in (T_AXFR, T_IXFR))
    if lb and _shufflable(msg):
        variants: list[bytes] = []
        for _ in range(8):
            m2 = replace(msg, answer=_round_robin(list(msg.answer), view.rng),
                         authority=_round_robin(list(msg.authority), view.rng),
                         additional=_round_robin(list(msg.additional), view.rng))
            p = m2.pack(limit)
            if p not in variants:
                variants.append(p)
        chosen = variants[view.rng.randrange(len(variants))]
    else:
        if lb:
            msg.answer = _round_robin(msg.answer, view.rng)
            msg.additional = _round_robin(msg.additional, view.rng)
        chosen = msg.pack(limit)
        variants = [chosen]
    offset = _serial_offset(msg, chosen, view.serial)
    if offset is not None:
        view.remember(key, CacheEntry([v[2:] for v in variants], offset, view.serial), ctx.deps)
    return chosen


def _shufflable(msg: Message) -> bool:
    for sec in (msg.answer, msg.authority, msg.additional):
        if sum(1 for r in sec if r.rtype in (T_A, T_AAAA)) > 1 or sum(1 for r in sec if r.rtype == T_MX) > 1:
            return True
    return False


def _serial_offset(msg: Message, packed: bytes, serial: int) -> int | None:
    """Offset of the SOA serial when the SOA is the last RR before OPT; -1 without SOA;
    None when the bytes cannot be patched reliably (the reply is then not cached)."""
    soas = [r for r in msg.answer + msg.authority + msg.additional if r.rtype == T_SOA]
    if not soas:
        return -1
    last = (msg.additional or msg.authority or msg.answer)[-1:]
    if len(soas) != 1 or not last or last[0] is not soas[0]:
        return None
    opt_len = 0
    if msg.opt is not None:
        opt_len = 11 + sum(4 + len(o.data) for o in msg.opt.rdata)
    off = len(packed) - opt_len - 20
    if off < 12 or struct.unpack_from("!I", packed, off)[0] != serial & 0xFFFFFFFF:
        return None
    return off


# --- typed helpers for callers (dig, stub resolver) ---------------------------------------------------

def make_query(name: str, qtype: int | str = "A", *, id: int = 0, rd: bool = True,
               edns: int | None = 1232, do: bool = False, qclass: int = 1) -> bytes:
    """A query like dig sends (RD, EDNS0 with a 1232-byte UDP size unless ``edns=None``)."""
    t = qtype if isinstance(qtype, int) else _qtype(qtype)
    labels = legal_labels(name)
    m = Message(id=id, flags=(RD if rd else 0), rcode=0, question=(labels, t, qclass),
                answer=[], authority=[], additional=[])
    if edns is not None:
        m.opt = opt_rr(edns, 0, 0, 0x8000 if do else 0, ())
    return bytes(m.pack())


def legal_labels(name: str) -> Labels:
    """The labels of a name a user typed; UsageError with dig's wording when it is not a legal
    domain name (RFC 1035 §2.3.4: labels of 1..63 octets, 255 octets in all)."""
    from knet.errors import UsageError

    labels = text_labels(name if name.endswith(".") else name + ".")
    why = ("empty label" if any(not lb for lb in labels) else
           "label too long" if any(len(lb) > 63 for lb in labels) else
           "ran out of space" if sum(len(lb) + 1 for lb in labels) + 1 > 255 else "")
    if why:
        raise UsageError(f"'{name}' is not a legal name ({why})")
    return labels


def _qtype(name: str) -> int:
    from knet.dns.wire import qtype_value
    return qtype_value(name)
