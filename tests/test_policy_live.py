"""Network policy in the running emulation: real connections on virtual time (a denied SYN is
dropped, so connect times out), established connections survive a policy change (as
kube-network-policies does by default), and the static table equals what live pods see."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from policy_factory import MODEL

from knet.fabric import virtual_time
from knet.runtime import run
from knet.testing import assert_reachability, assert_reachable, assert_unreachable

DENY_Y = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: "y"}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-a-from-x, namespace: "y"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}}], ports: [{port: 80}]}]
"""


@virtual_time
async def test_denied_connect_times_out_allowed_one_connects_and_the_story_names_policy(
        tmp_path) -> None:
    f = tmp_path / "deny.yaml"
    f.write_text(DENY_Y)
    async with run([MODEL, str(f)]) as c:
        xa, za = c.pod("x/a"), c.pod("z/a")
        await assert_reachable(xa, "s-y-a.y", 80)
        await assert_unreachable(xa, "s-y-a.y", 81)
        t0 = asyncio.get_running_loop().time()
        try:
            await assert_reachable(za, "s-y-a.y", 80, timeout=3)
        except AssertionError as e:
            text = str(e)
        else:
            raise AssertionError("z/a reached y/a")
        assert "no answer within 3s (connect timed out)" in text
        assert asyncio.get_running_loop().time() - t0 >= 3  # a drop, not a refusal
        # UDP: a denied datagram vanishes (no ICMP error, no answer); an allowed one echoes
        assert await _udp_echo(za, c.pod("y/b").ip) == []
        assert await _udp_echo(za, c.pod("x/b").ip) == [b"ping"]


async def _udp_echo(pod, ip: str) -> list:
    got: list = []
    errors: list = []

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            got.append(data)

        def error_received(self, exc):
            errors.append(exc)

    transport, _ = await pod.netns.create_datagram_endpoint(Client, remote_addr=(ip, 80))
    transport.sendto(b"ping")
    await asyncio.sleep(2)
    transport.close()
    assert errors == []
    return got


@virtual_time
async def test_established_connections_survive_a_new_policy_new_ones_are_denied() -> None:
    async with run(MODEL) as c:
        za, yb = c.pod("z/a"), c.pod("y/b")
        reader, writer = await za.open_connection(yb.ip, 80)
        c.apply(DENY_Y)
        await c.settle()
        writer.write(b"GET / HTTP/1.1\r\nHost: y\r\n\r\n")
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.startswith(b"HTTP/1.1 200")
        writer.close()
        await assert_unreachable(za, yb.ip, 80, timeout=2)
        await assert_reachable(c.pod("x/a"), c.pod("y/a").ip, 80)
        # a cluster-scoped policy applied and deleted at run time (knet up --watch does this)
        c.apply("""
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-x}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {ns: x}}}]}]
""")
        await assert_unreachable(c.pod("x/a"), c.pod("y/a").ip, 80, timeout=2)
        c.delete("ClusterNetworkPolicy", "deny-x")
        await assert_reachable(c.pod("x/a"), c.pod("y/a").ip, 80)


@virtual_time
async def test_strict_mode_cuts_established_connections_a_new_policy_denies() -> None:
    async with run(MODEL) as c:
        c.policy.strict = True  # kube-network-policies' opt-in strict mode
        za, yb = c.pod("z/a"), c.pod("y/b")
        reader, writer = await za.open_connection(yb.ip, 80)
        writer.write(b"GET / HTTP/1.1\r\nHost: y\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
        await reader.readuntil(b"}")
        c.apply(DENY_Y)
        await c.settle()
        writer.write(b"GET / HTTP/1.1\r\nHost: y\r\n\r\n")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.readline(), 5)
        writer.transport.abort()


@virtual_time
async def test_the_static_table_is_what_live_pods_see() -> None:
    async with run(MODEL) as c:
        c.apply(DENY_Y)
        await c.settle()
        pods = ["x/a", "z/b", "y/a", "y/b"]
        table = assert_reachability(c, """
TCP/80
-    x/a z/b y/a y/b
x/a  ~   .   .   X
z/b  .   ~   X   X
y/a  .   .   ~   X
y/b  .   .   X   ~
""")
        started = time.perf_counter()
        for f in pods:
            for t in pods:
                if f == t:
                    continue
                ok = table.probe(80).matrix[f][t]
                check = assert_reachable if ok else assert_unreachable
                await check(c.pod(f), c.pod(t).ip, 80, timeout=2)
        assert time.perf_counter() - started < 10  # virtual time: the timeouts cost no wall time


@virtual_time
async def test_capture_hubble_fields_and_pcapng_comments_name_the_policy(tmp_path) -> None:
    async with run(MODEL) as c:
        c.apply(DENY_Y)
        await c.settle()
        async with c.capture() as cap:
            await assert_unreachable(c.pod("z/a"), c.pod("y/b").ip, 80, timeout=1)
            await assert_reachable(c.pod("x/a"), c.pod("y/a").ip, 80)
        flows = cap.hubble()
        denied = [f["flow"] for f in flows if f["flow"]["verdict"] == "DROPPED"]
        assert denied and denied[0]["drop_reason_desc"] == "POLICY_DENIED"
        assert denied[0]["ingress_denied_by"] == [
            {"name": "deny-ingress", "kind": "NetworkPolicy", "namespace": "y"}]
        syn = next(f["flow"] for f in flows if f["flow"]["verdict"] == "FORWARDED"
                   and f["flow"]["IP"]["destination"] == c.pod("y/a").ip)
        assert syn["ingress_allowed_by"] == [
            {"name": "allow-a-from-x", "kind": "NetworkPolicy", "namespace": "y"}]
        comments = [r.comment for r in cap.records()]
        assert any("DROPPED: network policy: DENIED" in x and "y/deny-ingress" in x
                   for x in comments)
        assert any("allowed by NetworkPolicy y/allow-a-from-x ingress rule 1" in x
                   for x in comments)
        assert cap.write_pcapng(tmp_path / "p.pcapng") > 0


EXTERNAL = """
apiVersion: v1
kind: Service
metadata: {{name: np-x-a, namespace: x}}
spec:
  type: NodePort
  externalTrafficPolicy: {etp}
  selector: {{pod: a}}
  ports: [{{port: 80, nodePort: 30080}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: not-from-blocked-client, namespace: x}}
spec:
  podSelector: {{matchLabels: {{pod: a}}}}
  ingress: [{{from: [{{ipBlock: {{cidr: 0.0.0.0/0, except: [203.0.113.66/32]}}}}]}}]
"""


@virtual_time
async def test_external_clients_are_judged_by_their_address_with_local_traffic_policy(
        tmp_path) -> None:
    for etp, blocked_via_other_node in (("Local", False), ("Cluster", True)):
        f = tmp_path / f"{etp}.yaml"
        f.write_text(EXTERNAL.format(etp=etp))
        async with run([MODEL, str(f)]) as c:
            xa = c.pod("x/a")
            own = c.state.node(xa.node).ips()[0]
            other = next(n.ips()[0] for n in c.state.nodes()
                         if n.name != xa.node and "control-plane" not in n.name)
            bad, good = c.external("203.0.113.66"), c.external("203.0.113.7")
            await assert_reachable(good, str(own), 30080)
            # through the pod's own node the client address is what the policy sees
            await assert_unreachable(bad, str(own), 30080, timeout=2)
            if blocked_via_other_node:
                # externalTrafficPolicy: Cluster through another node: masqueraded to that
                # node's IP, which the ipBlock does not exclude: the client gets in
                await assert_reachable(bad, str(other), 30080)


@virtual_time
async def test_kubelet_probes_from_the_pods_own_node_pass_a_default_deny() -> None:
    demo = str(Path(MODEL).parent / "demo.yaml")
    async with run(demo) as c:
        c.apply("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
""")
        web = c.pods({"app": "web"})
        await asyncio.sleep(60)  # twelve readiness periods (httpGet from the node's IP)
        assert all(p.ready for p in web)
        await assert_unreachable(c.pod("default/client"), web[0].ip, 8080, timeout=2)
