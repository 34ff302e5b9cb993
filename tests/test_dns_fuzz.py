"""Robustness: 100,000 random and mutated packets through the pure answer function: it never
raises, and every reply is a well-formed DNS response to the query it answers."""

from __future__ import annotations

import random

from dnslib import DNSError, DNSRecord
from hypothesis import given, settings, strategies as st

from dns_factory import shop_objects
from knet.dns import DnsView, answer, make_query
from knet.dns.wire import FORMERR, NOERROR, NOTIMP, NXDOMAIN, REFUSED, SERVFAIL

NAMES = ["cart.shop.svc.cluster.local.", "_http._tcp.cart.shop.svc.cluster.local.", "cart-db.shop.svc.cluster.local.",
         "20.7.96.10.in-addr.arpa.", "cluster.local.", "payments.shop.svc.cluster.local.", "x.y.z."]
TYPES = ["A", "AAAA", "SRV", "PTR", "TXT", "NS", "SOA", "MX", "ANY", "CNAME"]


def test_100k_random_and_mutated_packets():
    s, e, n = shop_objects()
    v = DnsView(services=s, endpoint_slices=e, namespaces=n, now=1)
    rng = random.Random(1234)
    seeds = [make_query(nm, t, id=i, edns=rng.choice([None, 512, 4096])) for i, (nm, t) in
             enumerate((a, b) for a in NAMES for b in TYPES)]
    replies = checked = 0
    rcodes: set[int] = set()
    for i in range(100_000):
        kind = i % 4
        if kind == 0:
            pkt = rng.randbytes(rng.randrange(0, 80))
        else:
            pkt = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                op = rng.randrange(4)
                if op == 0 and pkt:
                    pkt[rng.randrange(len(pkt))] = rng.randrange(256)
                elif op == 1 and pkt:
                    del pkt[rng.randrange(len(pkt)):]
                elif op == 2:
                    pkt[rng.randrange(len(pkt) + 1):0] = rng.randbytes(rng.randrange(1, 6))
                else:
                    pkt[2:4] = rng.randbytes(2)  # random flags / opcode
            pkt = bytes(pkt)
        r = answer(v, pkt, ("10.0.0.1", 53), tcp=bool(i & 8))
        if r is None:
            continue
        replies += 1
        assert r[:2] == pkt[:2]  # reply ID is the query's
        assert r[2] & 0x80 and len(r) >= 12  # a response header
        if not i & 8:
            assert len(r) <= 4096
        if i % 10:
            continue  # the full parse below on every tenth packet (dnslib is slow)
        rcode = r[3] & 0x0F
        rcodes.add(rcode)
        assert rcode in (NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED), r
        try:
            query = DNSRecord.parse(pkt)
        except (DNSError, UnicodeDecodeError):
            continue  # dnslib refuses it (e.g. a non-UTF-8 label knet echoes back)
        rec = DNSRecord.parse(r)  # well-formed: every section parses
        if rcode in (NOERROR, NXDOMAIN) and query.questions:
            # an answer is about exactly the question asked
            assert [q.qname for q in rec.questions] == [query.questions[0].qname]
            assert rec.questions[0].qtype == query.questions[0].qtype
            checked += 1
    assert replies > 10_000 and checked > 100
    assert {NOERROR, FORMERR, NXDOMAIN} <= rcodes  # the mutations reach the answer paths


@settings(max_examples=150, deadline=None)
@given(name=st.lists(st.text(alphabet="abcXYZ019-_.*\\", min_size=0, max_size=20), min_size=0, max_size=6),
       qtype=st.integers(0, 65535), qclass=st.integers(0, 65535), edns=st.one_of(st.none(), st.integers(0, 65535)),
       do=st.booleans(), tcp=st.booleans())
def test_structured_queries_always_answered(name, qtype, qclass, edns, do, tcp):
    s, e, n = shop_objects()
    v = DnsView(services=s, endpoint_slices=e, namespaces=n, now=1)
    labels = [x for x in (p.replace(".", "").replace("\\", "") for p in name) if x]
    fq = ".".join([*labels, "shop.svc.cluster.local"]) + "."
    q = make_query(fq, qtype, id=4242, edns=edns, do=do, qclass=qclass)
    r = answer(v, q, None, tcp=tcp)
    assert r is not None
    rec = DNSRecord.parse(r)
    assert rec.header.id == 4242 and rec.header.qr == 1
    limit = 65535 if tcp else max(512, edns or 0)
    assert len(r) <= limit
