"""dig-style rendering of replies, the ``knet dig -o json`` shape, and pod-search-path digs.

Invariants: rendering is a pure function of the reply bytes. RR lines use BIND's masterdump
layout as dig prints it (columns 24/32/40/48 with 8-wide tabs, ``indent()`` in
lib/dns/masterdump.c), so ``render`` output matches dig's sections byte for byte for the record
types knet serves. JSON RR strings are the same fields single-spaced.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from dnslib import DNSRecord, RR

from knet.dns.answer import answer, make_query
from knet.dns.stub import ResolvConf, Status, res_search, status_of
from knet.dns.view import DnsView
from knet.dns.wire import (RCODE_NAMES, T_A, T_AAAA, T_CNAME, T_MX, T_NS, T_OPT, T_PTR, T_SOA,
                           T_SRV, T_TXT, class_name, name_text, qtype_name, qtype_value)

_OPCODES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}
_FLAG_BITS = (("qr", 0x8000), ("aa", 0x0400), ("tc", 0x0200), ("rd", 0x0100), ("ra", 0x0080),
              ("ad", 0x0020), ("cd", 0x0010))


def _indent(cur: int, to: int) -> tuple[str, int]:
    """lib/dns/masterdump.c indent(), tab width 8."""
    if to < cur + 1:
        to = cur + 1
    ntabs = to // 8 - cur // 8
    out = ""
    if ntabs > 0:
        out = "\t" * ntabs
        cur = (to // 8) * 8
    out += " " * (to - cur)
    return out, to


def _txt_string(s: bytes) -> str:
    out = []
    for c in s:
        if c in (0x22, 0x5C):
            out.append("\\" + chr(c))
        elif 0x20 <= c <= 0x7E:
            out.append(chr(c))
        else:
            out.append(f"\\{c:03d}")
    return '"' + "".join(out) + '"'


def rdata_text(rr: RR) -> str:
    t, d = rr.rtype, rr.rdata
    try:
        if t == T_A:
            return str(ipaddress.IPv4Address(bytes(d.data)))
        if t == T_AAAA:
            return str(ipaddress.IPv6Address(bytes(d.data)))
        if t in (T_NS, T_CNAME, T_PTR):
            return name_text(d.label.label)
        if t == T_SRV:
            return f"{d.priority} {d.weight} {d.port} {name_text(d.target.label)}"
        if t == T_MX:
            return f"{d.preference} {name_text(d.label.label)}"
        if t == T_SOA:
            return (f"{name_text(d.mname.label)} {name_text(d.rname.label)} "
                    + " ".join(str(x) for x in d.times))
        if t == T_TXT:
            return " ".join(_txt_string(s) for s in d.data)
    except Exception:
        pass
    return d.toZone() if hasattr(d, "toZone") else str(d)


def rr_fields(rr: RR) -> tuple[str, int, str, str, str]:
    return (name_text(rr.rname.label), rr.ttl, class_name(rr.rclass), qtype_name(rr.rtype),
            rdata_text(rr))


def rr_text(rr: RR) -> str:
    """Zone-file form, single-spaced: ``cart.shop.svc.cluster.local. 5 IN A 10.96.7.20``."""
    owner, ttl, cls, typ, rdata = rr_fields(rr)
    return f"{owner} {ttl} {cls} {typ} {rdata}"


def rr_line(rr: RR) -> str:
    """The RR as dig prints it."""
    owner, ttl, cls, typ, rdata = rr_fields(rr)
    out, cur = owner, len(owner)
    for text, col in ((str(ttl), 24), (cls, 32), (typ, 40), (rdata, 48)):
        pad, cur = _indent(cur, col)
        out += pad + text
        cur += len(text)
    return out


def _question_line(q: Any) -> str:
    owner = ";" + name_text(q.qname.label)
    out, cur = owner, len(owner)
    for text, col in ((class_name(q.qclass), 32), (qtype_name(q.qtype), 40)):
        pad, cur = _indent(cur, col)
        out += pad + text
        cur += len(text)
    return out


def parse_reply(reply: bytes) -> DNSRecord:
    return DNSRecord.parse(reply)


def render(reply: bytes, *, query_time_ms: int | None = None, server: str | None = None,
           transport: str = "UDP") -> str:
    """dig's output from ``;; ->>HEADER<<-`` to ``;; MSG SIZE  rcvd:``."""
    rec = parse_reply(reply)
    h = rec.header
    opt = next((r for r in rec.ar if r.rtype == T_OPT), None)
    rcode = h.rcode | ((opt.ttl >> 24) << 4 if opt is not None else 0)
    flags = " ".join(name for name, bit in _FLAG_BITS if h.bitmap & bit)
    lines = [f";; ->>HEADER<<- opcode: {_OPCODES.get(h.opcode, str(h.opcode))}, "
             f"status: {RCODE_NAMES.get(rcode, str(rcode))}, id: {h.id}",
             f";; flags: {flags}; QUERY: {len(rec.questions)}, ANSWER: {len(rec.rr)}, "
             f"AUTHORITY: {len(rec.auth)}, ADDITIONAL: {len(rec.ar)}"]
    if h.bitmap & 0x0100 and not h.bitmap & 0x0080:
        lines.append(";; WARNING: recursion requested but not available")
    lines.append("")
    if opt is not None:
        eflags = " do" if opt.ttl & 0x8000 else ""
        lines.append(";; OPT PSEUDOSECTION:")
        lines.append(f"; EDNS: version: {(opt.ttl >> 16) & 0xFF}, flags:{eflags}; udp: {opt.rclass}")
        for o in opt.rdata:
            if o.code == 10:
                lines.append(f"; COOKIE: {bytes(o.data).hex()}")
            elif o.code == 3:
                lines.append(f"; NSID: {bytes(o.data).hex()}")
    if rec.questions:
        lines.append(";; QUESTION SECTION:")
        lines.extend(_question_line(q) for q in rec.questions)
        lines.append("")
    for title, rrs in (("ANSWER", rec.rr), ("AUTHORITY", rec.auth),
                       ("ADDITIONAL", [r for r in rec.ar if r.rtype != T_OPT])):
        if rrs:
            lines.append(f";; {title} SECTION:")
            lines.extend(rr_line(r) for r in rrs)
            lines.append("")
    if query_time_ms is not None:
        lines.append(f";; Query time: {query_time_ms} msec")
    if server is not None:
        lines.append(f";; SERVER: {server} ({transport})")
    lines.append(f";; MSG SIZE  rcvd: {len(reply)}")
    return "\n".join(lines) + "\n"


def rcode_of(reply: bytes) -> str:
    rec = parse_reply(reply)
    opt = next((r for r in rec.ar if r.rtype == T_OPT), None)
    rcode = rec.header.rcode | ((opt.ttl >> 24) << 4 if opt is not None else 0)
    return RCODE_NAMES.get(rcode, str(rcode))


@dataclass
class DigRun:
    """One ``knet dig``: the final reply and every query sent (several with a search path)."""

    name: str
    qtype: str
    reply: bytes | None
    queries: list[dict[str, str]] = field(default_factory=list)
    resolved_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return to_json(self.reply, self.queries)

    def render(self) -> str:
        return render(self.reply) if self.reply else ";; no servers could be reached\n"


def to_json(reply: bytes | None, queries: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The ``knet dig -o json`` shape (docs INTERFACES.md)."""
    if reply is None:
        return {"rcode": "TIMEOUT", "answer": [], "authority": [], "additional": [],
                "queries": list(queries or [])}
    rec = parse_reply(reply)
    return {"rcode": rcode_of(reply),
            "flags": [n for n, bit in _FLAG_BITS if rec.header.bitmap & bit],
            "answer": [rr_text(r) for r in rec.rr],
            "authority": [rr_text(r) for r in rec.auth],
            "additional": [rr_text(r) for r in rec.ar if r.rtype != T_OPT],
            "queries": list(queries or [])}


def dig(view: DnsView, name: str, qtype: str | int = "A", *, resolv: ResolvConf | None = None,
        tcp: bool = False, edns: int | None = 1232, rd: bool = True, qid: int = 0) -> DigRun:
    """Ask the pure answer function like dig does. With ``resolv`` (``knet dig --from ns/pod``)
    the name goes through the pod's search path (glibc res_search) and every query is reported."""
    t = qtype if isinstance(qtype, int) else qtype_value(qtype)
    tname = qtype_name(t)
    run = DigRun(name=name, qtype=tname, reply=None)

    def ask(fqdn: str) -> Status:
        q = make_query(fqdn, t, id=qid, rd=rd, edns=edns)
        reply = answer(view, q, None, tcp=tcp)
        if reply is not None and not tcp and (reply[2] & 0x02):  # TC: retry over TCP like dig
            reply = answer(view, q, None, tcp=True)
        run.reply = reply
        if reply is None:
            run.queries.append({"name": fqdn, "type": tname, "rcode": "TIMEOUT"})
            return Status.TIMEOUT
        rec = parse_reply(reply)
        run.queries.append({"name": fqdn, "type": tname, "rcode": rcode_of(reply)})
        return status_of(rec.header.rcode, len(rec.rr))

    if resolv is None:
        fq = name if name.endswith(".") else name + "."
        if ask(fq) == Status.SUCCESS:
            run.resolved_name = fq
        return run
    gen = res_search(name, resolv)
    try:
        fqdn = next(gen)
        while True:
            fqdn = gen.send(ask(fqdn))
    except StopIteration as stop:
        run.resolved_name = stop.value.name  # the reply kept is the last one sent
    return run
