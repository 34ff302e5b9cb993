"""Issue 13 item 15: DNS edges where the RFCs (and CoreDNS) are stricter than knet was."""

from __future__ import annotations

import struct

from dns_factory import shop_objects
from dnslib import DNSRecord

from knet.dns import DnsView, answer, make_query

NAME = "cart.shop.svc.cluster.local"


def view() -> DnsView:
    s, e, n = shop_objects()
    return DnsView(services=s, endpoint_slices=e, namespaces=n, shuffle=False)


def with_extra_opt(query: bytes, opt_rdata: bytes = b"") -> bytes:
    """Append one more OPT RR to a query that already carries one (ARCOUNT + 1)."""
    arcount = struct.unpack_from("!H", query, 10)[0]
    rr = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(opt_rdata)) + opt_rdata
    return query[:10] + struct.pack("!H", arcount + 1) + query[12:] + rr


def with_cookie(length: int) -> bytes:
    q = make_query(NAME, "A", id=7, edns=None)
    rdata = struct.pack("!HH", 10, length) + bytes(range(length))
    rr = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(rdata)) + rdata
    return q[:10] + struct.pack("!H", 1) + q[12:] + rr


def rcode(reply: bytes | None) -> int:
    assert reply is not None
    return reply[3] & 0xF


def test_two_opt_records_are_formerr() -> None:
    v = view()
    q = make_query(NAME, "A", id=7)
    assert rcode(answer(v, q)) == 0
    assert rcode(answer(v, with_extra_opt(q))) == 1  # RFC 6891 §6.1.1


def test_cookie_option_lengths() -> None:
    v = view()
    for good in (8, 16, 24, 40):
        reply = answer(v, with_cookie(good))
        assert rcode(reply) == 0
        opt = [r for r in DNSRecord.parse(reply).ar if r.rtype == 41][0]
        assert [o.code for o in opt.rdata] == [10]  # echoed (CoreDNS keeps COOKIE)
    for bad in (0, 7, 9, 15, 41):
        assert rcode(answer(v, with_cookie(bad))) == 1, bad  # RFC 7873 §5.2.2


def test_chaos_and_hesiod_class_queries_are_refused() -> None:
    v = view()
    for qclass in (3, 4):
        reply = answer(v, make_query(NAME, "A", id=9, qclass=qclass))
        rec = DNSRecord.parse(reply)
        assert (rec.header.rcode, rec.rr, rec.q.qclass) == (5, [], qclass)
    for name in ("version.bind", "id.server"):
        assert rcode(answer(v, make_query(name, "TXT", qclass=3))) == 5
    assert rcode(answer(v, make_query(NAME, "A", qclass=1))) == 0


def test_answer_always_returns_bytes() -> None:
    v = view()
    q = make_query(NAME, "A", id=1)
    first, second = answer(v, q), answer(v, q)  # a miss, then a cache hit
    assert type(first) is bytes and type(second) is bytes and first == second
    assert type(answer(v, bytearray(make_query("nope.shop.svc.cluster.local", "A")))) is bytes
