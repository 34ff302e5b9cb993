"""Parsing, defaulting and validation of StorageClass, PersistentVolume, PersistentVolumeClaim.

Defaulting as pkg/apis/core/v1/defaults.go and storage/v1 (PV ``persistentVolumeReclaimPolicy``
Retain, ``volumeMode`` Filesystem; StorageClass ``reclaimPolicy`` Delete,
``volumeBindingMode`` Immediate); validation with pkg/apis/core/validation's paths and
messages for the fields that matter (capacity, accessModes, requests, one volume source).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from knet.manifests import names
from knet.manifests.fields import F, plain
from knet.model.meta import ObjectMeta
from knet.model.storage import ClaimRef, PersistentVolume, PersistentVolumeClaim, StorageClass

if TYPE_CHECKING:
    from knet.manifests.objects import Scope

ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
RECLAIM = ("Retain", "Delete", "Recycle")
PV_SOURCES = ("hostPath", "local", "nfs", "csi", "iscsi", "fc", "rbd", "cephfs", "glusterfs",
              "awsElasticBlockStore", "gcePersistentDisk", "azureDisk", "azureFile", "cinder",
              "flexVolume", "vsphereVolume", "portworxVolume", "scaleIO", "storageos",
              "photonPersistentDisk", "quobyte", "flocker")


def _spec(doc: F) -> F | None:
    spec = doc.map("spec")
    if spec is None:
        doc.required("spec")
    return spec


def _access_modes(spec: F, required: bool) -> tuple[str, ...]:
    modes = spec.str_list("accessModes")
    if not modes and required:
        spec.required("accessModes")
    f = spec.child("accessModes")
    for i, m in enumerate(modes):
        if m not in ACCESS_MODES and f is not None:
            F(m, f"{f.path}[{i}]", f.loc, f.ctx).unsupported(ACCESS_MODES)
    if "ReadWriteOncePod" in modes and len(modes) > 1 and f is not None:
        f.error(f"Invalid value: {modes!r}: may not use ReadWriteOncePod with other access modes")
    return modes


def _quantity(f: F | None, parent: F, name: str) -> str:
    if f is None:
        parent.required(name)
        return ""
    s = f.as_str() if not isinstance(f.value, (int, float)) else str(f.value)
    if not s:
        return ""
    from knet.control.quantity import parse_quantity

    try:
        parse_quantity(s)
    except (ValueError, ArithmeticError):
        f.error(f"Invalid value: {s!r}: quantities must match the regular expression "
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    return s


def parse_storageclass(doc: F, meta: ObjectMeta, scope: Scope) -> StorageClass:
    prov = doc.str("provisioner")
    if not prov:
        doc.required("provisioner")
    rp = doc.str("reclaimPolicy", "Delete")
    if rp not in ("Retain", "Delete") and doc.child("reclaimPolicy") is not None:
        doc.child("reclaimPolicy").unsupported(("Delete", "Retain"))  # type: ignore[union-attr]
    mode = doc.str("volumeBindingMode", "Immediate")
    if mode not in ("Immediate", "WaitForFirstConsumer") and doc.child("volumeBindingMode"):
        doc.child("volumeBindingMode").unsupported(  # type: ignore[union-attr]
            ("Immediate", "WaitForFirstConsumer"))
    return StorageClass(metadata=meta, provisioner=prov, reclaim_policy=rp,
                        volume_binding_mode=mode,
                        allow_volume_expansion=doc.bool("allowVolumeExpansion"),
                        parameters=doc.str_map("parameters"))


def parse_pv(doc: F, meta: ObjectMeta, scope: Scope) -> PersistentVolume:
    spec = _spec(doc)
    if spec is None:
        return PersistentVolume(metadata=meta, capacity="", access_modes=())
    cap = spec.map("capacity")
    capacity = _quantity(cap.child("storage") if cap is not None else None, cap or spec,
                         "storage" if cap is not None else "capacity")
    modes = _access_modes(spec, True)
    rp = spec.str("persistentVolumeReclaimPolicy", "Retain")
    if rp not in RECLAIM:
        spec.child("persistentVolumeReclaimPolicy").unsupported(RECLAIM)  # type: ignore[union-attr]
    sources = {k: plain(spec.child(k).value) for k in PV_SOURCES  # type: ignore[union-attr]
               if spec.child(k) is not None}
    if not sources:
        spec.error("must specify a volume type")
    elif len(sources) > 1:
        spec.error("may not specify more than 1 volume type")
    if "local" in sources and spec.child("nodeAffinity") is None:
        spec.sub_error("nodeAffinity", "Required value: Local volumes require node affinity")
    ref = spec.map("claimRef")
    claim = None
    if ref is not None:
        claim = ClaimRef(ref.str("namespace", "default"), ref.str("name"), ref.str("uid"))
    na = spec.child("nodeAffinity")
    phase = "Available"
    st = doc.map("status")
    if st is not None and st.str("phase"):
        phase = st.str("phase")
    return PersistentVolume(
        metadata=meta, capacity=capacity, access_modes=modes, reclaim_policy=rp,
        storage_class_name=spec.str("storageClassName"),
        volume_mode=spec.str("volumeMode", "Filesystem"), claim_ref=claim,
        node_affinity=plain(na.value) if na is not None else None, source=sources,
        mount_options=spec.str_list("mountOptions"), phase=phase)


def parse_pvc(doc: F, meta: ObjectMeta, scope: Scope) -> PersistentVolumeClaim:
    from knet.manifests.objects import parse_selector

    spec = _spec(doc)
    if spec is None:
        return PersistentVolumeClaim(metadata=meta, access_modes=(), request="")
    modes = _access_modes(spec, True)
    res = spec.map("resources")
    req = res.map("requests") if res is not None else None
    request = _quantity(req.child("storage") if req is not None else None,
                        req or res or spec,
                        "storage" if req is not None else "resources.requests"
                        if res is None else "requests")
    sc = spec.child("storageClassName")
    sel = spec.child("selector")
    vm = spec.str("volumeMode", "Filesystem")
    if vm not in ("Filesystem", "Block"):
        spec.child("volumeMode").unsupported(("Block", "Filesystem"))  # type: ignore[union-attr]
    st = doc.map("status")
    return PersistentVolumeClaim(
        metadata=meta, access_modes=modes, request=request,
        storage_class_name=None if sc is None else str(sc.value),
        selector=parse_selector(sel) if sel is not None else None,
        volume_name=spec.str("volumeName"), volume_mode=vm,
        phase=st.str("phase", "Pending") if st is not None else "Pending")


KINDS: dict[str, tuple[str, bool, Any]] = {
    "StorageClass": ("storage.k8s.io/v1", False, names.dns1123_subdomain),
    "PersistentVolume": ("v1", False, names.dns1123_subdomain),
    "PersistentVolumeClaim": ("v1", True, names.dns1123_subdomain),
}
PARSERS = {"StorageClass": parse_storageclass, "PersistentVolume": parse_pv,
           "PersistentVolumeClaim": parse_pvc}
