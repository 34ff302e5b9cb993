"""Invariants of the policy verdict over random policies on the x/y/z model (Hypothesis):
adding an Accept rule never removes a cell, an Admin-tier Deny beats any NetworkPolicy, the
incremental index equals a full rebuild, and the datapath's table equals the verdicts."""

from __future__ import annotations

import functools
from dataclasses import replace
from ipaddress import ip_network

from hypothesis import given, settings
from hypothesis import strategies as st

from knet.model.meta import LabelSelector, ObjectMeta
from knet.model.policy import (ClusterNetworkPolicy, CNPPeer, CNPRule, IPBlock, NetworkPolicy,
                               NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicyRule)
from knet.policy.index import PolicyIndex
from policy_factory import PODS, cluster

NS = ("x", "y", "z")


@functools.cache
def base():
    c = cluster()
    return c, [*c.objects("Namespace"), *c.nodes(), *c.pods()]


def sel(key: str, values: tuple[str, ...]) -> st.SearchStrategy[LabelSelector | None]:
    return st.one_of(st.none(), st.just(LabelSelector()),
                     st.sampled_from(values).map(lambda v: LabelSelector(match_labels={key: v})))


peers = st.one_of(
    st.builds(NetworkPolicyPeer, pod_selector=sel("pod", ("a", "b", "c")),
              namespace_selector=sel("ns", NS)).filter(
        lambda p: p.pod_selector is not None or p.namespace_selector is not None),
    st.sampled_from(["10.244.0.0/16", "10.244.1.0/24", "10.244.2.0/25", "0.0.0.0/0"]).map(
        lambda c: NetworkPolicyPeer(ip_block=IPBlock(ip_network(c)))),
)
ports = st.lists(st.one_of(st.just(NetworkPolicyPort("TCP", 80)),
                           st.just(NetworkPolicyPort("TCP", 81)),
                           st.just(NetworkPolicyPort("UDP")),
                           st.just(NetworkPolicyPort("TCP", "serve-80-tcp"))), max_size=2)
rules = st.builds(NetworkPolicyRule, ports=ports.map(tuple),
                  peers=st.lists(peers, max_size=2).map(tuple))


@st.composite
def netpols(draw, n: int = 4) -> list[NetworkPolicy]:
    out = []
    for i in range(draw(st.integers(0, n))):
        types = draw(st.sampled_from([("Ingress",), ("Egress",), ("Ingress", "Egress")]))
        out.append(NetworkPolicy(
            ObjectMeta(name=f"p{i}", namespace=draw(st.sampled_from(NS)), creation_index=i),
            draw(sel("pod", ("a", "b", "c")).map(lambda s: s or LabelSelector())), types,
            tuple(draw(st.lists(rules, max_size=2))), tuple(draw(st.lists(rules, max_size=2)))))
    return out


def table(policies) -> dict[tuple[str, str], bool]:
    c, objs = base()
    idx = PolicyIndex.from_objects([*objs, *policies])
    ips = {k: c.pod(k).ip for k in PODS}
    return {(f, t): idx.judge(ips[f], ips[t], 80, "tcp").allowed
            for f in PODS for t in PODS if f != t}


def admin(name: str, priority: int, action: str, peer_ns: str | None,
          tier: str = "Admin") -> ClusterNetworkPolicy:
    peer = CNPPeer("namespaces", namespace_selector=LabelSelector(
        match_labels={"ns": peer_ns} if peer_ns else {}))
    return ClusterNetworkPolicy(ObjectMeta(name=name), tier=tier, priority=priority,
                                subject_namespaces=LabelSelector(),
                                ingress=(CNPRule("r", action, (peer,)),))


@settings(max_examples=40, deadline=None)
@given(netpols(), st.integers(0, 3), rules, st.sampled_from([None, "x", "y", "z"]),
       st.integers(0, 1000))
def test_adding_an_accept_rule_never_removes_a_cell(nps, which, rule, ns, prio) -> None:
    before = table(nps)
    # an allow rule added to an existing NetworkPolicy, or an Admin-tier Accept
    widened = list(nps)
    if nps:
        p = nps[which % len(nps)]
        widened[which % len(nps)] = replace(p, ingress=p.ingress + (rule,),
                                            egress=p.egress + (rule,))
    after_rule = table(widened)
    after_accept = table([*nps, admin("accept", prio, "Accept", ns)])
    for cell, ok in before.items():
        assert not ok or after_rule[cell], cell
        assert not ok or after_accept[cell], cell


@settings(max_examples=30, deadline=None)
@given(netpols(), st.integers(0, 1000))
def test_an_admin_deny_beats_any_network_policy(nps, prio) -> None:
    allow_all = [NetworkPolicy(ObjectMeta(name="all", namespace=n), LabelSelector(),
                               ("Ingress", "Egress"), (NetworkPolicyRule(),),
                               (NetworkPolicyRule(),)) for n in NS]
    t = table([*nps, *allow_all, admin("deny-z", prio, "Deny", "z")])
    for (f, to), ok in t.items():
        if f.startswith("z/"):
            assert not ok, (f, to)
    # a Baseline Deny only acts where no NetworkPolicy isolates the pod
    t = table([*allow_all, admin("deny-z", prio, "Deny", "z", tier="Baseline")])
    assert all(t.values())


@settings(max_examples=25, deadline=None)
@given(netpols(), st.sampled_from(PODS), st.sampled_from(["a", "b", "c", "d"]))
def test_incremental_index_equals_a_full_rebuild(nps, key, label) -> None:
    c, objs = base()
    idx = PolicyIndex.from_objects([*objs, *nps])
    ips = {k: c.pod(k).ip for k in PODS}
    for f in PODS:  # warm every pod's cache
        idx.judge(ips[f], ips[PODS[0]], 80, "tcp")
    pod = c.pod(key)
    moved = replace(pod, metadata=replace(pod.metadata, labels={"pod": label}))
    idx.upsert(moved)
    fresh = PolicyIndex.from_objects([*(o if o is not pod else moved for o in objs), *nps])
    for f in PODS:
        for t in PODS:
            assert idx.judge(ips[f], ips[t], 80, "tcp").allowed == \
                fresh.judge(ips[f], ips[t], 80, "tcp").allowed


def test_the_datapath_table_equals_the_verdicts() -> None:
    from knet.policy.reach import reachability

    text = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress, Egress]
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: "y"}}, podSelector: {}}]}]
  egress: [{to: [{ipBlock: {cidr: 10.244.1.0/24}}], ports: [{port: 80}]}]
"""
    c = cluster(text)
    idx = PolicyIndex.from_cluster(c)
    want = {(f, t): idx.judge(c.pod(f).ip, c.pod(t).ip, 80, "tcp").allowed
            for f in PODS for t in PODS if f != t}
    for via in ("pod", "service"):
        got = reachability(c, pods=PODS, via=via).probe(80).matrix
        assert {(f, t): got[f][t] for f in PODS for t in PODS if f != t} == want
