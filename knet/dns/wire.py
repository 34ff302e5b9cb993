"""DNS wire format for knet's resolver: a strict query parser and the reply packer (dnslib).

Invariants: ``parse_query`` either returns a ``Query`` or raises ``WireError``; it never lets
another exception out, whatever the bytes. Names are tuples of raw label bytes in the case the
client sent (``labels``); matching always uses ``lower(labels)`` (RFC 4343: ASCII-only case
folding). Replies are packed with dnslib, then truncated like miekg/dns ``Msg.Truncate``
(whole RRs dropped from the end, answer → authority → additional, TC set only when an RR was
dropped; the OPT record is always kept). Acceptance rules mirror miekg/dns
``defaultMsgAcceptFunc`` (server.go), which CoreDNS uses.
"""

from __future__ import annotations

from knet.errors import UsageError

import struct
from dataclasses import dataclass

from dnslib import CLASS, DNSHeader, DNSLabel, DNSQuestion, DNSRecord, EDNSOption, QTYPE, RR

Labels = tuple[bytes, ...]

QR, AA, TC, RD, RA, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0020, 0x0010

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
               5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH",
               10: "NOTZONE", 16: "BADVERS"}

T_A, T_NS, T_CNAME, T_SOA, T_PTR, T_MX, T_TXT, T_AAAA, T_SRV, T_OPT = 1, 2, 5, 6, 12, 15, 16, 28, 33, 41
T_AXFR, T_IXFR, T_ANY = 252, 251, 255

# EDNS options CoreDNS echoes back (request/edns.go supportedOptions).
OPT_COOKIE = 10
SUPPORTED_EDNS_OPTIONS = frozenset({3, 9, 10, 11, 12})  # NSID, EXPIRE, COOKIE, TCPKEEPALIVE, PADDING

MIN_UDP_SIZE = 512
MAX_MSG_SIZE = 65535


class WireError(Exception):
    """The bytes are not a well-formed DNS message (internal; mapped to FORMERR)."""


@dataclass(frozen=True, slots=True)
class Opt:
    udp_size: int
    ext_rcode: int
    version: int
    flags: int  # the 16 flag bits (DO = 0x8000)
    options: tuple[tuple[int, bytes], ...]

    @property
    def do(self) -> bool:
        return bool(self.flags & 0x8000)


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int
    labels: Labels
    qtype: int
    qclass: int
    opt: Opt | None

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def lower(self) -> Labels:
        return lower(self.labels)


def lower(labels: Labels) -> Labels:
    return tuple(label.lower() for label in labels)


def _name(data: bytes, off: int) -> tuple[Labels, int]:
    """Decode a (possibly compressed) name; returns labels and the offset after it."""
    labels: list[bytes] = []
    end = -1
    hops = 0
    total = 1
    n = len(data)
    while True:
        if off >= n:
            raise WireError("name runs past the end")
        ln = data[off]
        if ln == 0:
            off += 1
            break
        if ln & 0xC0 == 0xC0:
            if off + 1 >= n:
                raise WireError("truncated pointer")
            ptr = ((ln & 0x3F) << 8) | data[off + 1]
            if end < 0:
                end = off + 2
            hops += 1
            if hops > 126 or ptr >= n:
                raise WireError("bad compression pointer")
            off = ptr
            continue
        if ln & 0xC0:
            raise WireError("bad label type")
        if off + 1 + ln > n:
            raise WireError("label runs past the end")
        labels.append(bytes(data[off + 1:off + 1 + ln]))
        total += ln + 1
        if total > 255:
            raise WireError("name too long")
        off += 1 + ln
    return tuple(labels), (end if end >= 0 else off)


def _skip_rr(data: bytes, off: int) -> tuple[int, int, int, int, int, int]:
    """Returns (rtype, rclass, ttl, rdata_off, rdlen, next_off) of the RR at ``off``."""
    _, off = _name(data, off)
    if off + 10 > len(data):
        raise WireError("truncated RR header")
    rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, off)
    off += 10
    if off + rdlen > len(data):
        raise WireError("truncated RDATA")
    return rtype, rclass, ttl, off, rdlen, off + rdlen


def parse_header(data: bytes) -> tuple[int, int, int, int, int, int]:
    if len(data) < 12:
        raise WireError("short header")
    return struct.unpack_from("!HHHHHH", data, 0)


def parse_query(data: bytes) -> Query:
    """Parse a query with exactly one question; the OPT record (if any) is decoded."""
    try:
        qid, flags, qd, an, ns, ar = parse_header(data)
        if qd != 1:
            raise WireError("qdcount != 1")
        labels, off = _name(data, 12)
        if off + 4 > len(data):
            raise WireError("truncated question")
        qtype, qclass = struct.unpack_from("!HH", data, off)
        off += 4
        opt: Opt | None = None
        for i in range(an + ns + ar):
            rtype, rclass, ttl, roff, rdlen, off = _skip_rr(data, off)
            if i >= an + ns and rtype == T_OPT:
                if opt is not None:  # RFC 6891 §6.1.1: more than one OPT RR → FORMERR
                    raise WireError("more than one OPT RR")
                options: list[tuple[int, bytes]] = []
                p, end = roff, roff + rdlen
                while p < end:
                    if p + 4 > end:
                        raise WireError("truncated EDNS option")
                    code, ln = struct.unpack_from("!HH", data, p)
                    if p + 4 + ln > end:
                        raise WireError("truncated EDNS option data")
                    if code == OPT_COOKIE and not (ln == 8 or 16 <= ln <= 40):
                        # RFC 7873 §5.2.2: an 8-byte client cookie, optionally followed by an
                        # 8..32-byte server cookie; any other length is malformed → FORMERR
                        raise WireError(f"COOKIE option of length {ln}")
                    options.append((code, bytes(data[p + 4:p + 4 + ln])))
                    p += 4 + ln
                opt = Opt(udp_size=rclass, ext_rcode=(ttl >> 24) & 0xFF,
                          version=(ttl >> 16) & 0xFF, flags=ttl & 0xFFFF, options=tuple(options))
        return Query(id=qid, flags=flags, labels=labels, qtype=qtype, qclass=qclass, opt=opt)
    except WireError:
        raise
    except Exception as e:  # defensive: nothing but WireError leaves the parser
        raise WireError(str(e)) from e


# --- names -----------------------------------------------------------------------------------------

_SPECIAL = frozenset(b'.\\"()@;$ ')


def label_text(label: bytes) -> str:
    """Presentation form of one label, escaped as miekg/dns and dig print it."""
    out = []
    for c in label:
        if c in _SPECIAL:
            out.append("\\" + chr(c))
        elif 0x21 <= c <= 0x7E:
            out.append(chr(c))
        else:
            out.append(f"\\{c:03d}")
    return "".join(out)


def name_text(labels: Labels) -> str:
    if not labels:
        return "."
    return ".".join(label_text(label) for label in labels) + "."


def text_labels(name: str) -> Labels:
    """Presentation form → labels (handles ``\\.`` and ``\\DDD`` escapes)."""
    if name in ("", "."):
        return ()
    if "\\" not in name:
        return tuple(part.encode() for part in name.rstrip(".").split("."))
    labels: list[bytes] = []
    cur = bytearray()
    i = 0
    while i < len(name):
        c = name[i]
        if c == "\\" and i + 1 < len(name):
            if name[i + 1:i + 4].isdigit() and len(name[i + 1:i + 4]) == 3:
                cur.append(int(name[i + 1:i + 4]) & 0xFF)
                i += 4
                continue
            cur.extend(name[i + 1].encode())
            i += 2
            continue
        if c == ".":
            labels.append(bytes(cur))
            cur = bytearray()
        else:
            cur.extend(c.encode())
        i += 1
    if cur:
        labels.append(bytes(cur))
    return tuple(labels)


def is_subdomain(child: Labels, parent: Labels) -> bool:
    """Both lower-cased. The root () is a parent of everything."""
    n = len(parent)
    return n == 0 or (len(child) >= n and child[-n:] == parent)


# --- replies ---------------------------------------------------------------------------------------

def qtype_name(t: int) -> str:
    try:
        return str(QTYPE[t])
    except Exception:
        return f"TYPE{t}"


def class_name(c: int) -> str:
    try:
        return str(CLASS[c])
    except Exception:
        return f"CLASS{c}"


def qtype_value(name: str) -> int:
    """A record type by mnemonic (``AAAA``) or RFC 3597 form (``TYPE65``); UsageError else."""
    s = name.upper()
    if s.startswith("TYPE") and s[4:].isascii() and s[4:].isdigit() and int(s[4:]) <= 0xFFFF:
        return int(s[4:])
    try:
        return int(getattr(QTYPE, s))
    except Exception:  # dnslib's DNSError for an unknown mnemonic
        raise UsageError(f"unknown record type {name!r} (a type such as A, AAAA, SRV, PTR, "
                         "TXT, ANY, or TYPEn with n ≤ 65535)") from None


def make_rr(owner: Labels, rtype: int, ttl: int, rdata: object, rclass: int = 1) -> RR:
    return RR(DNSLabel(owner), rtype, rclass, ttl, rdata)


def opt_rr(udp_size: int, ext_rcode: int, version: int, flags: int,
           options: tuple[tuple[int, bytes], ...]) -> RR:
    ttl = ((ext_rcode & 0xFF) << 24) | ((version & 0xFF) << 16) | (flags & 0xFFFF)
    return RR(DNSLabel(()), T_OPT, udp_size, ttl, [EDNSOption(c, d) for c, d in options])


@dataclass(slots=True)
class Message:
    """A reply under construction (miekg/dns Msg, reduced to what the server needs)."""

    id: int
    flags: int            # header bits other than rcode (QR/opcode/AA/TC/RD/RA/AD/CD)
    rcode: int            # full rcode (> 15 goes to the OPT record's extended rcode)
    question: tuple[Labels, int, int] | None
    answer: list[RR]
    authority: list[RR]
    additional: list[RR]  # without OPT
    opt: RR | None = None

    def pack(self, limit: int = MAX_MSG_SIZE) -> bytes:
        data = self._pack(self.answer, self.authority, self.additional, self.flags)
        if len(data) <= limit:
            return data
        return self._truncate(max(limit, MIN_UDP_SIZE))

    def _pack(self, an: list[RR], ns: list[RR], ar: list[RR], flags: int) -> bytes:
        extra = list(ar)
        if self.opt is not None:
            extra.append(self.opt)
        rec = DNSRecord(DNSHeader(id=self.id, bitmap=(flags & 0xFFF0) | (self.rcode & 0xF)),
                        questions=[DNSQuestion(DNSLabel(self.question[0]), self.question[1],
                                               self.question[2])] if self.question else [],
                        rr=an, auth=ns, ar=extra)
        return rec.pack()

    def _truncate(self, limit: int) -> bytes:
        # miekg/dns Msg.Truncate: keep the longest prefix of answer+authority+additional that
        # fits (the OPT record counts against the limit and is always kept).
        rrs = [(0, r) for r in self.answer] + [(1, r) for r in self.authority] + \
              [(2, r) for r in self.additional]

        def packed(k: int) -> bytes:
            parts: list[list[RR]] = [[], [], []]
            for sec, r in rrs[:k]:
                parts[sec].append(r)
            return self._pack(parts[0], parts[1], parts[2], self.flags | TC)

        lo, hi = 0, len(rrs)
        best = packed(0)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            p = packed(mid)
            if len(p) <= limit:
                lo, best = mid, p
            else:
                hi = mid - 1
        if lo == len(rrs):  # everything fits once compressed: no TC (TC only if RRs dropped)
            return self._pack(self.answer, self.authority, self.additional, self.flags)
        return best


def reply_to(q: Query, rcode: int = NOERROR) -> Message:
    """miekg/dns SetReply: copy id, opcode, and (for QUERY) RD/CD; the first question."""
    flags = QR | (q.opcode << 11)
    if q.opcode == 0:
        flags |= q.flags & (RD | CD)
    return Message(id=q.id, flags=flags, rcode=rcode, question=(q.labels, q.qtype, q.qclass),
                   answer=[], authority=[], additional=[])
