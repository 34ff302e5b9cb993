"""The answer cache: hits patch only the ID; object changes drop exactly the dependent answers."""

from __future__ import annotations

from dataclasses import replace

from dnslib import DNSRecord

from dns_factory import ep, eps, ns, pod, shop_objects, svc
from knet.dns import DnsView, answer, make_query
from knet.dns.dig import rr_text

CORE = """.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods verified
    }
}"""


def build():
    s, e, n = shop_objects()
    s.append(svc("shop", "other", "10.96.7.30", [(80, "http")]))
    v = DnsView(services=s, endpoint_slices=e, namespaces=n, corefile=CORE, now=100, shuffle=False,
                pods=[pod("shop", "p1", "10.244.1.30")])
    return v, s, e


def ask(v, name, qtype="A", qid=1):
    return DNSRecord.parse(answer(v, make_query(name, qtype, id=qid)))


def texts(rec):
    return [rr_text(r) for r in rec.rr]


def test_hit_returns_same_bytes_with_new_id():
    v, _, _ = build()
    a = answer(v, make_query("cart.shop.svc.cluster.local.", "A", id=1))
    b = answer(v, make_query("cart.shop.svc.cluster.local.", "A", id=2))
    assert a[2:] == b[2:] and b[:2] == b"\x00\x02"
    assert v.stats["hits"] == 1 and v.stats["misses"] == 1


def test_service_change_invalidates_only_dependent_names():
    v, s, _ = build()
    for name in ("cart.shop.svc.cluster.local.", "other.shop.svc.cluster.local.", "newsvc.shop.svc.cluster.local."):
        ask(v, name)
    ask(v, "20.7.96.10.in-addr.arpa.", "PTR")
    assert len(v.cache) == 4
    cart = s[0]
    moved = replace(cart, spec=replace(cart.spec, cluster_ip="10.96.7.21", cluster_ips=("10.96.7.21",)))
    v.apply_change("Service", cart, moved, now=200)
    assert texts(ask(v, "cart.shop.svc.cluster.local.")) == ["cart.shop.svc.cluster.local. 5 IN A 10.96.7.21"]
    assert ask(v, "20.7.96.10.in-addr.arpa.", "PTR").header.rcode == 3  # old ClusterIP: gone
    assert ask(v, "21.7.96.10.in-addr.arpa.", "PTR").rr
    # unrelated names still cached
    before = v.stats["hits"]
    ask(v, "other.shop.svc.cluster.local.")
    ask(v, "newsvc.shop.svc.cluster.local.")
    assert v.stats["hits"] == before + 2


def test_negative_answer_invalidated_when_the_name_appears_and_serial_patched():
    v, _, _ = build()
    rec = ask(v, "newsvc.shop.svc.cluster.local.")
    assert rec.header.rcode == 3 and rec.auth[0].rdata.times[0] == 100
    ask(v, "nothere.shop.svc.cluster.local.")
    v.apply_change("Service", None, svc("shop", "newsvc", "10.96.9.9", [(80, "http")]), now=250)
    assert texts(ask(v, "newsvc.shop.svc.cluster.local.")) == ["newsvc.shop.svc.cluster.local. 5 IN A 10.96.9.9"]
    hits = v.stats["hits"]
    rec = ask(v, "nothere.shop.svc.cluster.local.")  # still cached, serial patched in
    assert v.stats["hits"] == hits + 1
    assert rec.header.rcode == 3 and rec.auth[0].rdata.times[0] == 250


def test_endpointslice_change_updates_headless_srv_and_ptr():
    v, _, e = build()
    assert len(ask(v, "cart-db.shop.svc.cluster.local.").rr) == 2
    assert ask(v, "32.1.244.10.in-addr.arpa.", "PTR").header.rcode == 3
    old = e[1]
    ready = replace(old, endpoints=tuple(replace(x, conditions=replace(x.conditions, ready=True))
                                         for x in old.endpoints))
    v.apply_change("EndpointSlice", old, ready, now=300)
    assert len(ask(v, "cart-db.shop.svc.cluster.local.").rr) == 3
    assert len(ask(v, "_pg._tcp.cart-db.shop.svc.cluster.local.", "SRV").rr) == 3
    assert {r.rdata.weight for r in ask(v, "_pg._tcp.cart-db.shop.svc.cluster.local.", "SRV").rr} == {33}
    assert texts(ask(v, "32.1.244.10.in-addr.arpa.", "PTR")) == \
        ["32.1.244.10.in-addr.arpa. 5 IN PTR cart-db-2.cart-db.shop.svc.cluster.local."]
    v.apply_change("EndpointSlice", ready, None, now=301)
    assert ask(v, "cart-db.shop.svc.cluster.local.").header.rcode == 3


def test_namespace_and_pod_changes():
    v, _, _ = build()
    assert ask(v, "x.newns.svc.cluster.local.").header.rcode == 3
    assert ask(v, "newns.svc.cluster.local.").header.rcode == 3
    v.apply_change("Namespace", None, ns("newns"))
    assert ask(v, "newns.svc.cluster.local.").header.rcode == 0
    assert ask(v, "10-244-1-77.shop.pod.cluster.local.").header.rcode == 3
    v.apply_change("Pod", None, pod("shop", "p2", "10.244.1.77"), now=400)
    assert texts(ask(v, "10-244-1-77.shop.pod.cluster.local.")) == [
        "10-244-1-77.shop.pod.cluster.local. 5 IN A 10.244.1.77"]


def test_corefile_configmap_change_flushes():
    from knet.model.core import ConfigMap
    from knet.model.meta import ObjectMeta
    s, e, n = shop_objects()
    v = DnsView(services=s, endpoint_slices=e, namespaces=n, now=100)  # kubeadm default: ttl 30
    assert ask(v, "cart.shop.svc.cluster.local.").rr[0].ttl == 30
    cm = ConfigMap(ObjectMeta(name="coredns", namespace="kube-system"),
                   data={"Corefile": CORE.replace("pods verified", "ttl 42")})
    v.apply_change("ConfigMap", None, cm)
    assert ask(v, "cart.shop.svc.cluster.local.").rr[0].ttl == 42


def test_incremental_equals_rebuild():
    v, s, e = build()
    names = ["cart.shop.svc.cluster.local.", "cart-db.shop.svc.cluster.local.", "other.shop.svc.cluster.local.",
             "x.shop.svc.cluster.local.", "20.7.96.10.in-addr.arpa."]
    for n in names:
        ask(v, n, "PTR" if "arpa" in n else "A")
    new = svc("shop", "x", headless=True, ports=[(80, "web")])
    new_slice = eps("shop", "x", [ep("10.244.4.4", hostname="h")], [(80, "web")])
    v.apply_change("Service", None, new, now=500)
    v.apply_change("EndpointSlice", None, new_slice, now=500)
    v.apply_change("Service", s[3], None, now=500)
    fresh = DnsView(services=[*s[:3], new], endpoint_slices=[*e, new_slice], namespaces=[ns("shop")],
                    corefile=CORE, now=500, shuffle=False, pods=[pod("shop", "p1", "10.244.1.30")])
    for n in names:
        t = "PTR" if "arpa" in n else "A"
        assert answer(v, make_query(n, t, id=5)) == answer(fresh, make_query(n, t, id=5)), n
