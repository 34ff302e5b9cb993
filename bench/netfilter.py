"""netfilter engine benchmark: kube-proxy iptables tables at 100 / 1,000 / 10,000 Services.

Each case is a 100-node cluster whose Services (ClusterIP, one TCP port) have 10 ready
endpoints spread over the nodes; node-0's tables are built with ``knet.proxy.iptables.build``
(model objects constructed directly) and then executed by ``knet.netfilter.Netfilter``:

- build: the full build (PortRules + RuleSet) in seconds, and ``render_save`` of the result;
- first packet (cold): a SYN from a pod on node-0 to a never-touched Service (compiles the
  Service's chains on first use; the KUBE-SERVICES index is built before timing);
- first packet (warm): a SYN of a new flow to a Service whose chains are compiled (the
  endpoint is drawn again: its KUBE-SEP chain may be new);
- conntrack hit: established packets of those flows, both directions (pod → ClusterIP and
  endpoint → pod), the fabric's ``forward`` call, after each flow's handshake (SYN, SYN-ACK
  from the endpoint, ACK) and a first data packet each way;
- walked: the mean ``rules_walked`` of the first packets (what the kernel walks sequentially).

As in the fabric, the caller keeps what it forwards on (the translated packet), not the
``Result``. With ``--repeat N`` each case runs N times (fresh tables) and each column
shows its best run (the machine may be shared). The engine explains (``Netfilter``'s
default); ``--quiet`` measures it without explanations, as the runtime's datapaths run.

    python bench/netfilter.py                 # all three sizes
    python bench/netfilter.py --services 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from ipaddress import IPv4Address, ip_network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from knet import heap  # noqa: E402
from knet.model.config import ClusterConfig, KubeProxyConfig  # noqa: E402
from knet.model.core import (Node, NodeAddress, Protocol, Service, ServicePort,  # noqa: E402
                             ServiceSpec, ServiceType)
from knet.model.discovery import (SERVICE_NAME_LABEL, Endpoint, EndpointConditions,  # noqa: E402
                                  EndpointPort, EndpointSlice)
from knet.model.meta import ObjectMeta  # noqa: E402
from knet.netfilter import Netfilter, render_save  # noqa: E402
from knet.netfilter.rules import bulk_build  # noqa: E402
from knet.netfilter.packet import Packet, Proto  # noqa: E402
from knet.proxy import iptables  # noqa: E402

NODES = 100
ENDPOINTS = 10
POD_NET = ip_network("10.0.0.0/8")
CLUSTER = ClusterConfig(pod_subnets=(POD_NET,))
PROXY = KubeProxyConfig()


def node_ip(i: int) -> IPv4Address:
    return IPv4Address(int(IPv4Address("172.18.0.2")) + i)


def pod_ip(node: int, k: int) -> IPv4Address:
    # node i owns 10.<i>.0.0/16 … here 10.(i // 256).(i % 256).0/24 would be too small: use /16
    return IPv4Address(int(IPv4Address("10.0.0.0")) + (node << 16) + 2 + k)


def cluster(n_services: int) -> tuple[list[Node], list[Service], list[EndpointSlice]]:
    nodes = [Node(ObjectMeta(f"node-{i}"), addresses=(NodeAddress("InternalIP", str(node_ip(i))),),
                  pod_cidrs=(ip_network(f"10.{i}.0.0/16"),)) for i in range(NODES)]
    services: list[Service] = []
    slices: list[EndpointSlice] = []
    base = int(IPv4Address("10.96.0.10"))
    for s in range(n_services):
        name, ns = f"svc{s}", f"ns{s % 50}"
        cip = str(IPv4Address(base + s))
        spec = ServiceSpec(type=ServiceType.CLUSTER_IP,
                           ports=(ServicePort(port=80, name="http", protocol=Protocol.TCP,
                                              target_port=8080),),
                           selector={"app": name}, cluster_ip=cip, cluster_ips=(cip,))
        services.append(Service(ObjectMeta(name, ns), spec))
        eps = []
        for e in range(ENDPOINTS):
            n = (s * ENDPOINTS + e) % NODES
            eps.append(Endpoint(addresses=(str(pod_ip(n, s // NODES * ENDPOINTS + e)),),
                                conditions=EndpointConditions(True, True, False),
                                node_name=f"node-{n}"))
        slices.append(EndpointSlice(ObjectMeta(f"{name}-abcde", ns,
                                               labels={SERVICE_NAME_LABEL: name}),
                                    address_type="IPv4", endpoints=tuple(eps),
                                    ports=(EndpointPort(port=8080, name="http",
                                                        protocol=Protocol.TCP),)))
    return nodes, services, slices


def run(n_services: int, samples: int, seed: int, explain: bool = True) -> dict[str, float]:
    nodes, services, slices = cluster(n_services)
    gc.collect()
    t0 = time.perf_counter()
    with bulk_build():  # no GC passes during the build
        rs, _ri = iptables.build(nodes[0], services, slices, PROXY, CLUSTER)
    t_build = time.perf_counter() - t0
    heap.settle()  # as knet up does: the long-lived rules leave later collections
    n_rules = rs.rule_count()
    t0 = time.perf_counter()
    render_save(rs)
    t_save = time.perf_counter() - t0

    me = node_ip(0)
    nf = Netfilter(rs, local_addresses=[me], masquerade_address={4: me},
                   rng=random.Random(seed), explain=explain)
    rng = random.Random(seed)
    client = pod_ip(0, 1)
    veth = "veth0a1b2c3d"
    order = list(range(n_services))
    rng.shuffle(order)
    # build the KUBE-SERVICES index (and the fixed chains) outside the timings
    nf.forward(Packet(client, IPv4Address("10.96.0.10"), Proto.TCP, 1000, 80, "S"), veth, 0.0)
    cold = [IPv4Address(int(IPv4Address("10.96.0.10")) + s) for s in order[:samples]]
    # first packets to never-touched services (lazy compile of their chains)
    pkts = [Packet(client, d, Proto.TCP, 2000 + i, 80, "S") for i, d in enumerate(cold)]
    walked = 0
    t0 = time.perf_counter()
    for p in pkts:
        walked += nf.forward(p, veth, 1.0).rules_walked
    t_cold = time.perf_counter() - t0
    # first packets of new flows to the same (warm) services
    pkts = [Packet(client, d, Proto.TCP, 20000 + i, 80, "S") for i, d in enumerate(cold)]
    sent: list[tuple[Packet, int]] = []
    t0 = time.perf_counter()
    for p in pkts:
        r = nf.forward(p, veth, 2.0)
        sent.append((r.packet, r.rules_walked))
    t_warm = time.perf_counter() - t0
    walked += sum(n for _p, n in sent)
    # established traffic, both directions: client → ClusterIP (veth), endpoint → client (wire)
    for p, (out, _n) in zip(pkts, sent):
        assert out.dst != p.dst, out  # DNATed to an endpoint
        # the handshake: SYN-ACK from the endpoint, then the client's ACK
        assert nf.forward(Packet(out.dst, client, Proto.TCP, out.dport, p.sport, "SA"), "eth0",
                          3.0).verdict == "ACCEPT"
        assert nf.forward(p.replace(flags="A", seq=1), veth, 3.0).verdict == "ACCEPT"
    # the data packets, built together (as a sender builds them: fresh, not scattered among
    # the engine's allocations)
    est: list[tuple[Packet, str]] = []
    for p, (out, _n) in zip(pkts, sent):
        est.append((p.replace(flags="PA", seq=1), veth))
        est.append((Packet(out.dst, client, Proto.TCP, out.dport, p.sport, "PA"), "eth0"))
    for p, iface in est:  # the flows' first data packets (each direction's flow cache entry)
        nf.forward(p, iface, 3.5)
    rounds = max(1, 20000 // len(est))
    t0 = time.perf_counter()
    for _ in range(rounds):
        for p, iface in est:
            nf.forward(p, iface, 4.0)
    t_ct = time.perf_counter() - t0
    heap.unsettle()
    return {"services": n_services, "rules": n_rules, "build": t_build, "render_save": t_save,
            "first (cold)": samples / t_cold, "first (warm)": samples / t_warm,
            "ct hit": rounds * len(est) / t_ct, "walked": walked / (2 * samples)}


def best(runs: list[dict[str, float]]) -> dict[str, str]:
    """Each column's best run, formatted."""
    def pick(c: str) -> float:
        vals = [r[c] for r in runs]
        return min(vals) if c in ("build", "render_save") else max(vals)
    out = {}
    for c in runs[0]:
        v = pick(c)
        if c in ("build", "render_save"):
            out[c] = f"{v:.2f}s"
        elif c in ("first (cold)", "first (warm)", "ct hit"):
            out[c] = f"{v:,.0f}/s"
        else:
            out[c] = f"{v:,.0f}"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, action="append",
                    help="Service count (repeatable; default 100, 1000, 10000)")
    ap.add_argument("--samples", type=int, default=2000, help="first packets per case")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (best is shown)")
    ap.add_argument("--quiet", action="store_true", help="no explanations (explain=False)")
    args = ap.parse_args(argv)
    rows = [best([run(n, min(args.samples, n), args.seed, not args.quiet)
                  for _ in range(max(1, args.repeat))])
            for n in (args.services or [100, 1000, 10000])]
    cols = list(rows[0])
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print(f"netfilter bench: {NODES} nodes, {ENDPOINTS} endpoints per Service, node-0's tables")
    print("  ".join(c.rjust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(r[c].rjust(width[c]) for c in cols))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
