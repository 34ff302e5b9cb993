"""kube-scheduler's default profile, reduced to what decides placement, deterministic.

Filters, in the default profile's plugin order (a node's reasons are those of the first
plugin that rejects it): NodeUnschedulable, TaintToleration (NoSchedule/NoExecute),
NodeAffinity (nodeSelector + required terms, In/NotIn/Exists/DoesNotExist/Gt/Lt, matchFields
metadata.name), NodePorts, NodeResourcesFit (cpu, memory, ephemeral-storage, pods), and
InterPodAffinity for required anti-affinity on ``kubernetes.io/hostname``.
Scores (0-100 each, summed with the default weights): NodeResourcesFit LeastAllocated and
NodeResourcesBalancedAllocation over cpu/memory using non-zero requests (100m / 200Mi per
container without requests, ``schedutil.GetNonzeroRequests``), NodeAffinity preferred terms
(normalised by the max), TaintToleration PreferNoSchedule count (reverse-normalised),
PodTopologySpread's system default hostname constraint (maxSkew 3, weight 2) over the pods of
the same controller. Every feasible node is scored (percentageOfNodesToScore = 100); ties are
broken uniformly with the injected rng, as ``selectHost`` does with reservoir sampling.

Scale: nodes that cannot be told apart by a pod whose constraints do not name nodes (same
labels except the hostname, taints, allocatable and usage) share a bucket, so a pod is scored
per bucket (plus the few nodes that hold pods of its owner), not per node.
The failure message is kube-scheduler's ``FitError.Error()`` text.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

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
R_TOO_MANY_PODS = "Too many pods"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
# Reasons whose status is UnschedulableAndUnresolvable: preemption cannot help there.
_UNRESOLVABLE_PREFIXES = (R_UNSCHEDULABLE, "node(s) had untolerated taint", R_AFFINITY,
                          R_ANTI_AFFINITY)


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


# --- state ---------------------------------------------------------------------------------

@dataclass(slots=True)
class NodeState:
    index: int
    node: Node
    alloc: tuple[int, int, int, int]
    cls: int = 0
    usage: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)  # cpu mem eph pods nzc nzm
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
            self._buckets[self._bucket_key(st)].remove(st.index)
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

    def _anti_affinity_ok(self, pod: Pod, st: NodeState) -> bool:
        terms = (pod.spec.pod_anti_affinity or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution") or []
        for term in terms:
            if term.get("topologyKey") != HOSTNAME_LABEL:
                continue
            sel = term.get("labelSelector") or {}
            namespaces = set(term.get("namespaces") or [pod.namespace])
            for ns, labels in self._pods_on.get(st.index, {}).values():
                if ns in namespaces and _selector_dict_matches(sel, labels):
                    return False
        return True

    # --- decision ------------------------------------------------------------------------------

    def schedule(self, pod: Pod) -> Decision:
        n_all = len(self.by_name)
        r = pod_requests(pod)
        owner = pod.metadata.controller_ref
        owner_nodes = self._owner_nodes.get(owner.uid, {}) if owner and owner.uid else {}
        reasons: dict[str, int] = defaultdict(int)
        groups: list[tuple] = []
        slow, ports, sig, sid = self._profile(pod, r)
        if slow:
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
                if not misfit and not self._anti_affinity_ok(pod, st):
                    misfit = [R_ANTI_AFFINITY]
                if misfit:
                    for m in misfit:
                        reasons[m] += 1
                    continue
                groups.append((self._resource_score(r, st.usage, st.alloc), aff, taint,
                               owner_nodes.get(st.index, 0), None, [st.index], 1))
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
                                                bool(owner and owner.uid))].node.name)

    def _profile(self, pod: Pod, r: Requests) -> tuple[bool, tuple, tuple, int]:
        """(needs the per-node path, host ports, static signature, signature id), cached per
        PodSpec object (pods of one template share it until they are bound)."""
        spec = pod.spec
        hit = self._profiles.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit[1]
        ports = host_ports(pod)
        anti = bool((spec.pod_anti_affinity or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"))
        sig = (tuple(sorted(spec.node_selector.items())), spec.required_node_affinity,
               spec.preferred_node_affinity, spec.tolerations)
        sid = self._sig_ids.setdefault((sig, r), len(self._sig_ids))
        prof = (bool(ports or anti or names_nodes(pod)), ports, sig, sid)
        if len(self._profiles) > 10_000:
            self._profiles.clear()
        self._profiles[id(spec)] = (spec, prof)
        return prof

    def _select(self, groups: list[tuple], owner_nodes: Mapping[int, int], spread: bool) -> int:
        max_aff = max(g[1] for g in groups)
        max_taint = max(g[2] for g in groups)
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
                          if k.startswith(_UNRESOLVABLE_PREFIXES))
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
