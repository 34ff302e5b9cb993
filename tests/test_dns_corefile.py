"""Corefile parsing: kubeadm's default, custom server blocks, plugin options, warnings."""

from __future__ import annotations

import pytest

from knet.dns.corefile import PodsMode, RewriteKind, kubeadm_corefile, normalize_zone, parse_corefile
from knet.errors import UsageError


def test_kubeadm_default():
    cf = parse_corefile(kubeadm_corefile("cluster.local"))
    assert cf.warnings == ()
    (b,) = cf.blocks
    assert b.zones == (".",) and b.port == 53
    k = b.kubernetes
    assert k.zones == ("cluster.local.", "in-addr.arpa.", "ip6.arpa.")
    assert k.pods == PodsMode.INSECURE and k.ttl == 30
    assert k.fallthrough == ("in-addr.arpa.", "ip6.arpa.")
    assert b.cache.success_max == 30 and b.cache.denial_max == 30
    assert b.cache.disable_success == ("cluster.local.",) and b.cache.disable_denial == ("cluster.local.",)
    assert b.forward.zone == "." and b.loadbalance
    assert b.plugins == ("errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache",
                         "loop", "reload", "loadbalance")


def test_custom_corefile_blocks_options_and_warnings():
    text = """
    # comment
    cluster.local:5353 10.0.0.0/16 {
        kubernetes {
            pods verified
            ttl 0
            endpoint_pod_names
            ignore empty_service
            namespaces a b
            fallthrough
        }
        autopath @kubernetes
    }
    dns://.:5353 {
        hosts /etc/hosts example.org {
            10.1.1.1 one.example.org One.Example.Org
            ttl 60
            no_reverse
            fallthrough
        }
        rewrite stop {
            name regex (.*)\\.my\\.domain {1}.default.svc.cluster.local
            answer name (.*)\\.default\\.svc\\.cluster\\.local {1}.my.domain
        }
        rewrite continue name prefix foo bar
        cache {
            success 9984 30
            denial 9984 5
        }
        forward example.com 1.1.1.1 {
            except a.example.com
        }
        template IN A example { answer "x" }
    }
    """
    cf = parse_corefile(text)
    a, b = cf.blocks
    assert a.zones == ("cluster.local.", "0.10.in-addr.arpa.") and a.port == 5353
    k = a.kubernetes
    assert k.zones == a.zones and k.pods == PodsMode.VERIFIED and k.ttl == 0
    assert k.endpoint_pod_names and k.ignore_empty_service and k.namespaces == ("a", "b")
    assert k.fallthrough == ()
    assert b.hosts.zones == ("example.org.",) and b.hosts.ttl == 60 and b.hosts.no_reverse
    assert b.hosts.entries == (("10.1.1.1", ("one.example.org.", "one.example.org.")),)
    r1, r2 = b.rewrites
    assert r1.kind == RewriteKind.REGEX and r1.stop and r1.answer_name
    assert r2.kind == RewriteKind.PREFIX and not r2.stop
    assert b.cache.success_max == 30 and b.cache.denial_max == 5
    assert b.forward.zone == "example.com." and b.forward.excepted == ("a.example.com.",)
    assert any("autopath" in w for w in cf.warnings) and any("template" in w for w in cf.warnings)


@pytest.mark.parametrize("text,zones", [
    ("10.0.0.0/8", ["10.in-addr.arpa."]),
    ("10.96.0.0/12", [f"{i}.10.in-addr.arpa." for i in range(96, 112)]),
    ("fd00::/8", ["d.f.ip6.arpa."]),
    ("fc00::/6", ["c.f.ip6.arpa.", "d.f.ip6.arpa.", "e.f.ip6.arpa.", "f.f.ip6.arpa."]),
    ("Cluster.Local", ["cluster.local."]),
    (".", ["."]),
])
def test_zone_normalisation(text, zones):
    assert normalize_zone(text) == zones


@pytest.mark.parametrize("bad", ["", ".:53 {\n errors\n", "}\n", ". {\n kubernetes { \n}"])
def test_structural_errors(bad):
    with pytest.raises(UsageError):
        parse_corefile(bad)
