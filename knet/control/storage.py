"""The PersistentVolume controller, kind's local-path provisioner and the scheduler's volume
binding, pure.

Invariants (pkg/controller/volume/persistentvolume, pkg/scheduler/framework/plugins/
volumebinding, rancher/local-path-provisioner as kind installs it, v1.32):
- A claim binds to the smallest Available volume that matches it: same storageClassName
  (``""`` matches volumes without a class), same volumeMode, a superset of its accessModes,
  capacity ≥ its request, its selector, not pre-bound to another claim. Binding is two-way
  (``claimRef`` on the volume, ``volumeName`` on the claim) and both become Bound.
- A claim without storageClassName gets the default class (``storageclass.kubernetes.io/
  is-default-class: "true"``; kind's is ``standard``, local-path, WaitForFirstConsumer).
- WaitForFirstConsumer: nothing binds or provisions until the scheduler picked a node for a
  pod using the claim (``volume.kubernetes.io/selected-node``); the local-path volume is then
  pinned to that node (nodeAffinity), so the claim's later pods go there too.
- Immediate claims that cannot bind keep their pods unschedulable ("pod has unbound immediate
  PersistentVolumeClaims"); a pod naming a missing claim is unschedulable with
  ``persistentvolumeclaim "x" not found``; a bound volume's node affinity filters nodes.
- Deleting a claim releases its volume: reclaimPolicy Delete removes it (and its data),
  Retain leaves it Released (not bindable again until its claimRef is cleared).
- StatefulSet volumeClaimTemplates: one claim ``<template>-<set>-<ordinal>`` per pod, created
  before the pod and kept when the set scales down (retention policy Retain/Retain).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from knet.control import recorder
from knet.control.quantity import parse_quantity
from knet.control.store import evolve
from knet.model.core import NodeSelectorTerm, Pod
from knet.model.meta import LabelSelectorRequirement, ObjectMeta
from knet.model.storage import (
    DEFAULT_CLASS_ANNOTATION,
    PROVISIONER_ANNOTATION,
    SELECTED_NODE_ANNOTATION,
    ClaimRef,
    PersistentVolume,
    PersistentVolumeClaim,
    StorageClass,
)

if TYPE_CHECKING:
    from knet.control.cluster import Cluster

KINDS = ("PersistentVolumeClaim", "PersistentVolume", "StorageClass")
LOCAL_PATH = "rancher.io/local-path"
LOCAL_PATH_DIR = "/var/local-path-provisioner"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
R_VOLUME_NODE = "node(s) had volume node affinity conflict"
CONTROLLER = "persistentvolume-controller"


def kind_default_class() -> StorageClass:
    """kind's default StorageClass (its local-path-provisioner manifest)."""
    return StorageClass(
        metadata=ObjectMeta("standard", "", annotations={DEFAULT_CLASS_ANNOTATION: "true"}),
        provisioner=LOCAL_PATH, reclaim_policy="Delete",
        volume_binding_mode="WaitForFirstConsumer")


def _bytes(q: str) -> Decimal:
    try:
        return parse_quantity(q) if q else Decimal(0)
    except (ValueError, ArithmeticError):
        return Decimal(0)


def default_class(c: Cluster) -> StorageClass | None:
    found = [sc for sc in c.store.list("StorageClass") if sc.is_default]
    if not found:
        return None
    # several defaults: the newest wins (v1.26+)
    return sorted(found, key=lambda s: (s.metadata.creation_timestamp,
                                        s.metadata.creation_index))[-1]


def _class_of(c: Cluster, pvc: PersistentVolumeClaim) -> StorageClass | None:
    if not pvc.storage_class_name:
        return None
    return c.store.get("StorageClass", "", pvc.storage_class_name)


def _selected(pvc: PersistentVolumeClaim) -> str:
    return pvc.metadata.annotations.get(SELECTED_NODE_ANNOTATION, "")


def node_terms(affinity: Any) -> list[NodeSelectorTerm]:
    """A PV's ``nodeAffinity.required.nodeSelectorTerms`` as the scheduler's terms."""
    req = (affinity or {}).get("required") or {}
    out = []
    for t in req.get("nodeSelectorTerms") or ():
        exprs = tuple(LabelSelectorRequirement(str(e.get("key", "")), str(e.get("operator", "In")),
                                               tuple(str(v) for v in e.get("values") or ()))
                      for e in t.get("matchExpressions") or ())
        out.append(NodeSelectorTerm(match_expressions=exprs))
    return out


def _node_ok(c: Cluster, pv: PersistentVolume, node_name: str) -> bool:
    terms = node_terms(pv.node_affinity)
    if not terms:
        return True
    node = c.store.get("Node", "", node_name)
    if node is None:
        return False
    labels = dict(node.metadata.labels)
    labels.setdefault("kubernetes.io/hostname", node_name)
    return any(all(r.matches(labels) for r in t.match_expressions) for t in terms)


def matches(c: Cluster, pvc: PersistentVolumeClaim, pv: PersistentVolume,
            node: str = "") -> bool:
    if pv.metadata.deletion_timestamp or pv.phase not in ("Available", "Pending"):
        return pv.claim_ref is not None and pv.claim_ref.name == pvc.name and \
            pv.claim_ref.namespace == pvc.namespace and pv.phase != "Released"
    if pv.claim_ref is not None and (pv.claim_ref.namespace, pv.claim_ref.name) != (
            pvc.namespace, pvc.name):
        return False
    if (pvc.storage_class_name or "") != pv.storage_class_name:
        return False
    if pvc.volume_mode != pv.volume_mode:
        return False
    if not set(pvc.access_modes) <= set(pv.access_modes):
        return False
    if _bytes(pv.capacity) < _bytes(pvc.request):
        return False
    if pvc.selector is not None and not pvc.selector.matches(pv.metadata.labels):
        return False
    return not (node and not _node_ok(c, pv, node))


def _bind(c: Cluster, pvc: PersistentVolumeClaim, pv: PersistentVolume) -> None:
    pv2 = evolve(pv, claim_ref=ClaimRef(pvc.namespace, pvc.name, pvc.metadata.uid),
                 phase="Bound")
    c.create(pv2)
    ann = {**pvc.metadata.annotations, "pv.kubernetes.io/bind-completed": "yes"}
    if pv.claim_ref is None:
        ann["pv.kubernetes.io/bound-by-controller"] = "yes"
    c.create(evolve(pvc, metadata=evolve(pvc.metadata, annotations=ann), volume_name=pv.name,
                    phase="Bound", capacity=pv.capacity, bound_access_modes=pv.access_modes))


def _event(c: Cluster, obj: Any, type_: str, reason: str, message: str,
           source: str = CONTROLLER) -> None:
    recorder.record(c, obj, type_, reason, message, source)


def _provision(c: Cluster, pvc: PersistentVolumeClaim, sc: StorageClass, node: str) -> None:
    name = f"pvc-{pvc.metadata.uid}"
    _event(c, pvc, "Normal", "ExternalProvisioning",
           f"Waiting for a volume to be created either by the external provisioner "
           f"'{sc.provisioner}' or manually by the system administrator. If volume creation "
           f"is delayed, please verify that the provisioner is running and correctly "
           f"registered.")
    prov_source = f"{sc.provisioner}_local-path-provisioner"
    _event(c, pvc, "Normal", "Provisioning",
           f'External provisioner is provisioning volume for claim "{pvc.namespace}/{pvc.name}"',
           prov_source)
    affinity = None
    if node:
        affinity = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    path = f"{LOCAL_PATH_DIR}/{name}_{pvc.namespace}_{pvc.name}"
    pv = PersistentVolume(
        metadata=ObjectMeta(name, "", annotations={
            "pv.kubernetes.io/provisioned-by": sc.provisioner,
            **({"local.path.provisioner/selected-node": node} if node else {})}),
        capacity=pvc.request, access_modes=pvc.access_modes, reclaim_policy=sc.reclaim_policy,
        storage_class_name=sc.name,
        volume_mode=pvc.volume_mode,
        claim_ref=ClaimRef(pvc.namespace, pvc.name, pvc.metadata.uid), node_affinity=affinity,
        source={"hostPath": {"path": path, "type": "DirectoryOrCreate"}}, phase="Bound")
    c.create(pv)
    _event(c, pvc, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {name}",
           prov_source)
    _bind(c, pvc, c.store.get("PersistentVolume", "", name) or pv)


def sync_claim(c: Cluster, pvc: PersistentVolumeClaim) -> None:
    if pvc.metadata.deletion_timestamp:
        return
    if pvc.storage_class_name is None:
        d = default_class(c)
        if d is not None:  # DefaultStorageClass admission / retroactive assignment
            pvc = evolve(pvc, storage_class_name=d.metadata.name)
            c.create(pvc)
            pvc = c.store.get("PersistentVolumeClaim", pvc.namespace, pvc.name) or pvc
    if pvc.phase == "Bound":
        pv = c.store.get("PersistentVolume", "", pvc.volume_name)
        if pv is None:
            c.create(evolve(pvc, phase="Lost"))
            _event(c, pvc, "Warning", "ClaimLost",
                   "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
        return
    if pvc.phase == "Lost":
        return
    sc = _class_of(c, pvc)
    wffc = sc is not None and sc.volume_binding_mode == "WaitForFirstConsumer"
    node = _selected(pvc)
    if pvc.volume_name:
        pv = c.store.get("PersistentVolume", "", pvc.volume_name)
        if pv is not None and matches(c, pvc, pv):
            _bind(c, pvc, pv)
        else:
            _event(c, pvc, "Warning", "FailedBinding",
                   f"volume \"{pvc.volume_name}\" "
                   + ("not found" if pv is None else "already bound to a different claim."))
        return
    if wffc and not node:
        _event(c, pvc, "Normal", "WaitForFirstConsumer",
               "waiting for first consumer to be created before binding")
        return
    candidates = [pv for pv in c.store.list("PersistentVolume")
                  if pv.claim_ref is None or (pv.claim_ref.namespace, pv.claim_ref.name) ==
                  (pvc.namespace, pvc.name)]
    found = [pv for pv in candidates if pv.phase in ("Available", "Pending")
             and matches(c, pvc, pv, node if wffc else "")]
    if found:
        # pre-bound volumes first, then the smallest that fits (findBestMatchForClaim)
        found.sort(key=lambda pv: (pv.claim_ref is None, _bytes(pv.capacity), pv.name))
        _bind(c, pvc, found[0])
        return
    if pvc.storage_class_name and sc is None:
        _event(c, pvc, "Warning", "ProvisioningFailed",
               f'storageclass.storage.k8s.io "{pvc.storage_class_name}" not found')
        return
    if sc is not None and sc.provisioner != NO_PROVISIONER:
        if sc.provisioner == LOCAL_PATH and not node:
            _event(c, pvc, "Warning", "ProvisioningFailed",
                   "failed to provision volume with StorageClass "
                   f"\"{sc.metadata.name}\": configuration error, no node was specified")
            return
        if PROVISIONER_ANNOTATION not in pvc.metadata.annotations:
            pvc = evolve(pvc, metadata=evolve(pvc.metadata, annotations={
                **pvc.metadata.annotations, PROVISIONER_ANNOTATION: sc.provisioner,
                "volume.beta.kubernetes.io/storage-provisioner": sc.provisioner}))
            c.create(pvc)
            pvc = c.store.get("PersistentVolumeClaim", pvc.namespace, pvc.name) or pvc
        _provision(c, pvc, sc, node)
        return
    if pvc.storage_class_name is not None:  # unset: the default class may still come
        _event(c, pvc, "Normal", "FailedBinding",
               "no persistent volumes available for this claim and no storage class is set")


def sync_volume(c: Cluster, pv: PersistentVolume) -> None:
    ref = pv.claim_ref
    if ref is None or pv.phase == "Released":
        return
    pvc = c.store.get("PersistentVolumeClaim", ref.namespace, ref.name)
    if pvc is not None and (not ref.uid or pvc.metadata.uid == ref.uid):
        return
    if pv.phase == "Bound" or (pv.phase == "Available" and ref.uid):
        if pv.reclaim_policy == "Delete":
            c.delete_object(pv)
        else:
            c.create(evolve(pv, phase="Released"))


def sync(c: Cluster) -> None:
    """Reconcile every claim and volume (called when storage objects or pods change)."""
    for pv in sorted(c.store.list("PersistentVolume"), key=lambda p: p.name):
        sync_volume(c, pv)
    for pvc in sorted(c.store.list("PersistentVolumeClaim"), key=lambda p: (p.namespace, p.name)):
        cur = c.store.get("PersistentVolumeClaim", pvc.namespace, pvc.name)
        if cur is not None:
            sync_claim(c, cur)


# --- scheduling -------------------------------------------------------------------------------

def claim_names(pod: Pod) -> list[str]:
    out = []
    for v in pod.spec.extra.get("volumes") or ():
        pvc = v.get("persistentVolumeClaim")
        if pvc:
            out.append(str(pvc.get("claimName", "")))
        eph = v.get("ephemeral")
        if eph:
            out.append(f"{pod.name}-{v.get('name', '')}")
    return out


def prefilter(c: Cluster, pod: Pod) -> tuple[str | None, list[NodeSelectorTerm] | None]:
    """VolumeBinding PreFilter/Filter: (unschedulable reason, node terms the bound volumes
    require) for ``pod``; (None, None) when it has no claims."""
    names = claim_names(pod)
    if not names:
        return None, None
    terms: list[NodeSelectorTerm] | None = None
    for name in names:
        pvc = c.store.get("PersistentVolumeClaim", pod.namespace, name)
        if pvc is None:
            return f'persistentvolumeclaim "{name}" not found', None
        if pvc.metadata.deletion_timestamp:
            return f'persistentvolumeclaim "{name}" is being deleted', None
        if pvc.phase != "Bound":
            sc = _class_of(c, pvc)
            if sc is None or sc.volume_binding_mode != "WaitForFirstConsumer" or pvc.volume_name:
                return "pod has unbound immediate PersistentVolumeClaims", None
            continue
        pv = c.store.get("PersistentVolume", "", pvc.volume_name)
        if pv is None:
            return f'persistentvolume "{pvc.volume_name}" not found', None
        pvt = node_terms(pv.node_affinity)
        if pvt:
            terms = pvt if terms is None else [
                NodeSelectorTerm(match_expressions=a.match_expressions + b.match_expressions)
                for a in terms for b in pvt]
    return None, terms


def constrain(pod: Pod, terms: list[NodeSelectorTerm]) -> Pod:
    """The pod as the scheduler should see it: its node affinity AND the volumes' terms."""
    own = pod.spec.required_node_affinity
    combined = tuple(terms) if not own else tuple(
        NodeSelectorTerm(match_expressions=a.match_expressions + b.match_expressions,
                         match_fields=a.match_fields)
        for a in own for b in terms)
    return evolve(pod, spec=evolve(pod.spec, required_node_affinity=combined))


def prefilter_message(n_nodes: int, reason: str) -> str:
    return (f"0/{n_nodes} nodes are available: {reason}. preemption: 0/{n_nodes} nodes are "
            f"available: {n_nodes} Preemption is not helpful for scheduling.")


def prebind(c: Cluster, pod: Pod, node: str) -> None:
    """VolumeBinding PreBind: delayed claims learn the chosen node, then bind or provision."""
    for name in claim_names(pod):
        pvc = c.store.get("PersistentVolumeClaim", pod.namespace, name)
        if pvc is None or pvc.phase == "Bound" or _selected(pvc):
            continue
        sc = _class_of(c, pvc)
        if sc is None or sc.volume_binding_mode != "WaitForFirstConsumer":
            continue
        c.create(evolve(pvc, metadata=evolve(pvc.metadata, annotations={
            **pvc.metadata.annotations, SELECTED_NODE_ANNOTATION: node})))
        cur = c.store.get("PersistentVolumeClaim", pod.namespace, name)
        if cur is not None:
            sync_claim(c, cur)


# --- StatefulSet claims -----------------------------------------------------------------------

def statefulset_claims(c: Cluster, ss: Any, ordinal: int, pod: Pod) -> Pod:
    """Create the ordinal's claims from ``volumeClaimTemplates`` (kept if they exist) and point
    the pod's volumes of those names at them."""
    templates: Iterable[Any] = getattr(ss, "volume_claim_templates", ()) or ()
    vols = {str(v.get("name", "")): v for v in pod.spec.extra.get("volumes") or ()}
    changed = False
    for t in templates:
        meta = t.get("metadata") or {}
        tname = str(meta.get("name", ""))
        if not tname:
            continue
        cname = f"{tname}-{ss.metadata.name}-{ordinal}"
        if c.store.get("PersistentVolumeClaim", pod.namespace, cname) is None:
            spec = t.get("spec") or {}
            labels = {**(meta.get("labels") or {}), **dict(ss.selector.match_labels)}
            sel = spec.get("selector")
            from knet.model.meta import LabelSelector

            c.create(PersistentVolumeClaim(
                metadata=ObjectMeta(cname, pod.namespace, labels=labels,
                                    annotations=dict(meta.get("annotations") or {})),
                access_modes=tuple(spec.get("accessModes") or ("ReadWriteOnce",)),
                request=str(((spec.get("resources") or {}).get("requests") or {}).get(
                    "storage", "")),
                storage_class_name=spec.get("storageClassName"),
                selector=LabelSelector(match_labels=dict(sel.get("matchLabels") or {}))
                if sel else None,
                volume_mode=str(spec.get("volumeMode") or "Filesystem")))
        vols[tname] = {"name": tname, "persistentVolumeClaim": {"claimName": cname}}
        changed = True
    if not changed:
        return pod
    extra = {**pod.spec.extra, "volumes": list(vols.values())}
    return evolve(pod, spec=evolve(pod.spec, extra=extra))


__all__ = ["sync", "sync_claim", "sync_volume", "prefilter", "prebind", "constrain",
           "statefulset_claims", "kind_default_class", "KINDS", "R_VOLUME_NODE"]
