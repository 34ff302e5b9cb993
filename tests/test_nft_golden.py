"""nftables mode: the full-sync transaction (goldens for every service type, dual-stack) and
the reference's per-service lines.

Goldens live in tests/data/nft/ and are rewritten only with KNET_UPDATE_GOLDEN=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from knet.proxy import modes
from knet.proxy.nftables import build_state, hash_and_truncate

from modes_factory import rich, with_proxy
from proxy_factories import CLUSTER, PROXY, worked_example

DATA = Path(__file__).parent / "data" / "nft"

REFERENCE_LINES = """\
add rule ip kube-proxy service-242WI43H-shop/cart/tcp/http ip daddr 10.96.7.20 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule ip kube-proxy service-242WI43H-shop/cart/tcp/http numgen random mod 3 vmap { 0 : goto endpoint-LA6KUBZW-shop/cart/tcp/http__10.244.1.12/8080 , 1 : goto endpoint-J6SR727L-shop/cart/tcp/http__10.244.1.5/8080 , 2 : goto endpoint-D2Q6277G-shop/cart/tcp/http__10.244.2.7/8080 }
add rule ip kube-proxy endpoint-J6SR727L-shop/cart/tcp/http__10.244.1.5/8080 ip saddr 10.244.1.5 jump mark-for-masquerade
add rule ip kube-proxy endpoint-J6SR727L-shop/cart/tcp/http__10.244.1.5/8080 meta l4proto tcp dnat to 10.244.1.5:8080
add element ip kube-proxy cluster-ips { 10.96.7.20 }
add element ip kube-proxy service-ips { 10.96.7.20 . tcp . 80 : goto service-242WI43H-shop/cart/tcp/http }
add element ip kube-proxy cluster-ips { 10.96.7.40 }
add element ip kube-proxy no-endpoint-services { 10.96.7.40 . tcp . 80 comment "shop/legacy:http" : goto reject-chain }
add rule ip kube-proxy service-XUFH7HGN-shop/storefront/tcp/https ip daddr 10.96.7.50 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule ip kube-proxy service-XUFH7HGN-shop/storefront/tcp/https numgen random mod 2 vmap { 0 : goto endpoint-NSFXCJM2-shop/storefront/tcp/https__10.244.1.20/8443 , 1 : goto endpoint-UAPLZBAO-shop/storefront/tcp/https__10.244.2.21/8443 }
add rule ip kube-proxy local-XUFH7HGN-shop/storefront/tcp/https numgen random mod 1 vmap { 0 : goto endpoint-NSFXCJM2-shop/storefront/tcp/https__10.244.1.20/8443 }
add rule ip kube-proxy external-XUFH7HGN-shop/storefront/tcp/https ip saddr 10.244.0.0/16 goto service-XUFH7HGN-shop/storefront/tcp/https comment "short-circuit pod traffic"
add rule ip kube-proxy external-XUFH7HGN-shop/storefront/tcp/https fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
add rule ip kube-proxy external-XUFH7HGN-shop/storefront/tcp/https fib saddr type local goto service-XUFH7HGN-shop/storefront/tcp/https comment "short-circuit local traffic"
add rule ip kube-proxy external-XUFH7HGN-shop/storefront/tcp/https goto local-XUFH7HGN-shop/storefront/tcp/https
add rule ip kube-proxy firewall-XUFH7HGN-shop/storefront/tcp/https ip saddr != { 198.51.100.0/24 } drop
add element ip kube-proxy cluster-ips { 10.96.7.50 }
add element ip kube-proxy service-ips { 10.96.7.50 . tcp . 443 : goto service-XUFH7HGN-shop/storefront/tcp/https }
add element ip kube-proxy service-ips { 192.0.2.80 . tcp . 443 : goto external-XUFH7HGN-shop/storefront/tcp/https }
add element ip kube-proxy firewall-ips { 192.0.2.80 . tcp . 443 : goto firewall-XUFH7HGN-shop/storefront/tcp/https }
add element ip kube-proxy service-nodeports { tcp . 31443 : goto external-XUFH7HGN-shop/storefront/tcp/https }
add table ip kube-proxy { comment "rules for kube-proxy" ; }
add chain ip kube-proxy filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }
add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
add chain ip kube-proxy reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }
"""


def test_reference_lines_and_names():
    n, svcs, sl = worked_example()
    text = build_state(n, svcs, sl, PROXY, CLUSTER, 4).text
    lines = text.splitlines()
    for line in REFERENCE_LINES.splitlines():
        assert line in lines, line
    assert hash_and_truncate("shop/web/tcp/") == "452DNVGS-shop/web/tcp/"
    long = hash_and_truncate("ns/" + "x" * 300 + "/tcp/p")
    assert len(long) == 240 and long.endswith("...")
    # every chain is declared before anything references it
    declared: set[str] = set()
    for ln in lines:
        t = ln.split()
        if ln.startswith("add chain"):
            declared.add(t[4])
        for tok in t:
            if tok.startswith(("endpoint-", "service-", "local-", "external-", "firewall-")) \
                    and "/" in tok:
                assert tok in declared or ln.startswith("add chain"), ln


def test_fixed_objects_and_base_chain_rules():
    n, svcs, sl = worked_example()
    t = build_state(n, svcs, sl, PROXY, CLUSTER, 4).table()
    rules = {c.name: [r.text for r in c.rules] for c in t.chains.values()}
    assert rules["filter-input"] == ["ct state new jump nodeport-endpoints-check",
                                     "ct state new jump service-endpoints-check"]
    assert rules["filter-forward"] == ["ct state new jump service-endpoints-check",
                                       "ct state new jump cluster-ips-check"]
    assert rules["nat-postrouting"] == ["jump masquerading"]
    assert rules["masquerading"] == ["mark and 0x00004000 == 0 return",
                                     "mark set mark xor 0x00004000", "masquerade fully-random"]
    assert rules["services"][1] == ("ip daddr @nodeport-ips meta l4proto . th dport "
                                    "vmap @service-nodeports")
    assert {c.name: c.priority for c in t.chains.values() if c.hook} == {
        "filter-prerouting-pre-dnat": -110, "filter-output-pre-dnat": -110, "filter-input": 0,
        "filter-forward": 0, "filter-output": 0, "nat-prerouting": -100, "nat-output": -100,
        "nat-postrouting": 100}


def test_rich_behaviours():
    c = rich()
    text = modes.render(c, c.node("node-a"), "nftables", [4], None, "restore", "text")
    # eTP Local without local endpoints: external destinations drop, ClusterIP works
    assert 'add element ip kube-proxy no-endpoint-services { 192.0.2.90 . tcp . 80 comment ' \
           '"shop/lblocal:http" : drop }' in text
    assert 'add element ip kube-proxy no-endpoint-nodeports { tcp . 30090 comment ' \
           '"shop/lblocal:http" : drop }' in text
    # affinity: dynamic timeout sets, checked before numgen, updated in the endpoint chain
    assert "flags dynamic,timeout ; timeout 600s ; }" in text
    assert "ip saddr @affinity-" in text and "update @affinity-" in text
    # iTP Local: ClusterIP goes to local-
    assert "10.96.7.80 . tcp . 80 : goto local-" in text
    # externalIPs dispatch to external-, SCTP and UDP protocols
    assert "198.51.100.50 . tcp . 80 : goto external-" in text
    assert "sctp . 30900 : goto external-" in text
    assert "10.96.0.10 . udp . 53 : goto service-" in text


def test_match_all_nodeports_and_masquerade_all():
    c = with_proxy(rich(), node_port_addresses=("0.0.0.0/0",), masquerade_all=True)
    text = modes.render(c, c.node("node-a"), "nftables", [4], None, "restore", "text")
    assert "delete set ip kube-proxy nodeport-ips" in text
    assert ("add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 "
            "meta l4proto . th dport vmap @service-nodeports") in text
    assert "ip daddr 10.96.7.20 jump mark-for-masquerade" in text


@pytest.mark.parametrize("dual", [False, True])
def test_rich_golden(dual):
    c = rich(dual=dual)
    fams = [4, 6] if dual else [4]
    text = modes.render(c, c.node("node-a"), "nftables", fams, None, "restore", "text")
    path = DATA / ("rich-dual.nft" if dual else "rich.nft")
    if os.environ.get("KNET_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"missing golden {path}; run with KNET_UPDATE_GOLDEN=1 and review"
    assert path.read_text() == text
    if dual:
        assert "add table ip6 kube-proxy" in text
        assert "ip6 daddr { fd00:96::/112 } drop" in text
        assert "meta l4proto tcp dnat to [fd00:10:1::80]:8080" in text
        assert "endpoint-" in text and "__fd00.10.1..80/8080" in text


def test_json_output():
    c = rich()
    js = modes.render(c, c.node("node-a"), "nftables", [4], None, "restore", "json")
    t = js["tables"][0]
    assert t["family"] == "ip" and t["maps"]["service-ips"]["elements"][
        "10.96.7.20 . tcp . 80"].startswith("goto service-")
