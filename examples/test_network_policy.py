"""Network policy as tests: the upstream e2e model (namespaces x/y/z, pods a/b/c) with a
default-deny policy in x and one allow rule, checked three ways.

- ``assert_reachability`` compares the whole table with one written in the upstream e2e
  format (``.`` open, ``X`` blocked, ``~`` the pod itself, not scored);
- ``assert_reachable`` / ``assert_unreachable`` open real connections: a denied SYN is
  dropped, so the connect times out (on virtual time: the test still takes milliseconds);
- a policy applied while the cluster runs changes new connections only.
"""

from __future__ import annotations

import pytest

from knet.testing import assert_reachability, assert_reachable, assert_unreachable

pytestmark = pytest.mark.knet(topology=["topologies/netpol-model.yaml",
                                        "topologies/policies/deny-ingress-x.yaml",
                                        "topologies/policies/allow-from-y.yaml"])


async def test_default_deny_with_one_allow_rule(knet_cluster):
    assert_reachability(knet_cluster, """
TCP/80
-    x/a x/b y/a z/a
x/a  ~   X   .   .
x/b  X   ~   .   .
y/a  .   X   ~   .
z/a  X   X   .   ~
""")


async def test_only_port_80_is_allowed(knet_cluster):
    ya = knet_cluster.pod("y/a")
    await assert_reachable(ya, "s-x-a.x", 80)
    await assert_unreachable(ya, "s-x-a.x", 81, timeout=2)


async def test_a_new_policy_affects_new_connections(knet_cluster):
    za, yb = knet_cluster.pod("z/a"), knet_cluster.pod("y/b")
    await assert_reachable(za, yb.ip, 80)
    knet_cluster.apply("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: z}
spec: {podSelector: {}, policyTypes: [Egress]}
""")
    await assert_unreachable(za, yb.ip, 80, timeout=2)
