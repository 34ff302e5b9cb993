"""kube-scheduler's default profile, reduced to what decides placement, deterministic.

Filters, in the default profile's plugin order (a node's reasons are those of the first
plugin that rejects it): NodeUnschedulable, TaintToleration (NoSchedule/NoExecute),
NodeAffinity (nodeSelector + required terms, In/NotIn/Exists/DoesNotExist/Gt/Lt, matchFields
metadata.name), NodePorts, NodeResourcesFit (cpu, memory, ephemeral-storage, pods),
PodTopologySpread (user ``topologySpreadConstraints`` with whenUnsatisfiable DoNotSchedule:
maxSkew, any topologyKey, labelSelector, matchLabelKeys, minDomains, nodeAffinityPolicy,
nodeTaintsPolicy; pkg/scheduler/framework/plugins/podtopologyspread/filtering.go) and
InterPodAffinity (required podAffinity, required podAntiAffinity, and existing pods' required
anti-affinity against the incoming pod, any topologyKey, labelSelector, namespaces,
namespaceSelector against the ``kubernetes.io/metadata.name`` label only, matchLabelKeys /
mismatchLabelKeys; interpodaffinity/filtering.go).
Scores (0-100 each, summed with the default weights): NodeResourcesFit LeastAllocated and
NodeResourcesBalancedAllocation over cpu/memory using non-zero requests (100m / 200Mi per
container without requests, ``schedutil.GetNonzeroRequests``), NodeAffinity preferred terms
(normalised by the max), TaintToleration PreferNoSchedule count (reverse-normalised),
PodTopologySpread (weight 2): the user's ScheduleAnyway constraints (podtopologyspread/
scoring.go), or, for a pod without constraints, the system default hostname constraint
(maxSkew 3) over the pods of the same controller; InterPodAffinity (weight 2): the pod's
preferred terms against placed pods, and placed pods' required affinity (hardPodAffinityWeight
1) and preferred terms against the pod (interpodaffinity/scoring.go). Every feasible node
is scored (percentageOfNodesToScore = 100); ties are broken
uniformly with the injected rng, as ``selectHost`` does with reservoir sampling.

Scale: nodes that cannot be told apart by a pod whose constraints do not name nodes (same
labels except the hostname, taints, allocatable and usage) share a bucket, so a pod is scored
per bucket (plus the few nodes that hold pods of its owner), not per node. Pods with host
ports, inter-pod (anti-)affinity, topology spread constraints, or named by a placed pod's
inter-pod term take the per-node path, since their fit depends on where pods are.
The failure message is kube-scheduler's ``FitError.Error()`` text.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterable, Mapping

from knet.control.quantity import amount
from knet.model.core import Node, NodeSelectorTerm, Pod, Taint, Toleration

HOSTNAME_LABEL = "kubernetes.io/hostname"
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
DEFAULT_MAX_PODS = 110
RESOURCES = ("cpu", "memory", "ephemeral-storage", "pods")

R_UNSCHEDULABLE = "node(s) were unschedulable"
R_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
R_PORTS = "node(s) didn't have free ports for the requested pod ports"
R_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
R_POD_AFFINITY = "node(s) didn't match pod affinity rules"
R_EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"
R_SPREAD = "node(s) didn't match pod topology spread constraints"
R_SPREAD_LABEL = R_SPREAD + " (missing required label)"
R_TOO_MANY_PODS = "Too many pods"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
# Reasons whose status is UnschedulableAndUnresolvable: preemption cannot help there.
# (Pod anti-affinity, existing anti-affinity and skew violations are plain Unschedulable.)
_UNRESOLVABLE = frozenset((R_UNSCHEDULABLE, R_AFFINITY, R_POD_AFFINITY, R_SPREAD_LABEL))
_UNRESOLVABLE_PREFIXES = ("node(s) had untolerated taint",)


def untolerated_taint_reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


@dataclass(frozen=True, slots=True)
class Requests:
    cpu: int = 0          # millicores
    memory: int = 0
    ephemeral: int = 0
    nz_cpu: int = 0       # non-zero requests used for scoring
    nz_memory: int = 0


_REQ_CACHE: dict[int, tuple[Any, Any, Requests]] = {}


def pod_requests(pod: Pod) -> Requests:
    """Effective requests: max(sum of app containers (+ sidecars), each init container)."""
    spec = pod.spec
    hit = _REQ_CACHE.get(id(spec.containers))
    if hit is not None and hit[0] is spec.containers and hit[1] is spec.init_containers:
        return hit[2]
    r = _pod_requests(pod)
    if len(_REQ_CACHE) > 10_000:
        _REQ_CACHE.clear()
    _REQ_CACHE[id(spec.containers)] = (spec.containers, spec.init_containers, r)
    return r


def _pod_requests(pod: Pod) -> Requests:
    cpu = mem = eph = nzc = nzm = 0
    for c in pod.spec.containers:
        r = c.requests
        cc = amount("cpu", r["cpu"]) if "cpu" in r else 0
        mm = amount("memory", r["memory"]) if "memory" in r else 0
        cpu += cc
        mem += mm
        eph += amount("ephemeral-storage", r["ephemeral-storage"]) if "ephemeral-storage" in r else 0
        nzc += cc if "cpu" in r else DEFAULT_MILLI_CPU
        nzm += mm if "memory" in r else DEFAULT_MEMORY
    for c in pod.spec.init_containers:
        r = c.requests
        cpu = max(cpu, amount("cpu", r["cpu"]) if "cpu" in r else 0)
        mem = max(mem, amount("memory", r["memory"]) if "memory" in r else 0)
    return Requests(cpu, mem, eph, nzc, nzm)


def node_allocatable(node: Node) -> tuple[int, int, int, int]:
    a = node.allocatable or node.capacity
    return (amount("cpu", a["cpu"]) if "cpu" in a else 0,
            amount("memory", a["memory"]) if "memory" in a else 0,
            amount("ephemeral-storage", a["ephemeral-storage"]) if "ephemeral-storage" in a else 0,
            amount("pods", a["pods"]) if "pods" in a else DEFAULT_MAX_PODS)


# --- node affinity -----------------------------------------------------------------------------

def _req_matches(req: Any, labels: Mapping[str, str]) -> bool:
    op = req.operator
    if op in ("Gt", "Lt"):
        if req.key not in labels:
            return False
        try:
            have, want = int(labels[req.key]), int(req.values[0])
        except (ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    return req.matches(labels)


def term_matches(term: NodeSelectorTerm, node: Node) -> bool:
    """v1 NodeSelectorTerm: all expressions and fields must hold; an empty term matches nothing."""
    if not term.match_expressions and not term.match_fields:
        return False
    labels = node.metadata.labels
    if not all(_req_matches(r, labels) for r in term.match_expressions):
        return False
    fields = {"metadata.name": node.name}
    return all(_req_matches(r, fields) for r in term.match_fields)


def affinity_matches(pod: Pod, node: Node) -> bool:
    labels = node.metadata.labels
    for k, v in pod.spec.node_selector.items():
        if labels.get(k) != v:
            return False
    terms = pod.spec.required_node_affinity
    return not terms or any(term_matches(t, node) for t in terms)


def preferred_affinity_score(pod: Pod, node: Node) -> int:
    return sum(p.weight for p in pod.spec.preferred_node_affinity
               if term_matches(p.preference, node))


def untolerated(taints: Iterable[Taint], tolerations: Iterable[Toleration],
                effects: tuple[str, ...]) -> Taint | None:
    tols = tuple(tolerations)
    for t in taints:
        if t.effect in effects and not any(tol.tolerates(t) for tol in tols):
            return t
    return None


def prefer_no_schedule_count(taints: Iterable[Taint], tolerations: Iterable[Toleration]) -> int:
    tols = [t for t in tolerations if t.effect in ("", "PreferNoSchedule")]
    return sum(1 for t in taints if t.effect == "PreferNoSchedule"
               and not any(tol.tolerates(t) for tol in tols))


def names_nodes(pod: Pod) -> bool:
    """Does the pod's placement depend on node identity (so buckets cannot be used)?"""
    spec = pod.spec
    if HOSTNAME_LABEL in spec.node_selector:
        return True
    for term in spec.required_node_affinity + tuple(p.preference for p in spec.preferred_node_affinity):
        if term.match_fields or any(r.key == HOSTNAME_LABEL for r in term.match_expressions):
            return True
    return False


def named_candidates(pod: Pod) -> set[str] | None:
    """Node names a pod can only go to (NodeAffinity PreFilter on metadata.name), or None."""
    names: set[str] | None = None
    for term in pod.spec.required_node_affinity:
        term_names = None
        for r in term.match_fields:
            if r.key == "metadata.name" and r.operator == "In":
                term_names = set(r.values) if term_names is None else term_names & set(r.values)
        if term_names is None:
            return None  # one term without a name restriction: any node
        names = term_names if names is None else names | term_names
    return names


def host_ports(pod: Pod) -> tuple[tuple[str, int], ...]:
    return tuple((str(p.protocol), p.host_port)
                 for c in pod.spec.containers for p in c.ports if p.host_port)



# --- inter-pod affinity & topology spread terms -------------------------------------------------

@dataclass(frozen=True, slots=True)
class PodTerm:
    """A required PodAffinityTerm, resolved against the pod that declares it
    (framework.AffinityTerm: namespaces defaulted, matchLabelKeys merged into the selector)."""
    topology_key: str
    selector: Mapping[str, Any] | None       # None: matches no pod (nil labelSelector)
    extra: tuple[tuple[str, str, str], ...]  # (key, In|NotIn, value) from (mis)matchLabelKeys
    namespaces: frozenset[str]
    ns_selector: Mapping[str, Any] | None    # None: only ``namespaces``

    def matches(self, ns: str, labels: Mapping[str, str]) -> bool:
        if ns not in self.namespaces and not (
                self.ns_selector is not None and _selector_dict_matches(
                    self.ns_selector, {"kubernetes.io/metadata.name": ns})):
            return False
        if self.selector is None or not _selector_dict_matches(self.selector, labels):
            return False
        return all((labels.get(key) == value) == (op == "In") for key, op, value in self.extra)


def pod_terms(pod: Pod, affinity: Mapping[str, Any] | None) -> tuple[PodTerm, ...]:
    """Required terms of a podAffinity / podAntiAffinity mapping."""
    raw = (affinity or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or ()
    return tuple(_pod_term(pod, t) for t in raw if isinstance(t, Mapping))


def weighted_terms(pod: Pod,
                   affinity: Mapping[str, Any] | None) -> tuple[tuple[int, PodTerm], ...]:
    """Preferred (weight, term) pairs of a podAffinity / podAntiAffinity mapping."""
    raw = (affinity or {}).get("preferredDuringSchedulingIgnoredDuringExecution") or ()
    return tuple((int(w.get("weight") or 0), _pod_term(pod, w["podAffinityTerm"])) for w in raw
                 if isinstance(w, Mapping) and isinstance(w.get("podAffinityTerm"), Mapping))


def _pod_term(pod: Pod, t: Mapping[str, Any]) -> PodTerm:
    labels = pod.metadata.labels
    extra = tuple((k, "In", labels[k]) for k in t.get("matchLabelKeys") or () if k in labels)
    extra += tuple((k, "NotIn", labels[k]) for k in t.get("mismatchLabelKeys") or () if k in labels)
    nss = frozenset(t.get("namespaces") or ())
    ns_sel = t.get("namespaceSelector")
    if not nss and ns_sel is None:
        nss = frozenset((pod.namespace,))
    return PodTerm(str(t.get("topologyKey") or ""), t.get("labelSelector"), extra, nss, ns_sel)


@dataclass(frozen=True, slots=True)
class SpreadConstraint:
    max_skew: int
    topology_key: str
    hard: bool                     # whenUnsatisfiable: DoNotSchedule
    selector: Mapping[str, Any] | None
    extra: tuple[tuple[str, str], ...]
    min_domains: int
    honor_affinity: bool           # nodeAffinityPolicy (default Honor)
    honor_taints: bool             # nodeTaintsPolicy (default Ignore)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.selector is None or not _selector_dict_matches(self.selector, labels):
            return False
        return all(labels.get(k) == v for k, v in self.extra)


def spread_constraints(pod: Pod) -> tuple[SpreadConstraint, ...]:
    """``spec.topologySpreadConstraints`` (kept in PodSpec.extra by the manifest loader)."""
    raw = pod.spec.extra.get("topologySpreadConstraints") or ()
    labels = pod.metadata.labels
    out = []
    for c in raw:
        if not isinstance(c, Mapping):
            continue
        extra = tuple((k, labels[k]) for k in c.get("matchLabelKeys") or () if k in labels)
        out.append(SpreadConstraint(
            int(c.get("maxSkew") or 1), str(c.get("topologyKey") or ""),
            c.get("whenUnsatisfiable", "DoNotSchedule") != "ScheduleAnyway",
            c.get("labelSelector"), extra, int(c.get("minDomains") or 1),
            c.get("nodeAffinityPolicy", "Honor") != "Ignore",
            c.get("nodeTaintsPolicy", "Ignore") == "Honor"))
    return tuple(out)


# --- state ---------------------------------------------------------------------------------

@dataclass(slots=True)
class NodeState:
    index: int
    node: Node
    alloc: tuple[int, int, int, int]
    cls: int = 0
    usage: tuple[int, ...] = (0, 0, 0, 0, 0, 0)  # cpu mem eph pods nzc nzm
    ports: dict[tuple[str, int], int] = field(default_factory=dict)
    removed: bool = False


class _Bucket:
    __slots__ = ("items", "pos")

    def __init__(self) -> None:
        self.items: list[int] = []
        self.pos: dict[int, int] = {}

    def add(self, i: int) -> None:
        self.pos[i] = len(self.items)
        self.items.append(i)

    def remove(self, i: int) -> None:
        p = self.pos.pop(i)
        last = self.items.pop()
        if last != i:
            self.items[p] = last
            self.pos[last] = p

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class Decision:
    node: str | None
    message: str = ""


# A candidate group is a tuple (base, aff, taint, count, bucket, nodes, size): base = least
# allocated + balanced score, aff/taint = raw preferred-affinity / PreferNoSchedule scores,
# count = pods of the same owner on each of these nodes, nodes = explicit node indexes or None
# for "the bucket minus the owner's nodes", size = number of nodes in the group.


class Scheduler:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.nodes: list[NodeState] = []
        self.by_name: dict[str, NodeState] = {}
        self._classes: dict[tuple, int] = {}
        self._buckets: dict[tuple, _Bucket] = {}
        self._static_cache: dict[tuple, tuple[str | None, int, int]] = {}
        # (pod signature, requests, bucket key) -> (reasons, resource score, aff, taint):
        # a bucket key fixes the node class and usage, so entries never go stale.
        self._eval_cache: dict[tuple, tuple] = {}
        self._sig_ids: dict[tuple, int] = {}
        self._profiles: dict[int, tuple[Any, tuple]] = {}
        # owner uid -> node index -> number of (non-terminating, bound) pods
        self._owner_nodes: dict[str, dict[int, int]] = defaultdict(dict)
        self._placed: dict[str, tuple[int, tuple[int, ...], str, tuple]] = {}
        # node index -> pod key -> (namespace, labels) for anti-affinity
        self._pods_on: dict[int, dict[str, tuple[str, Mapping[str, str]]]] = defaultdict(dict)
        # pod key -> (node index, required anti-affinity terms) of placed pods that have some
        self._anti: dict[str, tuple[int, tuple[PodTerm, ...]]] = {}
        # pod key -> (node index, required affinity terms, preferred affinity, preferred
        # anti-affinity) of placed pods with any of those (InterPodAffinity scoring)
        self._soft: dict[str, tuple[int, tuple[PodTerm, ...], tuple, tuple]] = {}

    # --- nodes ---------------------------------------------------------------------------------

    def set_nodes(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            self.upsert_node(node)

    def upsert_node(self, node: Node) -> None:
        st = self.by_name.get(node.name)
        if st is not None and st.removed:
            st = None
        if st is None:
            st = NodeState(len(self.nodes), node, node_allocatable(node))
            self.nodes.append(st)
            self.by_name[node.name] = st
        else:
            key = self._bucket_key(st)
            b = self._buckets[key]
            b.remove(st.index)
            if not len(b):  # an empty bucket would be read as a candidate node class
                del self._buckets[key]
            st.node = node
            st.alloc = node_allocatable(node)
        labels = tuple(sorted((k, v) for k, v in node.metadata.labels.items()
                              if k != HOSTNAME_LABEL))
        ckey = (labels, node.taints, node.unschedulable, st.alloc)
        st.cls = self._classes.setdefault(ckey, len(self._classes))
        self._bucket(self._bucket_key(st)).add(st.index)

    def remove_node(self, name: str) -> None:
        st = self.by_name.pop(name, None)
        if st is None:
            return
        key = self._bucket_key(st)
        b = self._buckets[key]
        b.remove(st.index)
        if not len(b):
            del self._buckets[key]
        st.removed = True

    def _bucket_key(self, st: NodeState) -> tuple:
        return (st.cls, st.usage)

    def _bucket(self, key: tuple) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket()
        return b

    def _set_usage(self, st: NodeState, usage: tuple) -> None:
        old = self._bucket_key(st)
        b = self._buckets[old]
        b.remove(st.index)
        if not len(b):
            del self._buckets[old]
        st.usage = usage
        self._bucket(self._bucket_key(st)).add(st.index)

    # --- accounting ----------------------------------------------------------------------------

    def assume(self, pod: Pod, node_name: str) -> None:
        """Account a pod bound to ``node_name`` (scheduled here or bound by nodeName)."""
        st = self.by_name.get(node_name)
        if st is None or pod.key in self._placed:
            return
        r = pod_requests(pod)
        delta = (r.cpu, r.memory, r.ephemeral, 1, r.nz_cpu, r.nz_memory)
        self._set_usage(st, tuple(a + b for a, b in zip(st.usage, delta)))
        owner = pod.metadata.controller_ref
        uid = owner.uid if owner else ""
        if uid:
            on = self._owner_nodes[uid]
            on[st.index] = on.get(st.index, 0) + 1
        ports = host_ports(pod)
        for p in ports:
            st.ports[p] = st.ports.get(p, 0) + 1
        self._pods_on[st.index][pod.key] = (pod.namespace, pod.metadata.labels)
        anti = pod_terms(pod, pod.spec.pod_anti_affinity)
        if anti:
            self._anti[pod.key] = (st.index, anti)
        soft = (pod_terms(pod, pod.spec.pod_affinity), weighted_terms(pod, pod.spec.pod_affinity),
                weighted_terms(pod, pod.spec.pod_anti_affinity))
        if any(soft):
            self._soft[pod.key] = (st.index, *soft)
        self._placed[pod.key] = (st.index, delta, uid, ports)

    def forget(self, pod_key: str) -> None:
        placed = self._placed.pop(pod_key, None)
        if placed is None:
            return
        idx, delta, uid, ports = placed
        st = self.nodes[idx]
        if st.removed:
            st.usage = tuple(a - b for a, b in zip(st.usage, delta))
        else:
            self._set_usage(st, tuple(a - b for a, b in zip(st.usage, delta)))
        if uid:
            on = self._owner_nodes[uid]
            on[idx] -= 1
            if not on[idx]:
                del on[idx]
            if not on:
                del self._owner_nodes[uid]
        for p in ports:
            st.ports[p] -= 1
            if not st.ports[p]:
                del st.ports[p]
        self._pods_on[idx].pop(pod_key, None)
        self._anti.pop(pod_key, None)
        self._soft.pop(pod_key, None)

    # --- filters & scores ----------------------------------------------------------------------

    def _static(self, pod: Pod, st: NodeState) -> tuple[str | None, int, int]:
        """(failure reason or None, preferred-affinity raw score, PreferNoSchedule count)."""
        node = st.node
        if node.unschedulable and not any(
                t.tolerates(Taint("node.kubernetes.io/unschedulable", "NoSchedule"))
                for t in pod.spec.tolerations):
            return R_UNSCHEDULABLE, 0, 0
        bad = untolerated(node.taints, pod.spec.tolerations, ("NoSchedule", "NoExecute"))
        if bad is not None:
            return untolerated_taint_reason(bad), 0, 0
        if not affinity_matches(pod, node):
            return R_AFFINITY, 0, 0
        return (None, preferred_affinity_score(pod, node),
                prefer_no_schedule_count(node.taints, pod.spec.tolerations))

    def _static_cached(self, pod: Pod, sig: tuple, st: NodeState) -> tuple[str | None, int, int]:
        key = (sig, st.cls)
        hit = self._static_cache.get(key)
        if hit is None:
            hit = self._static_cache[key] = self._static(pod, st)
        return hit

    @staticmethod
    def _fit(r: Requests, usage: tuple, alloc: tuple) -> list[str]:
        out = []
        if usage[3] + 1 > alloc[3]:
            out.append(R_TOO_MANY_PODS)
        if r.cpu and usage[0] + r.cpu > alloc[0]:
            out.append("Insufficient cpu")
        if r.memory and usage[1] + r.memory > alloc[1]:
            out.append("Insufficient memory")
        if r.ephemeral and usage[2] + r.ephemeral > alloc[2]:
            out.append("Insufficient ephemeral-storage")
        return out

    @staticmethod
    def _resource_score(r: Requests, usage: tuple, alloc: tuple) -> int:
        # noderesources LeastAllocated (cpu, memory weight 1) + BalancedAllocation.
        least = 0
        fractions = []
        for req, cap in ((usage[4] + r.nz_cpu, alloc[0]), (usage[5] + r.nz_memory, alloc[1])):
            if cap == 0 or req > cap:
                least += 0
            else:
                least += (cap - req) * 100 // cap
            fractions.append(min(req / cap, 1.0) if cap else 1.0)
        least //= 2
        std = abs(fractions[0] - fractions[1]) / 2
        balanced = int((1 - std) * 100)
        return least + balanced

    def _live_pods(self) -> Iterable[tuple[NodeState, Iterable[tuple[str, Mapping[str, str]]]]]:
        for idx, pods in self._pods_on.items():
            st = self.nodes[idx]
            if pods and not st.removed:
                yield st, pods.values()

    def _matched_by_existing(self, pod: Pod) -> bool:
        """Does a placed pod's inter-pod term name this pod (so nodes differ for it)?"""
        ns, labels = pod.namespace, pod.metadata.labels
        if any(t.matches(ns, labels) for _, terms in self._anti.values() for t in terms):
            return True
        return any(t.matches(ns, labels) for _, req, aff, anti in self._soft.values()
                   for t in (*req, *(t for _, t in aff), *(t for _, t in anti)))

    def _preferred_match(self, pod: Pod) -> bool:
        """Does a placed pod match one of the pod's preferred terms? If none does,
        InterPodAffinity scores every node alike and the bucket path is exact."""
        terms = [t for _, t in (*weighted_terms(pod, pod.spec.pod_affinity),
                                *weighted_terms(pod, pod.spec.pod_anti_affinity))]
        return any(t.topology_key in st.node.metadata.labels and t.matches(ns, labels)
                   for st, pods in self._live_pods() for ns, labels in pods for t in terms)

    def _inter_pod_scores(self, pod: Pod, feasible: list[NodeState]) -> list[int] | None:
        """InterPodAffinity PreScore/Score/NormalizeScore (interpodaffinity/scoring.go,
        hardPodAffinityWeight 1); None when no term applies (PreScore skips)."""
        pref = weighted_terms(pod, pod.spec.pod_affinity)
        pref_anti = weighted_terms(pod, pod.spec.pod_anti_affinity)
        topo: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

        def add(t: PodTerm, weight: int, nl: Mapping[str, str]) -> None:
            if t.topology_key in nl:
                topo[t.topology_key][nl[t.topology_key]] += weight

        if pref or pref_anti:
            for st, pods in self._live_pods():
                nl = st.node.metadata.labels
                for ns, labels in pods:
                    for w, t in pref:
                        if t.matches(ns, labels):
                            add(t, w, nl)
                    for w, t in pref_anti:
                        if t.matches(ns, labels):
                            add(t, -w, nl)
        ns, labels = pod.namespace, pod.metadata.labels
        for idx, req, aff, anti in self._soft.values():
            st = self.nodes[idx]
            if st.removed:
                continue
            nl = st.node.metadata.labels
            for t in req:
                if t.matches(ns, labels):
                    add(t, 1, nl)
            for w, t in aff:
                if t.matches(ns, labels):
                    add(t, w, nl)
            for w, t in anti:
                if t.matches(ns, labels):
                    add(t, -w, nl)
        if not topo:
            return None
        raws = []
        for st in feasible:
            nl = st.node.metadata.labels
            raws.append(sum(vals.get(nl[k], 0) for k, vals in topo.items() if k in nl))
        lo, hi = min(raws, default=0), max(raws, default=0)
        return [int(100 * ((r - lo) / (hi - lo))) if hi > lo else 0 for r in raws]

    def _inter_pod_filter(self, pod: Pod) -> Any:
        """InterPodAffinity PreFilter: returns node -> failure reason or None
        (interpodaffinity/filtering.go: satisfyPodAffinity, satisfyPodAntiAffinity,
        satisfyExistingPodsAntiAffinity, in that order)."""
        aff = pod_terms(pod, pod.spec.pod_affinity)
        anti = pod_terms(pod, pod.spec.pod_anti_affinity)
        aff_counts: dict[tuple[str, str], int] = defaultdict(int)
        anti_counts: dict[tuple[str, str], int] = defaultdict(int)
        existing: dict[tuple[str, str], int] = defaultdict(int)
        if aff or anti:
            for st, pods in self._live_pods():
                nl = st.node.metadata.labels
                for ns, labels in pods:
                    if aff and all(t.matches(ns, labels) for t in aff):
                        for t in aff:
                            if t.topology_key in nl:
                                aff_counts[(t.topology_key, nl[t.topology_key])] += 1
                    for t in anti:
                        if t.topology_key in nl and t.matches(ns, labels):
                            anti_counts[(t.topology_key, nl[t.topology_key])] += 1
        ns, labels = pod.namespace, pod.metadata.labels
        for idx, terms in self._anti.values():
            st = self.nodes[idx]
            if st.removed:
                continue
            nl = st.node.metadata.labels
            for t in terms:
                if t.topology_key in nl and t.matches(ns, labels):
                    existing[(t.topology_key, nl[t.topology_key])] += 1
        # the first pod of a group with affinity to itself (no matching pod anywhere)
        self_ok = not aff_counts and all(t.matches(ns, labels) for t in aff)

        def check(node: Node) -> str | None:
            nl = node.metadata.labels
            if aff:
                exist = True
                for t in aff:
                    if t.topology_key not in nl:
                        return R_POD_AFFINITY
                    if aff_counts.get((t.topology_key, nl[t.topology_key]), 0) <= 0:
                        exist = False
                if not exist and not self_ok:
                    return R_POD_AFFINITY
            for t in anti:
                if t.topology_key in nl and anti_counts.get((t.topology_key, nl[t.topology_key])):
                    return R_ANTI_AFFINITY
            if existing and any(existing.get(kv) for kv in nl.items()):
                return R_EXISTING_ANTI
            return None
        return check

    def _spread_included(self, pod: Pod, c: SpreadConstraint, node: Node) -> bool:
        # PodTopologySpread matchNodeInclusionPolicies.
        if c.honor_affinity and not affinity_matches(pod, node):
            return False
        return not (c.honor_taints and untolerated(
            node.taints, pod.spec.tolerations, ("NoSchedule", "NoExecute")) is not None)

    @staticmethod
    def _count(pods: Iterable[tuple[str, Mapping[str, str]]], c: SpreadConstraint,
               ns: str) -> int:
        return sum(1 for pns, labels in pods if pns == ns and c.matches(labels))

    def _spread_filter(self, pod: Pod, hard: tuple[SpreadConstraint, ...]) -> Any:
        """PodTopologySpread PreFilter over DoNotSchedule constraints; returns node -> reason."""
        keys = [c.topology_key for c in hard]
        counts: list[dict[str, int]] = [{} for _ in hard]
        for st in self.nodes:
            if st.removed:
                continue
            nl = st.node.metadata.labels
            if not all(k in nl for k in keys):
                continue
            pods = self._pods_on.get(st.index, {}).values()
            for i, c in enumerate(hard):
                if self._spread_included(pod, c, st.node):
                    v = nl[c.topology_key]
                    counts[i][v] = counts[i].get(v, 0) + self._count(pods, c, pod.namespace)
        mins = [0 if len(cnt) < c.min_domains else min(cnt.values(), default=2**31 - 1)
                for c, cnt in zip(hard, counts)]
        labels = pod.metadata.labels
        selfs = [1 if c.matches(labels) else 0 for c in hard]

        def check(node: Node) -> str | None:
            nl = node.metadata.labels
            for c in hard:
                if c.topology_key not in nl:
                    return R_SPREAD_LABEL
            for i, c in enumerate(hard):
                if counts[i].get(nl[c.topology_key], 0) + selfs[i] - mins[i] > c.max_skew:
                    return R_SPREAD
            return None
        return check

    def _spread_scores(self, pod: Pod, soft: tuple[SpreadConstraint, ...],
                       feasible: list[NodeState]) -> list[int]:
        """PodTopologySpread PreScore/Score/NormalizeScore for ScheduleAnyway constraints."""
        keys = [c.topology_key for c in soft]
        ignored = [not all(k in st.node.metadata.labels for k in keys) for st in feasible]
        pairs: list[dict[str, int]] = [{} for _ in soft]
        for st, ign in zip(feasible, ignored):
            if not ign:
                for i, c in enumerate(soft):
                    if c.topology_key != HOSTNAME_LABEL:
                        pairs[i].setdefault(st.node.metadata.labels[c.topology_key], 0)
        n_scored = ignored.count(False)
        weights = [math.log((n_scored if c.topology_key == HOSTNAME_LABEL else len(pairs[i])) + 2)
                   for i, c in enumerate(soft)]
        for st in self.nodes:
            nl = st.node.metadata.labels
            if st.removed or not all(k in nl for k in keys):
                continue
            pods = self._pods_on.get(st.index, {}).values()
            for i, c in enumerate(soft):
                v = nl[c.topology_key]
                if (c.topology_key != HOSTNAME_LABEL and v in pairs[i]
                        and self._spread_included(pod, c, st.node)):
                    pairs[i][v] += self._count(pods, c, pod.namespace)
        raws = []
        for st, ign in zip(feasible, ignored):
            if ign:
                raws.append(0)
                continue
            nl = st.node.metadata.labels
            score = 0.0
            for i, c in enumerate(soft):
                if c.topology_key == HOSTNAME_LABEL:
                    cnt = self._count(self._pods_on.get(st.index, {}).values(), c, pod.namespace)
                else:
                    cnt = pairs[i][nl[c.topology_key]]
                score += cnt * weights[i] + (c.max_skew - 1)
            raws.append(round(score))
        live = [r for r, ign in zip(raws, ignored) if not ign]
        lo, hi = min(live, default=0), max(live, default=0)
        return [0 if ign else 100 if hi == 0 else 100 * (hi + lo - r) // hi
                for r, ign in zip(raws, ignored)]

    # --- decision ------------------------------------------------------------------------------

    def schedule(self, pod: Pod) -> Decision:
        n_all = len(self.by_name)
        r = pod_requests(pod)
        owner = pod.metadata.controller_ref
        owner_nodes = self._owner_nodes.get(owner.uid, {}) if owner and owner.uid else {}
        reasons: dict[str, int] = defaultdict(int)
        groups: list[tuple] = []
        slow, ports, sig, sid = self._profile(pod, r)
        direct = False
        if slow == 1 or (slow == 2 and self._preferred_match(pod)) or (
                (self._anti or self._soft) and self._matched_by_existing(pod)):
            constraints = spread_constraints(pod)
            hard = tuple(c for c in constraints if c.hard)
            soft = tuple(c for c in constraints if not c.hard)
            spread_check = self._spread_filter(pod, hard) if hard else None
            pod_check = self._inter_pod_filter(pod)
            names = named_candidates(pod)
            sts = ([st for st in self.nodes if not st.removed] if names is None
                   else [self.by_name[n] for n in sorted(names) if n in self.by_name])
            if names is not None:
                reasons[R_AFFINITY] += n_all - len(sts)
            for st in sts:
                why, aff, taint = self._static(pod, st)
                if why is None and any(p in st.ports for p in ports):
                    why = R_PORTS
                if why is not None:
                    reasons[why] += 1
                    continue
                misfit = self._fit(r, st.usage, st.alloc)
                if not misfit and spread_check is not None:
                    why = spread_check(st.node)
                    misfit = [why] if why else []
                if not misfit:
                    why = pod_check(st.node)
                    misfit = [why] if why else []
                if misfit:
                    for m in misfit:
                        reasons[m] += 1
                    continue
                groups.append((self._resource_score(r, st.usage, st.alloc), aff, taint,
                               owner_nodes.get(st.index, 0), None, [st.index], 1))
            ipa = self._inter_pod_scores(pod, [self.nodes[g[5][0]] for g in groups])
            if ipa is not None:  # InterPodAffinity score, weight 2
                groups = [(g[0] + 2 * sc,) + g[1:] for g, sc in zip(groups, ipa)]
            if constraints:
                # user constraints replace the system default spreading (PodTopologySpread
                # PreScore skips when there is no ScheduleAnyway constraint).
                direct = True
                scores = (self._spread_scores(pod, soft, [self.nodes[g[5][0]] for g in groups])
                          if soft else [0] * len(groups))
                groups = [g[:3] + (sc,) + g[4:] for g, sc in zip(groups, scores)]
        else:
            owners_by_bucket: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
            nodes = self.nodes
            for idx, cnt in owner_nodes.items():
                st = nodes[idx]
                owners_by_bucket[(st.cls, st.usage)].append((idx, cnt))
            cache = self._eval_cache
            if len(cache) > 200_000:
                cache.clear()
            failed: list[tuple[list[str], int]] = []
            for key, bucket in self._buckets.items():
                ev = cache.get((sid, key))
                if ev is None:
                    st = self.nodes[bucket.items[0]]
                    why, aff, taint = self._static_cached(pod, sig, st)
                    misfit = [why] if why is not None else self._fit(r, st.usage, st.alloc)
                    base = 0 if misfit else self._resource_score(r, st.usage, st.alloc)
                    ev = cache[(sid, key)] = (misfit, base, aff, taint)
                misfit, base, aff, taint = ev
                if misfit:
                    failed.append((misfit, len(bucket)))
                    continue
                size = len(bucket.items)
                here = owners_by_bucket.get(key)
                if here is None:
                    groups.append((base, aff, taint, 0, key, None, size))
                    continue
                if size > len(here):
                    groups.append((base, aff, taint, 0, key, None, size - len(here)))
                by_count: dict[int, list[int]] = {}
                for idx, cnt in here:
                    by_count.setdefault(cnt, []).append(idx)
                for cnt, idxs in sorted(by_count.items()):
                    groups.append((base, aff, taint, cnt, key, sorted(idxs), len(idxs)))
            if not groups:
                for misfit, n in failed:
                    for m in misfit:
                        reasons[m] += n
        if not groups:
            return Decision(None, self._fit_error(n_all, reasons, pod))
        return Decision(self.nodes[self._select(groups, owner_nodes, bool(owner_nodes) or
                                                bool(owner and owner.uid), direct)].node.name)

    def _profile(self, pod: Pod, r: Requests) -> tuple[int, tuple, tuple, int]:
        """(needs the per-node path, host ports, static signature, signature id), cached per
        PodSpec object (pods of one template share it until they are bound)."""
        spec = pod.spec
        hit = self._profiles.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit[1]
        ports = host_ports(pod)
        pa, paa = spec.pod_affinity or {}, spec.pod_anti_affinity or {}
        req, prefd = ("requiredDuringSchedulingIgnoredDuringExecution",
                      "preferredDuringSchedulingIgnoredDuringExecution")
        anti = bool(pa.get(req) or paa.get(req) or spec.extra.get("topologySpreadConstraints"))
        pref = bool(pa.get(prefd) or paa.get(prefd))
        sig = (tuple(sorted(spec.node_selector.items())), spec.required_node_affinity,
               spec.preferred_node_affinity, spec.tolerations)
        sid = self._sig_ids.setdefault((sig, r), len(self._sig_ids))
        # 1: per-node path; 2: per-node path if a preferred term names a placed pod
        prof = (1 if ports or anti or names_nodes(pod) else 2 if pref else 0, ports, sig, sid)
        if len(self._profiles) > 10_000:
            self._profiles.clear()
        self._profiles[id(spec)] = (spec, prof)
        return prof

    def _select(self, groups: list[tuple], owner_nodes: Mapping[int, int], spread: bool,
                direct: bool = False) -> int:
        """``direct``: g[3] is already the normalised PodTopologySpread score."""
        max_aff = max(g[1] for g in groups)
        max_taint = max(g[2] for g in groups)
        if direct:
            spread = False
        if spread:
            # PodTopologySpread scoreForCount with the system default hostname constraint.
            w = math.log(len(self.by_name) + 2)
            raws = [round(g[3] * w + 2) for g in groups]
            hi, lo = max(raws), min(raws)
        best = -1
        tied: list[tuple] = []
        for i, g in enumerate(groups):
            s = g[0]
            s += g[1] * 100 // max_aff if max_aff else 0
            s += 100 - g[2] * 100 // max_taint if max_taint else 100
            if spread:
                s += 2 * (100 * (hi + lo - raws[i]) // hi if hi else 100)
            elif direct:
                s += 2 * g[3]
            if s > best:
                best, tied = s, [g]
            elif s == best:
                tied.append(g)
        total = sum(g[6] for g in tied)
        pick = self.rng.randrange(total)
        for g in tied:
            if pick < g[6]:
                break
            pick -= g[6]
        if g[5] is not None:
            return g[5][pick]
        items = self._buckets[g[4]].items
        if g[6] * 4 < len(items):
            return [i for i in items if i not in owner_nodes][pick]
        while True:  # rejection sampling; the owner's nodes are a small part of the bucket
            i = items[self.rng.randrange(len(items))]
            if i not in owner_nodes:
                return i

    @staticmethod
    def _fit_error(n_all: int, reasons: Mapping[str, int], pod: Pod) -> str:
        # framework.FitError.Error(), then DefaultPreemption's PostFilter message.
        hist = sorted(f"{v} {k}" for k, v in reasons.items() if v)
        msg = f"0/{n_all} nodes are available:"
        if hist:
            msg += f" {', '.join(hist)}."
        not_helpful = sum(v for k, v in reasons.items()
                          if k in _UNRESOLVABLE or k.startswith(_UNRESOLVABLE_PREFIXES))
        per_node_unresolvable = min(not_helpful, n_all)
        pre = {NOT_HELPFUL: per_node_unresolvable,
               NO_VICTIMS: n_all - per_node_unresolvable}
        pre_hist = sorted(f"{v} {k}" for k, v in pre.items() if v)
        msg += f" preemption: 0/{n_all} nodes are available: {', '.join(pre_hist)}."
        return msg


def _selector_dict_matches(sel: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector given as its API mapping."""
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True
