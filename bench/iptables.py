"""iptables-mode kube-proxy benchmark: N services × 10 endpoints spread over 100 nodes.

Measures, for N in (100, 1000, 10000):
- full build of one node's tables (build(): model → restore input → live RuleSet);
- a Proxier's first (full) sync and a one-endpoint change (partial sync, KEP-3453);
- rendering the partial restore text (lazy; kube-proxy would write it to iptables-restore);
- with the netfilter engine: first packets (new connections to random ClusterIPs, nat +
  filter walk) and established packets (conntrack fast path).

Goals: full build ≤ 2 s at 10k services; incremental ≤ 10 ms.
Times are CPU seconds of this process (``time.process_time``), best of 3 for builds.
Run: .venv/bin/python bench/iptables.py [--sizes 100,1000,10000] [--packets 2000]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from ipaddress import ip_address, ip_network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knet import heap  # noqa: E402
from knet.model.config import ClusterConfig, KubeProxyConfig  # noqa: E402
from knet.model.core import (Node, NodeAddress, Protocol, Service, ServicePort,  # noqa: E402
                             ServiceSpec)
from knet.model.discovery import (SERVICE_NAME_LABEL, Endpoint, EndpointConditions,  # noqa: E402
                                  EndpointPort, EndpointSlice)
from knet.model.meta import ObjectMeta  # noqa: E402
from knet.proxy.iptables import Proxier, build  # noqa: E402

NODES = 100
EPS = 10
CLUSTER = ClusterConfig(pod_subnets=(ip_network("10.128.0.0/9"),),
                        service_subnets=(ip_network("10.96.0.0/12"),))
PROXY = KubeProxyConfig()


def make_cluster(n_services: int) -> tuple[list[Node], list[Service], list[EndpointSlice]]:
    nodes = [Node(ObjectMeta(f"node-{i}"), addresses=(NodeAddress("InternalIP",
                                                                  f"172.18.0.{i + 2}"),))
             for i in range(NODES)]
    services, slices = [], []
    for i in range(n_services):
        cip = ip_address("10.96.0.10") + i
        services.append(Service(ObjectMeta(f"svc-{i}", "bench"), ServiceSpec(
            ports=(ServicePort(80, Protocol.TCP, "http", 8080),), selector={"app": f"a{i}"},
            cluster_ip=str(cip), cluster_ips=(str(cip),), ip_families=(4,))))
        eps = []
        for j in range(EPS):
            k = i * EPS + j
            pod = ip_address("10.128.0.0") + (k // 250) * 256 + k % 250 + 2
            eps.append(Endpoint((str(pod),), EndpointConditions(True, True, False),
                                node_name=f"node-{k % NODES}"))
        slices.append(EndpointSlice(
            ObjectMeta(f"svc-{i}-x", "bench", labels={SERVICE_NAME_LABEL: f"svc-{i}"}),
            endpoints=tuple(eps), ports=(EndpointPort(8080, "http", Protocol.TCP),)))
    return nodes, services, slices


# CPU time of this process: stable on a shared machine (wall time is printed too).
clock = time.process_time


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        out = None
        gc.collect()
        t = clock()
        out = fn()
        best = min(best, clock() - t)
    return best, out


def bench(n: int, packets: int) -> None:
    nodes, services, slices = make_cluster(n)
    node = nodes[0]
    t_full, (rs, ri) = timed(lambda: build(node, services, slices, PROXY, CLUSTER))
    print(f"{n:>6} services: full build {t_full * 1e3:8.1f} ms  "
          f"({rs.rule_count():,} rules, {len(rs['nat'].chains):,} nat chains)")
    t_text, text = timed(lambda: ri.text, 1)
    print(f"{'':>15} restore text {t_text * 1e3:8.1f} ms  ({len(text) / 1e6:.1f} MB)")

    px = Proxier(node, PROXY, CLUSTER)
    for s in services:
        px.on_service_change(None, s)
    for s in slices:
        px.on_slice_change(None, s)
    gc.collect()
    t = clock()
    px.sync(0.0)
    print(f"{'':>15} Proxier first (full) sync {(clock() - t) * 1e3:8.1f} ms")
    rng = random.Random(1)
    times, texts = [], []
    now = 0.0
    for k in range(20):
        i = rng.randrange(n)
        old = slices[i]
        eps = list(old.endpoints)
        j = rng.randrange(EPS)
        eps[j] = Endpoint((f"10.255.{k}.{j + 1}",), EndpointConditions(True, True, False),
                          node_name=f"node-{rng.randrange(NODES)}")
        new = EndpointSlice(old.metadata, endpoints=tuple(eps), ports=old.ports)
        slices[i] = new
        now += 1.0
        t = clock()
        px.on_slice_change(old, new)
        r = px.sync(now)
        times.append(clock() - t)
        t = clock()
        _ = r.restore_text
        texts.append(clock() - t)
        assert not r.full
    print(f"{'':>15} one-endpoint change (partial sync): median "
          f"{statistics.median(times) * 1e3:6.2f} ms, max {max(times) * 1e3:6.2f} ms; "
          f"its restore text {statistics.median(texts) * 1e3:6.2f} ms")

    try:
        from knet.netfilter import Netfilter
        from knet.netfilter.packet import Packet, Proto
    except ImportError:  # pragma: no cover
        print(f"{'':>15} (netfilter engine not available: packet rates skipped)")
        return
    nf = Netfilter(rs, local_addresses=[ip_address("172.18.0.2")],
                   masquerade_address={4: ip_address("172.18.0.2")}, rng=random.Random(7))
    heap.settle()  # as knet up does: the long-lived rules leave later collections
    client = ip_address("10.128.0.2")
    cips = [ip_address(s.spec.cluster_ip) for s in services]
    pk = [Packet(client, rng.choice(cips), Proto.TCP, 10000 + i % 50000, 80, flags="S")
          for i in range(packets)]
    t = clock()
    for p in pk:
        nf.process(p, "prerouting", 1.0, explain=False)
    dt = clock() - t
    print(f"{'':>15} first packets: {packets / dt:10,.0f} pkt/s "
          f"({dt / packets * 1e6:.1f} µs each, new connections to random ClusterIPs)")
    est = Packet(client, cips[-1], Proto.TCP, 9999, 80, flags="S")
    nf.process(est, "prerouting", 1.0, explain=False)
    est = est.replace(flags="A")
    t = clock()
    for _ in range(packets):
        nf.process(est, "prerouting", 1.0, explain=False)
    dt = clock() - t
    print(f"{'':>15} established (conntrack): {packets / dt:10,.0f} pkt/s")
    heap.unsettle()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--packets", type=int, default=2000)
    args = ap.parse_args(argv)
    for n in (int(x) for x in args.sizes.split(",")):
        bench(n, args.packets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
