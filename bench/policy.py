"""Network policy benchmark (figures for the issue, not a timed test).

1. ``knet reach`` over the upstream model (3 namespaces × 3 pods, ports 80/81, TCP/UDP/SCTP:
   486 cells, each a first packet through the nodes' iptables tables and the policy hook),
   with a default-deny and an allow policy: cold (the nodes' tables built for the call) and
   warm (the same ``ClusterPath``, fresh connections).
2. Verdicts per second on one node's datapath (the iptables engine + the policy hook; pod →
   pod first packets, a new connection each) in a 1,000-pod cluster (100 namespaces × 10
   pods) holding 10 / 1,000 / 10,000 NetworkPolicies, next to the same engine without
   policies. The probed pods are selected by the same 10 policies in every case (the rest
   select other pods), so a flat line means the per-packet cost does not grow with the
   number of policies in the cluster.
3. Incremental recompile after one pod label change at 10,000 policies: the index update
   plus the pod's subject policies recomputed (what the next packet would pay).

    python bench/policy.py
    python bench/policy.py --packets 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from knet.control import Cluster  # noqa: E402
from knet.manifests import read  # noqa: E402
from knet.model.core import Container, ContainerPort, Pod, PodSpec, PodStatus  # noqa: E402
from knet.model.meta import LabelSelector, ObjectMeta  # noqa: E402
from knet.model.policy import (NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,  # noqa: E402
                               NetworkPolicyRule)
from knet.netfilter.packet import Packet, Proto  # noqa: E402
from knet.path import ClusterPath  # noqa: E402
from knet.policy.hook import PolicedEngine, PolicyHook  # noqa: E402
from knet.policy.index import PolicyIndex  # noqa: E402
from knet.policy.reach import reachability  # noqa: E402
from knet.proxy import modes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOPO = ROOT / "topologies"
NODE = "knet-worker"


def bench_reach(repeat: int) -> tuple[float, float]:
    c = Cluster.from_input(read([str(TOPO / "netpol-model.yaml"),
                                 str(TOPO / "policies/deny-ingress-x.yaml"),
                                 str(TOPO / "policies/allow-from-y.yaml")]))
    kw = dict(namespaces=["x", "y", "z"], ports=[80, 81], protocols=["TCP", "UDP", "SCTP"])
    cold = warm = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        path = ClusterPath(c)
        table = reachability(c, path=path, **kw)
        cold = min(cold, time.perf_counter() - t)
        assert sum(len(p.matrix) for p in table.probes) == 6 * 9
        t = time.perf_counter()
        reachability(c, path=path, **kw)
        warm = min(warm, time.perf_counter() - t)
    return cold, warm


def _pod(ns: str, name: str, labels: dict[str, str], ip: IPv4Address) -> Pod:
    return Pod(ObjectMeta(name=name, namespace=ns, labels=labels),
               PodSpec(containers=(Container(name="c", image="i", ports=(
                   ContainerPort(80, "http"),)),), node_name=NODE),
               PodStatus(phase="Running", pod_ips=(ip,)))


def _policy(ns: str, i: int, selector: dict[str, str], peer_labels: dict[str, str]) -> NetworkPolicy:
    rule = NetworkPolicyRule(ports=(NetworkPolicyPort("TCP", 80),),
                             peers=(NetworkPolicyPeer(
                                 pod_selector=LabelSelector(match_labels=peer_labels),
                                 namespace_selector=LabelSelector()),))
    return NetworkPolicy(ObjectMeta(name=f"p{i}", namespace=ns), LabelSelector(match_labels=selector),
                         ("Ingress", "Egress"), (rule,), (rule,))


def world(n_policies: int) -> tuple[PolicyIndex, list[Pod]]:
    pods = []
    for n in range(100):
        for k in range(10):
            ip = IPv4Address(f"10.250.{n}.{k + 1}")
            pods.append(_pod(f"ns-{n}", f"pod-{k}", {"app": f"a{k}", "role": "probe" if n == 0
                                                     else "other"}, ip))
    idx = PolicyIndex.from_objects(pods)
    # the probed pods (ns-0) are selected by the same 10 policies in every case
    for i in range(10):
        idx.upsert(_policy("ns-0", i, {"role": "probe"}, {"role": "probe"}))
    rng = random.Random(1)
    for i in range(10, n_policies):
        ns = f"ns-{rng.randrange(1, 100)}"
        idx.upsert(_policy(ns, i, {"app": f"a{rng.randrange(10)}"}, {"app": f"a{rng.randrange(10)}"}))
    return idx, pods


def bench_verdicts(n_policies: int | None, packets: int, engine_factory,
                   built: tuple[PolicyIndex, list[Pod]] | None = None) -> float:
    """First packets per second through the engine (+ the hook when ``n_policies``)."""
    idx, pods = built if built is not None else world(n_policies or 0)
    engine = engine_factory()
    dp = engine if not n_policies else PolicedEngine(engine, PolicyHook(idx, NODE, engine.conntrack))
    probes = [p for p in pods if p.namespace == "ns-0"]
    pairs = [(a.ip, b.ip) for a in probes for b in probes if a is not b]
    pkts = [Packet(s, d, Proto.TCP, 1024 + i // len(pairs), 80, "S", iif="veth0")
            for i, (s, d) in ((i, pairs[i % len(pairs)]) for i in range(packets))]
    gc.collect()
    gc.freeze()  # as the CLI does: the long-lived cluster is not scanned by every collection
    t = time.perf_counter()
    for p in pkts:
        r = dp.forward(p, "veth0", 0.0, explain=False)
    elapsed = time.perf_counter() - t
    gc.unfreeze()
    assert r.verdict == "ACCEPT"
    return packets / elapsed


def bench_recompile(repeat: int) -> float:
    idx, pods = world(10_000)
    best = float("inf")
    pod = next(p for p in pods if p.namespace == "ns-7")
    idx.subjects(idx.pods[pod.key])
    for i in range(repeat * 5):
        new = replace(pod, metadata=replace(pod.metadata, labels={"app": f"a{i % 10}",
                                                                    "role": "other"}))
        t = time.perf_counter()
        idx.upsert(new)
        idx.subjects(idx.pods[new.key])
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    model = Cluster.from_input(read([str(TOPO / "netpol-model.yaml")]))

    def engine():
        return modes.node_datapath(model, model.node(NODE), random.Random(0), "iptables")

    cold, warm = bench_reach(args.repeat)
    print("knet reach, 3 ns × 3 pods × 2 ports × 3 protocols (486 cells):")
    print(f"  cold (node tables built) {cold * 1000:7.1f} ms   warm {warm * 1000:7.1f} ms")
    print(f"verdicts on {NODE}'s datapath (iptables), 1,000 pods, first packets:")
    # the cases interleaved, best of --repeat each: the machine's load drifts between cases
    worlds = {n: world(n) for n in (0, 10, 1_000, 10_000)}
    for memo in (True, False):
        rates: dict[int, float] = {}
        for _ in range(args.repeat):
            for n, built in worlds.items():
                built[0].memoize = memo
                rates[n] = max(rates.get(n, 0.0),
                               bench_verdicts(n or None, args.packets, engine, built))
        base = rates[0]
        if memo:
            print(f"  {'no policy':>16}  {base:10,.0f}/s")
        else:
            print("  without the verdict memo (every first packet evaluates the rules):")
        for n in (10, 1_000, 10_000):
            print(f"  {n:>7,} policies  {rates[n]:10,.0f}/s  ({rates[n] / base:.2f}× no "
                  f"policy, {rates[n] / rates[10]:.2f}× 10 policies)")
    rc = bench_recompile(args.repeat)
    print(f"incremental recompile after one pod label change at 10,000 policies: "
          f"{rc * 1000:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
