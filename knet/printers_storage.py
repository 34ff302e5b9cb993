"""``knet get`` tables of the storage kinds, with kubectl's columns (v1.32 printers)."""

from __future__ import annotations

from typing import Any

from knet.model.storage import PersistentVolume, PersistentVolumeClaim, StorageClass

_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
          "ReadWriteOncePod": "RWOP"}


def _modes(modes: tuple[str, ...]) -> str:
    return ",".join(_MODES.get(m, m) for m in modes)


def _age(cluster: Any, obj: Any) -> str:
    from knet.printers import age

    return age(cluster, obj)


def pvc_header(wide: bool) -> list[str]:
    h = ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
         "VOLUMEATTRIBUTESCLASS", "AGE"]
    return h + ["VOLUMEMODE"] if wide else h


def pvc_row(cluster: Any, c: PersistentVolumeClaim, wide: bool) -> list[str]:
    bound = c.phase == "Bound"
    row = [c.name, "Terminating" if c.metadata.deletion_timestamp else c.phase,
           c.volume_name, c.capacity if bound else "",
           _modes(c.bound_access_modes or c.access_modes) if bound else "",
           c.storage_class_name or "", "<unset>", _age(cluster, c)]
    return row + [c.volume_mode] if wide else row


def pv_header(wide: bool) -> list[str]:
    h = ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM",
         "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
    return h + ["VOLUMEMODE"] if wide else h


def pv_row(cluster: Any, v: PersistentVolume, wide: bool) -> list[str]:
    claim = f"{v.claim_ref.namespace}/{v.claim_ref.name}" if v.claim_ref else ""
    row = [v.name, v.capacity, _modes(v.access_modes), v.reclaim_policy, v.phase, claim,
           v.storage_class_name, "<unset>", "", _age(cluster, v)]
    return row + [v.volume_mode] if wide else row


def sc_header(wide: bool) -> list[str]:
    return ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION",
            "AGE"]


def sc_row(cluster: Any, s: StorageClass, wide: bool) -> list[str]:
    return [s.name + (" (default)" if s.is_default else ""), s.provisioner, s.reclaim_policy,
            s.volume_binding_mode, "true" if s.allow_volume_expansion else "false",
            _age(cluster, s)]


KINDS = {
    "persistentvolumeclaims": ("persistentvolumeclaim", PersistentVolumeClaim, True),
    "persistentvolumes": ("persistentvolume", PersistentVolume, False),
    "storageclasses": ("storageclass.storage.k8s.io", StorageClass, False),
}
ALIASES = {"pvc": "persistentvolumeclaims", "persistentvolumeclaim": "persistentvolumeclaims",
           "pv": "persistentvolumes", "persistentvolume": "persistentvolumes",
           "sc": "storageclasses", "storageclass": "storageclasses"}
PRINTERS = {"persistentvolumeclaims": (pvc_header, pvc_row),
            "persistentvolumes": (pv_header, pv_row), "storageclasses": (sc_header, sc_row)}
