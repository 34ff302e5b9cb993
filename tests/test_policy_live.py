"""Network policy in the running emulation: real connections on virtual time (a denied SYN is
dropped, so connect times out), established connections survive a policy change (as
kube-network-policies does by default), and the static table equals what live pods see."""

from __future__ import annotations

import asyncio
import time

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
