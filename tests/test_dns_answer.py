"""Answers of knet's CoreDNS emulation: record schema, NXDOMAIN vs NODATA, SOA, SRV, PTR, …"""

from __future__ import annotations

import struct

import pytest
from dnslib import DNSRecord

from dns_factory import ep, eps, ns, pod, shop_objects, svc
from knet.dns import DnsView, answer, make_query
from knet.dns.dig import rr_text
from knet.model.config import ClusterConfig

SERIAL = 1700000000
PLUGIN_DEFAULTS = """.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
    }
    forward . /etc/resolv.conf
}"""
SOA = f"cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {SERIAL} 7200 1800 86400 5"


def view(services=(), slices=(), namespaces=(), corefile=PLUGIN_DEFAULTS, **kw) -> DnsView:
    return DnsView(services=services, endpoint_slices=slices, namespaces=namespaces,
                   corefile=corefile, now=SERIAL, shuffle=False, **kw)


def shop(**kw) -> DnsView:
    s, e, n = shop_objects()
    return view(s, e, n, **kw)


def ask(v: DnsView, name: str, qtype: str = "A", **kw) -> DNSRecord:
    reply = answer(v, make_query(name, qtype, id=0x1234, **kw))
    assert reply is not None
    rec = DNSRecord.parse(reply)
    assert rec.header.id == 0x1234
    return rec


def rcode(rec: DNSRecord) -> str:
    return {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}[rec.header.rcode]


def texts(rrs) -> list[str]:
    return [rr_text(r) for r in rrs if r.rtype != 41]


# --- reference §6 worked example, as a table ------------------------------------------------------

S6 = [
    ("cart.shop.svc.cluster.local.", "A", "NOERROR", ["cart.shop.svc.cluster.local. 5 IN A 10.96.7.20"], [], []),
    ("cart.shop.svc.cluster.local.", "AAAA", "NOERROR", [], [SOA], []),
    ("_http._tcp.cart.shop.svc.cluster.local.", "SRV", "NOERROR",
     ["_http._tcp.cart.shop.svc.cluster.local. 5 IN SRV 0 100 80 cart.shop.svc.cluster.local."], [],
     ["cart.shop.svc.cluster.local. 5 IN A 10.96.7.20"]),
    ("cart.shop.svc.cluster.local.", "SRV", "NOERROR",
     ["cart.shop.svc.cluster.local. 5 IN SRV 0 50 80 cart.shop.svc.cluster.local.",
      "cart.shop.svc.cluster.local. 5 IN SRV 0 50 9090 cart.shop.svc.cluster.local."], [],
     ["cart.shop.svc.cluster.local. 5 IN A 10.96.7.20"]),
    ("_http._udp.cart.shop.svc.cluster.local.", "SRV", "NXDOMAIN", [], [SOA], []),
    ("10-244-1-5.cart.shop.svc.cluster.local.", "A", "NOERROR",
     ["10-244-1-5.cart.shop.svc.cluster.local. 5 IN A 10.244.1.5"], [], []),
    ("cart-db.shop.svc.cluster.local.", "A", "NOERROR",
     ["cart-db.shop.svc.cluster.local. 5 IN A 10.244.1.30",
      "cart-db.shop.svc.cluster.local. 5 IN A 10.244.2.31"], [], []),
    ("cart-db-0.cart-db.shop.svc.cluster.local.", "A", "NOERROR",
     ["cart-db-0.cart-db.shop.svc.cluster.local. 5 IN A 10.244.1.30"], [], []),
    ("cart-db-2.cart-db.shop.svc.cluster.local.", "A", "NXDOMAIN", [], [SOA], []),
    ("10-244-1-30.cart-db.shop.svc.cluster.local.", "A", "NXDOMAIN", [], [SOA], []),
    ("_pg._tcp.cart-db.shop.svc.cluster.local.", "SRV", "NOERROR",
     ["_pg._tcp.cart-db.shop.svc.cluster.local. 5 IN SRV 0 50 5432 cart-db-0.cart-db.shop.svc.cluster.local.",
      "_pg._tcp.cart-db.shop.svc.cluster.local. 5 IN SRV 0 50 5432 cart-db-1.cart-db.shop.svc.cluster.local."], [],
     ["cart-db-0.cart-db.shop.svc.cluster.local. 5 IN A 10.244.1.30",
      "cart-db-1.cart-db.shop.svc.cluster.local. 5 IN A 10.244.2.31"]),
    ("20.7.96.10.in-addr.arpa.", "PTR", "NOERROR",
     ["20.7.96.10.in-addr.arpa. 5 IN PTR cart.shop.svc.cluster.local."], [], []),
    ("30.1.244.10.in-addr.arpa.", "PTR", "NOERROR",
     ["30.1.244.10.in-addr.arpa. 5 IN PTR cart-db-0.cart-db.shop.svc.cluster.local."], [], []),
    ("5.1.244.10.in-addr.arpa.", "PTR", "NOERROR",
     ["5.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-5.cart.shop.svc.cluster.local."], [], []),
    ("nosuch.shop.svc.cluster.local.", "A", "NXDOMAIN", [], [SOA], []),
    ("shop.svc.cluster.local.", "A", "NOERROR", [], [SOA], []),
    ("10-244-1-30.shop.pod.cluster.local.", "A", "NOERROR",
     ["10-244-1-30.shop.pod.cluster.local. 5 IN A 10.244.1.30"], [], []),
    ("dns-version.cluster.local.", "TXT", "NOERROR", ['dns-version.cluster.local. 28800 IN TXT "1.1.0"'], [], []),
]


@pytest.mark.parametrize("name,qtype,want_rcode,ans,auth,add", S6, ids=[f"{r[0]}{r[1]}" for r in S6])
def test_worked_example(name, qtype, want_rcode, ans, auth, add):
    rec = ask(shop(), name, qtype)
    assert rcode(rec) == want_rcode
    assert texts(rec.rr) == ans
    assert texts(rec.auth) == auth
    assert texts(rec.ar) == add
    assert rec.header.aa == 1 and rec.header.ra == 0 and rec.header.rd == 1


def test_externalname_outside_zone_cname_plus_upstream():
    v = shop(cluster=ClusterConfig(external_hosts=(("payments.example.net", "93.184.216.34"),)))
    rec = ask(v, "payments.shop.svc.cluster.local.")
    assert texts(rec.rr) == ["payments.shop.svc.cluster.local. 5 IN CNAME payments.example.net.",
                             "payments.example.net. 300 IN A 93.184.216.34"]
    # unknown upstream name: NOERROR with just the CNAME (upstream rcode not propagated)
    rec = ask(shop(), "payments.shop.svc.cluster.local.")
    assert rcode(rec) == "NOERROR"
    assert texts(rec.rr) == ["payments.shop.svc.cluster.local. 5 IN CNAME payments.example.net."]


# --- NXDOMAIN vs NODATA (§2, §9) ------------------------------------------------------------------

TABLE = [
    ("cluster.local.", "SOA", "NOERROR", 1),
    ("cluster.local.", "A", "NOERROR", 0),
    ("cluster.local.", "TXT", "NXDOMAIN", 0),
    ("svc.cluster.local.", "A", "NOERROR", 0),
    ("pod.cluster.local.", "AAAA", "NOERROR", 0),
    ("svc.cluster.local.", "TXT", "NXDOMAIN", 0),
    ("shop.svc.cluster.local.", "TXT", "NXDOMAIN", 0),
    ("nope.svc.cluster.local.", "A", "NXDOMAIN", 0),
    ("cart.nope.svc.cluster.local.", "A", "NXDOMAIN", 0),
    ("shop.pod.cluster.local.", "A", "NOERROR", 0),
    ("foo.cluster.local.", "A", "NXDOMAIN", 0),
    ("cart.shop.svc.cluster.local.", "TXT", "NOERROR", 0),
    ("cart.shop.svc.cluster.local.", "MX", "NOERROR", 0),
    ("cart.shop.svc.cluster.local.", "ANY", "NOERROR", 0),
    ("cart.shop.svc.cluster.local.", "PTR", "NOERROR", 0),
    ("cart.shop.svc.cluster.local.", "SOA", "NOERROR", 0),
    ("nosuch.shop.svc.cluster.local.", "SOA", "NOERROR", 0),   # SOA below apex: always NODATA
    ("nosuch.shop.svc.cluster.local.", "MX", "NXDOMAIN", 0),
    ("payments.shop.svc.cluster.local.", "SRV", "NOERROR", 0),
    ("payments.shop.svc.cluster.local.", "TXT", "NOERROR", 0),
    ("x.payments.shop.svc.cluster.local.", "A", "NXDOMAIN", 0),
    ("_p._tcp.payments.shop.svc.cluster.local.", "SRV", "NXDOMAIN", 0),
    ("*.shop.svc.cluster.local.", "A", "NXDOMAIN", 0),
    ("any.shop.svc.cluster.local.", "A", "NXDOMAIN", 0),
    ("a.b.c.cart.shop.svc.cluster.local.", "A", "NXDOMAIN", 0),
    ("_http._tcp.cart.shop.svc.cluster.local.", "A", "NOERROR", 1),  # quirk: ClusterIP under that owner
    ("dns-version.cluster.local.", "A", "NXDOMAIN", 0),
    ("dns-version.cluster.local.", "AAAA", "NXDOMAIN", 0),
    ("x.10-244-1-5.shop.pod.cluster.local.", "A", "NOERROR", 1),   # quirk: endpoint label ignored
    ("in-addr.arpa.", "PTR", "NOERROR", 0),
    ("7.96.10.in-addr.arpa.", "PTR", "NXDOMAIN", 0),
    ("99.99.96.10.in-addr.arpa.", "PTR", "NXDOMAIN", 0),
    ("cart.shop.svc.cluster.local.", "CNAME", "NOERROR", 0),
]


@pytest.mark.parametrize("name,qtype,want,nans", TABLE, ids=[f"{r[0]}{r[1]}" for r in TABLE])
def test_nxdomain_vs_nodata(name, qtype, want, nans):
    rec = ask(shop(), name, qtype)
    assert rcode(rec) == want
    assert len(rec.rr) == nans
    if nans == 0:  # every negative answer carries the SOA in AUTHORITY
        assert [r.rtype for r in rec.auth] == [6]
    else:
        assert rec.auth == []


def test_axfr_refused_without_aa():
    rec = ask(shop(), "cluster.local.", "AXFR")
    assert rec.header.rcode == 5 and rec.header.aa == 0 and rec.auth == []


def test_headless_without_ready_endpoints_is_nxdomain_clusterip_without_is_answered():
    v = view([svc("shop", "db", headless=True, ports=[(5432, "pg")]), svc("shop", "api", "10.96.0.50", [(80, "http")])],
             [eps("shop", "db", [ep("10.244.1.1", ready=False)], [(5432, "pg")])], [ns("shop")])
    assert rcode(ask(v, "db.shop.svc.cluster.local.")) == "NXDOMAIN"
    assert texts(ask(v, "api.shop.svc.cluster.local.").rr) == ["api.shop.svc.cluster.local. 5 IN A 10.96.0.50"]
    assert len(ask(v, "_http._tcp.api.shop.svc.cluster.local.", "SRV").rr) == 1


def test_ignore_empty_service():
    core = PLUGIN_DEFAULTS.replace("pods insecure", "pods insecure\n ignore empty_service")
    v = view([svc("shop", "api", "10.96.0.50", [(80, "http")])], [], [ns("shop")], corefile=core)
    assert rcode(ask(v, "api.shop.svc.cluster.local.")) == "NXDOMAIN"


def test_unready_nil_condition_counts_as_ready_and_fqdn_slices_ignored():
    v = view([svc("shop", "db", headless=True, ports=[(5432, "pg")])],
             [eps("shop", "db", [ep("10.244.1.1", ready=None)], [(5432, "pg")])], [ns("shop")])
    assert texts(ask(v, "db.shop.svc.cluster.local.").rr) == ["db.shop.svc.cluster.local. 5 IN A 10.244.1.1"]


# --- SOA, TTL, flags --------------------------------------------------------------------------------

def test_soa_fields_and_ttl_option():
    core = PLUGIN_DEFAULTS.replace("pods insecure", "pods insecure\n ttl 600")
    rec = ask(shop(corefile=core), "nosuch.shop.svc.cluster.local.")
    soa = rec.auth[0]
    assert soa.ttl == 300  # min(ttl, 300)
    assert rdata(soa) == f"ns.dns.cluster.local. hostmaster.cluster.local. {SERIAL} 7200 1800 86400 600"
    assert texts(ask(shop(corefile=core), "cart.shop.svc.cluster.local.").rr)[0].split()[1] == "600"


def rdata(rr) -> str:
    return rr_text(rr).split(" ", 4)[4]


def test_apex_soa_and_ns():
    rec = ask(shop(), "cluster.local.", "SOA")
    assert texts(rec.rr) == [SOA]
    rec = ask(shop(local_ips=["10.244.0.5"]), "cluster.local.", "NS")
    assert texts(rec.rr) == ["cluster.local. 5 IN NS ns.dns.cluster.local."]
    assert texts(rec.ar) == ["ns.dns.cluster.local. 5 IN A 10.244.0.5"]
    assert texts(ask(shop(local_ips=["10.244.0.5"]), "ns.dns.cluster.local.").rr) == \
        ["ns.dns.cluster.local. 5 IN A 10.244.0.5"]


def test_apex_ns_names_the_kube_dns_service_when_coredns_endpoint_is_local():
    s, e, n = shop_objects()
    s.append(svc("kube-system", "kube-dns", "10.96.0.10", [(53, "dns", "UDP"), (53, "dns-tcp")]))
    e.append(eps("kube-system", "kube-dns", [ep("10.244.0.2")], [(53, "dns", "UDP"), (53, "dns-tcp")]))
    rec = ask(view(s, e, n), "cluster.local.", "NS")
    assert texts(rec.rr) == ["cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local."]
    assert texts(rec.ar) == ["kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"]


def test_kubeadm_default_corefile_ttl_30_and_cache_caps_dns_version():
    s, e, n = shop_objects()
    v = DnsView(services=s, endpoint_slices=e, namespaces=n, now=SERIAL)  # no ConfigMap: kubeadm
    assert texts(ask(v, "cart.shop.svc.cluster.local.").rr) == ["cart.shop.svc.cluster.local. 30 IN A 10.96.7.20"]
    # cache 30 caps every TTL of the reply, even for the disabled (not stored) cluster zone
    assert texts(ask(v, "dns-version.cluster.local.", "TXT").rr) == ['dns-version.cluster.local. 30 IN TXT "1.1.0"']
    # outside the cluster zones, no upstream: SERVFAIL
    assert rcode(ask(v, "example.com.")) == "SERVFAIL"
    # reverse miss falls through (fallthrough in-addr.arpa) to forward: SERVFAIL too
    assert rcode(ask(v, "9.9.9.10.in-addr.arpa.", "PTR")) == "SERVFAIL"


def test_configmap_corefile_is_used():
    from knet.model.core import ConfigMap
    from knet.model.meta import ObjectMeta
    s, e, n = shop_objects()
    cm = ConfigMap(ObjectMeta(name="coredns", namespace="kube-system"), data={"Corefile": PLUGIN_DEFAULTS.replace(
        "pods insecure", "pods disabled\n ttl 7")})
    v = DnsView(services=s, endpoint_slices=e, namespaces=n, config_maps=[cm], now=SERIAL)
    assert texts(ask(v, "cart.shop.svc.cluster.local.").rr)[0].split()[1] == "7"
    assert rcode(ask(v, "10-244-1-30.shop.pod.cluster.local.")) == "NXDOMAIN"
    assert rcode(ask(v, "shop.pod.cluster.local.")) == "NXDOMAIN"


# --- SRV weights ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,weight", [(1, 100), (2, 50), (3, 33), (6, 16), (7, 14), (101, 1), (150, 1)])
def test_srv_weight_floor_100_over_n(n, weight):
    endpoints = [ep(f"10.244.{i // 250}.{i % 250 + 1}") for i in range(n)]
    v = view([svc("shop", "db", headless=True, ports=[(5432, "pg")])],
             [eps("shop", "db", endpoints, [(5432, "pg")])], [ns("shop")])
    rec = ask(v, "_pg._tcp.db.shop.svc.cluster.local.", "SRV", edns=65000)
    assert {r.rdata.weight for r in rec.rr} == {weight}
    assert len(rec.rr) == n


def test_srv_dual_stack_counts_entries_before_dedup_and_glues_both_families():
    v = view([svc("shop", "web", ("10.96.0.7", "fd00:96::7"), [(80, "http")])], [], [ns("shop")])
    rec = ask(v, "_http._tcp.web.shop.svc.cluster.local.", "SRV")
    assert texts(rec.rr) == ["_http._tcp.web.shop.svc.cluster.local. 5 IN SRV 0 50 80 web.shop.svc.cluster.local."]
    assert texts(rec.ar) == ["web.shop.svc.cluster.local. 5 IN A 10.96.0.7",
                             "web.shop.svc.cluster.local. 5 IN AAAA fd00:96::7"]
    assert texts(ask(v, "web.shop.svc.cluster.local.", "AAAA").rr) == \
        ["web.shop.svc.cluster.local. 5 IN AAAA fd00:96::7"]


def test_srv_shared_hostname_one_srv_two_glue_and_portless_headless():
    v = view([svc("shop", "db", headless=True, ports=[(5432, "pg")]), svc("shop", "bare", headless=True)],
             [eps("shop", "db", [ep("10.244.1.1", hostname="h"), ep("10.244.1.2", hostname="h")], [(5432, "pg")]),
              eps("shop", "bare", [ep("10.244.1.3")], [])], [ns("shop")])
    rec = ask(v, "_pg._tcp.db.shop.svc.cluster.local.", "SRV")
    assert texts(rec.rr) == ["_pg._tcp.db.shop.svc.cluster.local. 5 IN SRV 0 50 5432 h.db.shop.svc.cluster.local."]
    assert len(rec.ar) == 3  # two A + OPT
    assert texts(ask(v, "h.db.shop.svc.cluster.local.").rr) == [
        "h.db.shop.svc.cluster.local. 5 IN A 10.244.1.1", "h.db.shop.svc.cluster.local. 5 IN A 10.244.1.2"]
    assert texts(ask(v, "bare.shop.svc.cluster.local.").rr) == ["bare.shop.svc.cluster.local. 5 IN A 10.244.1.3"]
    rec = ask(v, "bare.shop.svc.cluster.local.", "SRV")
    assert rcode(rec) == "NOERROR" and rec.rr == []
    assert rcode(ask(v, "_p._tcp.bare.shop.svc.cluster.local.", "SRV")) == "NXDOMAIN"


def test_srv_on_pod_name_port_zero():
    rec = ask(shop(), "10-244-1-30.shop.pod.cluster.local.", "SRV")
    assert texts(rec.rr) == ["10-244-1-30.shop.pod.cluster.local. 5 IN SRV 0 100 0 10-244-1-30.shop.pod.cluster.local."]
    assert texts(rec.ar) == ["10-244-1-30.shop.pod.cluster.local. 5 IN A 10.244.1.30"]


# --- PTR ----------------------------------------------------------------------------------------------

def test_ptr_v6_and_multiple_services_and_unselected_pod():
    v = view([svc("shop", "a", "10.96.0.1", [(80, "http")]), svc("shop", "b", "fd00:96::1", [(80, "http")])],
             [eps("shop", "a", [ep("10.244.1.9")], [(80, "http")]),
              eps("shop", "a2", [ep("10.244.1.9")], [(80, "http")], name="x"),
              eps("shop", "b", [ep("fd00:244::5")], [(80, "http")], family="IPv6")], [ns("shop")])
    rec = ask(v, "9.1.244.10.in-addr.arpa.", "PTR")
    assert texts(rec.rr) == ["9.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-9.a.shop.svc.cluster.local.",
                             "9.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-9.a2.shop.svc.cluster.local."]
    rev6 = ".".join(reversed("fd00009600000000000000000000" + "0001")) + ".ip6.arpa."
    assert texts(ask(v, rev6, "PTR").rr) == [f"{rev6} 5 IN PTR b.shop.svc.cluster.local."]
    rev6e = ".".join(reversed("fd00024400000000000000000000" + "0005")) + ".ip6.arpa."
    assert texts(ask(v, rev6e, "PTR").rr) == [f"{rev6e} 5 IN PTR fd00-244--5.b.shop.svc.cluster.local."]
    assert texts(ask(v, "fd00-244--5.b.shop.svc.cluster.local.", "AAAA").rr) == \
        ["fd00-244--5.b.shop.svc.cluster.local. 5 IN AAAA fd00:244::5"]
    neg = ask(v, "77.1.244.10.in-addr.arpa.", "PTR")
    assert rcode(neg) == "NXDOMAIN"
    assert texts(neg.auth)[0].startswith("in-addr.arpa. 5 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa.")


def test_ptr_without_reverse_zone_is_not_answered_by_kubernetes():
    core = PLUGIN_DEFAULTS.replace("cluster.local in-addr.arpa ip6.arpa", "cluster.local")
    assert rcode(ask(shop(corefile=core), "20.7.96.10.in-addr.arpa.", "PTR")) == "SERVFAIL"


def test_ipv6_dashed_names_trailing_colon():
    v = view([svc("shop", "h", headless=True)], [eps("shop", "h", [ep("fd00::")], [], family="IPv6")], [ns("shop")])
    assert texts(ask(v, "fd00--0.h.shop.svc.cluster.local.", "AAAA").rr) == \
        ["fd00--0.h.shop.svc.cluster.local. 5 IN AAAA fd00::"]


# --- ExternalName -------------------------------------------------------------------------------------

def test_externalname_in_zone_chase_and_quirks():
    v = view([svc("shop", "alias", external_name="cart.shop.svc.cluster.local"),
              svc("shop", "cart", "10.96.7.20", [(80, "http")]),
              svc("shop", "ipname", external_name="1.2.3.4")], [], [ns("shop")])
    assert texts(ask(v, "alias.shop.svc.cluster.local.").rr) == [
        "alias.shop.svc.cluster.local. 5 IN CNAME cart.shop.svc.cluster.local.",
        "cart.shop.svc.cluster.local. 5 IN A 10.96.7.20"]
    rec = ask(v, "alias.shop.svc.cluster.local.", "AAAA")  # target has no AAAA: plain NODATA
    assert rcode(rec) == "NOERROR" and rec.rr == [] and len(rec.auth) == 1
    assert texts(ask(v, "alias.shop.svc.cluster.local.", "CNAME").rr) == [
        "alias.shop.svc.cluster.local. 5 IN CNAME cart.shop.svc.cluster.local."]
    assert rcode(ask(v, "ipname.shop.svc.cluster.local.")) == "NXDOMAIN"


# --- pods modes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,name,want", [
    ("insecure", "10-244-9-9.shop.pod.cluster.local.", "NOERROR"),
    ("insecure", "10-244-9-9.nope.pod.cluster.local.", "NXDOMAIN"),
    ("insecure", "not-an-ip.shop.pod.cluster.local.", "NXDOMAIN"),
    ("verified", "10-244-9-9.shop.pod.cluster.local.", "NXDOMAIN"),
    ("verified", "10-244-1-30.shop.pod.cluster.local.", "NOERROR"),
    ("verified", "10-244-1-30.other.pod.cluster.local.", "NXDOMAIN"),
    ("disabled", "10-244-1-30.shop.pod.cluster.local.", "NXDOMAIN"),
    ("disabled", "shop.pod.cluster.local.", "NXDOMAIN"),
    ("verified", "shop.pod.cluster.local.", "NOERROR"),
])
def test_pod_modes(mode, name, want):
    s, e, n = shop_objects()
    core = PLUGIN_DEFAULTS.replace("pods insecure", f"pods {mode}")
    v = DnsView(services=s, endpoint_slices=e, namespaces=[*n, ns("other")], corefile=core, now=SERIAL,
                pods=[pod("shop", "cart-db-0", "10.244.1.30")])
    assert rcode(ask(v, name)) == want


def test_pod_ipv6_record():
    rec = ask(shop(), "fd00-10-244--5.shop.pod.cluster.local.", "AAAA")
    assert texts(rec.rr) == ["fd00-10-244--5.shop.pod.cluster.local. 5 IN AAAA fd00:10:244::5"]


# --- case ---------------------------------------------------------------------------------------------

def test_case_owner_echoes_query_srv_target_uses_query_zone_ptr_uses_primary_zone():
    v = shop()
    rec = ask(v, "CaRt.ShOp.SvC.Cluster.Local.")
    assert texts(rec.rr) == ["CaRt.ShOp.SvC.Cluster.Local. 5 IN A 10.96.7.20"]
    rec = ask(v, "_HTTP._TCP.cart.shop.svc.Cluster.Local.", "SRV")
    assert texts(rec.rr) == ["_HTTP._TCP.cart.shop.svc.Cluster.Local. 5 IN SRV 0 100 80 cart.shop.svc.Cluster.Local."]
    rec = ask(v, "NOSUCH.shop.svc.CLUSTER.local.")
    assert texts(rec.auth)[0].startswith("CLUSTER.local. 5 IN SOA ns.dns.CLUSTER.local. hostmaster.CLUSTER.local.")
    rec = ask(v, "20.7.96.10.IN-ADDR.ARPA.", "PTR")
    assert texts(rec.rr) == ["20.7.96.10.IN-ADDR.ARPA. 5 IN PTR cart.shop.svc.cluster.local."]


# --- EDNS, TC, malformed ------------------------------------------------------------------------------

def big_headless(n=60) -> DnsView:
    return view([svc("shop", "big", headless=True, ports=[(80, "http")])],
                [eps("shop", "big", [ep(f"10.244.3.{i + 1}") for i in range(n)], [(80, "http")])], [ns("shop")])


def test_tc_without_edns_and_edns_size_honoured():
    v = big_headless()
    q = make_query("big.shop.svc.cluster.local.", "A", id=9, edns=None)
    small = answer(v, q)
    assert len(small) <= 512
    rec = DNSRecord.parse(small)
    assert rec.header.tc == 1 and 0 < len(rec.rr) < 60
    full = DNSRecord.parse(answer(v, q, tcp=True))
    assert full.header.tc == 0 and len(full.rr) == 60
    big = answer(v, make_query("big.shop.svc.cluster.local.", "A", id=9, edns=4096))
    rec = DNSRecord.parse(big)
    assert rec.header.tc == 0 and len(rec.rr) == 60 and rec.ar[-1].rtype == 41
    tiny = answer(v, make_query("big.shop.svc.cluster.local.", "A", id=9, edns=100))  # < 512 → 512
    assert len(tiny) <= 512 and DNSRecord.parse(tiny).header.tc == 1
    assert DNSRecord.parse(tiny).ar[-1].rtype == 41  # OPT kept when truncating


def test_opt_echo_do_bit_cookie_and_badvers():
    v = shop()
    rec = ask(v, "cart.shop.svc.cluster.local.", do=True, edns=1400)
    opt = rec.ar[-1]
    assert opt.rtype == 41 and opt.rclass == 1400 and opt.ttl & 0x8000
    q = bytearray(make_query("cart.shop.svc.cluster.local.", "A", id=1, edns=1232))
    # add a COOKIE option (code 10) and an unsupported one (code 8, client subnet)
    opts = struct.pack("!HH", 10, 8) + b"\x01" * 8 + struct.pack("!HH", 8, 4) + b"\x00\x01\x00\x00"
    q[-2:] = struct.pack("!H", len(opts))
    q += opts
    rec = DNSRecord.parse(answer(v, bytes(q)))
    assert [(o.code, bytes(o.data)) for o in rec.ar[-1].rdata] == [(10, b"\x01" * 8)]
    q = bytearray(make_query("cart.shop.svc.cluster.local.", "A", id=1, edns=1232))
    q[-5] = 1  # OPT version 1 (second byte of the TTL field)
    rec = DNSRecord.parse(answer(v, bytes(q)))
    assert rec.header.rcode == 0 and rec.rr == [] and (rec.ar[-1].ttl >> 24) == 1  # BADVERS = 16


def test_malformed_packets():
    v = shop()
    good = make_query("cart.shop.svc.cluster.local.", "A", id=77)
    assert answer(v, b"") is None and answer(v, b"\x00" * 11) is None
    resp = bytearray(good)
    resp[2] |= 0x80
    assert answer(v, bytes(resp)) is None  # responses are ignored
    rep = answer(v, good[:20])
    assert rep is not None and rep[3] & 0xF == 1 and rep[:2] == good[:2]  # FORMERR
    two = bytearray(good)
    two[5] = 2
    assert answer(v, bytes(two))[3] & 0xF == 1
    upd = bytearray(good)
    upd[2] = (upd[2] & 0x87) | (5 << 3)  # opcode UPDATE
    rep = answer(v, bytes(upd))
    assert rep[3] & 0xF == 4 and (rep[2] >> 3) & 0xF == 5  # NOTIMP, opcode kept


# --- other plugins ------------------------------------------------------------------------------------

def test_hosts_rewrite_forward_and_loadbalance():
    core = """.:53 {
        hosts {
            192.0.2.10 legacy.corp.example
            fallthrough
        }
        rewrite name exact db.corp.example cart-db.shop.svc.cluster.local
        rewrite name suffix .shop.internal .shop.svc.cluster.local
        kubernetes cluster.local in-addr.arpa ip6.arpa
        forward . 8.8.8.8
        loadbalance
    }"""
    s, e, n = shop_objects()
    v = DnsView(services=s, endpoint_slices=e, namespaces=n, corefile=core, now=SERIAL, seed=3,
                cluster=ClusterConfig(external_hosts=(("api.example.org", "203.0.113.9"),)))
    assert texts(ask(v, "legacy.corp.example.").rr) == ["legacy.corp.example. 3600 IN A 192.0.2.10"]
    assert texts(ask(v, "10.2.0.192.in-addr.arpa.", "PTR").rr) == \
        ["10.2.0.192.in-addr.arpa. 3600 IN PTR legacy.corp.example."]
    rec = ask(v, "db.corp.example.")
    assert sorted(texts(rec.rr)) == ["db.corp.example. 5 IN A 10.244.1.30", "db.corp.example. 5 IN A 10.244.2.31"]
    assert str(rec.q.qname) == "db.corp.example."
    assert texts(ask(v, "cart.shop.internal.").rr) == ["cart.shop.internal. 5 IN A 10.96.7.20"]
    rec = ask(v, "api.example.org.")
    assert texts(rec.rr) == ["api.example.org. 300 IN A 203.0.113.9"] and rec.header.ra == 1 and rec.header.aa == 0
    assert rcode(ask(v, "nothing.example.org.")) == "SERVFAIL"
    orders = {tuple(texts(ask(v, "cart-db.shop.svc.cluster.local.").rr)) for _ in range(40)}
    assert len(orders) == 2  # shuffled
    v2 = DnsView(services=s, endpoint_slices=e, namespaces=n, corefile=core, now=SERIAL, seed=3)
    seq1 = [answer(v2, make_query("cart-db.shop.svc.cluster.local.", "A")) for _ in range(10)]
    v3 = DnsView(services=s, endpoint_slices=e, namespaces=n, corefile=core, now=SERIAL, seed=3)
    assert seq1 == [answer(v3, make_query("cart-db.shop.svc.cluster.local.", "A")) for _ in range(10)]


def test_hosts_without_fallthrough_servfails_unknown_names():
    core = """.:53 {
        hosts {
            192.0.2.10 legacy.corp.example
        }
        kubernetes cluster.local
    }"""
    v = shop(corefile=core)
    assert rcode(ask(v, "cart.shop.svc.cluster.local.")) == "SERVFAIL"  # hosts runs before kubernetes
    rec = ask(v, "legacy.corp.example.", "MX")
    assert rcode(rec) == "NOERROR" and rec.rr == [] and rec.auth == []


def test_refused_outside_every_server_block():
    core = "cluster.local:53 {\n kubernetes\n}\n"
    v = shop(corefile=core)
    assert rcode(ask(v, "example.com.")) == "REFUSED"
    assert rcode(ask(v, "cart.shop.svc.cluster.local.")) == "NOERROR"
