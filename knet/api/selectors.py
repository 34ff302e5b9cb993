"""Label and field selectors from query strings (apimachinery ``pkg/labels/selector.go``,
``pkg/fields/selector.go``).

Labels: comma = AND of ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``,
``!k``; ``!=`` and ``notin`` also match objects without the key. Fields: ``f=v``, ``f==v``,
``f!=v``; only the fields a resource supports (``metadata.name``, ``metadata.namespace`` and
the per-resource list of the reference §7.2) — anything else is a 400
``field label not supported: <field>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from knet.api.status import ApiError, bad_request


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "=":
            return present and labels[self.key] == self.values[0]
        if self.op == "!=":
            return not present or labels[self.key] != self.values[0]
        if self.op == "in":
            return present and labels[self.key] in self.values
        if self.op == "notin":
            return not present or labels[self.key] not in self.values
        if self.op == "exists":
            return present
        return not present


_SET = re.compile(r"\s*(!?)\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")


def _split_top(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def parse_labels(text: str) -> tuple[Requirement, ...]:
    reqs: list[Requirement] = []
    if not text.strip():
        return ()
    for part in _split_top(text):
        p = part.strip()
        if not p:
            raise bad_request("unable to parse requirement: found '', expected: identifier")
        m = _SET.match(p)
        if m and not m.group(1):
            vals = tuple(v.strip() for v in m.group(4).split(",") if v.strip())
            reqs.append(Requirement(m.group(2), m.group(3), vals))
            continue
        for op in ("!=", "==", "="):
            if op in p:
                k, v = p.split(op, 1)
                reqs.append(Requirement(k.strip(), "!=" if op == "!=" else "=", (v.strip(),)))
                break
        else:
            if p.startswith("!"):
                reqs.append(Requirement(p[1:].strip(), "!"))
            elif re.fullmatch(r"[A-Za-z0-9_./-]+", p):
                reqs.append(Requirement(p, "exists"))
            else:
                raise bad_request(f"unable to parse requirement: {p!r}")
    for r in reqs:
        if not r.key:
            raise bad_request("unable to parse requirement: found '', expected: identifier")
    return tuple(reqs)


def labels_match(reqs: tuple[Requirement, ...], labels: Mapping[str, str]) -> bool:
    return all(r.matches(labels) for r in reqs)


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    value: str
    negate: bool


def parse_fields(text: str, supported: Mapping[str, Callable[[Any], str]]) -> tuple[FieldRequirement, ...]:
    out: list[FieldRequirement] = []
    if not text.strip():
        return ()
    for part in text.split(","):
        p = part.strip()
        if not p:
            continue  # apimachinery's fields.ParseSelector skips empty terms ("a=b,")
        for op in ("!=", "==", "="):
            if op in p:
                f, v = p.split(op, 1)
                f = f.strip()
                if f not in supported:
                    raise bad_request(f"field label not supported: {f}")
                out.append(FieldRequirement(f, v.strip(), op == "!="))
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{p}'")
    return tuple(out)


def fields_match(reqs: tuple[FieldRequirement, ...], doc: Any,
                 supported: Mapping[str, Callable[[Any], str]]) -> bool:
    for r in reqs:
        v = supported[r.field](doc)
        if (v == r.value) == r.negate:
            return False
    return True


def requested_name(reqs: tuple[FieldRequirement, ...]) -> str | None:
    for r in reqs:
        if r.field == "metadata.name" and not r.negate:
            return r.value
    return None


def _get(*path: str) -> Callable[[Any], str]:
    def fn(obj: Any) -> str:
        v: Any = obj
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if isinstance(v, bool):
            return "true" if v else "false"
        return "" if v is None else str(v)
    return fn


COMMON = {"metadata.name": _get("metadata", "name"),
          "metadata.namespace": _get("metadata", "namespace")}
FIELDS: dict[str, dict[str, Callable[[Any], str]]] = {
    "pods": {**COMMON, "spec.nodeName": _get("spec", "nodeName"),
             "spec.restartPolicy": _get("spec", "restartPolicy"),
             "spec.schedulerName": _get("spec", "schedulerName"),
             "spec.serviceAccountName": _get("spec", "serviceAccountName"),
             "spec.hostNetwork": lambda o: "true" if o.get("spec", {}).get("hostNetwork") else "false",
             "status.phase": _get("status", "phase"), "status.podIP": _get("status", "podIP"),
             "status.nominatedNodeName": _get("status", "nominatedNodeName")},
    "nodes": {**COMMON, "spec.unschedulable":
              lambda o: "true" if o.get("spec", {}).get("unschedulable") else "false"},
    "namespaces": {**COMMON, "status.phase": _get("status", "phase")},
    "secrets": {**COMMON, "type": _get("type")},
    "replicasets": {**COMMON, "status.replicas": _get("status", "replicas")},
    "jobs": {**COMMON, "status.successful": _get("status", "succeeded")},
    "events": {**COMMON, **{f"involvedObject.{k}": _get("involvedObject", k) for k in (
        "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
               "reason": _get("reason"), "reportingComponent": _get("reportingComponent"),
               "source": _get("source", "component"), "type": _get("type")},
}


def supported_fields(resource: str) -> dict[str, Callable[[Any], str]]:
    return FIELDS.get(resource, COMMON)


__all__ = ["ApiError", "FieldRequirement", "Requirement", "fields_match", "labels_match",
           "parse_fields", "parse_labels", "requested_name", "supported_fields"]
