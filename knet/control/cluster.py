"""The converged control plane: store + IPAM + scheduler + controllers + EndpointSlices.

Invariants:
- Pure and synchronous: time arrives as ``now`` (virtual seconds), randomness comes from
  ``random.Random`` streams derived from the seed (one per purpose, so that adding a pod never
  changes which ClusterIP a Service gets). Same input + seed ⇒ same cluster, event for event.
- After every public mutator returns, the cluster is converged: every controller has run until
  nothing changes (pods of the pure core become Running and Ready as soon as they are bound,
  unless ``ready_on_start=False`` leaves readiness to the runtime).
- Work that is due later (end of a graceful termination, NoExecute evictions after
  ``tolerationSeconds``) is kept as deadlines: ``next_deadline()`` says when, ``sync(now)``
  does it.
- Bring-up follows kind: control-plane node(s) and the system add-ons first (so CoreDNS lands
  on the control plane, as in kind), then the workers, then the user's objects in input order.
"""

from __future__ import annotations

import random
from collections import deque
from datetime import datetime, UTC
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence

from knet.control import controllers, defaults, preemption, storage, workloads
from knet.control.endpointslices import is_managed, reconcile, slice_families, wants_slices
from knet.control.events import Event
from knet.control.ipam import (
    ClusterIPAllocator, HostLocal, LoadBalancerIPAllocator, NodePortAllocator,
    default_address_pools, nth_subnet,
)
from knet.control.naming import object_uid, random_suffix
from knet.control.podtemplate import pod_from_template
from knet.control.qos import qos_class
from knet.control.scheduler import Decision, Scheduler
from knet.control.store import Store, evolve
from knet.control.timers import Deadlines
from knet.errors import UsageError
from knet.gateway.controller import generated_objects as gateway_objects
from knet.model.config import ClusterConfig
from knet.model.core import (
    ContainerStatus, LoadBalancerIngress, Node, NodeAddress, Pod, PodCondition, PodStatus,
    Service, ServiceType, Taint, Toleration,
)
from knet.model.discovery import EndpointSlice

IPAddress = IPv4Address | IPv6Address
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
DEFAULT_TOLERATION_SECONDS = 300
INT32_MAX = 2**31 - 1
KUBELET_NODE_LABELS = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"}
KIND_NODE_SUBNET_V6 = ip_network("fc00:f853:ccd:e793::/64")
_DEFAULT_TOLERATIONS = (
    Toleration(NOT_READY_TAINT, "Exists", "", "NoExecute", DEFAULT_TOLERATION_SECONDS),
    Toleration(UNREACHABLE_TAINT, "Exists", "", "NoExecute", DEFAULT_TOLERATION_SECONDS))
_WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job",
                   *controllers.KINDS)
_API_VERSION = {"Deployment": "apps/v1", "ReplicaSet": "apps/v1", "StatefulSet": "apps/v1",
                "DaemonSet": "apps/v1", "Job": "batch/v1", **controllers.API_VERSIONS}
_LB_IPS_ANNOTATIONS = ("metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs")
_POOL_ANNOTATIONS = ("metallb.io/address-pool", "metallb.universe.tf/address-pool")


@lru_cache(maxsize=256)
def timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _split_key(key: str) -> tuple[str, str]:
    if "/" in key:
        ns, name = key.split("/", 1)
        return ns, name
    return "", key


class Cluster:
    def __init__(self, config: ClusterConfig | None = None, objects: Iterable[Any] = (),
                 seed: int | None = None, *, ready_on_start: bool = True,
                 system_objects: bool = True, event_log: int = 10_000) -> None:
        self.config = config or ClusterConfig()
        self.seed = self.config.seed if seed is None else seed
        self.ready_on_start = ready_on_start
        self.now = 0.0
        self.store = Store()
        self.events: deque[Event] = deque(maxlen=event_log)
        self._capture: list[list[Event]] = []
        self._rng_names = self._rng("names")
        self._rng_slices = self._rng("endpointslices")
        self.scheduler = Scheduler(self._rng("scheduler"))
        fam = self.config.families
        self._families = fam
        self._service_ips: dict[int, ClusterIPAllocator] = {
            net.version: ClusterIPAllocator(net, self._rng(f"clusterip{net.version}"))
            for net in self.config.service_subnets if net.version in fam}
        lo, hi = self.config.node_port_range
        self._node_ports = NodePortAllocator(lo, hi, self._rng("nodeport"))
        self._lb = LoadBalancerIPAllocator(
            self.config.address_pools or default_address_pools(self._node_subnets()))
        self._pod_ipam: dict[str, dict[int, HostLocal]] = {}
        self._node_ip_next: dict[int, int] = {}
        self._node_ips_used: set[IPAddress] = set()
        self._pod_cidrs_used: set[Any] = set()
        self._pod_cidrs_given: list[Any] = []
        self._node_ip_cache: dict[str, tuple[Any, tuple[IPAddress, ...]]] = {}
        self._creation = 0
        self._status_given: set[str] = set()
        self._template_pods: dict[tuple, tuple[Any, Pod]] = {}
        # dirty work
        self._dirty: dict[str, dict[tuple[str, str], None]] = {k: {} for k in _WORKLOAD_KINDS}
        self._dirty_services: dict[tuple[str, str], None] = {}
        self._storage_dirty = False
        self._pending: dict[str, None] = {}
        self._unschedulable: dict[str, None] = {}
        self._to_start: dict[str, None] = {}
        self._svc_by_label: dict[tuple[str, str, str], set[tuple[str, str]]] = {}
        self._svc_select_all: dict[str, set[tuple[str, str]]] = {}
        # time-based work: pod key -> when
        self._terminations: Deadlines[str] = Deadlines()
        self._evictions: Deadlines[str] = Deadlines()
        self._requeue: Deadlines[tuple[str, str, str]] = Deadlines()  # controllers' AddAfter
        self._event_names: dict[tuple[str, ...], str] = {}
        self.metrics: Any = None  # a knet.control.autoscaling.MetricsSource (metrics-server)
        self._unreachable: set[str] = set()
        self._orphaned: list[str] = []
        self._converging = False
        self._mutating = 0  # depth of public mutators (nested ones batch into the outermost)
        self.store.subscribe(self._on_event)
        self._bootstrap(list(objects), system_objects)

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def from_input(cls, input: Any, seed: int | None = None, **kw: Any) -> Cluster:
        """From knet.manifests.read(...)'s ``Input(objects, config, warnings)``."""
        c = cls(input.config, input.objects, seed, **kw)
        c.warnings = list(getattr(input, "warnings", ()))
        return c

    warnings: list[Any] = []

    def _rng(self, purpose: str) -> random.Random:
        return random.Random(f"{self.seed}:{purpose}")

    def _node_subnets(self) -> list[Any]:
        nets = [n for n in self.config.node_subnets if n.version in self.config.families]
        if 6 in self.config.families and not any(n.version == 6 for n in nets):
            nets.append(KIND_NODE_SUBNET_V6)
        return nets

    def _bootstrap(self, objects: list[Any], system_objects: bool) -> None:
        self._creation = max((o.metadata.creation_index for o in objects), default=0) + 1
        nodes = [o for o in objects if o.kind == "Node"]
        others = [o for o in objects if o.kind != "Node"]
        others += gateway_objects(others)  # knet's Gateway API controller: LB Services
        if not nodes:
            nodes = _default_nodes(self.config)
        nodes = [self._prepare_node(n, i) for i, n in enumerate(nodes)]
        # Static ClusterIPs first: kubernetes = 1st, kube-dns = 10th (kubeadm GetDNSIP).
        primary = self._service_ips.get(self._families[0])
        system: list[Any] = []
        if system_objects and primary is not None:
            given = {(o.kind, o.metadata.namespace, o.metadata.name) for o in others}
            cp_ip = nodes[0].ips(self._families[0])[0] if nodes and nodes[0].ips(
                self._families[0]) else None
            for n in nodes:
                if CONTROL_PLANE_LABEL in n.labels and n.ips(self._families[0]):
                    cp_ip = n.ips(self._families[0])[0]
                    break
            candidates: list[Any] = defaults.namespaces()
            candidates.append(defaults.kubernetes_service(primary.nth(1)))
            if cp_ip is not None:
                candidates.append(defaults.kubernetes_slice(cp_ip))
            candidates += [defaults.coredns_config_map(self.config),
                           defaults.kube_dns_service(primary.nth(10)),
                           defaults.coredns_deployment(),
                           defaults.kindnet_daemonset(), defaults.kube_proxy_daemonset()]
            if not any(o.kind == "StorageClass" and o.is_default for o in others):
                candidates.append(storage.kind_default_class())  # kind's local-path "standard"
            for o in candidates:
                if (o.kind, o.metadata.namespace, o.metadata.name) not in given:
                    system.append(o)
        first = [n for n in nodes if CONTROL_PLANE_LABEL in n.labels] or nodes
        rest = [n for n in nodes if n not in first]
        for o in [o for o in others if o.kind == "Namespace"]:
            self._apply(o)
        for n in first:
            self._apply(n)
            if system_objects and CONTROL_PLANE_LABEL in n.labels:
                for pod in defaults.static_pods(self.store.get("Node", "", n.name) or n):
                    if ("Pod", pod.namespace, pod.name) not in {
                            (o.kind, o.metadata.namespace, o.metadata.name) for o in others}:
                        self.create(pod)
        for o in system:
            self._apply(o)
        self._converge()
        for n in rest:
            self._apply(n)
        self._converge()
        for o in others:
            if o.kind != "Namespace":
                self._apply(o)
        self._converge()

    def _prepare_node(self, node: Node, index: int) -> Node:
        addresses = list(node.addresses)
        for a in addresses:
            try:
                self._node_ips_used.add(ip_address(a.address))
            except ValueError:
                pass
        have = {ip.version for ip in node.ips()}
        for net in self._node_subnets():
            if net.version in have:
                continue
            nxt = self._node_ip_next.get(net.version, 2)
            while ip_address(int(net.network_address) + nxt) in self._node_ips_used:
                nxt += 1
            ip = ip_address(int(net.network_address) + nxt)
            self._node_ip_next[net.version] = nxt + 1
            self._node_ips_used.add(ip)
            addresses.append(NodeAddress("InternalIP", str(ip)))
        if not any(a.type == "Hostname" for a in addresses):
            addresses.append(NodeAddress("Hostname", node.name))
        cidrs = list(node.pod_cidrs)
        self._pod_cidrs_used.update(cidrs)
        self._pod_cidrs_given.extend(cidrs)
        for subnet in self.config.pod_subnets:
            if subnet.version not in self._families or any(c.version == subnet.version
                                                           for c in cidrs):
                continue
            mask = (self.config.node_cidr_mask_v4 if subnet.version == 4
                    else self.config.node_cidr_mask_v6)
            n = index
            while True:
                cidr = nth_subnet(subnet, mask, n)
                if cidr is None:
                    break
                if cidr not in self._pod_cidrs_used and not any(
                        cidr.overlaps(u) for u in self._pod_cidrs_given
                        if u.version == cidr.version):
                    cidrs.append(cidr)
                    self._pod_cidrs_used.add(cidr)
                    break
                n += 1
        self._pod_ipam[node.name] = {c.version: HostLocal(c) for c in cidrs}
        # The labels kubelet sets on its own Node at registration (kubelet_node_status.go):
        # a hand-written Node manifest without them still gets them, so nodeSelectors such as
        # kubernetes.io/os=linux (kube-proxy's, CoreDNS's) match it as on a real cluster.
        labels = {**KUBELET_NODE_LABELS, "kubernetes.io/hostname": node.name,
                  **node.metadata.labels}
        meta = node.metadata if labels == dict(node.metadata.labels) else evolve(
            node.metadata, labels=labels)
        return evolve(node, metadata=meta, addresses=tuple(addresses), pod_cidrs=tuple(cidrs))

    # --- public mutators --------------------------------------------------------------------

    def apply(self, obj: Any, now: float | None = None) -> list[Event]:
        """Create or update an object (as ``kubectl apply`` would), then converge."""
        with self._capturing(now) as out:
            if obj.kind == "Node":
                prev = self.store.get("Node", "", obj.name)
                if prev is None:
                    obj = self._prepare_node(obj, len(self._pod_ipam))
                else:  # addresses and pod CIDRs are assigned once and kept
                    obj = evolve(obj, addresses=obj.addresses or prev.addresses,
                                 pod_cidrs=obj.pod_cidrs or prev.pod_cidrs)
            self._apply(obj)
            self._converge()
        return out

    def delete(self, kind: str, key: str, now: float | None = None) -> list[Event]:
        ns, name = _split_key(key)
        with self._capturing(now) as out:
            if kind == "Pod":
                self.delete_pod(key, self.now)
            else:
                obj = self.store.require(kind, ns, name)
                self._delete_object(obj)
            self._converge()
        return out

    def set_pod_ready(self, key: str, ready: bool, now: float | None = None) -> list[Event]:
        with self._capturing(now) as out:
            pod = self._pod(key)
            self.store.apply(evolve(pod, status=self._ready_status(
                pod.status, ready, self.now, reason="" if ready else "ContainersNotReady")))
            self._converge()
        return out

    def set_pod_phase(self, key: str, phase: str, now: float | None = None,
                      reason: str = "") -> list[Event]:
        with self._capturing(now) as out:
            pod = self._pod(key)
            status = evolve(pod.status, phase=phase, reason=reason)
            if phase in ("Succeeded", "Failed"):
                status = self._ready_status(status, False, self.now, reason="PodCompleted")
                self.scheduler.forget(key)
            self.store.apply(evolve(pod, status=status))
            self._converge()
        return out

    def delete_pod(self, key: str, now: float | None = None,
                   grace: float | None = None) -> list[Event]:
        """Graceful deletion: deletionTimestamp now + grace; the pod goes at ``sync``."""
        with self._capturing(now) as out:
            pod = self._pod(key)
            if grace is None:
                grace = pod.spec.termination_grace_period_seconds
            if (grace <= 0 or not pod.spec.node_name
                    or pod.status.phase in ("Succeeded", "Failed")):
                self._finalize(pod)
            elif not pod.terminating:
                meta = evolve(
                    pod.metadata, deletion_timestamp=timestamp(self.now + grace),
                    deletion_grace_period_seconds=int(grace))
                self.store.apply(evolve(pod, metadata=meta))
                if pod.spec.node_name not in self._unreachable:
                    self._terminations[key] = self.now + grace
            self._evictions.pop(key, None)
            self._converge()
        return out

    def finalize_pod_deletion(self, key: str, now: float | None = None) -> list[Event]:
        with self._capturing(now) as out:
            pod = self.store.get("Pod", *_split_key(key))
            if pod is not None:
                self._finalize(pod)
            self._converge()
        return out

    def set_node_ready(self, name: str, ready: bool, now: float | None = None,
                       unreachable: bool = False) -> list[Event]:
        """Node Ready=False (kubelet says NotReady) or Unknown (``unreachable``: kubelet gone).

        node-lifecycle controller: taints ``not-ready``/``unreachable`` NoSchedule+NoExecute,
        MarkPodsNotReady; the NoExecute taint manager evicts pods after their
        tolerationSeconds (300 s from DefaultTolerationSeconds).
        """
        with self._capturing(now) as out:
            node = self._node(name)
            key = UNREACHABLE_TAINT if unreachable else NOT_READY_TAINT
            base = tuple(t for t in node.taints if t.key not in (NOT_READY_TAINT, UNREACHABLE_TAINT))
            if ready:
                self._unreachable.discard(name)
                node = evolve(node, ready=True, taints=base)
                self._apply(node)
                for pod in self.store.pods_on_node(name):
                    self._evictions.pop(pod.key, None)
                    if pod.terminating and pod.key not in self._terminations:
                        self._terminations[pod.key] = self.now
                    elif not pod.terminating and pod.status.phase == "Running" \
                            and pod.key not in self._status_given and self.ready_on_start:
                        self.store.apply(evolve(
                            pod, status=self._ready_status(pod.status, True, self.now)))
            else:
                if unreachable:
                    self._unreachable.add(name)
                t = timestamp(self.now)
                taints = base + (Taint(key, "NoSchedule", time_added=t),
                                 Taint(key, "NoExecute", time_added=t))
                node = evolve(node, ready=False, taints=taints)
                self._apply(node)
                noexec = taints[-1]
                for pod in sorted(self.store.pods_on_node(name), key=lambda p: p.key):
                    if pod.status.ready:
                        self.store.apply(evolve(pod, status=self._ready_status(
                            pod.status, False, self.now, reason="NodeNotReady")))
                    if unreachable:
                        self._terminations.pop(pod.key, None)
                    if pod.terminating:
                        continue
                    secs = _eviction_delay(pod.spec.tolerations, noexec)
                    if secs is not None:
                        self._evictions[pod.key] = self.now + secs
            self._converge()
        return out

    def cordon(self, name: str, now: float | None = None,
               unschedulable: bool = True) -> list[Event]:
        with self._capturing(now) as out:
            node = self._node(name)
            taints = tuple(t for t in node.taints if t.key != UNSCHEDULABLE_TAINT)
            if unschedulable:
                taints += (Taint(UNSCHEDULABLE_TAINT, "NoSchedule", time_added=timestamp(self.now)),)
            self._apply(evolve(node, unschedulable=unschedulable, taints=taints))
            self._converge()
        return out

    def evict(self, key: str, now: float | None = None,
              grace: float | None = None) -> Any:
        """``POST pods/{name}/eviction``: a ``knet.control.disruption.Eviction`` (201, 429 …)."""
        from knet.control import disruption

        with self._capturing(now):
            result = disruption.evict(self, key, grace)
            self._converge()
        return result

    def uncordon(self, name: str, now: float | None = None) -> list[Event]:
        return self.cordon(name, now, unschedulable=False)

    def scale(self, kind: str, key: str, replicas: int, now: float | None = None) -> list[Event]:
        if kind not in ("Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"):
            raise UsageError(f"cannot scale a {kind}")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not (
                0 <= replicas <= INT32_MAX):
            # checked before anything changes: a refused scale leaves the cluster as it was
            raise UsageError(f"spec.replicas: Invalid value: {replicas!r}: must be an integer "
                             f"between 0 and {INT32_MAX}")
        with self._capturing(now) as out:
            obj = self.store.require(kind, *_split_key(key))
            self.scale_object(obj, replicas)
            self._converge()
        return out

    def next_deadline(self) -> float | None:
        times = [t for t in (self._terminations.earliest(), self._evictions.earliest(),
                             self._requeue.earliest()) if t is not None]
        return min(times) if times else None

    def sync(self, now: float) -> list[Event]:
        """Do the time-based work due at ``now`` (terminations, evictions), in time order.

        Work due at the same instant is done as one batch, then the controllers converge once
        (50,000 graceful terminations ending together cost one pass, not one each).
        """
        with self._capturing(now) as out:
            while True:
                t = self.next_deadline()
                if t is None or t > now:
                    break
                ends = self._terminations.pop_due(t)
                evictions = self._evictions.pop_due(t)
                for _, (kind, ns, name) in self._requeue.pop_due(t):
                    self._dirty[kind][(ns, name)] = None
                self._converging = True
                try:
                    for _, key in ends:
                        pod = self.store.get("Pod", *_split_key(key))
                        if pod is not None:
                            self._finalize(pod)
                    for _, key in evictions:
                        if self.store.get("Pod", *_split_key(key)) is not None:
                            self.delete_pod(key, now)
                finally:
                    self._converging = False
                self._converge()
        return out

    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        return self.store.subscribe(fn)

    # --- accessors --------------------------------------------------------------------------

    def objects(self, kind: str, namespace: str | None = None) -> list[Any]:
        return sorted(self.store.list(kind, namespace),
                      key=lambda o: (o.metadata.namespace, o.metadata.name))

    def get(self, kind: str, key: str) -> Any:
        return self.store.require(kind, *_split_key(key))

    def nodes(self) -> list[Node]:
        return sorted(self.store.list("Node"), key=lambda n: n.metadata.creation_index)

    def node(self, name: str) -> Node:
        return self._node(name)

    def pods(self, namespace: str | None = None) -> list[Pod]:
        return self.objects("Pod", namespace)

    def pod(self, key: str) -> Pod:
        return self._pod(key)

    def pods_on_node(self, name: str) -> list[Pod]:
        return sorted(self.store.pods_on_node(name), key=lambda p: p.key)

    def services(self, namespace: str | None = None) -> list[Service]:
        return self.objects("Service", namespace)

    def service(self, key: str) -> Service:
        return self.get("Service", key)

    def endpoint_slices(self, service_key: str | None = None) -> list[EndpointSlice]:
        if service_key is None:
            return self.objects("EndpointSlice")
        ns, name = _split_key(service_key)
        return sorted(self.store.slices_of(ns, name), key=lambda s: s.metadata.name)

    def namespaces(self) -> list[Any]:
        return self.objects("Namespace")

    def ingresses(self, namespace: str | None = None) -> list[Any]:
        return self.objects("Ingress", namespace)

    def ingress_classes(self) -> list[Any]:
        return self.objects("IngressClass")

    def config_maps(self, namespace: str | None = None) -> list[Any]:
        return self.objects("ConfigMap", namespace)

    def secrets(self, namespace: str | None = None) -> list[Any]:
        return self.objects("Secret", namespace)

    def deployments(self, namespace: str | None = None) -> list[Any]:
        return self.objects("Deployment", namespace)

    def replica_sets(self, namespace: str | None = None) -> list[Any]:
        return self.objects("ReplicaSet", namespace)

    def stateful_sets(self, namespace: str | None = None) -> list[Any]:
        return self.objects("StatefulSet", namespace)

    def daemon_sets(self, namespace: str | None = None) -> list[Any]:
        return self.objects("DaemonSet", namespace)

    def jobs(self, namespace: str | None = None) -> list[Any]:
        return self.objects("Job", namespace)

    def __repr__(self) -> str:
        return (f"<Cluster {self.config.name} nodes={self.store.count('Node')} "
                f"pods={self.store.count('Pod')} services={self.store.count('Service')}>")

    # --- controller API (used by knet.control.workloads) -----------------------------------

    def requeue_at(self, obj: Any, when: float) -> None:
        """Sync ``obj`` again at ``when`` (the workqueue's AddAfter); the earliest wins."""
        key = (obj.kind, obj.metadata.namespace, obj.metadata.name)
        prev = self._requeue.get(key)
        if prev is None or when < prev or prev <= self.now:
            self._requeue[key] = when

    def cancel_requeue(self, obj: Any) -> None:
        self._requeue.pop((obj.kind, obj.metadata.namespace, obj.metadata.name), None)

    def mark_dirty(self, obj: Any) -> None:
        """Queue ``obj`` for its controller (a change it watches but does not own)."""
        self._dirty[obj.kind][(obj.metadata.namespace, obj.metadata.name)] = None

    def delete_object(self, obj: Any) -> None:
        """Delete ``obj`` and its dependents (background propagation) from a controller."""
        if self.store.get(obj.kind, obj.metadata.namespace, obj.metadata.name) is not None:
            self._delete_object(obj)

    def create(self, obj: Any) -> Any:
        self._apply(obj)
        return self.store.get(obj.kind, obj.metadata.namespace, obj.metadata.name)

    def scale_object(self, obj: Any, replicas: int) -> Any:
        if obj.replicas == replicas:
            return obj
        return self.create(evolve(obj, replicas=replicas))

    def pod_for(self, owner: Any, template: Mapping[str, Any], name: str,
                cache_key: Any = None) -> Pod:
        """A Pod from ``template`` owned by ``owner``; the template conversion is cached per
        owner and template (by identity, or by ``cache_key`` when the caller derives a fresh
        mapping each time)."""
        ns = owner.metadata.namespace
        ck = (owner.kind, ns, owner.metadata.name, owner.metadata.uid,
              cache_key if cache_key is not None else id(template))
        hit = self._template_pods.get(ck)
        if hit is None or (cache_key is None and hit[0] is not template):
            base = pod_from_template(template, ns, name)
            meta = evolve(base.metadata, namespace=ns, owner_references=(
                workloads.owner_ref(owner, _API_VERSION[owner.kind]),))
            base = self._with_default_tolerations(evolve(base, metadata=meta))
            hit = self._template_pods[ck] = (template, base)
        base = hit[1]
        return evolve(base, metadata=evolve(base.metadata, name=name))

    def named_pod(self, owner: Any, pod: Pod, generate_name: str) -> Pod:
        prefix = generate_name[:58]
        while True:
            name = prefix + random_suffix(self._rng_names)
            if self.store.get("Pod", pod.namespace, name) is None:
                break
        meta = evolve(pod.metadata, name=name, generate_name=generate_name,
                      uid=object_uid(self.seed, "Pod", pod.namespace, name,
                                     self.store.resource_version + 1),
                      creation_index=self._creation, creation_timestamp=timestamp(self.now))
        self._creation += 1
        return evolve(pod, metadata=meta)

    def create_pod_from_template(self, owner: Any, template: Mapping[str, Any],
                                 generate_name: str) -> Pod:
        pod = self.pod_for(owner, template, generate_name)
        return self.create_pod(self.named_pod(owner, pod, generate_name))

    def create_pod(self, pod: Pod) -> Pod:
        return self.create(pod)

    # --- internals ----------------------------------------------------------------------------

    class _Capture:
        def __init__(self, cluster: Cluster, now: float | None) -> None:
            self.cluster, self.now = cluster, now
            self.out: list[Event] = []

        def __enter__(self) -> list[Event]:
            if self.now is not None:
                self.cluster.now = max(self.cluster.now, self.now)
            self.cluster._capture.append(self.out)
            self.cluster._mutating += 1
            return self.out

        def __exit__(self, *exc: Any) -> None:
            self.cluster._mutating -= 1
            stack = self.cluster._capture  # nested captures may hold equal lists: by identity
            del stack[next(i for i in range(len(stack) - 1, -1, -1) if stack[i] is self.out)]

    def _capturing(self, now: float | None) -> Cluster._Capture:
        return Cluster._Capture(self, now)

    def _pod(self, key: str) -> Pod:
        return self.store.require("Pod", *_split_key(key))

    def _node(self, name: str) -> Node:
        return self.store.require("Node", "", name)

    def _admit(self, obj: Any) -> Any:
        """Metadata the API server sets: uid, creation order/timestamp (kept on update)."""
        meta = obj.metadata
        prev = self.store.get(obj.kind, meta.namespace, meta.name)
        changes: dict[str, Any] = {}
        if prev is not None:
            if meta.uid != prev.metadata.uid and not meta.uid:
                changes["uid"] = prev.metadata.uid
            if meta.creation_index != prev.metadata.creation_index:
                changes["creation_index"] = prev.metadata.creation_index
            if not meta.creation_timestamp and prev.metadata.creation_timestamp:
                changes["creation_timestamp"] = prev.metadata.creation_timestamp
        else:
            if not meta.uid:
                changes["uid"] = object_uid(self.seed, obj.kind, meta.namespace, meta.name,
                                            self.store.resource_version + 1)
            if meta.source is None and not meta.creation_index:
                changes["creation_index"] = self._creation
                self._creation += 1
            if not meta.creation_timestamp:
                changes["creation_timestamp"] = timestamp(self.now)
        if changes:
            obj = evolve(obj, metadata=evolve(meta, **changes))
        return obj

    def _apply(self, obj: Any) -> None:
        prev = self.store.get(obj.kind, obj.metadata.namespace, obj.metadata.name)
        obj = self._admit(obj)
        kind = obj.kind
        if kind == "Pod":
            if prev is None:
                obj = self._admit_pod(obj)
        elif kind == "Service":
            obj = self._allocate_service(obj, prev)
        elif kind == "Node":
            self.scheduler.upsert_node(obj)
        elif kind == "Namespace":
            obj = _with_name_label(obj)
        self.store.apply(obj)

    def _admit_pod(self, pod: Pod) -> Pod:
        pod = preemption.admit(self, self._with_default_tolerations(pod))
        if not pod.status.qos_class:
            pod = evolve(pod, status=evolve(pod.status, qos_class=qos_class(pod)))
        st = pod.status
        if st.phase != "Pending" or st.conditions or st.pod_ips:
            self._status_given.add(pod.key)
            ipam = self._pod_ipam.get(pod.spec.node_name, {})
            for ip in st.pod_ips:
                a = ipam.get(ip.version)
                if a is not None and ip in a.cidr:
                    a.reserve(ip)
        return pod

    @staticmethod
    def _with_default_tolerations(pod: Pod) -> Pod:
        # DefaultTolerationSeconds admission: not-ready / unreachable NoExecute for 300 s.
        if pod.spec.tolerations[-2:] == _DEFAULT_TOLERATIONS:
            return pod
        tols = list(pod.spec.tolerations)
        for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
            if not any(t.tolerates(Taint(key, "NoExecute")) for t in tols):
                tols.append(Toleration(key, "Exists", "", "NoExecute",
                                       DEFAULT_TOLERATION_SECONDS))
        if len(tols) != len(pod.spec.tolerations):
            pod = evolve(pod, spec=evolve(pod.spec, tolerations=tuple(tols)))
        return pod

    def _delete_object(self, obj: Any) -> None:
        kind = obj.kind
        ns, name = obj.metadata.namespace, obj.metadata.name
        if kind == "Service":
            self._release_service(obj)
            for s in self.store.slices_of(ns, name):
                if is_managed(s):
                    self.store.delete("EndpointSlice", ns, s.metadata.name)
        self.store.delete(kind, ns, name)
        # garbage collector: dependents go with their owner (foreground-less, immediate)
        for dep in sorted(self.store.owned_by(obj.metadata.uid), key=lambda o: o.metadata.name):
            if dep.kind == "Pod":
                self.delete_pod(dep.key, self.now)
            elif self.store.get(dep.kind, dep.metadata.namespace, dep.metadata.name) is not None:
                self._delete_object(dep)

    def _finalize(self, pod: Pod) -> None:
        self._terminations.pop(pod.key, None)
        self._evictions.pop(pod.key, None)
        ipam = self._pod_ipam.get(pod.spec.node_name, {})
        if not pod.spec.host_network:
            for ip in pod.status.pod_ips:
                a = ipam.get(ip.version)
                if a is not None:
                    a.release(ip)
        self._status_given.discard(pod.key)
        self.store.delete("Pod", pod.namespace, pod.name)

    # --- events → dirty work ------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        self.events.append(ev)
        for out in self._capture:
            out.append(ev)
        prev, cur = ev.previous, ev.current
        obj: Any = cur if cur is not None else prev
        kind = obj.kind
        key = (obj.metadata.namespace, obj.metadata.name)
        if kind == "Pod":
            self._on_pod(prev, cur)
        elif kind in _WORKLOAD_KINDS:
            if cur is not None:
                self._dirty[kind][key] = None
            if kind in ("ReplicaSet", "Job"):
                self._mark_owner(obj)
        elif kind == "Service":
            self._index_service(prev, cur)
            if cur is not None:
                self._dirty_services[key] = None
        elif kind in storage.KINDS:
            self._storage_dirty = True  # knet.control.storage: PV controller, volume binding
            self._retry_unschedulable()
        elif kind == "Node":
            if cur is None:
                self.scheduler.remove_node(obj.name)
                self._pod_ipam.pop(obj.name, None)
                # pod garbage collector: pods bound to a node that no longer exists go
                for p in sorted(self.store.pods_on_node(obj.name), key=lambda p: p.key):
                    self._orphaned.append(p.key)
            for ds in self.store.list("DaemonSet"):
                self._dirty["DaemonSet"][(ds.metadata.namespace, ds.metadata.name)] = None
            self._retry_unschedulable()
            if prev is not None and cur is not None and prev.zone != cur.zone:
                for p in self.store.pods_on_node(cur.name):
                    self._mark_services_of(p)

    def _mark_owner(self, obj: Any) -> None:
        ref = obj.metadata.controller_ref
        if ref is not None and ref.kind in self._dirty:
            self._dirty[ref.kind][(obj.metadata.namespace, ref.name)] = None

    def _on_pod(self, prev: Pod | None, cur: Pod | None) -> None:
        pod = cur if cur is not None else prev
        assert pod is not None  # an event carries at least one object
        key = pod.key
        controllers.on_pod(self, pod)
        ref = pod.metadata.controller_ref
        if ref is not None and ref.kind in self._dirty:
            self._dirty[ref.kind][(pod.namespace, ref.name)] = None
            if ref.kind == "ReplicaSet":
                rs = self.store.get("ReplicaSet", pod.namespace, ref.name)
                if rs is not None:
                    self._mark_owner(rs)
        if prev is not None and prev.status.pod_ips:
            self._mark_services_of(prev)
        if cur is not None and cur.status.pod_ips and (prev is None or cur.metadata.labels != prev.metadata.labels
                                or cur.status != prev.status or cur.spec.node_name != prev.spec.node_name
                                or cur.metadata.deletion_timestamp != prev.metadata.deletion_timestamp):
            self._mark_services_of(cur)
        if cur is None:
            self.scheduler.forget(key)
            self._pending.pop(key, None)
            self._unschedulable.pop(key, None)
            self._to_start.pop(key, None)
            self._retry_unschedulable()
            return
        if not cur.spec.node_name:
            if prev is None:
                self._pending[key] = None
            return
        if prev is None or not prev.spec.node_name:
            if cur.status.phase not in ("Succeeded", "Failed"):
                self.scheduler.assume(cur, cur.spec.node_name)
            if not cur.status.pod_ips or cur.key not in self._status_given:
                self._to_start[key] = None
        if cur.status.phase in ("Succeeded", "Failed") and (
                prev is None or prev.status.phase not in ("Succeeded", "Failed")):
            self.scheduler.forget(key)
            self._retry_unschedulable()

    def _retry_unschedulable(self) -> None:
        for k in self._unschedulable:
            self._pending[k] = None
        self._unschedulable.clear()

    def _index_service(self, prev: Service | None, cur: Service | None) -> None:
        for svc, add in ((prev, False), (cur, True)):
            if svc is None or svc.spec.selector is None:
                continue
            key = (svc.namespace, svc.name)
            buckets = ([self._svc_by_label.setdefault((svc.namespace, k, v), set())
                        for k, v in svc.spec.selector.items()] if svc.spec.selector
                       else [self._svc_select_all.setdefault(svc.namespace, set())])
            for b in buckets:
                (b.add if add else b.discard)(key)

    def _mark_services_of(self, pod: Pod) -> None:
        ns = pod.namespace
        cands: set[tuple[str, str]] = set(self._svc_select_all.get(ns, ()))
        for k, v in pod.metadata.labels.items():
            s = self._svc_by_label.get((ns, k, v))
            if s:
                cands |= s
        if not cands:
            return
        labels = pod.metadata.labels
        for skey in cands:
            svc = self.store.get("Service", *skey)
            if svc is not None and all(labels.get(k) == v for k, v in svc.spec.selector.items()):
                self._dirty_services[skey] = None

    # --- convergence --------------------------------------------------------------------------

    def _converge(self) -> None:
        """Drain the work queues until nothing changes, iteratively.

        A controller's write (a pod deleted, a ReplicaSet scaled) only marks more work: a
        mutator called while the queues are being drained (``delete_pod`` from
        ``sync_replicaset``) returns without converging, and this loop picks the work up, as
        the real controllers' workqueues do. No recursion, however many objects change.
        """
        if self._converging or self._mutating > 1:
            return  # a nested mutator: the outermost one converges once, at its end
        self._converging = True
        try:
            self._drain()
        finally:
            self._converging = False

    def _drain(self) -> None:
        for _ in range(1_000_000):
            progressed = False
            table: tuple[tuple[str, Callable[[Cluster, Any], None]], ...] = (
                ("Deployment", workloads.sync_deployment),
                ("ReplicaSet", workloads.sync_replicaset),
                ("StatefulSet", workloads.sync_statefulset),
                ("DaemonSet", workloads.sync_daemonset),
                *controllers.SYNCS)
            for kind, sync in table:
                dirty = self._dirty[kind]
                if not dirty:
                    continue
                progressed = True
                keys = sorted(dirty)
                dirty.clear()
                for ns, name in keys:
                    obj = self.store.get(kind, ns, name)
                    if obj is not None:
                        sync(self, obj)
            if self._storage_dirty:
                progressed = True
                self._storage_dirty = False
                storage.sync(self)
            if self._pending:
                progressed = True
                self._schedule_pending()
            if self._to_start:
                progressed = True
                start_keys = list(self._to_start)
                self._to_start.clear()
                for key in start_keys:
                    pod = self.store.get("Pod", *_split_key(key))
                    if pod is not None:
                        self._start_pod(pod)
            if self._orphaned:
                progressed = True
                orphan_keys, self._orphaned = self._orphaned, []
                for key in orphan_keys:
                    pod = self.store.get("Pod", *_split_key(key))
                    if pod is not None:
                        self._finalize(pod)
            if self._dirty_services and not progressed:
                svc_keys = sorted(self._dirty_services)
                self._dirty_services.clear()
                for skey in svc_keys:
                    self._sync_service(skey)
                progressed = True
            if not progressed:
                return
        raise RuntimeError("control plane did not converge")  # pragma: no cover

    def _schedule_pending(self) -> None:
        found = [self.store.get("Pod", *_split_key(k)) for k in self._pending]
        self._pending.clear()
        pods = [p for p in found if p is not None and not p.spec.node_name]
        pods.sort(key=lambda p: (-p.spec.priority, p.metadata.creation_index, p.key))
        for pod in pods:
            if pod.terminating:
                continue
            if pod.spec.scheduler_name not in ("", "default-scheduler"):
                continue
            volume_reason, volume_terms = storage.prefilter(self, pod)
            if volume_reason is not None:
                decision = Decision(None, storage.prefilter_message(
                    len(self.scheduler.by_name), volume_reason))
            elif volume_terms is not None:
                decision = self.scheduler.schedule(storage.constrain(pod, volume_terms))
                if decision.node is None and not pod.spec.required_node_affinity:
                    decision = Decision(None, decision.message.replace(
                        "node(s) didn't match Pod's node affinity/selector",
                        storage.R_VOLUME_NODE))
            else:
                decision = self.scheduler.schedule(pod)
            if decision.node is None:
                self._unschedulable[pod.key] = None
                cond = PodCondition("PodScheduled", "False", "Unschedulable", decision.message,
                                    timestamp(self.now))
                old = pod.status.condition("PodScheduled")
                if old is None or old.message != cond.message or old.status != "False":
                    conds = tuple(c for c in pod.status.conditions if c.type != "PodScheduled")
                    self.store.apply(evolve(pod, status=evolve(
                        pod.status, phase="Pending", conditions=conds + (cond,))))
                preemption.preempt(self, self._pod(pod.key))  # DefaultPreemption PostFilter
                continue
            conds = tuple(c for c in pod.status.conditions if c.type != "PodScheduled")
            bound = evolve(
                pod, spec=evolve(pod.spec, node_name=decision.node),
                status=evolve(pod.status, conditions=conds + (
                    PodCondition("PodScheduled", "True", "", "", timestamp(self.now)),)))
            self.scheduler.assume(bound, decision.node)
            storage.prebind(self, pod, decision.node)
            self.store.apply(bound)

    def _start_pod(self, pod: Pod) -> None:
        """kubelet + CNI: sandbox IPs (host-local, or the node's for hostNetwork), status."""
        node = self.store.get("Node", "", pod.spec.node_name)
        if node is None:
            return
        node_ips = self._node_ips(node)
        ips = list(pod.status.pod_ips)
        if not ips:
            if pod.spec.host_network:
                ips = [ip for fam in self._families
                       for ip in [x for x in node_ips if x.version == fam][:1]]
            else:
                ipam = self._pod_ipam.get(node.name, {})
                for fam in self._families:
                    a = ipam.get(fam)
                    ip = a.allocate() if a is not None else None
                    if ip is not None:
                        ips.append(ip)
        host_ip = pod.status.host_ip or (node_ips[0] if node_ips else None)
        status = evolve(pod.status, pod_ips=tuple(ips), host_ip=host_ip)
        if pod.key not in self._status_given:
            t = timestamp(self.now)
            status = evolve(status, phase="Running", start_time=t,
                                         conditions=_running_conditions(self.ready_on_start, t))
            status = evolve(status, container_statuses=_container_statuses(
                pod.spec.containers, self.ready_on_start))
        self.store.apply(evolve(pod, status=status))

    @staticmethod
    def _ready_status(status: PodStatus, ready: bool, now: float, reason: str = "") -> PodStatus:
        t = timestamp(now)
        s = "True" if ready else "False"
        conds = []
        for c in status.conditions:
            if c.type in ("Ready", "ContainersReady") and c.status != s:
                c = PodCondition(c.type, s, "" if ready else reason, "", t)
            conds.append(c)
        if not any(c.type == "Ready" for c in conds):
            conds.append(PodCondition("Ready", s, "" if ready else reason, "", t))
        return evolve(status, conditions=tuple(conds), container_statuses=tuple(
            evolve(cs, ready=ready) for cs in status.container_statuses))

    def _sync_service(self, skey: tuple[str, str]) -> None:
        svc = self.store.get("Service", *skey)
        if svc is None:
            return
        ns = svc.namespace
        existing = [s for s in self.store.slices_of(ns, svc.name) if is_managed(s)]
        if not wants_slices(svc):
            for s in existing:
                self.store.delete("EndpointSlice", ns, s.metadata.name)
            return
        pods = self.store.pods_matching(ns, dict(svc.spec.selector))
        changes = reconcile(svc, pods, sorted(existing, key=lambda s: s.metadata.name),
                            self._zone_of, self._rng_slices,
                            slice_families(svc, self._families))
        for name in changes.delete:
            self.store.delete("EndpointSlice", ns, name)
        for s in changes.apply:
            self._apply(s)

    def _node_ips(self, node: Node) -> tuple[IPAddress, ...]:
        hit = self._node_ip_cache.get(node.name)
        if hit is None or hit[0] is not node.addresses:
            hit = self._node_ip_cache[node.name] = (node.addresses, node.ips())
        return hit[1]

    def _zone_of(self, node_name: str) -> str:
        if not node_name:
            return ""
        node = self.store.get("Node", "", node_name)
        return node.zone if node is not None else ""

    # --- service allocation (API server registry + MetalLB) -------------------------------------

    def _allocate_service(self, svc: Service, prev: Service | None) -> Service:
        spec = svc.spec
        changes: dict[str, Any] = {}
        if spec.type == ServiceType.EXTERNAL_NAME:
            if prev is not None:
                self._release_service(prev)
            return evolve(svc, spec=evolve(
                spec, cluster_ip="", cluster_ips=(), ip_families=(), ip_family_policy=""))
        # ip families (pkg/registry/core/service/storage initIPFamilyFields)
        given_ips = [x for x in (spec.cluster_ips or ((spec.cluster_ip,) if spec.cluster_ip else ()))
                     if x]
        policy = spec.ip_family_policy
        if not policy:
            policy = ("RequireDualStack" if spec.cluster_ip == "None" and spec.selector is None
                      and len(self._families) > 1 else "SingleStack")
            policy = "PreferDualStack" if policy == "RequireDualStack" else policy
        fams = tuple(f for f in spec.ip_families if f in self._families)
        if not fams:
            if given_ips and given_ips[0] != "None":
                fams = tuple(ip_address(x).version for x in given_ips)
            elif policy in ("PreferDualStack", "RequireDualStack"):
                fams = self._families
            else:
                fams = self._families[:1]
        if policy in ("PreferDualStack", "RequireDualStack") and len(fams) < len(self._families):
            fams = fams + tuple(f for f in self._families if f not in fams)
        if policy == "SingleStack":
            fams = fams[:1]
        changes["ip_families"] = fams
        changes["ip_family_policy"] = policy
        # ClusterIPs
        if spec.cluster_ip == "None" or given_ips[:1] == ["None"]:
            changes["cluster_ip"], changes["cluster_ips"] = "None", ("None",)
        else:
            ips: list[str] = []
            prev_ips = list(prev.spec.cluster_ips) if prev is not None and prev.spec.cluster_ip \
                not in ("", "None") else []
            for fam in fams:
                mine = next((x for x in given_ips if ip_address(x).version == fam), None)
                if mine is None:
                    mine = next((x for x in prev_ips if ip_address(x).version == fam), None)
                alloc = self._service_ips.get(fam)
                if mine is not None:
                    if alloc is not None and mine not in prev_ips:
                        alloc.reserve(ip_address(mine))
                    ips.append(str(ip_address(mine)))
                elif alloc is not None:
                    ip = alloc.allocate()
                    if ip is not None:
                        ips.append(str(ip))
            changes["cluster_ips"] = tuple(ips)
            changes["cluster_ip"] = ips[0] if ips else ""
        # NodePorts (portallocator); one nodePort per port number across protocols
        wants_np = spec.type == ServiceType.NODE_PORT or (
            spec.type == ServiceType.LOAD_BALANCER and spec.allocate_load_balancer_node_ports)
        prev_np = {(p.port, p.protocol): p.node_port for p in prev.spec.ports} if prev else {}
        by_number: dict[int, int] = {}
        ports = []
        for p in spec.ports:
            np_ = p.node_port
            if wants_np:
                if np_:
                    if prev_np.get((p.port, p.protocol)) != np_:
                        self._node_ports.reserve(np_)
                else:
                    np_ = prev_np.get((p.port, p.protocol), 0) or by_number.get(p.port, 0)
                    if not np_:
                        np_ = self._node_ports.allocate() or 0
                by_number.setdefault(p.port, np_)
            else:
                np_ = 0
            ports.append(evolve(p, node_port=np_))
        changes["ports"] = tuple(ports)
        etp = spec.external_traffic_policy
        if spec.type in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER) and not etp:
            etp = "Cluster"
            changes["external_traffic_policy"] = etp
        hc = 0
        if spec.type == ServiceType.LOAD_BALANCER and etp == "Local":
            hc = spec.health_check_node_port or (prev.spec.health_check_node_port if prev else 0)
            if spec.health_check_node_port and (prev is None or
                                                prev.spec.health_check_node_port != hc):
                self._node_ports.reserve(hc)
            if not hc:
                hc = self._node_ports.allocate() or 0
        changes["health_check_node_port"] = hc
        if prev is not None:
            self._release_unused(prev, changes)
        svc = evolve(svc, spec=evolve(spec, **changes))
        if spec.type == ServiceType.LOAD_BALANCER:
            svc = self._allocate_lb(svc, prev)
        return svc

    def _allocate_lb(self, svc: Service, prev: Service | None) -> Service:
        if svc.load_balancer_ingress:
            if prev is None or prev.load_balancer_ingress != svc.load_balancer_ingress:
                for ing in svc.load_balancer_ingress:
                    if ing.ip:
                        self._lb.reserve(ip_address(ing.ip))
            return svc
        if prev is not None and prev.load_balancer_ingress:
            return evolve(svc, load_balancer_ingress=prev.load_balancer_ingress)
        if svc.spec.load_balancer_class:
            return svc  # another controller's Service (MetalLB ignores it)
        ann = svc.metadata.annotations
        wanted = next((ann[a] for a in _LB_IPS_ANNOTATIONS if a in ann), "")
        requested = [x.strip() for x in wanted.split(",") if x.strip()] or (
            [svc.spec.load_balancer_ip] if svc.spec.load_balancer_ip else [])
        out: list[LoadBalancerIngress] = []
        if requested:
            for x in requested:
                ip = ip_address(x)
                if self._lb.pool_of(ip) is not None and self._lb.reserve(ip):
                    out.append(LoadBalancerIngress(ip=str(ip), ip_mode="VIP"))
        else:
            pool = next((ann[a] for a in _POOL_ANNOTATIONS if a in ann), "")
            for fam in svc.spec.ip_families or self._families[:1]:
                lb_ip = self._lb.allocate(fam, pool)
                if lb_ip is not None:
                    out.append(LoadBalancerIngress(ip=str(lb_ip), ip_mode="VIP"))
        return evolve(svc, load_balancer_ingress=tuple(out))

    def _release_unused(self, prev: Service, changes: Mapping[str, Any]) -> None:
        keep_ips = set(changes.get("cluster_ips", ()))
        for x in prev.spec.cluster_ips:
            if x not in ("", "None") and x not in keep_ips:
                a = self._service_ips.get(ip_address(x).version)
                if a is not None:
                    a.release(ip_address(x))
        keep_ports = {p.node_port for p in changes.get("ports", ())}
        keep_ports.add(changes.get("health_check_node_port", 0))
        for p in prev.spec.ports:
            if p.node_port and p.node_port not in keep_ports:
                self._node_ports.release(p.node_port)
        hc = prev.spec.health_check_node_port
        if hc and hc not in keep_ports:
            self._node_ports.release(hc)

    def _release_service(self, svc: Service) -> None:
        self._release_unused(svc, {})
        for ing in svc.load_balancer_ingress:
            if ing.ip:
                self._lb.release(ip_address(ing.ip))


@lru_cache(maxsize=256)
def _running_conditions(ready: bool, t: str) -> tuple[PodCondition, ...]:
    r = "True" if ready else "False"
    why = "" if ready else "ContainersNotReady"
    return (PodCondition("PodReadyToStartContainers", "True", "", "", t),
            PodCondition("Initialized", "True", "", "", t),
            PodCondition("Ready", r, why, "", t),
            PodCondition("ContainersReady", r, why, "", t),
            PodCondition("PodScheduled", "True", "", "", t))


_CS_CACHE: dict[tuple, tuple[ContainerStatus, ...]] = {}


def _container_statuses(containers: Sequence[Any], ready: bool) -> tuple[ContainerStatus, ...]:
    key = (tuple((c.name, c.image) for c in containers), ready)
    hit = _CS_CACHE.get(key)
    if hit is None:
        if len(_CS_CACHE) > 4096:
            _CS_CACHE.clear()
        hit = _CS_CACHE[key] = tuple(ContainerStatus(n, ready=ready, started=True,
                                                     state="running", image=i)
                                     for n, i in key[0])
    return hit


def _eviction_delay(tolerations: Sequence[Toleration], taint: Taint) -> float | None:
    """NoExecute taint manager: 0 if untolerated, min tolerationSeconds, None = never."""
    matching = [t for t in tolerations if t.tolerates(taint)]
    if not matching:
        return 0.0
    secs = [t.toleration_seconds for t in matching if t.toleration_seconds is not None]
    if len(secs) < len(matching) and not secs:
        return None
    if not secs:
        return None
    return float(max(0, min(secs)))


def _with_name_label(ns: Any) -> Any:
    """The API server sets ``kubernetes.io/metadata.name`` on every Namespace (immutable since
    v1.22: a manifest cannot change it)."""
    labels = ns.metadata.labels
    if labels.get(NAMESPACE_NAME_LABEL) == ns.metadata.name:
        return ns
    return evolve(ns, metadata=evolve(ns.metadata, labels={
        **labels, NAMESPACE_NAME_LABEL: ns.metadata.name}))


NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _default_nodes(config: ClusterConfig) -> list[Node]:
    try:
        from knet.manifests import default_nodes
    except ImportError:
        from knet.manifests.nodes import default_nodes
    return list(default_nodes(config))
