"""Walk one packet through the emulated cluster, synchronously (``knet trace`` static mode).

The walk executes the very tables ``knet rules`` prints: the packet enters the first node
(from a pod's veth, from the node itself, or from the wire for an outside client), that node's
netfilter decides and rewrites it, flat L3 routing (kindnet-style: every node owns its pod
CIDR) carries it to the node owning the new destination, that node's tables run on it
(PREROUTING → FORWARD → POSTROUTING), and it is delivered to the pod's veth. Nothing here
touches asyncio or a socket.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

from knet.errors import NotFound, UsageError
from knet.model import Node, Pod
from knet.netfilter import Outcomes, Result
from knet.netfilter.packet import WIRE, IPAddress, Packet, Proto, veth_name


@dataclass(slots=True)
class Endpoint:
    """Where a packet starts or ends: a pod, a node, or an address outside the cluster."""

    kind: str  # "pod" | "node" | "outside" | "address" (unknown: traces through a rules dump)
    ip: IPAddress
    pod: Pod | None = None
    node: Node | None = None

    def __str__(self) -> str:
        if self.kind == "pod" and self.pod is not None:
            return f"pod {self.pod.key} ({self.ip})"
        if self.kind == "node":
            return f"node {self.node.name} ({self.ip})" if self.node is not None else (
                f"the node itself ({self.ip})")
        if self.kind == "address":
            return str(self.ip)
        return f"{self.ip} (outside the cluster)"


@dataclass(slots=True)
class Hop:
    node: str
    entered_from: str
    result: Result


@dataclass(slots=True)
class Walk:
    source: Endpoint
    packet: Packet
    hops: list[Hop] = field(default_factory=list)
    verdict: str = "ACCEPT"  # ACCEPT (delivered), DROP, REJECT, UNROUTABLE
    destination: Endpoint | None = None
    delivered: Packet | None = None
    note: str = ""


def node_datapath(cluster: Any, node: Node, rng: random.Random, mode: str | None = None) -> Any:
    """The node's datapath for the kube-proxy mode (a full sync of its tables): an object with
    ``forward(packet, entered_from, now) -> Result`` and ``enumerate_outcomes(...)``."""
    from knet.proxy import modes

    return modes.node_datapath(cluster, node, rng, mode or cluster.config.kube_proxy.mode)


class ClusterPath:
    """Per-node netfilter engines over a pure cluster, built on first use."""

    def __init__(self, cluster: Any, mode: str | None = None, seed: int | None = None) -> None:
        self.cluster = cluster
        self.mode = mode or cluster.config.kube_proxy.mode
        self.rng = random.Random(cluster.seed if seed is None else seed)
        self._nf: dict[str, Any] = {}
        self._policy: Any = None
        self._pods_by_ip: dict[IPAddress, Pod] = {}
        for p in cluster.pods():
            if not p.spec.host_network:
                for ip in p.status.pod_ips:
                    self._pods_by_ip[ip] = p
        self._nodes_by_ip: dict[IPAddress, Node] = {}
        for n in cluster.nodes():
            for ip in n.ips():
                self._nodes_by_ip[ip] = n

    def netfilter(self, node: Node) -> Any:
        nf = self._nf.get(node.name)
        if nf is None:
            nf = node_datapath(self.cluster, node, random.Random(self.rng.getrandbits(64)),
                               self.mode)
            if self.policy.active:  # the same hook the runtime's datapaths run
                from knet.policy.hook import PolicedEngine, PolicyHook

                nf = PolicedEngine(nf, PolicyHook(self.policy, node.name, nf.conntrack))
            self._nf[node.name] = nf
        return nf

    @property
    def policy(self) -> Any:
        """The cluster's network policies, compiled (``knet.policy.PolicyIndex``)."""
        if self._policy is None:
            from knet.policy.index import PolicyIndex

            self._policy = PolicyIndex.from_cluster(self.cluster)
        return self._policy

    # --- endpoints ----------------------------------------------------------------------------

    def endpoint(self, spec: str) -> Endpoint:
        """``ns/pod``, a node name, or an IP address."""
        if "/" in spec:
            try:
                pod = self.cluster.pod(spec)
            except (KeyError, NotFound):
                raise NotFound(f"pod {spec} not found") from None
            if pod.ip is None:
                raise UsageError(f"pod {spec} has no IP (phase {pod.status.phase})")
            node = self.cluster.node(pod.spec.node_name) if pod.spec.node_name else None
            if pod.spec.host_network and node is not None:
                return Endpoint("node", pod.ip, None, node)
            return Endpoint("pod", pod.ip, pod, node)
        try:
            ip = ip_address(spec.strip("[]"))
        except ValueError:
            try:
                node = self.cluster.node(spec)
            except (KeyError, NotFound):
                raise NotFound(f"{spec!r} is neither a pod (ns/name), a node nor an IP") from None
            return Endpoint("node", node.ips()[0], None, node)
        return self.classify(ip)

    def classify(self, ip: IPAddress) -> Endpoint:
        pod = self._pods_by_ip.get(ip)
        if pod is not None:
            return Endpoint("pod", ip, pod, self._node_of_pod(pod))
        node = self._nodes_by_ip.get(ip)
        if node is not None:
            return Endpoint("node", ip, None, node)
        return Endpoint("outside", ip)

    def _node_of_pod(self, pod: Pod) -> Node | None:
        return self.cluster.node(pod.spec.node_name) if pod.spec.node_name else None

    def owner_node(self, ip: IPAddress) -> Node | None:
        """The node a packet to ``ip`` is routed to: its own address or its pod CIDR."""
        node = self._nodes_by_ip.get(ip)
        if node is not None:
            return node
        for n in self.cluster.nodes():
            if any(ip.version == c.version and ip in c for c in n.pod_cidrs):
                return n
        return None

    # --- the walk -----------------------------------------------------------------------------

    def start(self, src: Endpoint, dst: IPAddress, entry_node: str | None) -> tuple[Node, str]:
        if src.kind == "pod":
            assert src.node is not None and src.pod is not None
            return src.node, veth_name(src.pod.key)
        if src.kind == "node":
            assert src.node is not None
            return src.node, ""
        if entry_node:
            return self.cluster.node(entry_node), WIRE
        node = self.owner_node(dst)
        if node is None or dst not in node.ips():
            raise UsageError(
                f"a packet from outside the cluster enters through a node: give --node "
                f"(for {dst})")
        return node, WIRE

    def packet(self, src: Endpoint, dst: IPAddress, dport: int, proto: str,
               sport: int = 40000) -> Packet:
        if src.ip.version != dst.version:
            raise UsageError(f"source {src.ip} and destination {dst} are of different families")
        return Packet(src.ip, dst, Proto(proto), sport, dport, "S" if proto == "tcp" else "")

    def walk(self, src_spec: str, dst: str, dport: int, proto: str = "tcp",
             entry_node: str | None = None, now: float = 0.0) -> Walk:
        return self.walk_packet(self.endpoint(src_spec), dst, dport, proto, entry_node, now)

    def walk_packet(self, src: Endpoint, dst: str, dport: int, proto: str = "tcp",
                    entry_node: str | None = None, now: float = 0.0, *,
                    sport: int = 40000, explain: bool | None = None) -> Walk:
        """``walk`` from an endpoint already resolved, with a chosen source port (a new
        connection per call when the ports differ)."""
        dst_ip = self._ip(dst)
        node, entered = self.start(src, dst_ip, entry_node)
        pkt = self.packet(src, dst_ip, dport, proto, sport)
        w = Walk(src, pkt)
        for _ in range(8):  # a packet crosses at most two nodes; bound loops anyway
            res = self.netfilter(node).forward(pkt, entered, now, explain=explain)
            w.hops.append(Hop(node.name, entered, res))
            if res.verdict != "ACCEPT":
                w.verdict = res.verdict
                return w
            pkt = res.packet.replace(mark=0)
            if res.local:
                w.destination = Endpoint("node", pkt.dst, None, node)
                w.delivered = pkt
                return w
            target = self.classify(pkt.dst)
            if target.kind == "pod" and target.node is not None:
                if target.node.name == node.name:
                    w.destination, w.delivered = target, pkt
                    return w
                node, entered = target.node, WIRE
                continue
            if target.kind == "node" and target.node is not None:
                node, entered = target.node, WIRE
                continue
            owner = self.owner_node(pkt.dst)
            if owner is not None and owner.name != node.name:
                node, entered = owner, WIRE
                continue
            w.destination, w.delivered = target, pkt
            if owner is not None:
                w.verdict, w.note = "UNROUTABLE", f"no pod has {pkt.dst} on {owner.name}"
            else:
                w.note = "leaves the cluster"
            return w
        w.verdict, w.note = "DROP", "routing loop"
        return w

    def outcomes(self, src_spec: str, dst: str, dport: int, proto: str = "tcp",
                 entry_node: str | None = None) -> Outcomes:
        src = self.endpoint(src_spec)
        dst_ip = self._ip(dst)
        node, entered = self.start(src, dst_ip, entry_node)
        pkt = self.packet(src, dst_ip, dport, proto)
        if entered:
            pkt = pkt.replace(iif=entered)
        return self.netfilter(node).enumerate_outcomes(
            pkt, "output" if entered == "" else "prerouting", affinity=True)

    @staticmethod
    def _ip(text: str) -> IPAddress:
        try:
            return ip_address(text.strip("[]"))
        except ValueError:
            raise UsageError(f"not an IP address: {text!r}") from None


def split_host_port(text: str) -> tuple[str, int]:
    """``10.96.0.10:53`` or ``[fd00::a]:53``."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"expected ADDRESS:PORT, got {text!r}")
    return host, int(port)

