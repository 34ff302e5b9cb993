"""Network policy verdicts as truth tables over the upstream e2e model (namespaces x/y/z, pods
a/b/c, ports 80/81), each derived from shared/reference/networkpolicy.md, every cell sent
through the real datapath (kube-proxy tables + the policy hook)."""

from __future__ import annotations

import pytest
from policy_factory import cluster, grid, table

from knet.path import ClusterPath

DENY_INGRESS_X = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""


def ns(key: str) -> str:
    return key.split("/")[0]


def check(policies: str, allowed, **kw) -> None:
    t = table(policies, **kw)
    assert t.differences(grid(allowed)) == []


def test_no_policy_allows_everything() -> None:
    check("", lambda f, t: True)


def test_default_deny_ingress_isolates_the_namespace_for_ingress_only() -> None:
    check(DENY_INGRESS_X, lambda f, t: ns(t) != "x")


def test_policy_types_default_makes_an_empty_egress_list_isolate_ingress() -> None:
    # meant as "deny all egress" but written without policyTypes: it defaults to [Ingress]
    check("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: not-egress, namespace: x}
spec: {podSelector: {}, egress: []}
""", lambda f, t: ns(t) != "x")


def test_default_deny_egress_blocks_every_connection_out_of_the_namespace() -> None:
    check("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: x}
spec: {podSelector: {}, policyTypes: [Egress]}
""", lambda f, t: ns(f) != "x")


ALLOW_Y_80 = DENY_INGRESS_X + """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-a-from-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: "y"}}}]
    ports: [{port: 80}]
"""


@pytest.mark.parametrize("port, protocol, via", [(80, "TCP", "service"), (80, "TCP", "pod"),
                                                 (81, "TCP", "service"),
                                                 (80, "UDP", "service")])
def test_allow_rules_union_per_port_and_protocol(port, protocol, via) -> None:
    def allowed(f: str, t: str) -> bool:
        if ns(t) != "x":
            return True
        return t == "x/a" and ns(f) == "y" and port == 80 and protocol == "TCP"

    check(ALLOW_Y_80, allowed, port=port, protocol=protocol, via=via)


def _from(peers: str) -> str:
    return DENY_INGRESS_X + f"""---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: allow-a, namespace: x}}
spec:
  podSelector: {{matchLabels: {{pod: a}}}}
  ingress:
  - from:
{peers}
"""


def test_namespace_and_pod_selector_in_one_peer_are_anded() -> None:
    check(_from("""    - namespaceSelector: {matchLabels: {ns: "y"}}
      podSelector: {matchLabels: {pod: b}}"""),
          lambda f, t: ns(t) != "x" or (t == "x/a" and f == "y/b"))


def test_separate_peers_are_ored_and_a_bare_pod_selector_means_the_own_namespace() -> None:
    check(_from("""    - namespaceSelector: {matchLabels: {ns: "y"}}
    - podSelector: {matchLabels: {pod: b}}"""),
          lambda f, t: ns(t) != "x" or (t == "x/a" and (ns(f) == "y" or f == "x/b")))


def test_namespace_selector_on_the_name_label_set_by_the_api_server() -> None:
    check(_from("""    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}"""),
          lambda f, t: ns(t) != "x" or (t == "x/a" and ns(f) == "z"))


def test_ip_block_with_except_matches_pod_ips() -> None:
    c = cluster()
    yb = c.pod("y/b").ip
    check(_from(f"""    - ipBlock: {{cidr: 10.244.0.0/16, except: ["{yb}/32"]}}"""),
          lambda f, t: ns(t) != "x" or (t == "x/a" and f != "y/b"))


@pytest.mark.parametrize("port", [80, 81])
def test_named_port_resolves_on_the_destination_pod(port: int) -> None:
    check(DENY_INGRESS_X + """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-named, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{port: serve-81-tcp}]}]
""", lambda f, t: ns(t) != "x" or port == 81, port=port)


@pytest.mark.parametrize("port, protocol, ok", [(80, "TCP", True), (81, "TCP", True),
                                                (81, "UDP", False), (81, "SCTP", True)])
def test_end_port_ranges_and_protocols(port: int, protocol: str, ok: bool) -> None:
    check(DENY_INGRESS_X + """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-range, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 80, endPort: 81}, {protocol: SCTP, port: 81}]}]
""", lambda f, t: ns(t) != "x" or ok, port=port, protocol=protocol)


def test_egress_to_a_pod_ip_block_works_through_its_service_because_judged_after_dnat() -> None:
    c = cluster()
    xb = c.pod("x/b").ip
    check(f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: a-only-to-b, namespace: x}}
spec:
  podSelector: {{matchLabels: {{pod: a}}}}
  policyTypes: [Egress]
  egress: [{{to: [{{ipBlock: {{cidr: "{xb}/32"}}}}]}}]
""", lambda f, t: f != "x/a" or t == "x/b", via="service")


ADMIN = """
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: z-out}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {}}
  ingress:
  - name: pass-from-y
    action: Pass
    from: [{namespaces: {matchLabels: {ns: "y"}}}]
  - name: deny-from-z
    action: Deny
    from: [{namespaces: {matchLabels: {ns: z}}}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline}
spec:
  tier: Baseline
  priority: 1
  subject: {namespaces: {}}
  ingress:
  - name: deny-y
    action: Deny
    from: [{namespaces: {matchLabels: {ns: "y"}}}]
"""


def test_cluster_network_policy_tiers() -> None:
    # z → anything: the Admin Deny beats everything; y → anything: Pass goes to the
    # NetworkPolicy tier (x/a allows y on 80) and then to the Baseline Deny.
    def allowed(f: str, t: str) -> bool:
        if ns(f) == "z" and ns(t) != "z":
            return False
        if ns(f) == "z":
            return False  # the subject is every namespace, z included
        if ns(f) == "y" and ns(t) != "y":
            return t == "x/a"
        if ns(f) == "y":
            return False  # y → y: passed, no NetworkPolicy there, Baseline denies
        return ns(t) != "x"

    check(ALLOW_Y_80 + "---" + ADMIN, allowed)


def test_admin_accept_skips_the_network_policy_tier_and_fail_closed_peers() -> None:
    check(DENY_INGRESS_X + """---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: accept-from-z}
spec:
  priority: 3
  subject: {pods: {namespaceSelector: {matchLabels: {ns: x}}, podSelector: {matchLabels: {pod: c}}}}
  ingress:
  - {name: allow-z, action: Allow, from: [{namespaces: {matchLabels: {ns: z}}}]}
  - {name: deny-unknown, action: Deny, from: [{}]}
""", lambda f, t: ns(t) != "x" and t != "x/c" or (t == "x/c" and ns(f) == "z"))


@pytest.mark.parametrize("mode", ["iptables", "ipvs", "nftables"])
def test_the_three_proxy_modes_give_the_same_table(mode: str) -> None:
    want = table(ALLOW_Y_80 + "---" + ADMIN, mode="iptables").render()
    assert table(ALLOW_Y_80 + "---" + ADMIN, mode=mode).render() == want


def test_the_pods_own_node_may_always_reach_it_other_nodes_are_ordinary_sources() -> None:
    c = cluster(DENY_INGRESS_X)
    path = ClusterPath(c)
    xa = c.pod("x/a")
    own = path.walk(xa.spec.node_name, str(xa.ip), 80, "tcp")
    assert own.verdict == "ACCEPT" and own.destination.pod.key == "x/a"
    other = next(n.name for n in c.nodes() if n.name != xa.spec.node_name)
    far = path.walk(other, str(xa.ip), 80, "tcp")
    assert far.verdict == "DROP"
    notes = [s.note for h in far.hops for s in h.result.steps if s.table == "policy"]
    assert notes == ["network policy: DENIED: ingress of x/a: DENIED, no rule allowed it "
                     "(isolated by NetworkPolicy x/deny-ingress)"]


def test_default_deny_egress_blocks_dns_unless_allowed() -> None:
    deny = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: x}
spec: {podSelector: {}, policyTypes: [Egress]}
"""
    dns_ok = deny + """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-dns, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}},
          podSelector: {matchLabels: {k8s-app: kube-dns}}}]
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
"""
    for text, verdict in ((deny, "DROP"), (dns_ok, "ACCEPT")):
        c = cluster(text)
        dns = c.service("kube-system/kube-dns").spec.cluster_ip
        assert ClusterPath(c).walk("x/a", dns, 53, "udp").verdict == verdict


def test_icmp_and_access_to_itself_are_not_filtered() -> None:
    from knet.policy.index import PolicyIndex

    c = cluster(DENY_INGRESS_X)
    idx = PolicyIndex.from_cluster(c)
    a, b = c.pod("x/a").ip, c.pod("y/b").ip
    assert not idx.judge(b, a, 80, "tcp").allowed
    assert idx.judge(b, a, 0, "icmp").allowed
    assert idx.judge(a, a, 80, "tcp").allowed


def test_hairpin_through_the_own_service_is_access_to_itself() -> None:
    c = cluster(DENY_INGRESS_X)
    svc = c.service("x/s-x-a").spec.cluster_ip
    w = ClusterPath(c).walk("x/a", svc, 80, "tcp")
    assert w.verdict == "ACCEPT" and w.destination.pod.key == "x/a"
    assert ClusterPath(c).walk("x/b", svc, 80, "tcp").verdict == "DROP"


def test_cluster_policy_explanations_name_tier_priority_rule_action_and_pass_chain() -> None:
    c = cluster(ALLOW_Y_80 + "---" + ADMIN)
    path = ClusterPath(c)

    def notes(src: str, dst: str) -> list[str]:
        w = path.walk(src, str(c.pod(dst).ip), 80, "tcp")
        return [s.note for h in w.hops for s in h.result.steps if s.table == "policy"]

    (deny,) = [n for n in notes("z/a", "y/c") if "DENIED" in n]
    assert ("ingress of y/c: DENIED by ClusterNetworkPolicy z-out (tier Admin, priority 10) "
            "rule 'deny-from-z' (Deny) peer 1 (namespaces)") in deny
    allowed = [n for n in notes("y/b", "x/a") if "ingress" in n]
    assert allowed == [
        "network policy: allowed: ingress of x/a: allowed by NetworkPolicy x/allow-a-from-y "
        "ingress rule 1, peer 1 (selector, port 1) (also selected by NetworkPolicy "
        "x/deny-ingress); passed by ClusterNetworkPolicy z-out (tier Admin, priority 10) rule "
        "'pass-from-y' (Pass)"]
    (base,) = [n for n in notes("y/a", "y/c") if "ingress" in n]
    assert "DENIED by ClusterNetworkPolicy baseline (tier Baseline, priority 1) rule " \
           "'deny-y' (Deny)" in base and "passed by ClusterNetworkPolicy z-out" in base
