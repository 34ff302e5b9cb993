"""Robustness: ≥ 100,000 random and mutated packets through the pure answer function; never raises."""

from __future__ import annotations

import random
import time

from dnslib import DNSRecord
from hypothesis import given, settings, strategies as st

from dns_factory import shop_objects
from knet.dns import DnsView, answer, make_query

NAMES = ["cart.shop.svc.cluster.local.", "_http._tcp.cart.shop.svc.cluster.local.", "cart-db.shop.svc.cluster.local.",
         "20.7.96.10.in-addr.arpa.", "cluster.local.", "payments.shop.svc.cluster.local.", "x.y.z."]
TYPES = ["A", "AAAA", "SRV", "PTR", "TXT", "NS", "SOA", "MX", "ANY", "CNAME"]


def test_100k_random_and_mutated_packets():
    s, e, n = shop_objects()
    v = DnsView(services=s, endpoint_slices=e, namespaces=n, now=1)
    rng = random.Random(1234)
    seeds = [make_query(nm, t, id=i, edns=rng.choice([None, 512, 4096])) for i, (nm, t) in
             enumerate((a, b) for a in NAMES for b in TYPES)]
    start = time.perf_counter()
    count = replies = 0
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
        count += 1
        if r is not None:
            replies += 1
            assert r[:2] == pkt[:2]  # reply ID is the query's
            assert r[2] & 0x80 and len(r) >= 12  # a response header
            if not i & 8:
                assert len(r) <= 4096
    assert count == 100_000 and replies > 10_000
    assert time.perf_counter() - start < 30  # generous on slow CI; typically ~3 s


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
