"""A small OpenAPI-v3 structural-schema walker for CRDs: types, enums, patterns, bounds,
defaults, then CEL rules as Python predicates — errors worded as the API server words them.

Invariants: ``check(schema, cursor)`` never raises; it returns the defaulted value as plain
data and records every problem on the cursor's context (located at the offending value).
Messages follow apiextensions-apiserver: ``Unsupported value: "x": supported values: …``,
``Invalid value: "x": spec.f in body should match '…'``, ``Too many: N: must have at most M
items``, ``Too long: may not be more than N bytes``, ``Required value``; CEL failures are
``Invalid value: "object": <message>`` at the object carrying the rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from knet.manifests.fields import F, plain, type_name

Rule = tuple[Callable[[Any], bool], str]  # (holds(defaulted value), message)


@dataclass(slots=True)
class S:
    """One schema node. ``type``: string, integer, boolean, object, array, any."""

    type: str
    enum: tuple[Any, ...] = ()
    pattern: str = ""
    min_len: int | None = None
    max_len: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    props: dict[str, S] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    items: S | None = None
    default: Any = None
    rules: tuple[Rule, ...] = ()
    free: bool = False  # x-kubernetes-preserve-unknown-fields / map of strings
    _rx: re.Pattern[str] | None = None

    def rx(self) -> re.Pattern[str]:
        if self._rx is None:
            self._rx = re.compile(self.pattern)
        return self._rx


def string(pattern: str = "", *, enum: tuple[str, ...] = (), min_len: int | None = None,
           max_len: int | None = None, default: str | None = None) -> S:
    return S("string", enum=enum, pattern=pattern, min_len=min_len, max_len=max_len,
             default=default)


def integer(minimum: int | None = None, maximum: int | None = None, *,
            default: int | None = None, enum: tuple[int, ...] = ()) -> S:
    return S("integer", minimum=minimum, maximum=maximum, default=default, enum=enum)


def boolean(default: bool | None = None) -> S:
    return S("boolean", default=default)


def obj(props: dict[str, S], required: tuple[str, ...] = (), *, rules: tuple[Rule, ...] = (),
        default: Any = None, free: bool = False) -> S:
    return S("object", props=props, required=required, rules=rules, default=default, free=free)


def array(items: S, *, min_items: int | None = None, max_items: int | None = None,
          default: Any = None, rules: tuple[Rule, ...] = ()) -> S:
    return S("array", items=items, min_items=min_items, max_items=max_items, default=default,
             rules=rules)


def any_value() -> S:
    return S("any")


def _q(v: Any) -> str:
    return json.dumps(v) if isinstance(v, str) else ("true" if v is True else "false" if v is False
                                                     else str(v))


def check(schema: S, f: F) -> Any:
    """Validate ``f`` against ``schema``; the defaulted plain value (None when invalid)."""
    v = f.value
    t = schema.type
    if t == "any":
        return plain(v)
    if t == "object":
        if not isinstance(v, dict):
            f.error(f"Invalid value: {_q(type_name(v, f.raw))}: {f.path} in body must be of "
                    f"type object: {_q(type_name(v, f.raw))}")
            return None
        if schema.free and not schema.props:
            return plain(v)
        out: dict[str, Any] = {}
        if not schema.free:
            f.known(schema.props)
        for name, sub in schema.props.items():
            c = f.child(name)
            if c is None:
                if sub.default is not None:
                    out[name] = json.loads(json.dumps(sub.default))
                continue
            val = check(sub, c)
            if val is not None:
                out[name] = val
        for name in schema.required:
            if name not in out and f.child(name) is None:
                f.required(name)
        if schema.free:
            for k, val in v.items():
                if k not in schema.props:
                    out[k] = plain(val)
        for holds, message in schema.rules:
            try:
                ok = holds(out)
            except (KeyError, TypeError, AttributeError, ValueError):
                ok = True  # a rule over a field that is itself invalid: reported there
            if not ok:
                f.error(f'Invalid value: "object": {message}')
        return out
    if t == "array":
        if not isinstance(v, list):
            f.error(f"Invalid value: {_q(type_name(v, f.raw))}: {f.path} in body must be of "
                    f"type array: {_q(type_name(v, f.raw))}")
            return None
        if schema.max_items is not None and len(v) > schema.max_items:
            f.error(f"Too many: {len(v)}: must have at most {schema.max_items} items")
        if schema.min_items is not None and len(v) < schema.min_items:
            f.error(f"Invalid value: {len(v)}: {f.path} in body should have at least "
                    f"{schema.min_items} items")
        assert schema.items is not None
        items: Any = f.items_of_list()
        vals = [check(schema.items, item) for item in items]
        outl = [x for x in vals if x is not None]
        for holds, message in schema.rules:
            try:
                ok = holds(outl)
            except (KeyError, TypeError, AttributeError, ValueError):
                ok = True
            if not ok:
                f.error(f'Invalid value: "array": {message}')
        return outl
    if t == "string":
        if not isinstance(v, str) or f.raw in ("y", "Y", "n", "N"):
            f.error(f"Invalid value: {_q(type_name(v, f.raw))}: {f.path} in body must be of "
                    f"type string: {_q(type_name(v, f.raw))}")
            return None
        if schema.enum and v not in schema.enum:
            f.error(f"Unsupported value: {_q(v)}: supported values: "
                    + ", ".join(_q(e) for e in schema.enum))
            return None
        if schema.max_len is not None and len(v) > schema.max_len:
            f.error(f"Too long: may not be more than {schema.max_len} bytes")
        if schema.min_len is not None and len(v) < schema.min_len:
            f.error(f"Invalid value: {_q(v)}: {f.path} in body should be at least "
                    f"{schema.min_len} chars long")
        if schema.pattern and not schema.rx().search(v):
            f.error(f"Invalid value: {_q(v)}: {f.path} in body should match '{schema.pattern}'")
        return v
    if t == "integer":
        if not isinstance(v, int) or isinstance(v, bool):
            f.error(f"Invalid value: {_q(type_name(v, f.raw))}: {f.path} in body must be of "
                    f"type integer: {_q(type_name(v, f.raw))}")
            return None
        if schema.enum and v not in schema.enum:
            f.error(f"Unsupported value: {v}: supported values: "
                    + ", ".join(_q(e) for e in schema.enum))
            return None
        if schema.minimum is not None and v < schema.minimum:
            f.error(f"Invalid value: {v}: {f.path} in body should be greater than or equal to "
                    f"{schema.minimum}")
        if schema.maximum is not None and v > schema.maximum:
            f.error(f"Invalid value: {v}: {f.path} in body should be less than or equal to "
                    f"{schema.maximum}")
        return v
    if t == "boolean":
        if not isinstance(v, bool):
            f.error(f"Invalid value: {_q(type_name(v, f.raw))}: {f.path} in body must be of "
                    f"type boolean: {_q(type_name(v, f.raw))}")
            return None
        return v
    raise AssertionError(t)


__all__ = ["S", "any_value", "array", "boolean", "check", "integer", "obj", "string"]
