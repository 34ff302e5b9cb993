"""A located cursor over one object's YAML, with typed getters that record Problems.

Invariants: getters never raise; a wrong type or a bad value adds one Problem (located at the
value, or at the enclosing mapping when the field is missing) and returns a default, so that a
document's every problem is found in one pass. Field paths use the API's notation
(``spec.ports[0].targetPort``, ``metadata.labels[app]``). Error texts follow
apimachinery's field.Error forms (``Required value``, ``Invalid value: …``, ``Unsupported
value: …``, ``Duplicate value: …``, ``Forbidden: …``).
"""

from __future__ import annotations

import builtins
import json
import re
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterable, Mapping

from knet.errors import Problem
from knet.manifests.loader import LList, LMap, Loc

# Plain scalars that Go's yaml.v2 (kubectl) reads as booleans but PyYAML does not.
_GO_BOOLS = {"y", "Y", "n", "N"}
_SEXAGESIMAL = re.compile(r"^[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")
_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")


def quote(value: Any) -> str:
    """Go's %q-ish rendering of a value inside an error message."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value) if not isinstance(value, (dict, list)) else json.dumps(value, default=str)


def type_name(value: Any, raw: str | None = None) -> str:
    if isinstance(value, bool) or (isinstance(value, str) and raw in _GO_BOOLS):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__


@dataclass(slots=True)
class Ctx:
    """Problem collector for one object (file, kind, ns/name)."""

    file: str
    kind: str = ""
    name: str = ""
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the API server's Warning: texts

    def warn(self, loc: Loc, message: str) -> None:
        who = f"{self.kind} {self.name}".strip()
        self.warnings.append(f"{self.file}:{loc[0]}:{loc[1]}: {who + ': ' if who else ''}{message}")

    def add(self, path: str, loc: Loc, message: str) -> None:
        self.problems.append(Problem(message, self.file, loc[0], loc[1], self.kind, self.name,
                                     path))


# Integer API fields declared int64 (the rest of the API's integers are int32):
# metadata.deletionGracePeriodSeconds, PodSpec.terminationGracePeriodSeconds and
# activeDeadlineSeconds, Toleration.tolerationSeconds, security contexts' IDs, CronJob's
# startingDeadlineSeconds, projected tokens' expirationSeconds; knet's Topology seed.
INT64_FIELDS = frozenset({
    "deletionGracePeriodSeconds", "terminationGracePeriodSeconds", "activeDeadlineSeconds",
    "tolerationSeconds", "runAsUser", "runAsGroup", "fsGroup", "startingDeadlineSeconds",
    "expirationSeconds", "generation", "seed",
})


# The Go struct that holds an integer field, for encoding/json's "Go struct field
# DeploymentSpec.spec.replicas" (the common cases; others are named by their path alone).
_SPEC_STRUCT = {"Deployment": "DeploymentSpec", "ReplicaSet": "ReplicaSetSpec",
                "StatefulSet": "StatefulSetSpec", "DaemonSet": "DaemonSetSpec", "Job": "JobSpec",
                "ReplicationController": "ReplicationControllerSpec", "Pod": "PodSpec",
                "Service": "ServiceSpec"}
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_INDEX = re.compile(r"\[[^\]]*\]")  # Go's field path has no list indexes


def _go_struct(kind: str, path: str) -> str:
    parts = [p.partition("[")[0] for p in path.split(".")]
    parent = parts[-2] if len(parts) > 1 else ""
    if parent in _PROBES:
        return "Probe."
    if parent == "ports":
        return "ServicePort." if kind == "Service" and len(parts) == 3 else "ContainerPort."
    if parent == "spec" and len(parts) > 2 and parts[-3] == "template":
        return "PodSpec."
    if parent == "spec" and len(parts) == 2 and kind in _SPEC_STRUCT:
        return _SPEC_STRUCT[kind] + "."
    return ""


def _field_name(path: str) -> str:
    return path.rpartition(".")[2].partition("[")[0]


@dataclass(slots=True)
class F:
    """A value at ``path`` inside an object, located at ``loc``."""

    value: Any
    path: str
    loc: Loc
    ctx: Ctx
    raw: str | None = None
    key_loc: Loc | None = None

    # --- navigation ---------------------------------------------------------------------

    def _sub(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, key: str) -> bool:
        return isinstance(self.value, Mapping) and self.value.get(key) is not None

    def child(self, key: str) -> F | None:
        """The value at ``key`` (``None`` when absent or null)."""
        m = self.value
        if not isinstance(m, Mapping) or m.get(key) is None:
            return None
        if isinstance(m, LMap):
            loc = m.val_locs.get(key, self.loc)
            return F(m[key], self._sub(key), loc, self.ctx, m.raw.get(key), m.key_locs.get(key))
        return F(m[key], self._sub(key), self.loc, self.ctx)

    def error(self, message: str, *, at_key: bool = False) -> None:
        loc = self.key_loc if (at_key and self.key_loc) else self.loc
        self.ctx.add(self.path, loc, message)

    def sub_error(self, name: str, message: str) -> None:
        """A problem with a (missing) field of this mapping, located at the mapping."""
        self.ctx.add(self._sub(name), self.key_loc or self.loc, message)

    def required(self, name: str) -> None:
        self.sub_error(name, "Required value")

    def invalid(self, detail: str) -> None:
        self.error(f"Invalid value: {quote(self.value)}: {detail}")

    def unsupported(self, supported: Iterable[str]) -> None:
        sup = ", ".join(json.dumps(s) for s in supported)
        self.error(f"Unsupported value: {quote(self.value)}: supported values: {sup}")

    # --- type checks --------------------------------------------------------------------

    def is_mapping(self) -> bool:
        if isinstance(self.value, Mapping):
            return True
        self.error(f"expected a mapping, got {type_name(self.value, self.raw)}")
        return False

    def as_str(self) -> str | None:
        v = self.value
        if isinstance(v, str):
            if self.raw in _GO_BOOLS:
                self.error("expected string, got boolean (quote the value)")
                return None
            return v
        kind = type_name(v, self.raw)
        hint = ""
        if isinstance(v, (bool, int, float)):
            if self.raw is not None and _SEXAGESIMAL.match(self.raw):
                hint = f" {v} from {self.raw} (YAML 1.1 base 60)"
            elif self.raw is not None and _OCTAL.match(self.raw) and isinstance(v, int):
                hint = f" {v} from {self.raw} (YAML 1.1 octal)"
            self.error(f"expected string, got {kind}{hint} (quote the value)")
        else:
            self.error(f"expected string, got {kind}")
        return None

    def as_int(self) -> int | None:
        v = self.value
        if isinstance(v, int) and not isinstance(v, bool):
            bits = 64 if _field_name(self.path) in INT64_FIELDS else 32
            if not -(1 << (bits - 1)) <= v < 1 << (bits - 1):
                # the API server's JSON decoding into the typed struct (encoding/json)
                self.error(f"json: cannot unmarshal number {v} into Go struct field "
                           f"{_go_struct(self.ctx.kind, self.path)}"
                           f"{_INDEX.sub('', self.path)} of type int{bits}")
                return None
            return v
        if isinstance(v, str):
            self.error(f"expected integer, got string {quote(v)}")
        else:
            self.error(f"expected integer, got {type_name(v, self.raw)}")
        return None

    def as_bool(self) -> bool | None:
        v = self.value
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and self.raw in _GO_BOOLS:
            return self.raw in ("y", "Y")
        if isinstance(v, str):
            self.error(f"expected boolean, got string {quote(v)}")
        else:
            self.error(f"expected boolean, got {type_name(v, self.raw)}")
        return None

    def as_int_or_str(self) -> int | str | None:
        v = self.value
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, str) and self.raw not in _GO_BOOLS:
            return v
        self.error(f"expected integer or string, got {type_name(v, self.raw)}")
        return None

    # --- keyed getters ------------------------------------------------------------------

    def str(self, key: str, default: str = "", *, required: bool = False) -> str:
        f = self.child(key)
        if f is None:
            if required:
                self.required(key)
            return default
        s = f.as_str()
        if s is None:
            return default
        if required and s == "":
            self.required(key)
        return s

    def int(self, key: builtins.str, default: builtins.int = 0, *, required: builtins.bool = False) -> builtins.int:
        f = self.child(key)
        if f is None:
            if required:
                self.required(key)
            return default
        i = f.as_int()
        return default if i is None else i

    def opt_int(self, key: builtins.str) -> builtins.int | None:
        f = self.child(key)
        return None if f is None else f.as_int()

    def port(self, key: builtins.str, *, required: builtins.bool = False) -> builtins.int | None:
        """A port number field: an integer in 1–65535 (IsValidPortNum)."""
        f = self.child(key)
        if f is None:
            if required:
                self.required(key)
            return None
        v = f.as_int()
        if v is not None and not 1 <= v <= 65535:
            f.invalid("must be between 1 and 65535, inclusive")
            return None
        return v

    def bool(self, key: builtins.str, default: builtins.bool = False) -> builtins.bool:
        f = self.child(key)
        if f is None:
            return default
        b = f.as_bool()
        return default if b is None else b

    def opt_bool(self, key: builtins.str) -> builtins.bool | None:
        f = self.child(key)
        return None if f is None else f.as_bool()

    def map(self, key: builtins.str) -> F | None:
        f = self.child(key)
        if f is None or not f.is_mapping():
            return None
        return f

    def list(self, key: builtins.str) -> builtins.list[F]:
        f = self.child(key)
        if f is None:
            return []
        return f.items_of_list()

    def items_of_list(self) -> builtins.list[F]:
        v = self.value
        if not isinstance(v, list):
            self.error(f"expected a list, got {type_name(v, self.raw)}")
            return []
        out = []
        for i, item in enumerate(v):
            if isinstance(v, LList):
                loc, raw = v.locs[i], v.raw[i]
            else:
                loc, raw = self.loc, None
            out.append(F(item, f"{self.path}[{i}]", loc, self.ctx, raw, loc))
        return out

    def entries(self) -> builtins.list[tuple[builtins.str, F]]:
        """(key, value) pairs of a mapping; values keep their locations. Path ``x[key]``."""
        m = self.value
        if not isinstance(m, Mapping):
            return []
        out = []
        for k, v in m.items():
            if isinstance(m, LMap):
                f = F(v, f"{self.path}[{k}]", m.val_locs.get(k, self.loc), self.ctx,
                      m.raw.get(k), m.key_locs.get(k))
            else:
                f = F(v, f"{self.path}[{k}]", self.loc, self.ctx)
            out.append((str(k), f))
        return out

    def str_map(self, key: builtins.str) -> dict[builtins.str, builtins.str]:
        """A map[string]string field (labels, annotations, data, nodeSelector)."""
        f = self.map(key)
        if f is None:
            return {}
        out: dict[str, str] = {}
        for k, v in f.entries():
            if v.value is None:
                out[k] = ""  # JSON null into a Go string leaves ""
                continue
            s = v.as_str()
            if s is not None:
                out[k] = s
        return out

    def str_list(self, key: builtins.str) -> tuple[builtins.str, ...]:
        out = []
        for item in self.list(key):
            s = item.as_str()
            if s is not None:
                out.append(s)
        return tuple(out)

    def known(self, fields: Iterable[builtins.str]) -> None:
        """Strict field validation (kubectl's default since v1.27): unknown keys are errors."""
        m = self.value
        if not isinstance(m, Mapping):
            return
        allowed = set(fields)
        for k in m:
            if k not in allowed:
                loc = m.key_locs.get(k, self.loc) if isinstance(m, LMap) else self.loc
                self.ctx.add(self._sub(str(k)), loc, f'unknown field "{self._sub(str(k))}"')


def plain(value: Any) -> Any:
    """A deep copy of located YAML values as plain dicts/lists (for storage in the model)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
