"""Server-side printing: ``meta.k8s.io/v1`` Tables (reference §8).

The column sets and cells are ``knet get``'s printers (kubernetes
``pkg/printers/internalversion/printers.go``): one source for both. The server always sends
the wide columns; the ones ``knet get`` adds for ``-o wide`` get ``priority: 1``. Kinds without
a printer get the default convertor's ``Name`` / ``Created At``.
"""

from __future__ import annotations

from typing import Any

from knet.manifests.render import _meta

_INT_COLUMNS = {"RESTARTS", "DESIRED", "CURRENT", "UP-TO-DATE", "AVAILABLE", "DATA", "SECRETS"}
_DESCRIPTIONS = {"NAME": "Name must be unique within a namespace. Is required when creating "
                         "resources, although some resources may allow a client to request the "
                         "generation of an appropriate name automatically.",
                 "AGE": "CreationTimestamp is a timestamp representing the server time when "
                        "this object was created."}


class ClusterView:
    """What the printers read: the cluster, with ``now`` from the API's clock."""

    def __init__(self, cluster: Any, now: float) -> None:
        self._cluster = cluster
        self.now = now

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cluster, name)


def _word(w: str) -> str:
    if w in ("IP", "IPS"):
        return w
    return "-".join(p if p == "IP" else p[:1] + p[1:].lower() for p in w.split("-"))


def _title(h: str) -> str:
    """printers.go column names: ``Name``, ``Cluster-IP``, ``Port(s)``, ``Nominated Node``."""
    return " ".join(_word(w) for w in h.split(" "))


def _binding_header(wide: bool) -> list[str]:
    h = ["NAME", "ROLE", "AGE"]
    return h + ["USERS", "GROUPS", "SERVICEACCOUNTS"] if wide else h


def _binding_row(view: Any, b: Any, wide: bool) -> list[str]:
    from knet.printers import age

    ref = b.body.get("roleRef") or {}
    row = [b.metadata.name, f"{ref.get('kind', '')}/{ref.get('name', '')}", age(view, b)]
    if wide:
        subs = [s for s in b.body.get("subjects") or [] if isinstance(s, dict)]
        users = ", ".join(s["name"] for s in subs if s.get("kind") == "User")
        groups = ", ".join(s["name"] for s in subs if s.get("kind") == "Group")
        sas = ", ".join(f"{s.get('namespace') or b.metadata.namespace}/{s['name']}"
                        for s in subs if s.get("kind") == "ServiceAccount")
        row += [users, groups, sas]
    return row


def _sa_header(wide: bool) -> list[str]:
    return ["NAME", "SECRETS", "AGE"]


def _sa_row(view: Any, sa: Any, wide: bool) -> list[str]:
    from knet.printers import age

    return [sa.metadata.name, str(len(sa.body.get("secrets") or [])), age(view, sa)]


# printers.go column sets of the kinds the API stores as generic objects
EXTRA_PRINTERS: dict[str, tuple[Any, Any]] = {
    "rolebindings": (_binding_header, _binding_row),
    "clusterrolebindings": (_binding_header, _binding_row),
    "serviceaccounts": (_sa_header, _sa_row),
}


def _printer(resource: str) -> tuple[Any, Any] | None:
    from knet.printers import PRINTERS

    return PRINTERS.get(resource) or EXTRA_PRINTERS.get(resource)


def columns(resource: str) -> list[dict[str, Any]]:
    p = _printer(resource)
    if p is None:
        return [{"name": "Name", "type": "string", "format": "name",
                 "description": _DESCRIPTIONS["NAME"], "priority": 0},
                {"name": "Created At", "type": "date", "format": "",
                 "description": _DESCRIPTIONS["AGE"], "priority": 0}]
    narrow = p[0](False)
    out = []
    for i, h in enumerate(p[0](True)):
        out.append({"name": _title(h), "type": "integer" if h in _INT_COLUMNS else "string",
                    "format": "name" if i == 0 else "",
                    "description": _DESCRIPTIONS.get(h, ""),
                    "priority": 0 if h in narrow else 1})
    return out


def cells(resource: str, view: ClusterView, obj: Any) -> list[Any]:
    p = _printer(resource)
    if p is None:
        return [obj.metadata.name, obj.metadata.creation_timestamp or None]
    row: list[Any] = list(p[1](view, obj, True))
    for i, h in enumerate(p[0](True)):
        if h in _INT_COLUMNS and isinstance(row[i], str) and row[i].isdigit():
            row[i] = int(row[i])
    return row


def partial(obj: Any) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": _meta(obj.metadata)}


def row(resource: str, view: ClusterView, obj: Any, include: str,
        full: dict[str, Any] | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"cells": cells(resource, view, obj)}
    if obj.kind == "Pod" and obj.status.phase in ("Succeeded", "Failed"):
        ok = obj.status.phase == "Succeeded"
        r["conditions"] = [{"type": "Completed", "status": "True", "reason": obj.status.phase,
                            "message": "The pod has completed successfully." if ok
                            else "The pod failed."}]
    if include == "Object" and full is not None:
        r["object"] = full
    elif include != "None":
        r["object"] = partial(obj)
    return r


def table(resource: str, rows: list[dict[str, Any]], rv: str, *, headers: bool = True,
          cont: str = "", remaining: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    if remaining:
        meta["remainingItemCount"] = remaining
    out: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
    if headers:
        out["columnDefinitions"] = columns(resource)
    out["rows"] = rows
    return out
