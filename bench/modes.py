"""kube-proxy modes at scale: first-packet cost vs number of Services (100 → 1,000 → 10,000).

For each size and mode (iptables, IPVS, nftables) one node's state is built from N ClusterIP
Services × 5 endpoints, then new connections to random ClusterIPs are evaluated by that mode's
datapath (a fresh connection each: nat + filter walk, or glue + IPVS lookup, or nft chains +
vmap lookups). Reported per mode: mean rules walked per first packet (what the kernel would
evaluate sequentially), set/map lookups, and CPU µs per first packet in knet.

The known shape (kube-proxy.md §7): iptables grows linearly with the number of services
(KUBE-SERVICES is walked rule by rule); IPVS and nftables stay flat (hash/map lookups).
Writes docs/modes-scaling.png (matplotlib).
Run: .venv/bin/python bench/modes.py [--sizes 100,1000,10000] [--packets 500]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knet import heap  # noqa: E402
from knet.model.config import ClusterConfig  # noqa: E402
from knet.model.core import (Node, NodeAddress, Protocol, Service, ServicePort,  # noqa: E402
                             ServiceSpec, ServiceType)
from knet.model.discovery import (SERVICE_NAME_LABEL, Endpoint, EndpointConditions,  # noqa: E402
                                  EndpointPort, EndpointSlice)
from knet.model.meta import ObjectMeta  # noqa: E402
from knet.netfilter.packet import Packet, Proto  # noqa: E402
from knet.proxy import modes  # noqa: E402

MODES = ("iptables", "ipvs", "nftables")


@dataclass
class SyntheticCluster:
    """The read API of knet.control.Cluster that knet.proxy.modes uses, over fixed objects."""
    config: ClusterConfig
    _nodes: list
    _services: list
    _slices: list
    _pods: list = field(default_factory=list)

    def services(self):
        return self._services

    def endpoint_slices(self):
        return self._slices

    def nodes(self):
        return self._nodes

    def node(self, name):
        return next(n for n in self._nodes if n.name == name)

    def pods(self):
        return self._pods


def cluster_ip(i: int) -> str:
    return f"10.{96 + (i >> 16)}.{(i >> 8) & 255}.{i & 255 or 1}"


def synthetic_cluster(n: int, endpoints: int = 5, nodes: int = 10) -> SyntheticCluster:
    node_objs = [Node(ObjectMeta(f"node-{k}"), pod_cidrs=(ip_network(f"10.244.{k}.0/24"),),
                      addresses=(NodeAddress("InternalIP", f"172.18.0.{k + 2}"),))
                 for k in range(nodes)]
    services, slices = [], []
    for i in range(n):
        name = f"svc-{i:05d}"
        services.append(Service(ObjectMeta(name, "bench"), ServiceSpec(
            type=ServiceType.CLUSTER_IP, cluster_ip=cluster_ip(i), cluster_ips=(cluster_ip(i),),
            ports=(ServicePort(port=80, name="http", protocol=Protocol.TCP, target_port=8080),),
            selector={"app": name})))
        eps = tuple(Endpoint(addresses=(f"10.244.{(i + e) % nodes}.{(i * 7 + e) % 250 + 2}",),
                             conditions=EndpointConditions(True, True, False),
                             node_name=f"node-{(i + e) % nodes}") for e in range(endpoints))
        slices.append(EndpointSlice(ObjectMeta(f"{name}-x", "bench",
                                               labels={SERVICE_NAME_LABEL: name}),
                                    address_type="IPv4", endpoints=eps,
                                    ports=(EndpointPort(port=8080, name="http",
                                                        protocol=Protocol.TCP),)))
    return SyntheticCluster(ClusterConfig(), node_objs, services, slices)


def _packet(i: int, k: int) -> Packet:
    return Packet(ip_address("10.244.0.99"), ip_address(cluster_ip(i)), Proto.TCP, 20000 + k,
                  80, "S", iif="veth0")


def first_packet_cost(c: SyntheticCluster, mode: str) -> int:
    """Rules walked by the first packet of a connection to the middle service (by name)."""
    dp = modes.node_datapath(c, c.node("node-0"), random.Random(1), mode)
    n = len(c.services())
    r = dp.process(_packet(n // 2, 0), "prerouting", 0.0, explain=False)
    return r.rules_walked


def measure(n: int, packets: int, seed: int = 1) -> dict[str, dict[str, float]]:
    c = synthetic_cluster(n)
    rng = random.Random(seed)
    out: dict[str, dict[str, float]] = {}
    for mode in MODES:
        t0 = time.process_time()
        dp = modes.node_datapath(c, c.node("node-0"), random.Random(seed), mode)
        build = time.process_time() - t0
        heap.settle()  # as knet up does: the long-lived rules leave later collections
        targets = [rng.randrange(n) for _ in range(packets)]
        walked = lookups = 0
        t0 = time.process_time()
        for k, i in enumerate(targets):
            r = dp.process(_packet(i, k), "prerouting", 0.0, explain=False)
            walked += r.rules_walked
            lookups += getattr(dp, "last_lookups", 0)
            if r.verdict != "ACCEPT" or r.packet.dport != 8080:
                raise SystemExit(f"{mode}: packet to service {i} not load-balanced: {r.verdict}")
        dt = time.process_time() - t0
        heap.unsettle()
        out[mode] = {"build_s": build, "rules_walked": walked / packets,
                     "lookups": lookups / packets, "us_per_packet": dt / packets * 1e6}
    return out


def plot(results: dict[int, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"iptables": "o-", "ipvs": "s-", "nftables": "^-"}
    for mode in MODES:
        axes[0].plot(sizes, [results[s][mode]["rules_walked"] for s in sizes], styles[mode],
                     label=mode)
        axes[1].plot(sizes, [results[s][mode]["us_per_packet"] for s in sizes], styles[mode],
                     label=mode)
    axes[0].set_title("rules walked per first packet")
    axes[1].set_title("knet CPU µs per first packet")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("Services (ClusterIP, 5 endpoints each)")
        ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_yscale("log")
    fig.suptitle("kube-proxy modes: first-packet cost vs number of Services (knet)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--packets", type=int, default=500)
    ap.add_argument("--plot", default=str(Path(__file__).resolve().parents[1] / "docs"
                                          / "modes-scaling.png"))
    a = ap.parse_args(argv)
    results = {}
    print(f"{'services':>9} {'mode':<9} {'build s':>8} {'rules walked':>13} {'lookups':>8} "
          f"{'µs/packet':>10}")
    for n in (int(x) for x in a.sizes.split(",")):
        results[n] = measure(n, a.packets)
        for mode, r in results[n].items():
            print(f"{n:>9} {mode:<9} {r['build_s']:>8.2f} {r['rules_walked']:>13.1f} "
                  f"{r['lookups']:>8.1f} {r['us_per_packet']:>10.1f}")
    if a.plot:
        plot(results, Path(a.plot))
        print(f"wrote {a.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
