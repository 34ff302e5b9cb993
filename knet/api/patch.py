"""PATCH bodies (apiserver ``handlers/patch.go``): RFC 6902 JSON patch, RFC 7386 merge patch,
strategic merge patch with the built-in types' patch-merge keys (api ``core/v1/types.go``
tags, reference §9.3), and the merge used for server-side apply.

Pure functions over plain JSON values; they never mutate their inputs. Errors raise
``ApiError`` with the server's codes (400 malformed, 422 cannot apply).
"""

from __future__ import annotations

import copy
from typing import Any

from knet.api.status import ApiError, bad_request

MAX_OPS = 10000

# (path pattern with "*" for list elements) → merge key; "" = merged set of scalars
MERGE_KEYS: dict[str, str] = {}
for _pod in ("spec", "spec.template.spec", "spec.jobTemplate.spec.template.spec"):
    for _c in ("containers", "initContainers", "ephemeralContainers"):
        MERGE_KEYS[f"{_pod}.{_c}"] = "name"
        MERGE_KEYS[f"{_pod}.{_c}.*.ports"] = "containerPort"
        MERGE_KEYS[f"{_pod}.{_c}.*.env"] = "name"
        MERGE_KEYS[f"{_pod}.{_c}.*.volumeMounts"] = "mountPath"
        MERGE_KEYS[f"{_pod}.{_c}.*.volumeDevices"] = "devicePath"
    MERGE_KEYS[f"{_pod}.volumes"] = "name"
    MERGE_KEYS[f"{_pod}.imagePullSecrets"] = "name"
    MERGE_KEYS[f"{_pod}.hostAliases"] = "ip"
MERGE_KEYS.update({
    "status.conditions": "type", "status.addresses": "type",
    "metadata.ownerReferences": "uid", "metadata.finalizers": "",
})
SERVICE_PORTS = "port"


def _merge_key(kind: str, path: str) -> str | None:
    if kind == "Service" and path == "spec.ports":
        return SERVICE_PORTS
    return MERGE_KEYS.get(path)


# --- RFC 6902 -------------------------------------------------------------------------------

def _pointer(path: str) -> list[str]:
    if path and not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise _unprocessable(f"doc is missing path: \"{path}\": missing value")
            cur = cur[p]
        elif isinstance(cur, list):
            i = _index(p, len(cur) - 1, path)
            cur = cur[i]
        else:
            raise _unprocessable(f"doc is missing path: \"{path}\": missing value")
    return cur


def _index(p: str, hi: int, path: str) -> int:
    if not p.isdigit():
        raise _unprocessable(f"unable to access invalid index: {p}")
    i = int(p)
    if i > hi:
        raise _unprocessable(f"Unable to access invalid index: {i}")
    return i


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "", message)


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    if len(ops) > MAX_OPS:
        raise ApiError(413, "RequestEntityTooLarge",
                       f"The allowed maximum operations in a JSON patch is {MAX_OPS}, got {len(ops)}")
    out = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise bad_request("Unexpected kind: missing op")
        kind = op["op"]
        path = str(op.get("path", ""))
        parts = _pointer(path)
        if kind in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"Unexpected kind: missing value for {kind}")
        if kind == "test":
            if _walk(out, parts, path) != op["value"]:
                raise _unprocessable(f"testing value {path} failed: test failed")
            continue
        if kind in ("move", "copy"):
            frm = str(op.get("from", ""))
            src = _pointer(frm)
            value = copy.deepcopy(_walk(out, src, frm))
            if kind == "move":
                out = _remove(out, src, frm)
            out = _add(out, parts, value, path, replace=False)
        elif kind == "add":
            out = _add(out, parts, copy.deepcopy(op["value"]), path, replace=False)
        elif kind == "replace":
            _walk(out, parts, path)
            out = _add(out, parts, copy.deepcopy(op["value"]), path, replace=True)
        elif kind == "remove":
            out = _remove(out, parts, path)
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    return out


def _add(doc: Any, parts: list[str], value: Any, path: str, *, replace: bool) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        else:
            i = _index(last, len(parent) - (1 if replace else 0), path)
            if replace:
                parent[i] = value
            else:
                parent.insert(i, value)
    else:
        raise _unprocessable(f"doc is missing path: \"{path}\": missing value")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        raise _unprocessable("unable to remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"Unable to remove nonexistent key: {last}: missing value")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(last, len(parent) - 1, path)]
    else:
        raise _unprocessable(f"doc is missing path: \"{path}\": missing value")
    return doc


# --- RFC 7386 -------------------------------------------------------------------------------

def merge_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# --- strategic merge patch -----------------------------------------------------------------

def strategic_merge(doc: Any, patch: Any, kind: str, path: str = "") -> Any:
    """apimachinery ``strategicpatch``: maps merge; lists with a patch-merge key merge element
    by element; directives ``$patch`` (replace/delete/merge), ``$retainKeys``,
    ``$setElementOrder/<list>``, ``$deleteFromPrimitiveList/<list>``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise bad_request(f"Unknown patch type: {directive}")
    out = dict(doc) if isinstance(doc, dict) else {}
    orders: dict[str, list[Any]] = {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v if isinstance(v, list) else []
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            cur = out.get(name)
            if isinstance(cur, list) and isinstance(v, list):
                out[name] = [x for x in cur if x not in v]
            continue
        sub = f"{path}.{k}" if path else k
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list):
            key = _merge_key(kind, _generic(sub))
            if key is None:
                out[k] = copy.deepcopy([x for x in v if not _is_directive(x)])
            else:
                out[k] = _merge_list(out.get(k), v, key, kind, sub)
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v, kind, sub)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = v
    for name, order in orders.items():
        cur = out.get(name)
        key = _merge_key(kind, _generic(f"{path}.{name}" if path else name))
        if isinstance(cur, list) and key:
            out[name] = _reorder(cur, order, key)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _generic(path: str) -> str:
    return ".".join("*" if p.isdigit() or p.startswith("[") else p for p in path.split("."))


def _is_directive(x: Any) -> bool:
    return isinstance(x, dict) and "$patch" in x and len(x) == 1


def _merge_list(cur: Any, patch: list[Any], key: str, kind: str, path: str) -> list[Any]:
    base = list(cur) if isinstance(cur, list) else []
    if any(isinstance(x, dict) and x.get("$patch") == "replace" and len(x) == 1 for x in patch):
        return [copy.deepcopy(x) for x in patch if not _is_directive(x)]
    if key == "":  # set of scalars
        return base + [x for x in patch if x not in base]
    out = [copy.deepcopy(x) for x in base]
    for item in patch:
        if not isinstance(item, dict):
            raise ApiError(422, "", f"unable to find api field in struct for the merge key {key}")
        kv = item.get(key)
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == kv), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
            continue
        if idx is None:
            out.append(strategic_merge({}, item, kind, f"{path}.*"))
        else:
            out[idx] = strategic_merge(out[idx], item, kind, f"{path}.*")
    return out


def _reorder(items: list[Any], order: list[Any], key: str) -> list[Any]:
    pos = {(o.get(key) if isinstance(o, dict) else o): i for i, o in enumerate(order)}
    first = [x for x in items if (x.get(key) if isinstance(x, dict) else x) in pos]
    first.sort(key=lambda x: pos[x.get(key) if isinstance(x, dict) else x])
    rest = [x for x in items if (x.get(key) if isinstance(x, dict) else x) not in pos]
    return first + rest
