"""Storage kinds: StorageClass, PersistentVolume, PersistentVolumeClaim (core/v1, storage/v1).

Invariants: frozen values like every model kind; spec fields mirror the API (snake_case);
status (``phase``, bound capacity) is replaced as a whole by the PV controller (``evolve``).
Volume sources (hostPath, local, nfs, csi…) and node affinity stay API mappings.
``manifest_spec``/``manifest_status`` are what ``-o yaml`` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from knet.model.meta import LabelSelector, Named, ObjectMeta

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"
PROVISIONER_ANNOTATION = "volume.kubernetes.io/storage-provisioner"


@dataclass(frozen=True, slots=True)
class StorageClass(Named):
    metadata: ObjectMeta
    provisioner: str
    reclaim_policy: str = "Delete"
    volume_binding_mode: str = "Immediate"  # Immediate, WaitForFirstConsumer
    allow_volume_expansion: bool = False
    parameters: Mapping[str, str] = field(default_factory=dict, hash=False)
    kind = "StorageClass"
    api_version = "storage.k8s.io/v1"

    @property
    def is_default(self) -> bool:
        return self.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"

    @property
    def manifest_spec(self) -> dict[str, Any]:
        return {}

    def manifest_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"provisioner": self.provisioner,
                               "reclaimPolicy": self.reclaim_policy,
                               "volumeBindingMode": self.volume_binding_mode}
        if self.allow_volume_expansion:
            out["allowVolumeExpansion"] = True
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        return out


@dataclass(frozen=True, slots=True)
class ClaimRef:
    namespace: str
    name: str
    uid: str = ""


@dataclass(frozen=True, slots=True)
class PersistentVolume(Named):
    metadata: ObjectMeta
    capacity: str
    access_modes: tuple[str, ...]
    reclaim_policy: str = "Retain"
    storage_class_name: str = ""
    volume_mode: str = "Filesystem"
    claim_ref: ClaimRef | None = None
    node_affinity: Mapping[str, Any] | None = field(default=None, hash=False)
    source: Mapping[str, Any] = field(default_factory=dict, hash=False)  # {"hostPath": {...}}
    mount_options: tuple[str, ...] = ()
    phase: str = "Available"  # Pending, Available, Bound, Released, Failed
    kind = "PersistentVolume"
    api_version = "v1"

    @property
    def manifest_spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"capacity": {"storage": self.capacity},
                               "accessModes": list(self.access_modes),
                               "persistentVolumeReclaimPolicy": self.reclaim_policy,
                               "volumeMode": self.volume_mode}
        if self.storage_class_name:
            out["storageClassName"] = self.storage_class_name
        if self.claim_ref is not None:
            ref = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "namespace": self.claim_ref.namespace, "name": self.claim_ref.name}
            if self.claim_ref.uid:
                ref["uid"] = self.claim_ref.uid
            out["claimRef"] = ref
        if self.node_affinity:
            out["nodeAffinity"] = dict(self.node_affinity)
        if self.mount_options:
            out["mountOptions"] = list(self.mount_options)
        out.update({k: dict(v) if isinstance(v, Mapping) else v for k, v in self.source.items()})
        return out

    @property
    def manifest_status(self) -> dict[str, Any]:
        return {"phase": self.phase}


@dataclass(frozen=True, slots=True)
class PersistentVolumeClaim(Named):
    metadata: ObjectMeta
    access_modes: tuple[str, ...]
    request: str
    storage_class_name: str | None = None  # None: unset (the default class applies)
    selector: LabelSelector | None = None
    volume_name: str = ""
    volume_mode: str = "Filesystem"
    phase: str = "Pending"  # Pending, Bound, Lost
    capacity: str = ""
    bound_access_modes: tuple[str, ...] = ()
    kind = "PersistentVolumeClaim"
    api_version = "v1"

    @property
    def manifest_spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"accessModes": list(self.access_modes),
                               "resources": {"requests": {"storage": self.request}},
                               "volumeMode": self.volume_mode}
        if self.storage_class_name is not None:
            out["storageClassName"] = self.storage_class_name
        if self.volume_name:
            out["volumeName"] = self.volume_name
        if self.selector is not None:
            sel: dict[str, Any] = {}
            if self.selector.match_labels:
                sel["matchLabels"] = dict(self.selector.match_labels)
            if self.selector.match_expressions:
                sel["matchExpressions"] = [
                    {"key": r.key, "operator": r.operator, **({"values": list(r.values)}
                                                             if r.values else {})}
                    for r in self.selector.match_expressions]
            out["selector"] = sel
        return out

    @property
    def manifest_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phase": self.phase}
        if self.phase == "Bound":
            out["accessModes"] = list(self.bound_access_modes or self.access_modes)
            out["capacity"] = {"storage": self.capacity}
        return out


__all__ = ["StorageClass", "PersistentVolume", "PersistentVolumeClaim", "ClaimRef",
           "DEFAULT_CLASS_ANNOTATION", "SELECTED_NODE_ANNOTATION", "PROVISIONER_ANNOTATION"]
