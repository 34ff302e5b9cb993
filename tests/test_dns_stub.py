"""Pod-side resolution: kubelet resolv.conf and /etc/hosts, glibc search order, the async client."""

from __future__ import annotations

import pytest

from dns_factory import pod, shop_objects, svc
from knet.dns import DnsView, answer
from knet.dns.client import resolve
from knet.dns.dig import dig
from knet.dns.stub import (ResolvConf, Status, candidates, etc_hosts_for_pod, parse_hosts,
                           resolv_conf_for_pod, search)

POD_RC = ResolvConf(("10.96.0.10",), ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local"), ("ndots:5",))


def test_cluster_first_resolv_conf():
    rc = resolv_conf_for_pod(pod("shop", "c", "10.244.1.9"), cluster_dns=["10.96.0.10"])
    assert rc == POD_RC
    assert rc.render() == ("search shop.svc.cluster.local svc.cluster.local cluster.local\n"
                           "nameserver 10.96.0.10\noptions ndots:5\n")
    node = ResolvConf(("172.18.0.1",), ("corp.example", "cluster.local"), ("edns0",))
    rc = resolv_conf_for_pod(pod("shop", "c", "10.244.1.9"), cluster_dns=["10.96.0.10"], node=node)
    assert rc.searches == ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example")
    assert rc.options == ("ndots:5",)


def test_dns_policies():
    node = ResolvConf(("172.18.0.1",), ("corp.example",), ())
    hostnet = pod("shop", "h", "172.18.0.2", host_network=True)
    assert resolv_conf_for_pod(hostnet, cluster_dns=["10.96.0.10"], node=node) == node
    hn2 = pod("shop", "h", "172.18.0.2", host_network=True, dns_policy="ClusterFirstWithHostNet")
    assert resolv_conf_for_pod(hn2, cluster_dns=["10.96.0.10"], node=node).nameservers == ("10.96.0.10",)
    assert resolv_conf_for_pod(pod("shop", "d", "10.244.1.2", dns_policy="Default"),
                               cluster_dns=["10.96.0.10"], node=node) == node
    none = pod("shop", "n", "10.244.1.3", dns_policy="None", dns_config={
        "nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9", "4.4.4.4"], "searches": ["a.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    rc = resolv_conf_for_pod(none, cluster_dns=["10.96.0.10"])
    assert rc == ResolvConf(("1.1.1.1", "8.8.8.8", "9.9.9.9"), ("a.example",), ("ndots:2", "edns0"))
    assert rc.ndots == 2 and rc.edns0


def test_dns_config_merge_and_limits():
    searches = [f"d{i}.example" for i in range(40)]
    p = pod("shop", "m", "10.244.1.4", dns_config={
        "searches": ["svc.cluster.local", *searches], "options": [{"name": "ndots", "value": "1"}]})
    rc = resolv_conf_for_pod(p, cluster_dns=["10.96.0.10"])
    assert rc.options == ("ndots:1",) and rc.ndots == 1
    assert len(rc.searches) == 32 and rc.searches[:4] == (
        "shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "d0.example")
    long = [("x" * 60 + f".{i}.example") for i in range(31)]
    rc = resolv_conf_for_pod(pod("shop", "m", "10.244.1.4", dns_config={"searches": long}),
                             cluster_dns=["10.96.0.10"])
    assert len(" ".join(rc.searches)) <= 2048 and len(rc.searches) < 34


def test_etc_hosts_with_subdomain_and_host_aliases():
    p = pod("shop", "web-0", "10.244.1.7", hostname="web-0", subdomain="web",
            host_aliases=[{"ip": "192.0.2.1", "hostnames": ["foo.local", "bar.local"]}])
    text = etc_hosts_for_pod(p)
    assert "10.244.1.7\tweb-0.web.shop.svc.cluster.local\tweb-0\n" in text
    assert text.endswith("\n# Entries added by HostAliases.\n192.0.2.1\tfoo.local\tbar.local\n")
    assert ("192.0.2.1", ("foo.local", "bar.local")) in parse_hosts(text)


@pytest.mark.parametrize("name,expected", [
    ("cart", ["cart.shop.svc.cluster.local.", "cart.svc.cluster.local.", "cart.cluster.local.", "cart."]),
    ("ledger.billing.svc", ["ledger.billing.svc.shop.svc.cluster.local.", "ledger.billing.svc.svc.cluster.local.",
                            "ledger.billing.svc.cluster.local.", "ledger.billing.svc."]),
    ("ledger.billing.svc.cluster.local", ["ledger.billing.svc.cluster.local.shop.svc.cluster.local.",
                                          "ledger.billing.svc.cluster.local.svc.cluster.local.",
                                          "ledger.billing.svc.cluster.local.cluster.local.",
                                          "ledger.billing.svc.cluster.local."]),
    ("a.b.c.d.e.f", ["a.b.c.d.e.f.", "a.b.c.d.e.f.shop.svc.cluster.local.", "a.b.c.d.e.f.svc.cluster.local.",
                     "a.b.c.d.e.f.cluster.local."]),
    ("cart.shop.svc.cluster.local.", ["cart.shop.svc.cluster.local."]),
])
def test_candidates_ndots(name, expected):
    assert candidates(name, POD_RC) == expected


def test_search_moves_on_for_nodata_and_servfail_but_stops_on_refused():
    outcomes = {"x.shop.svc.cluster.local.": Status.NODATA, "x.svc.cluster.local.": Status.SERVFAIL,
                "x.cluster.local.": Status.NXDOMAIN, "x.": Status.NXDOMAIN}
    r = search("x", POD_RC, lambda q: outcomes[q])
    assert [q for q, _ in r.tried] == list(outcomes) and r.status == Status.NODATA
    r = search("x", POD_RC, lambda q: Status.OTHER if q == "x.shop.svc.cluster.local." else Status.NXDOMAIN)
    assert [q for q, _ in r.tried] == ["x.shop.svc.cluster.local.", "x."]
    rc1 = ResolvConf(searches=("a.example",), options=("ndots:1",))
    r = search("k.y", rc1, lambda q: Status.NXDOMAIN)
    assert [q for q, _ in r.tried] == ["k.y.", "k.y.a.example."] and r.status == Status.NXDOMAIN


def test_dig_from_pod_reports_every_query():
    s, e, n = shop_objects()
    s.append(svc("billing", "ledger", "10.96.8.8", [(80, "http")]))
    v = DnsView(services=s, endpoint_slices=e, namespaces=n, now=1)
    run = dig(v, "ledger.billing", "A", resolv=POD_RC)
    assert [(q["name"], q["rcode"]) for q in run.queries] == [
        ("ledger.billing.shop.svc.cluster.local.", "NXDOMAIN"), ("ledger.billing.svc.cluster.local.", "NOERROR")]
    assert run.to_json()["answer"] == ["ledger.billing.svc.cluster.local. 30 IN A 10.96.8.8"]
    run = dig(v, "cart", "AAAA", resolv=POD_RC)  # NODATA moves on to the next domain
    assert [q["rcode"] for q in run.queries] == ["NOERROR", "NXDOMAIN", "NXDOMAIN", "SERVFAIL"]
    assert run.resolved_name is None


@pytest.mark.asyncio
async def test_async_client_resolves_with_tcp_retry_and_hosts_first():
    from dns_factory import ep, eps, ns
    v = DnsView(services=[svc("shop", "big", headless=True, ports=[(80, "http")])],
                endpoint_slices=[eps("shop", "big", [ep(f"10.244.3.{i + 1}") for i in range(60)], [(80, "http")])],
                namespaces=[ns("shop")], now=1)
    sent: list[bool] = []

    async def send(q: bytes, tcp: bool) -> bytes | None:
        sent.append(tcp)
        return answer(v, q, ("10.244.1.9", 5353), tcp=tcp)

    r = await resolve("big", 4, POD_RC, send)
    assert len(r.addresses) == 60 and r.canonical == "big.shop.svc.cluster.local." and sent == [False, True]
    assert r.queries[-1].tcp and r.queries[-1].rcode == "NOERROR"
    r = await resolve("nothing", 0, POD_RC, send)
    assert not r.ok and r.status == Status.SERVFAIL and len(r.queries) == 8
    r = await resolve("foo.local", 4, POD_RC, send, hosts=[("192.0.2.1", ("foo.local",))])
    assert r.from_hosts and r.addresses == ("192.0.2.1",)
