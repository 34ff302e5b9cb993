"""Network policy compiled into indexed structures, and the verdict for one connection.

Invariants (facts: shared/reference/networkpolicy.md; where implementations differ this is
kube-network-policies' behaviour, kind's policy agent):
- Pure and synchronous: the index is built from model objects and updated with ``upsert`` /
  ``remove`` (pods, namespaces, nodes, policies); no IO, no clock.
- Subject selection is indexed: NetworkPolicies by namespace, then by one ``matchLabels``
  pair of their ``podSelector`` (selectors without one are scanned); a pod's applicable
  policies are computed on first use and cached until that pod, its namespace or a policy of
  its namespace changes (a ClusterNetworkPolicy change drops every cache). So a verdict costs
  a few dict look-ups plus the rules of the policies that select the two pods, whatever the
  number of policies in the cluster; and verdicts are memoised per (source, destination,
  port, protocol, node) until the index next changes (bounded).
- Peers are evaluated live against the peer's current labels and its namespace's labels.
  Host-network pods are ignored by every selector (subject and peer): their traffic is node
  traffic. ipBlock/networks match any address, pod or not.
- Pipeline per direction (egress of the source pod, ingress of the destination pod; both must
  allow): Admin-tier cluster policies by (priority, age, name), first matching rule decides
  (Accept / Deny / Pass to the next tier); then NetworkPolicy (isolated ⇒ some rule must
  match); then Baseline-tier cluster policies; then allow.
- Exempt (never judged): traffic from a pod to its own IP, traffic the destination pod's own
  node sends (``from_node``), protocols other than TCP/UDP/SCTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from knet.model.meta import LabelSelector
from knet.model.policy import (
    ACCEPT,
    ADMIN,
    CLUSTER_POLICY_KINDS,
    EGRESS,
    INGRESS,
    PASS,
    ClusterNetworkPolicy,
    CNPPeer,
    CNPPort,
    CNPRule,
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    NetworkPolicyRule,
)
from knet.netfilter.packet import IPAddress

NAME_LABEL = "kubernetes.io/metadata.name"
FILTERED = frozenset(("tcp", "udp", "sctp"))
MEMO_SIZE = 1 << 16
POLICY_INPUT_KINDS = frozenset(("Pod", "Namespace", "Node", "NetworkPolicy",
                                *CLUSTER_POLICY_KINDS))


class PodInfo:
    """What policy needs to know about one pod."""

    __slots__ = ("key", "namespace", "labels", "node", "ips", "ports")

    def __init__(self, pod: Any) -> None:
        self.key: str = pod.key
        self.namespace: str = pod.namespace
        self.labels: Mapping[str, str] = pod.metadata.labels
        self.node: str = pod.spec.node_name or ""
        self.ips: tuple[IPAddress, ...] = tuple(pod.status.pod_ips)
        ports: dict[tuple[str, str], int] = {}
        for c in (*pod.spec.containers, *getattr(pod.spec, "init_containers", ())):
            for p in c.ports:
                if p.name:
                    ports.setdefault((p.name, str(p.protocol).lower()), p.container_port)
        self.ports = ports

    def __repr__(self) -> str:
        return f"<PodInfo {self.key}>"


@dataclass(frozen=True, slots=True)
class DirectionVerdict:
    """How one direction was decided (for traces, Hubble and ``knet reach --explain``)."""

    direction: str  # Ingress | Egress
    pod: str  # the subject pod (ns/name)
    allowed: bool
    by: str  # the policy that decided ("" = nothing selects the pod: default allow)
    rule: str  # the rule and peer that matched ("" = none)
    tier: str  # Admin | NetworkPolicy | Baseline | ""
    isolated_by: Sequence[NetworkPolicy] = ()  # the NetworkPolicies isolating the pod
    passed: tuple[str, ...] = ()  # Pass rules met on the way

    @property
    def isolating(self) -> tuple[str, ...]:
        """The names of the NetworkPolicies isolating the pod (the deny story)."""
        return tuple(_pol_name(p) for p in self.isolated_by)

    def __str__(self) -> str:
        d = self.direction.lower()
        passed = "".join(f"; passed by {p}" for p in self.passed)
        if self.tier == "NetworkPolicy" and not self.allowed:
            return (f"{d} of {self.pod}: DENIED, no rule allowed it (isolated by "
                    f"{', '.join(self.isolating)}){passed}")
        if not self.by:
            return f"{d} of {self.pod}: allowed (no policy selects it for {d}){passed}"
        verb = "allowed" if self.allowed else "DENIED"
        others = [n for n in self.isolating if n != self.by]
        selected = f" (also selected by {', '.join(others)})" if others else ""
        return f"{d} of {self.pod}: {verb} by {self.by} {self.rule}{selected}{passed}"

    @property
    def policies(self) -> tuple[str, ...]:
        """The policies that decided (Hubble's ``*_allowed_by``/``*_denied_by``)."""
        if self.by:
            return (self.by,)
        return self.isolating if not self.allowed else ()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    egress: DirectionVerdict | None = None
    ingress: DirectionVerdict | None = None
    note: str = ""  # exemptions: "access to itself", "from the pod's own node", "icmp"

    @property
    def involved(self) -> bool:
        """Some policy took part (selected an end, or passed it on)."""
        return any(d is not None and (d.tier or d.passed) for d in (self.egress, self.ingress))

    def __str__(self) -> str:
        parts = [str(d) for d in (self.egress, self.ingress) if d is not None]
        if self.note:
            parts.append(self.note)
        verdict = "allowed" if self.allowed else "DENIED"
        return f"network policy: {verdict}" + (": " + "; ".join(parts) if parts else "")


def _pol_name(p: Any) -> str:
    if isinstance(p, NetworkPolicy):
        return f"NetworkPolicy {p.key}"
    return f"{p.kind} {p.metadata.name}"


class _Subjects:
    __slots__ = ("np_in", "np_out", "admin_in", "admin_out", "base_in", "base_out")

    def __init__(self) -> None:
        self.np_in: list[NetworkPolicy] = []
        self.np_out: list[NetworkPolicy] = []
        self.admin_in: list[ClusterNetworkPolicy] = []
        self.admin_out: list[ClusterNetworkPolicy] = []
        self.base_in: list[ClusterNetworkPolicy] = []
        self.base_out: list[ClusterNetworkPolicy] = []


def _index_pair(sel: LabelSelector) -> tuple[str, str] | None:
    for k, v in sorted(sel.match_labels.items()):
        return (k, v)
    return None


class PolicyIndex:
    """Every policy, pod, namespace and node the verdict needs, indexed (module docstring)."""

    def __init__(self) -> None:
        self.pods: dict[str, PodInfo] = {}
        self.by_ip: dict[IPAddress, PodInfo] = {}
        self.ns_labels: dict[str, Mapping[str, str]] = {}
        self.node_labels: dict[str, Mapping[str, str]] = {}
        self.node_ips: dict[str, frozenset[IPAddress]] = {}
        self.ip_node: dict[IPAddress, str] = {}
        self.netpols: dict[str, NetworkPolicy] = {}
        self._np_ns: dict[str, dict[tuple[str, str] | None, dict[str, NetworkPolicy]]] = {}
        self.cluster_policies: dict[tuple[str, str], ClusterNetworkPolicy] = {}
        self._admin: list[ClusterNetworkPolicy] = []
        self._baseline: list[ClusterNetworkPolicy] = []
        self._cache: dict[str, _Subjects] = {}
        self._ns_pods: dict[str, set[str]] = {}
        # verdicts of this generation (a pure function of the index and the key); any change
        # clears it, and it is bounded
        self._memo: dict[tuple, Decision] = {}
        self.memoize = True
        self.warnings: list[str] = []
        self.generation = 0
        # kube-network-policies' strict mode: re-evaluate established connections after a
        # change (knet.policy.hook); off by default, as in KNP
        self.strict = False

    # --- building ------------------------------------------------------------------------

    @classmethod
    def from_objects(cls, objects: Iterable[Any]) -> PolicyIndex:
        idx = cls()
        for o in objects:
            idx.upsert(o)
        return idx

    @classmethod
    def from_cluster(cls, cluster: Any) -> PolicyIndex:
        objs: list[Any] = [*cluster.objects("Namespace"), *cluster.nodes(), *cluster.pods()]
        for kind in ("NetworkPolicy", *CLUSTER_POLICY_KINDS):
            objs += cluster.objects(kind)
        return cls.from_objects(objs)

    @property
    def active(self) -> bool:
        return bool(self.netpols or self.cluster_policies)

    def upsert(self, obj: Any) -> None:
        kind = obj.kind
        self.generation += 1
        self._memo.clear()
        if kind == "Pod":
            self._remove_pod(obj.key)
            if obj.spec.host_network:
                return  # never selected: its traffic is node traffic
            info = PodInfo(obj)
            self.pods[info.key] = info
            self._ns_pods.setdefault(info.namespace, set()).add(info.key)
            for ip in info.ips:
                self.by_ip[ip] = info
        elif kind == "Namespace":
            name = obj.metadata.name
            self.ns_labels[name] = {**obj.metadata.labels, NAME_LABEL: name}
            self._drop_namespace(name)
        elif kind == "Node":
            self.remove(obj)
            ips = frozenset(obj.ips())
            self.node_ips[obj.name] = ips
            self.node_labels[obj.name] = obj.metadata.labels
            for ip in ips:
                self.ip_node[ip] = obj.name
        elif kind == "NetworkPolicy":
            self._remove_np(obj.key)
            self.netpols[obj.key] = obj
            pair = _index_pair(obj.pod_selector)
            self._np_ns.setdefault(obj.namespace, {}).setdefault(pair, {})[obj.key] = obj
            self._drop_namespace(obj.namespace)
        elif kind in CLUSTER_POLICY_KINDS:
            self.cluster_policies[(kind, obj.metadata.name)] = obj
            self._sort_cluster_policies()

    def remove(self, obj: Any) -> None:
        kind = obj.kind
        self.generation += 1
        self._memo.clear()
        if kind == "Pod":
            self._remove_pod(obj.key)
        elif kind == "Namespace":
            self.ns_labels.pop(obj.metadata.name, None)
            self._drop_namespace(obj.metadata.name)
        elif kind == "Node":
            for ip in self.node_ips.pop(obj.name, ()):
                self.ip_node.pop(ip, None)
            self.node_labels.pop(obj.name, None)
        elif kind == "NetworkPolicy":
            self._remove_np(obj.key)
            self._drop_namespace(obj.namespace)
        elif kind in CLUSTER_POLICY_KINDS:
            self.cluster_policies.pop((kind, obj.metadata.name), None)
            self._sort_cluster_policies()

    def on_change(self, previous: Any, current: Any) -> None:
        """A store event ``(previous, current)``."""
        if current is None:
            if previous is not None:
                self.remove(previous)
        else:
            self.upsert(current)

    def _remove_pod(self, key: str) -> None:
        old = self.pods.pop(key, None)
        if old is not None:
            self._ns_pods.get(old.namespace, set()).discard(key)
            for ip in old.ips:
                if self.by_ip.get(ip) is old:
                    del self.by_ip[ip]
        self._cache.pop(key, None)

    def _remove_np(self, key: str) -> None:
        old = self.netpols.pop(key, None)
        if old is not None:
            bucket = self._np_ns.get(old.namespace, {}).get(_index_pair(old.pod_selector))
            if bucket is not None:
                bucket.pop(key, None)

    def _drop_namespace(self, ns: str) -> None:
        cache = self._cache
        for key in self._ns_pods.get(ns, ()):
            cache.pop(key, None)

    def _sort_cluster_policies(self) -> None:
        self._cache.clear()
        ps = sorted(self.cluster_policies.values(),
                    key=lambda p: (p.priority, p.metadata.creation_index, p.metadata.name))
        self._admin = [p for p in ps if p.tier == ADMIN]
        self._baseline = [p for p in ps if p.tier != ADMIN]
        self.warnings = []
        for tier in (self._admin, self._baseline):
            for a, b in zip(tier, tier[1:]):
                if a.priority == b.priority:
                    self.warnings.append(
                        f"{_pol_name(a)} and {_pol_name(b)} share {a.tier} priority "
                        f"{a.priority}: knet evaluates the older first (then by name)")

    # --- selection -----------------------------------------------------------------------

    def namespace_labels(self, ns: str) -> Mapping[str, str]:
        labels = self.ns_labels.get(ns)
        if labels is None:  # a namespace the input does not declare: just its name label
            labels = self.ns_labels[ns] = {NAME_LABEL: ns}
        return labels

    def subjects(self, pod: PodInfo) -> _Subjects:
        s = self._cache.get(pod.key)
        if s is not None:
            return s
        s = _Subjects()
        buckets = self._np_ns.get(pod.namespace)
        if buckets:
            cands: dict[str, NetworkPolicy] = dict(buckets.get(None, {}))
            for kv in pod.labels.items():
                b = buckets.get(kv)
                if b:
                    cands.update(b)
            for key in sorted(cands):
                p = cands[key]
                if p.pod_selector.matches(pod.labels):
                    if INGRESS in p.policy_types:
                        s.np_in.append(p)
                    if EGRESS in p.policy_types:
                        s.np_out.append(p)
        if self.cluster_policies:
            ns_labels = self.namespace_labels(pod.namespace)
            for tier, ins, outs in ((self._admin, s.admin_in, s.admin_out),
                                    (self._baseline, s.base_in, s.base_out)):
                for cp in tier:
                    if _cnp_selects(cp, pod, ns_labels):
                        if cp.ingress:
                            ins.append(cp)
                        if cp.egress:
                            outs.append(cp)
        self._cache[pod.key] = s
        return s

    # --- the verdict ---------------------------------------------------------------------

    def judge(self, src: IPAddress, dst: IPAddress, dport: int, proto: str, *,
              node: str | None = None, from_node: bool = False) -> Decision:
        """The verdict for a new connection ``src → dst:dport/proto`` as seen after DNAT and
        before SNAT. ``node``: judge only the ends running there (each node's agent judges
        its own pods; None = both ends). ``from_node``: the packet was sent by ``node``
        itself (node-local traffic is always allowed into the node's pods)."""
        if not self.memoize:
            return self._judge(src, dst, dport, proto, node, from_node)
        key = (src, dst, dport, proto, node, from_node)
        memo = self._memo
        d = memo.get(key)
        if d is not None:
            return d
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        d = memo[key] = self._judge(src, dst, dport, proto, node, from_node)
        return d

    def _judge(self, src: IPAddress, dst: IPAddress, dport: int, proto: str,
               node: str | None, from_node: bool) -> Decision:
        if proto not in FILTERED:
            return Decision(True, note=f"{proto} is not filtered by network policy")
        if src == dst:
            return Decision(True, note="a pod may always reach itself")
        sp = self.by_ip.get(src)
        dp = self.by_ip.get(dst)
        eg = ing = None
        note = ""
        if sp is not None and (node is None or sp.node == node):
            eg = self._direction(sp, EGRESS, dst, dp, dport, proto, dp)
        if dp is not None and (node is None or dp.node == node):
            if from_node or (node is not None and src in self.node_ips.get(node, ())) or (
                    node is None and self.ip_node.get(src) == dp.node):
                note = f"from {dp.key}'s own node: always allowed"
            else:
                ing = self._direction(dp, INGRESS, src, sp, dport, proto, dp)
        allowed = (eg is None or eg.allowed) and (ing is None or ing.allowed)
        return Decision(allowed, eg, ing, note)

    def _direction(self, pod: PodInfo, direction: str, peer_ip: IPAddress,
                   peer: PodInfo | None, dport: int, proto: str,
                   dst_pod: PodInfo | None) -> DirectionVerdict:
        s = self.subjects(pod)
        ingress = direction == INGRESS
        passed: list[str] = []
        # 1. Admin tier
        for p in (s.admin_in if ingress else s.admin_out):
            hit = self._cnp_first(p, ingress, peer_ip, peer, dport, proto, dst_pod)
            if hit is not None:
                rule, what = hit
                label = f"{_pol_name(p)} (tier Admin, priority {p.priority})"
                if rule.action == PASS:
                    passed.append(f"{label} rule {rule.name!r} (Pass)")
                    break
                return DirectionVerdict(direction, pod.key, rule.action == ACCEPT, label,
                                        f"rule {rule.name!r} ({rule.action}) {what}", ADMIN,
                                        (), tuple(passed))
        # 2. NetworkPolicy
        nps = s.np_in if ingress else s.np_out
        if nps:
            for np_ in nps:
                rules = np_.ingress if ingress else np_.egress
                for i, r in enumerate(rules):
                    matched = _np_rule(r, np_.namespace, peer_ip, peer, dport, proto, dst_pod,
                                       self)
                    if matched is not None:
                        return DirectionVerdict(
                            direction, pod.key, True, _pol_name(np_),
                            f"{direction.lower()} rule {i + 1}{matched}", "NetworkPolicy",
                            nps, tuple(passed) if passed else ())
            return DirectionVerdict(direction, pod.key, False, "", "", "NetworkPolicy",
                                    nps, tuple(passed) if passed else ())
        # 3. Baseline tier
        for p in (s.base_in if ingress else s.base_out):
            hit = self._cnp_first(p, ingress, peer_ip, peer, dport, proto, dst_pod)
            if hit is not None:
                rule, what = hit
                label = f"{_pol_name(p)} (tier Baseline, priority {p.priority})"
                if rule.action == PASS:
                    passed.append(f"{label} rule {rule.name!r} (Pass)")
                    break
                return DirectionVerdict(direction, pod.key, rule.action == ACCEPT, label,
                                        f"rule {rule.name!r} ({rule.action}) {what}",
                                        "Baseline", (), tuple(passed))
        # 4. the Kubernetes default
        return DirectionVerdict(direction, pod.key, True, "", "", "", (),
                                tuple(passed) if passed else ())

    def _cnp_first(self, p: ClusterNetworkPolicy, ingress: bool, peer_ip: IPAddress,
                   peer: PodInfo | None, dport: int, proto: str, dst_pod: PodInfo | None
                   ) -> tuple[CNPRule, str] | None:
        for r in (p.ingress if ingress else p.egress):
            if r.ports is not None and not any(_cnp_port(x, dport, proto, dst_pod)
                                               for x in r.ports):
                continue
            for j, peer_sel in enumerate(r.peers):
                if self._cnp_peer(peer_sel, r.action, peer_ip, peer):
                    return r, f"peer {j + 1} ({peer_sel.kind or 'unknown: fail closed'})"
        return None

    def _cnp_peer(self, peer_sel: CNPPeer, action: str, ip: IPAddress,
                  peer: PodInfo | None) -> bool:
        k = peer_sel.kind
        if k == "namespaces":
            return peer is not None and peer_sel.namespace_selector is not None and \
                peer_sel.namespace_selector.matches(self.namespace_labels(peer.namespace))
        if k == "pods":
            return (peer is not None and peer_sel.namespace_selector is not None
                    and peer_sel.pod_selector is not None
                    and peer_sel.namespace_selector.matches(self.namespace_labels(peer.namespace))
                    and peer_sel.pod_selector.matches(peer.labels))
        if k == "networks":
            return any(ip.version == n.version and ip in n for n in peer_sel.networks)
        if k == "nodes":
            n = self.ip_node.get(ip)
            return n is not None and peer_sel.node_selector is not None and \
                peer_sel.node_selector.matches(self.node_labels.get(n, {}))
        if k == "":
            return action != ACCEPT  # fail closed
        return False  # domainNames: knet does not resolve them (docs/deviations.md)


def _cnp_selects(p: ClusterNetworkPolicy, pod: PodInfo, ns_labels: Mapping[str, str]) -> bool:
    if p.subject_namespaces is not None:
        return p.subject_namespaces.matches(ns_labels)
    if p.subject_pod_namespaces is not None and p.subject_pods is not None:
        return p.subject_pod_namespaces.matches(ns_labels) and \
            p.subject_pods.matches(pod.labels)
    return False


def _cnp_port(x: CNPPort, dport: int, proto: str, dst_pod: PodInfo | None) -> bool:
    if x.named:
        return dst_pod is not None and dst_pod.ports.get((x.named, proto)) == dport
    if x.protocol.lower() != proto:
        return False
    return not x.start or x.start <= dport <= x.end


def _np_port(x: NetworkPolicyPort, dport: int, proto: str, dst_pod: PodInfo | None) -> bool:
    if x.protocol.lower() != proto:
        return False
    port = x.port
    if port is None:
        return True
    if isinstance(port, int):
        return port <= dport <= (x.end_port or port)
    # a named port resolves on the destination pod only (none for an ipBlock destination)
    return dst_pod is not None and dst_pod.ports.get((port, proto)) == dport


def _np_peer(peer: NetworkPolicyPeer, ns: str, ip: IPAddress, pod: PodInfo | None,
             idx: PolicyIndex) -> bool:
    b = peer.ip_block
    if b is not None:
        return (ip.version == b.cidr.version and ip in b.cidr
                and not any(ip.version == e.version and ip in e for e in b.excepts))
    if pod is None:
        return False
    nsel = peer.namespace_selector
    if nsel is None:
        if pod.namespace != ns:
            return False
    elif (nsel.match_labels or nsel.match_expressions) and not nsel.matches(
            idx.namespace_labels(pod.namespace)):
        return False
    return peer.pod_selector is None or peer.pod_selector.matches(pod.labels)


def _np_rule(r: NetworkPolicyRule, ns: str, ip: IPAddress, peer: PodInfo | None, dport: int,
             proto: str, dst_pod: PodInfo | None, idx: PolicyIndex) -> str | None:
    """None if the rule does not match, else what matched (for the explanation)."""
    if r.ports:
        for i, x in enumerate(r.ports):
            if _np_port(x, dport, proto, dst_pod):
                port_s = f", port {i + 1}"
                break
        else:
            return None
    else:
        port_s = ""
    if not r.peers:
        return f" (any peer{port_s})" if port_s else " (any peer, any port)"
    for j, peer_sel in enumerate(r.peers):
        if _np_peer(peer_sel, ns, ip, peer, idx):
            kind = "ipBlock" if peer_sel.ip_block is not None else "selector"
            return f", peer {j + 1} ({kind}{port_s})"
    return None


__all__ = ["MEMO_SIZE", "POLICY_INPUT_KINDS", "Decision", "DirectionVerdict", "PodInfo",
           "PolicyIndex"]
