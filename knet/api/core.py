"""``ApiCore``: the Kubernetes API server's decisions over the control-plane store (sans-IO).

``handle(Request) -> Response``: routing (reference §3.1 request info), authentication
outcome (the adapter authenticates; the core decides what anonymous may do), discovery,
get/list (selectors, ``limit``/``continue``, Tables), watch (a ``Watch`` the adapter drains),
create/update/patch/delete with the API server's Status errors, subresources ``status`` and
``scale``.

Invariants:
- One store: reads come from ``cluster.store``; writes go through ``cluster.apply`` /
  ``cluster.delete`` / ``cluster.delete_pod`` (the control plane converges, the runtime
  follows its events), after the body passed the same validation as a manifest. A rejected
  write changes nothing.
- No IO and no wall clock: time is ``now()`` (the cluster's clock); the adapter writes bytes.
- resourceVersion is the store's one cluster-wide counter. Watch history is a ring of the
  last ``history`` events; a watch from an older version gets ``410 Expired``.
- Workload ``status`` is computed from the store (what the controllers would write); when it
  changes, watchers get a MODIFIED event (with the resourceVersion of the change that caused
  it), as they would from the controller's status write.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any
from urllib.parse import parse_qs

import yaml

from knet.api import convert, discovery, generic, rbac, tables
from knet.api import patch as patches
from knet.api.resources import REVIEWS, Resource, lookup
from knet.api.selectors import (
    fields_match,
    labels_match,
    parse_fields,
    parse_labels,
    requested_name,
    supported_fields,
)
from knet.api.status import (
    MODIFIED,
    ApiError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    method_not_allowed,
    not_found,
    success,
    too_large,
    unauthorized,
    unsupported_media,
)
from knet.control.events import ObjectAdded, ObjectDeleted
from knet.control.naming import ALPHABET
from knet.control.store import evolve
from knet.errors import KnetError
from knet.model.meta import ObjectMeta

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.13",
           "gitCommit": "knet", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
           "goVersion": "go1.23.6", "compiler": "gc", "platform": "linux/amd64"}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
JSON = "application/json"
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")
MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's --max-request-bytes default
PUBLIC_PATHS = ("/version", "/version/", "/healthz", "/livez", "/readyz")
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public")
_WORKLOADS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")
_NO_SPEC_GENERATION = ("Namespace", "ConfigMap", "Secret", "EndpointSlice", "Node", "Service")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @property
    def admin(self) -> bool:
        return "system:masters" in self.groups


@dataclass
class Request:
    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    user: User | None = None

    def __post_init__(self) -> None:
        self.headers = {k.lower(): v for k, v in self.headers.items()}
        self.params: dict[str, list[str]] = parse_qs(self.query, keep_blank_values=True)

    def param(self, name: str, default: str = "") -> str:
        v = self.params.get(name)
        return v[0] if v else default


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    watch: Watch | None = None
    # subresources served by the adapter (log, exec, portforward): what to do
    stream: dict[str, Any] | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Target:
    """Request info of a resource request (apiserver ``requestinfo.go``)."""

    resource: Resource
    namespace: str
    name: str
    subresource: str
    verb: str


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _error(e: ApiError) -> Response:
    return Response(e.code, _dumps(e.status()), headers=list(e.headers.items()))


class Watch:
    """One watch stream: the core pushes encoded lines; the adapter drains them."""

    def __init__(self, core: ApiCore, target: Target, labels: Any, fields: Any,
                 table: bool, include: str, bookmarks: bool, timeout: float | None) -> None:
        self.core = core
        self.target = target
        self.labels = labels
        self.fields = fields
        self.table = table
        self.include = include
        self.bookmarks = bookmarks
        self.timeout = timeout
        self.lines: deque[bytes] = deque()
        self.notify: Callable[[], None] | None = None
        self.closed = False
        self._headers_sent = False
        self.last_rv = 0

    def matches(self, obj: Any, doc: dict[str, Any] | None = None) -> bool:
        t = self.target
        if t.namespace and obj.metadata.namespace != t.namespace:
            return False
        if self.labels and not labels_match(self.labels, obj.metadata.labels):
            return False
        if self.fields:
            doc = doc if doc is not None else self.core.doc(obj)
            return fields_match(self.fields, doc, supported_fields(t.resource.name))
        return True

    def send(self, type_: str, obj: Any, rv: int, doc: dict[str, Any] | None = None) -> None:
        if self.closed:
            return
        res = self.target.resource
        if self.table and type_ in ("ADDED", "MODIFIED", "DELETED"):
            view = tables.ClusterView(self.core.cluster, self.core.now())
            full = doc if self.include != "Object" else self.core.doc(obj, rv)
            body: Any = tables.table(res.name, [tables.row(res.name, view, obj, self.include, full)],
                                     str(rv), headers=not self._headers_sent)
            self._headers_sent = True
        else:
            body = doc if doc is not None else self.core.doc(obj, rv)
        self.last_rv = max(self.last_rv, rv)
        self.lines.append(_dumps({"type": type_, "object": body}) + b"\n")
        if self.notify is not None:
            self.notify()

    def bookmark(self) -> None:
        if self.closed or not self.bookmarks:
            return
        res = self.target.resource
        rv = self.core.store.resource_version
        obj = {"kind": res.kind, "apiVersion": res.api_version,
               "metadata": {"resourceVersion": str(rv)}}
        self.lines.append(_dumps({"type": "BOOKMARK", "object": obj}) + b"\n")
        if self.notify is not None:
            self.notify()

    def error(self, err: ApiError) -> None:
        self.lines.append(_dumps({"type": "ERROR", "object": err.status()}) + b"\n")
        self.close()

    def drain(self) -> list[bytes]:
        out = list(self.lines)
        self.lines.clear()
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.core.watches.discard(self)
            if self.notify is not None:
                self.notify()


class ApiCore:
    def __init__(self, cluster: Any, now: Callable[[], float] | None = None, *,
                 server_address: str = "127.0.0.1:6443", history: int = 10_000,
                 max_body: int = MAX_BODY, seed: int | None = None) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.now = now or (lambda: float(cluster.now))
        self.server_address = server_address
        self.max_body = max_body
        self.ring: deque[tuple[int, str, Any]] = deque(maxlen=history)
        self.watches: set[Watch] = set()
        self._gen: dict[str, tuple[int, str]] = {}
        self._status_seen: dict[tuple[str, str, str], str] = {}
        self._dirty: dict[tuple[str, str, str], None] = {}
        self._sorted_cache: dict[tuple[str, str | None], tuple[int, list[Any]]] = {}
        self.wakeup: Callable[[], None] | None = None
        self._rng = random.Random(cluster.seed if seed is None else seed)
        self._unsubscribe = cluster.subscribe(self._on_event)
        self.requests = 0
        self._aggregate = True
        self._new_namespaces: set[str] = {n.metadata.name for n in self.store.list("Namespace")}
        self._bootstrap()
        self._oldest = self.store.resource_version  # history starts here

    def _bootstrap(self) -> None:
        """Default ClusterRoles and bindings (kube-apiserver's RBAC bootstrap) and every
        namespace's ``default`` ServiceAccount, unless the input has them."""
        now = self.now()
        for name, body in rbac.default_cluster_roles():
            if self.store.get("ClusterRole", "", name) is None:
                labels = body.pop("_labels")
                meta = ObjectMeta(name=name, labels=labels, annotations=dict(rbac.AUTOUPDATE))
                self.cluster.apply(generic.GenericObject("ClusterRole", meta, body), now)
        for name, body in rbac.default_bindings():
            if self.store.get("ClusterRoleBinding", "", name) is None:
                meta = ObjectMeta(name=name, labels=dict(rbac.BOOTSTRAP),
                                  annotations=dict(rbac.AUTOUPDATE))
                self.cluster.apply(generic.GenericObject("ClusterRoleBinding", meta, body), now)
        self._controllers()

    def _controllers(self) -> None:
        """ClusterRole aggregation and the ServiceAccount controller's ``default`` accounts."""
        now = self.now()
        while self._aggregate:
            self._aggregate = False
            for role in self.store.list("ClusterRole"):
                if not isinstance(role.body.get("aggregationRule"), dict):
                    continue
                rules = rbac.aggregated_rules(self.store, role)
                if rules != list(role.body.get("rules") or []):
                    self.cluster.apply(evolve(role, body={**role.body, "rules": rules}), now)
        while self._new_namespaces:
            ns = self._new_namespaces.pop()
            if self.store.get("Namespace", "", ns) is not None and \
                    self.store.get("ServiceAccount", ns, "default") is None:
                self.cluster.apply(generic.GenericObject(
                    "ServiceAccount", ObjectMeta(name="default", namespace=ns)), now)

    def close(self) -> None:
        self._unsubscribe()
        for w in list(self.watches):
            w.close()

    # --- events ---------------------------------------------------------------------------
    def _on_event(self, ev: Any) -> None:
        rv = ev.resource_version
        if isinstance(ev, ObjectAdded):
            t, obj, prev = "ADDED", ev.current, None
        elif isinstance(ev, ObjectDeleted):
            t, obj, prev = "DELETED", ev.previous, None
        else:
            t, obj, prev = "MODIFIED", ev.current, ev.previous
        if len(self.ring) == self.ring.maxlen:
            self._oldest = self.ring[0][0]
        self.ring.append((rv, t, obj))
        kind = obj.kind
        if t == "DELETED":
            self._gen.pop(obj.metadata.uid, None)
        for w in list(self.watches):
            if w.target.resource.kind != kind:
                continue
            self._deliver(w, t, obj, prev, rv)
        # controllers' status writes: a pod or ReplicaSet change changes its owner's status
        if kind in ("Pod", "ReplicaSet") and self.watches:
            self._mark_owner(obj)
            if prev is not None and prev.metadata.owner_references != obj.metadata.owner_references:
                self._mark_owner(prev)
        if kind == "ClusterRole":
            self._aggregate = True
        elif kind == "Namespace" and t == "ADDED":
            self._new_namespaces.add(obj.metadata.name)
        if (self._dirty or self._aggregate or self._new_namespaces) and self.wakeup is not None:
            self.wakeup()

    def _deliver(self, w: Watch, t: str, obj: Any, prev: Any, rv: int) -> None:
        now_match = w.matches(obj)
        if t == "MODIFIED" and prev is not None and (w.labels or w.fields):
            was = w.matches(prev)
            if was and not now_match:
                w.send("DELETED", obj, rv)
                return
            if now_match and not was:
                w.send("ADDED", obj, rv)
                return
        if now_match:
            w.send(t, obj, rv)

    def _mark_owner(self, obj: Any) -> None:
        ref = obj.metadata.controller_ref
        if ref is not None and ref.kind in _WORKLOADS:
            self._dirty[(ref.kind, obj.metadata.namespace, ref.name)] = None

    def flush(self) -> None:
        """Run the API's controllers (aggregation, default ServiceAccounts) and deliver
        synthesized status MODIFIED events for workloads whose status changed."""
        if self._aggregate or self._new_namespaces:
            self._controllers()
        while self._dirty:
            key = next(iter(self._dirty))
            del self._dirty[key]
            kind, ns, name = key
            obj = self.store.get(kind, ns, name)
            if obj is None:
                continue
            if kind == "ReplicaSet":
                self._mark_owner(obj)
            if not any(w.target.resource.kind == kind for w in self.watches):
                continue
            rv = self.store.resource_version
            doc = self.doc(obj, rv)
            fp = json.dumps(doc.get("status"), sort_keys=True)
            if self._status_seen.get(key) == fp:
                continue
            self._status_seen[key] = fp
            for w in list(self.watches):
                if w.target.resource.kind == kind and w.matches(obj, doc):
                    w.send("MODIFIED", obj, rv, doc)

    # --- rendering ------------------------------------------------------------------------
    def generation(self, obj: Any) -> int:
        if obj.kind in _NO_SPEC_GENERATION or obj.kind == "Pod" or obj.kind in generic.KINDS:
            return 1
        uid = obj.metadata.uid
        from knet.manifests.render import to_manifest

        fp = json.dumps(to_manifest(obj).get("spec"), sort_keys=True, default=str)
        gen, seen = self._gen.get(uid, (0, ""))
        if fp != seen:
            gen += 1
            self._gen[uid] = (gen, fp)
        return gen

    def doc(self, obj: Any, rv: int | None = None) -> dict[str, Any]:
        if isinstance(obj, generic.GenericObject):
            return generic.render(obj)
        out = convert.render(obj, self.store, self.generation(obj))
        if rv is not None and obj.kind in _WORKLOADS and rv > int(obj.metadata.resource_version or 0):
            out["metadata"]["resourceVersion"] = str(rv)
        return out

    # --- entry point ------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        self.requests += 1
        try:
            self.flush()
            return self._handle(req)
        except ApiError as e:
            return _error(e)
        except KnetError as e:
            return _error(ApiError(500, "InternalError", f"Internal error occurred: {e}",
                                   {"causes": [{"message": str(e)}]}))

    def _handle(self, req: Request) -> Response:
        path = req.path.rstrip("/") or "/"
        if req.user is None and path not in PUBLIC_PATHS:
            raise unauthorized()
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path in ("/version",):
            return Response(200, _dumps(VERSION))
        if len(req.body) > self.max_body:
            raise too_large()
        parts = [p for p in path.split("/") if p]
        if not self._is_resource(parts):
            self._authorize_path(req, path)
        if parts[:1] == ["api"] or parts[:1] == ["apis"]:
            return self._api(req, parts)
        if parts[:1] == ["openapi"]:
            return self._openapi(req, parts)
        if path == "/":
            paths = sorted({"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz",
                            "/version", "/openapi/v3"})
            return Response(200, _dumps({"paths": paths}))
        raise ApiError(404, "NotFound", "the server could not find the requested resource",
                       {})

    @staticmethod
    def _is_resource(parts: list[str]) -> bool:
        return (parts[:1] == ["api"] and len(parts) > 2) or (parts[:1] == ["apis"] and len(parts) > 3)

    def _authorize_path(self, req: Request, path: str) -> None:
        u = req.user
        assert u is not None
        a = rbac.Attributes(u.name, u.groups, req.method.lower(), path=req.path)
        ok, _ = rbac.authorize(self.store, a)
        if not ok:
            raise forbidden("", "", "", rbac.deny_text(a))

    # --- discovery ----------------------------------------------------------------------
    def _discovery(self, req: Request, doc: Any, aggregated: Any = None) -> Response:
        accept = req.headers.get("accept", "")
        if aggregated is not None and "as=APIGroupDiscoveryList" in accept and \
                "v=v2;" in accept.replace(" ", "") + ";":
            body = _dumps(aggregated)
            tag = discovery.etag(body)
            hdrs = [("ETag", tag), ("Vary", "Accept")]
            if req.headers.get("if-none-match") == tag:
                return Response(304, b"", discovery.AGGREGATED, hdrs)
            return Response(200, body, discovery.AGGREGATED, hdrs)
        return Response(200, _dumps(doc))

    def _openapi(self, req: Request, parts: list[str]) -> Response:
        if parts == ["openapi", "v3"]:
            return Response(200, _dumps(discovery.openapi_root()))
        if parts[:2] == ["openapi", "v3"] and len(parts) >= 4:
            gv = parts[2:]
            group, version = ("", gv[1]) if gv[0] == "api" and len(gv) == 2 else (
                (gv[1], gv[2]) if gv[0] == "apis" and len(gv) == 3 else ("?", "?"))
            doc = discovery.openapi_group_version(group, version)
            if doc is not None:
                return Response(200, _dumps(doc))
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    def _api(self, req: Request, parts: list[str]) -> Response:
        if parts[0] == "api":
            if len(parts) == 1:
                return self._discovery(req, discovery.api_versions(self.server_address),
                                       discovery.aggregated(core=True))
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return self._discovery(req, discovery.api_group_list(),
                                       discovery.aggregated(core=False))
            if len(parts) == 2:
                g = discovery.api_group(parts[1])
                if g is None:
                    raise ApiError(404, "NotFound",
                                   "the server could not find the requested resource", {})
                return Response(200, _dumps(g))
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            doc = discovery.resource_list(group, version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
            return Response(200, _dumps(doc))
        watch_prefix = False
        if rest[0] == "watch":
            watch_prefix, rest = True, rest[1:]
        target = self._target(req, group, version, rest, watch_prefix)
        return self._resource(req, target)

    def _target(self, req: Request, group: str, version: str, rest: list[str],
                watch_prefix: bool) -> Target:
        ns = ""
        if rest and rest[0] == "namespaces" and len(rest) > 1:
            ns = rest[1]
            keep = len(rest) > 2 and rest[2] not in ("status", "finalize")
            rest = rest[2:] if keep else ["namespaces", *rest[1:]]
        res = lookup(group, version, rest[0]) if rest else None
        if res is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if res.name == "namespaces":
            ns = ""
        if sub and res.sub(sub) is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if not res.namespaced and ns and res.name != "namespaces":
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        m = req.method.upper()
        if m in ("GET", "HEAD"):
            verb = "get" if name else ("watch" if watch_prefix or _truthy(req.param("watch"))
                                       else "list")
        elif m == "POST":
            verb = "create"
        elif m == "PUT":
            verb = "update"
        elif m == "PATCH":
            verb = "patch"
        elif m == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            raise method_not_allowed(m, res.name, res.group)
        if m == "POST" and name and not sub:
            raise method_not_allowed("create", res.name, res.group)
        return Target(res, ns, name, sub, verb)

    # --- resources ------------------------------------------------------------------------
    def _attributes(self, req: Request, t: Target) -> rbac.Attributes:
        u = req.user
        assert u is not None
        verb = t.verb
        name = t.name
        if verb in ("list", "watch") and not name:
            # requestinfo.go: a metadata.name field selector names the object
            try:
                fields = parse_fields(req.param("fieldSelector"), supported_fields(t.resource.name))
            except ApiError:
                fields = ()
            name = requested_name(fields) or ""
        if t.subresource in ("exec", "attach", "portforward") and req.method.upper() == "GET":
            verb = "get"  # v1.32: the WebSocket upgrade is authorized as get (reference §3.1)
        ns = t.namespace if t.resource.namespaced or t.resource.name == "namespaces" else ""
        if t.resource.name == "namespaces":
            ns = t.name
        return rbac.Attributes(u.name, u.groups, verb, ns, t.resource.group, t.resource.name,
                               t.subresource, name)

    def _authorize(self, req: Request, t: Target) -> None:
        a = self._attributes(req, t)
        ok, _ = rbac.authorize(self.store, a)
        if not ok:
            raise forbidden(t.resource.name, t.resource.group, t.name, rbac.deny_text(a))

    def _resource(self, req: Request, t: Target) -> Response:
        self._authorize(req, t)
        res = t.resource
        if res.kind in REVIEWS:
            return self._review(req, t)
        if res.kind == "Event":
            return self._events(req, t)
        if t.subresource == "scale":
            return self._scale(req, t)
        if t.subresource in ("log", "exec", "portforward"):
            return self._stream(req, t)
        if t.subresource in ("eviction", "binding"):
            return self._pod_post(req, t)
        v = t.verb
        if v == "get":
            obj = self._require(t)
            return Response(200, _dumps(self._out(req, t, obj)))
        if v == "list":
            return self._list(req, t)
        if v == "watch":
            return self._watch(req, t)
        if v == "create":
            return self._create(req, t)
        if v == "update":
            return self._update(req, t)
        if v == "patch":
            return self._patch(req, t)
        if v == "delete":
            return self._delete(req, t)
        if v == "deletecollection":
            return self._delete_collection(req, t)
        raise method_not_allowed(v, res.name, res.group)

    def _require(self, t: Target) -> Any:
        obj = self.store.get(t.resource.kind, t.namespace, t.name)
        if obj is None:
            raise not_found(t.resource.name, t.resource.group, t.name)
        return obj

    def _out(self, req: Request, t: Target, obj: Any) -> Any:
        if TABLE in req.headers.get("accept", "").replace(" ", ""):
            view = tables.ClusterView(self.cluster, self.now())
            include = req.param("includeObject", "Metadata")
            full = self.doc(obj) if include == "Object" else None
            return tables.table(t.resource.name, [tables.row(t.resource.name, view, obj, include, full)],
                                obj.metadata.resource_version)
        return self.doc(obj)

    def _selectors(self, req: Request, t: Target) -> tuple[Any, Any]:
        labels = parse_labels(req.param("labelSelector"))
        fields = parse_fields(req.param("fieldSelector"), supported_fields(t.resource.name))
        return labels, fields

    def _sorted(self, kind: str, ns: str | None) -> list[tuple[tuple[str, str], Any]]:
        """The (key, object) pairs of a kind in key order; reused while the store is unchanged
        (the chunks of one ``limit``/``continue`` walk)."""
        rv = self.store.resource_version
        hit = self._sorted_cache.get((kind, ns))
        if hit is not None and hit[0] == rv:
            return hit[1]
        pairs = self.store.keyed(kind, ns)
        pairs.sort(key=itemgetter(0))  # tuple keys: compared in C, no per-object Python call
        if len(self._sorted_cache) > 64:
            self._sorted_cache.clear()
        self._sorted_cache[(kind, ns)] = (rv, pairs)
        return pairs

    def _matching(self, t: Target, labels: Any, fields: Any,
                  start: tuple[str, str] | None = None) -> list[Any]:
        """Matching objects in key order (namespace, name), after ``start`` when given."""
        kind = t.resource.kind
        ns = t.namespace or None
        name = requested_name(fields) if fields else None
        if name is not None:
            if ns is not None:
                one = self.store.get(kind, ns, name)
                pairs = [((ns, name), one)] if one is not None else []
            else:
                pairs = sorted(((k, o) for k, o in self.store.keyed(kind) if k[1] == name),
                               key=itemgetter(0))
        else:
            pairs = self._sorted(kind, ns)
        if start is not None:
            pairs = pairs[bisect.bisect_right(pairs, start, key=itemgetter(0)):]
        objs = [o for _, o in pairs]
        if labels:
            objs = [o for o in objs if labels_match(labels, o.metadata.labels)]
        if fields:
            sup = supported_fields(t.resource.name)
            if all(f.field in ("metadata.name", "metadata.namespace") for f in fields):
                objs = [o for o in objs if fields_match(
                    fields, {"metadata": {"name": o.metadata.name,
                                          "namespace": o.metadata.namespace}}, sup)]
            else:
                objs = [o for o in objs if fields_match(fields, self.doc(o), sup)]
        return objs

    def _list(self, req: Request, t: Target) -> Response:
        labels, fields = self._selectors(req, t)
        start = self._continue(req.param("continue"))
        objs = self._matching(t, labels, fields, start)
        rv = str(self.store.resource_version)
        cont, remaining = "", None
        limit = req.param("limit")
        if limit:
            try:
                n = int(limit)
            except ValueError:
                raise bad_request(f"invalid limit {limit!r}") from None
            if 0 < n < len(objs):
                remaining = len(objs) - n
                objs = objs[:n]
                last = objs[-1].metadata
                cont = base64.urlsafe_b64encode(_dumps(
                    {"v": "meta.k8s.io/v1", "rv": int(rv),
                     "start": f"{last.namespace}/{last.name}\x00"})).decode().rstrip("=")
        res = t.resource
        if TABLE in req.headers.get("accept", "").replace(" ", ""):
            view = tables.ClusterView(self.cluster, self.now())
            include = req.param("includeObject", "Metadata")
            rows = [tables.row(res.name, view, o, include,
                               self.doc(o) if include == "Object" else None) for o in objs]
            return Response(200, _dumps(tables.table(res.name, rows, rv, cont=cont,
                                                     remaining=remaining)))
        meta: dict[str, Any] = {"resourceVersion": rv}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = remaining
        items = []
        for o in objs:
            d = self.doc(o)
            d.pop("apiVersion", None)
            d.pop("kind", None)
            items.append(d)
        return Response(200, _dumps({"kind": f"{res.kind}List", "apiVersion": res.api_version,
                                     "metadata": meta, "items": items}))

    @staticmethod
    def _continue(token: str) -> tuple[str, str] | None:
        if not token:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            start = data["start"].rstrip("\x00")
            ns, _, name = start.partition("/")
            return ns, name
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise bad_request("continue key is not valid: incorrect encoded start "
                              "resourceVersion (version meta.k8s.io/v1)") from None

    def _watch(self, req: Request, t: Target) -> Response:
        labels, fields = self._selectors(req, t)
        table = TABLE in req.headers.get("accept", "").replace(" ", "")
        timeout = None
        if req.param("timeoutSeconds"):
            try:
                timeout = float(req.param("timeoutSeconds"))
            except ValueError:
                raise bad_request("invalid timeoutSeconds") from None
        w = Watch(self, t, labels, fields, table, req.param("includeObject", "Metadata"),
                  _truthy(req.param("allowWatchBookmarks")), timeout)
        rv_param = req.param("resourceVersion")
        if rv_param in ("", "0") or _truthy(req.param("sendInitialEvents")):
            rv = self.store.resource_version
            for o in self._matching(t, labels, fields):
                w.send("ADDED", o, int(o.metadata.resource_version or rv))
            if _truthy(req.param("sendInitialEvents")) and w.bookmarks:
                obj = {"kind": t.resource.kind, "apiVersion": t.resource.api_version,
                       "metadata": {"resourceVersion": str(rv),
                                    "annotations": {"k8s.io/initial-events-end": "true"}}}
                w.lines.append(_dumps({"type": "BOOKMARK", "object": obj}) + b"\n")
        else:
            try:
                since = int(rv_param)
            except ValueError:
                raise bad_request(f"invalid resource version: {rv_param}") from None
            if since < self._oldest:
                w.error(ApiError(410, "Expired",
                                 f"too old resource version: {since} ({self._oldest})"))
                return Response(200, b"", JSON, watch=w)
            for rv, typ, obj in self.ring:
                if rv > since and obj.kind == t.resource.kind and w.matches(obj):
                    w.send(typ, obj, rv)
        self.watches.add(w)
        return Response(200, b"", JSON, watch=w)

    # --- writes ---------------------------------------------------------------------------
    def _body(self, req: Request) -> Any:
        ct = req.headers.get("content-type", JSON).split(";")[0].strip().lower()
        if ct in ("", JSON, "application/yaml", "application/apply-patch+yaml", "*/*") \
                or ct in PATCH_TYPES:
            try:
                if ct in ("application/yaml", "application/apply-patch+yaml"):
                    return yaml.safe_load(req.body.decode())
                return json.loads(req.body or b"null")
            except (ValueError, UnicodeDecodeError, yaml.YAMLError) as e:
                raise bad_request(f"error decoding request body: {e}") from None
        if ct == "application/vnd.kubernetes.protobuf":
            from knet.api import protobuf

            return protobuf.decode(req.body)
        raise unsupported_media([JSON, "application/yaml", "application/vnd.kubernetes.protobuf"])

    def _dry_run(self, req: Request, what: str) -> bool:
        vals = req.params.get("dryRun", [])
        if not vals:
            return False
        if vals != ["All"]:
            shown = "[]string{" + ", ".join(json.dumps(v) for v in vals) + "}"
            raise ApiError(422, "Invalid", f'{what}.meta.k8s.io "" is invalid: dryRun: '
                           f'Unsupported value: {shown}: supported values: "All"',
                           {"kind": what, "group": "meta.k8s.io", "causes": [
                               {"reason": "FieldValueNotSupported", "field": "dryRun",
                                "message": f'Unsupported value: {shown}: supported values: "All"'}]})
        return True

    def _validation(self, req: Request) -> str:
        v = req.param("fieldValidation", "Warn") or "Warn"
        if v not in ("Ignore", "Warn", "Strict"):
            raise bad_request(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", '
                              f'got {v!r}')
        return v

    def _check_body(self, t: Target, doc: Any) -> dict[str, Any]:
        res = t.resource
        if not isinstance(doc, dict):
            raise bad_request(f"Object 'Kind' is missing in '{json.dumps(doc)[:200]}'")
        kind = doc.get("kind") or res.kind
        if kind != res.kind:
            raise bad_request(f"the API version in the data ({doc.get('apiVersion')}) does not "
                              f"match the expected API version ({res.api_version})"
                              if doc.get("apiVersion") != res.api_version else
                              f"Kind {kind} does not match the expected kind {res.kind}")
        doc = dict(doc)
        doc["kind"] = res.kind
        doc.setdefault("apiVersion", res.api_version)
        meta = doc.get("metadata")
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        meta = dict(meta)
        if res.namespaced:
            ns = meta.get("namespace") or t.namespace
            if t.namespace and ns != t.namespace:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            meta["namespace"] = ns
        doc["metadata"] = meta
        return doc

    def _build(self, req: Request, t: Target, doc: dict[str, Any], *, patch: bool = False
               ) -> tuple[Any, list[str]]:
        """Validate ``doc`` like a manifest; (model object, warnings)."""
        mode = self._validation(req)
        if t.resource.kind in generic.KINDS:
            gobj, errs = generic.parse(doc, t.resource.kind)
            if gobj is None:
                name = str((doc.get("metadata") or {}).get("name") or "")
                raise invalid(t.resource.kind, t.resource.group, name, errs)
            self._check_escalation(req, t, gobj)
            return gobj, []
        if not convert.served(t.resource.kind):
            raise method_not_allowed(t.verb, t.resource.name, t.resource.group)
        try:
            obj, problems, unknown = convert.parse(doc, self.cluster.config)
        except (TypeError, ValueError, AttributeError, KeyError) as e:
            raise bad_request(f"{t.resource.kind} in version \"{t.resource.version}\" cannot be "
                              f"handled as a {t.resource.kind}: {e}") from None
        warnings: list[str] = []
        if unknown:
            if mode == "Strict":
                text = ", ".join(f'unknown field "{u}"' for u in unknown)
                if patch:
                    raise ApiError(422, "Invalid", f'{t.resource.kind} "{t.name}" is invalid: '
                                   f'patch: Invalid value: "...": strict decoding error: {text}',
                                   {"name": t.name, "kind": t.resource.kind, "causes": [
                                       {"reason": "FieldValueInvalid", "field": "patch",
                                        "message": f"strict decoding error: {text}"}]})
                raise bad_request(f'{t.resource.kind} in version "{t.resource.version}" cannot '
                                  f"be handled as a {t.resource.kind}: strict decoding error: "
                                  f"{text}")
            if mode == "Warn":
                warnings = [f'unknown field "{u}"' for u in unknown]
        name = str((doc.get("metadata") or {}).get("name") or "")
        if problems or obj is None:
            errs = [(p.field, p.message) for p in problems] or [("", "invalid object")]
            raise invalid(t.resource.kind, t.resource.group, name, errs)
        return obj, warnings

    def _admit_namespace(self, t: Target, name: str) -> None:
        ns = t.namespace
        if not t.resource.namespaced or not ns:
            return
        nsobj = self.store.get("Namespace", "", ns)
        if nsobj is None:
            raise not_found("namespaces", "", ns)
        if nsobj.metadata.deletion_timestamp:
            e = forbidden(t.resource.name, t.resource.group, name,
                          f"unable to create new content in namespace {ns} because it is being "
                          "terminated")
            assert e.details is not None
            e.details["causes"] = [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                    "message": f"namespace {ns} is being terminated"}]
            raise e

    def _generate_name(self, t: Target, prefix: str) -> str:
        for _ in range(8):
            name = prefix + "".join(self._rng.choice(ALPHABET) for _ in range(5))
            if self.store.get(t.resource.kind, t.namespace, name) is None:
                return name
        raise ApiError(409, "AlreadyExists", f"{t.resource.name} \"{prefix}\" already exists")

    def _write_response(self, code: int, body: Any, warnings: list[str]) -> Response:
        hdrs = [("Warning", f'299 - "{w}"') for w in warnings]
        return Response(code, _dumps(body), headers=hdrs)

    def _create(self, req: Request, t: Target) -> Response:
        if t.subresource:
            raise method_not_allowed("create", t.resource.name, t.resource.group)
        dry = self._dry_run(req, "CreateOptions")
        doc = self._check_body(t, self._body(req))
        meta = doc["metadata"]
        if meta.get("resourceVersion"):
            raise ApiError(500, "", "resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(t, str(meta["generateName"]))
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "generation", "managedFields", "selfLink"):
            meta.pop(k, None)
        doc.pop("status", None) if t.resource.kind not in ("Node",) else None
        name = str(meta.get("name") or "")
        if t.resource.kind == "Namespace" and not name:
            pass
        obj, warnings = self._build(req, t, doc)
        obj = evolve(obj, metadata=evolve(obj.metadata, uid="", creation_timestamp=""))
        self._admit_namespace(t, name)
        if self.store.get(t.resource.kind, obj.metadata.namespace, obj.metadata.name) is not None:
            raise already_exists(t.resource.name, t.resource.group, obj.metadata.name)
        if dry:
            return self._write_response(201, self._render_new(obj), warnings)
        self.cluster.apply(obj, self.now())
        stored = self.store.get(t.resource.kind, obj.metadata.namespace, obj.metadata.name)
        if stored is None:  # e.g. a pod that finished at once
            return self._write_response(201, self._render_new(obj), warnings)
        return self._write_response(201, self.doc(stored), warnings)

    def _render_new(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, generic.GenericObject):
            return generic.render(obj)
        return convert.render(obj, self.store)

    def _check_escalation(self, req: Request, t: Target, obj: generic.GenericObject) -> None:
        """RBAC storage's escalation checks (reference §3.6) for roles and bindings."""
        kind = obj.kind
        if kind not in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
            return
        u = req.user
        assert u is not None
        if u.admin:
            return
        ns = t.namespace
        name = obj.metadata.name
        held = rbac.rules_for(self.store, u.name, u.groups, ns)
        if kind in ("Role", "ClusterRole"):
            a = rbac.Attributes(u.name, u.groups, "escalate", ns, generic.RBAC, t.resource.name,
                                "", name)
            if rbac.authorize(self.store, a)[0]:
                return
            granted = list(obj.body.get("rules") or [])
            if kind == "ClusterRole" and isinstance(obj.body.get("aggregationRule"), dict):
                granted = rbac.aggregated_rules(self.store, obj)
        else:
            ref = obj.body.get("roleRef") or {}
            rkind = ref.get("kind", "")
            rres = "clusterroles" if rkind == "ClusterRole" else "roles"
            a = rbac.Attributes(u.name, u.groups, "bind", ns, generic.RBAC, rres, "",
                                ref.get("name", ""))
            if rbac.authorize(self.store, a)[0]:
                return
            role = self.store.get(rkind, ns if rkind == "Role" else "", ref.get("name", ""))
            if role is None:
                raise not_found(rres, generic.RBAC, ref.get("name", ""))
            granted = (rbac.aggregated_rules(self.store, role) if rkind == "ClusterRole"
                       else list(role.body.get("rules") or []))
        missing = rbac.not_covered(held, granted)
        if missing:
            groups = " ".join(f'"{g}"' for g in u.groups)
            text = (f'user "{u.name}" (groups=[{groups}]) is attempting to grant RBAC permissions '
                    "not currently held:\n" + "\n".join(rbac.compact(r) for r in missing))
            raise forbidden(t.resource.name, t.resource.group, name, text)

    def _review(self, req: Request, t: Target) -> Response:
        """Access reviews (never stored): SelfSubjectAccessReview for ``kubectl auth can-i``,
        SubjectAccessReview, SelfSubjectRulesReview (``can-i --list``), SelfSubjectReview
        (``kubectl auth whoami``)."""
        if t.verb != "create":
            raise method_not_allowed(t.verb, t.resource.name, t.resource.group)
        body = self._body(req)
        if not isinstance(body, dict):
            raise bad_request("request body must be an object")
        u = req.user
        assert u is not None
        spec = body.get("spec") or {}
        kind = t.resource.kind
        out = {"kind": kind, "apiVersion": t.resource.api_version,
               "metadata": {"creationTimestamp": None}, "spec": spec}
        if kind == "SelfSubjectReview":
            info: dict[str, Any] = {"username": u.name, "groups": list(u.groups)}
            if u.uid:
                info["uid"] = u.uid
            out["status"] = {"userInfo": info}
            return Response(201, _dumps(out))
        if kind == "SelfSubjectRulesReview":
            ns = str(spec.get("namespace") or "")
            rules = rbac.rules_for(self.store, u.name, u.groups, ns)
            out["status"] = {
                "resourceRules": [{k: r[k] for k in ("verbs", "apiGroups", "resources",
                                                     "resourceNames") if r.get(k)}
                                  for r in rules if not r.get("nonResourceURLs")],
                "nonResourceRules": [{"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}
                                     for r in rules if r.get("nonResourceURLs")],
                "incomplete": False}
            return Response(201, _dumps(out))
        if kind == "SelfSubjectAccessReview":
            who, groups = u.name, u.groups
        else:
            who = str(spec.get("user") or "")
            groups = tuple(spec.get("groups") or ())
            if not who and not groups:
                raise invalid(kind, "authorization.k8s.io", "", [
                    ("spec.user", "Invalid value: \"\": at least one of user or group must be "
                                  "specified")])
        ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if isinstance(ra, dict):
            ns = str(ra.get("namespace") or "")
            if kind == "LocalSubjectAccessReview":
                ns = t.namespace
            a = rbac.Attributes(who, groups, str(ra.get("verb") or ""), ns,
                                str(ra.get("group") or ""), str(ra.get("resource") or ""),
                                str(ra.get("subresource") or ""), str(ra.get("name") or ""))
        elif isinstance(nra, dict):
            a = rbac.Attributes(who, groups, str(nra.get("verb") or ""),
                                path=str(nra.get("path") or ""))
        else:
            raise invalid(kind, "authorization.k8s.io", "", [
                ("spec.resourceAttributes", "Invalid value: \"null\": exactly one of "
                 "nonResourceAttributes or resourceAttributes must be specified")])
        ok, reason = rbac.authorize(self.store, a)
        st: dict[str, Any] = {"allowed": ok}
        if reason:
            st["reason"] = reason
        out["status"] = st
        return Response(201, _dumps(out))

    def _merge_server_fields(self, t: Target, doc: dict[str, Any], cur: Any) -> dict[str, Any]:
        """Main-resource writes keep status; subresource ``status`` writes keep the rest."""
        current = self.doc(cur)
        if t.subresource == "status":
            new = dict(current)
            new["status"] = doc.get("status", {})
            return new
        if "status" in current and t.resource.kind not in _WORKLOADS:
            doc["status"] = current["status"]
        else:
            doc.pop("status", None)
        meta = doc["metadata"]
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if k in current["metadata"]:
                meta[k] = current["metadata"][k]
            else:
                meta.pop(k, None)
        for k in ("generation", "managedFields", "selfLink"):
            meta.pop(k, None)
        if t.resource.kind == "Pod":
            spec = doc.setdefault("spec", {})
            if isinstance(spec, dict) and not spec.get("nodeName"):
                node = current.get("spec", {}).get("nodeName")
                if node:
                    spec["nodeName"] = node
            self._check_pod_update(t, current, doc)
        if t.resource.kind == "Service" and isinstance(doc.get("spec"), dict):
            spec = doc["spec"]
            cspec = current.get("spec", {})
            for k in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if k not in spec and k in cspec:
                    spec[k] = cspec[k]
            cports = {(p.get("port"), p.get("protocol", "TCP")): p for p in cspec.get("ports", [])}
            for p in spec.get("ports") or []:
                if isinstance(p, dict) and "nodePort" not in p:
                    old = cports.get((p.get("port"), p.get("protocol", "TCP")))
                    if old is not None and old.get("nodePort"):
                        p["nodePort"] = old["nodePort"]
        return doc

    def _check_pod_update(self, t: Target, current: dict[str, Any], doc: dict[str, Any]) -> None:
        # pkg/apis/core/validation ValidatePodUpdate: only images, activeDeadlineSeconds,
        # tolerations (additions) and terminationGracePeriodSeconds may change.
        def strip(spec: Any) -> Any:
            if not isinstance(spec, dict):
                return spec
            s = {k: v for k, v in spec.items() if k not in ("tolerations", "activeDeadlineSeconds",
                                                           "terminationGracePeriodSeconds")}
            for key in ("containers", "initContainers"):
                if isinstance(s.get(key), list):
                    s[key] = [{k: v for k, v in c.items() if k != "image"}
                              if isinstance(c, dict) else c for c in s[key]]
            return s

        old, new = current.get("spec"), doc.get("spec")
        if strip(self._normalized_pod_spec(old)) != strip(self._normalized_pod_spec(new)):
            raise invalid("Pod", "", t.name, [(
                "spec", "Forbidden: pod updates may not change fields other than "
                "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                "it was previously negative)")])

    def _normalized_pod_spec(self, spec: Any) -> Any:
        """The spec as knet would store it (defaults applied), for comparisons."""
        if not isinstance(spec, dict):
            return spec
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "x"},
               "spec": spec}
        try:
            obj, _, _ = convert.parse(doc, self.cluster.config)
        except Exception:  # noqa: BLE001 - the caller reports the real validation problems
            return spec
        if obj is None:
            return spec
        from knet.manifests.render import to_manifest

        return to_manifest(obj).get("spec")

    def _update(self, req: Request, t: Target, doc: Any = None, *, patch: bool = False,
                manager: str = "") -> Response:
        if t.subresource not in ("", "status"):
            raise method_not_allowed("update", t.resource.name, t.resource.group)
        dry = self._dry_run(req, "PatchOptions" if patch else "UpdateOptions")
        cur = self.store.get(t.resource.kind, t.namespace, t.name)
        doc = self._check_body(t, self._body(req) if doc is None else doc)
        meta = doc["metadata"]
        if meta.get("name") and meta["name"] != t.name:
            raise bad_request("the name of the object "
                              f"({meta['name']}) does not match the name on the URL ({t.name})")
        meta["name"] = t.name
        if cur is None:
            raise not_found(t.resource.name, t.resource.group, t.name)
        rv = str(meta.get("resourceVersion") or "")
        if rv and not patch:
            try:
                stale = int(rv) < int(cur.metadata.resource_version)
            except ValueError:
                raise bad_request(f"invalid resourceVersion {rv!r}") from None
            if stale:
                raise conflict(t.resource.name, t.resource.group, t.name, MODIFIED)
        doc = self._merge_server_fields(t, doc, cur)
        doc["metadata"].pop("resourceVersion", None)
        obj, warnings = self._build(req, t, doc, patch=patch)
        if cur.kind == "Node":
            obj = evolve(obj, addresses=cur.addresses, pod_cidrs=cur.pod_cidrs,
                         ready=cur.ready, capacity=cur.capacity or obj.capacity,
                         allocatable=cur.allocatable or obj.allocatable)
        if cur.kind == "Pod" and t.subresource != "status":
            obj = evolve(obj, status=cur.status)
        obj = evolve(obj, metadata=evolve(obj.metadata, creation_index=cur.metadata.creation_index,
                                          resource_version=cur.metadata.resource_version))
        if dry:
            return self._write_response(200, self._render_new(obj), warnings)
        if obj == cur:  # no-op: same resourceVersion, no event
            return self._write_response(200, self.doc(cur), warnings)
        if cur.kind == "Pod" and obj.spec != cur.spec:
            obj = evolve(obj, spec=evolve(cur.spec, containers=obj.spec.containers,
                                          init_containers=obj.spec.init_containers,
                                          tolerations=obj.spec.tolerations))
        self.cluster.apply(obj, self.now())
        stored = self.store.get(t.resource.kind, t.namespace, t.name) or obj
        return self._write_response(200, self.doc(stored), warnings)

    def _patch(self, req: Request, t: Target) -> Response:
        ct = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if ct not in PATCH_TYPES:
            raise unsupported_media(list(PATCH_TYPES))
        force = req.param("force")
        if force and ct != "application/apply-patch+yaml":
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: force: '
                           "Forbidden: may not be specified for non-apply patch",
                           {"kind": "PatchOptions", "group": "meta.k8s.io", "causes": [
                               {"reason": "FieldValueForbidden", "field": "force",
                                "message": "Forbidden: may not be specified for non-apply patch"}]})
        body = self._body(req)
        cur = self.store.get(t.resource.kind, t.namespace, t.name)
        if ct == "application/apply-patch+yaml":
            if not req.param("fieldManager"):
                raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: '
                               "fieldManager: Required value: is required for apply patch",
                               {"kind": "PatchOptions", "group": "meta.k8s.io", "causes": [
                                   {"reason": "FieldValueRequired", "field": "fieldManager",
                                    "message": "Required value: is required for apply patch"}]})
            if not isinstance(body, dict):
                raise bad_request("apply patch body must be an object")
            if cur is None:
                if t.subresource:
                    raise not_found(t.resource.name, t.resource.group, t.name)
                doc = self._check_body(t, body)
                doc["metadata"]["name"] = t.name
                sub = Request("POST", req.path, req.query, req.headers, _dumps(doc), req.user)
                return self._create(sub, t)
            base = self.doc(cur)
            new = patches.strategic_merge(base, body, t.resource.kind)
            return self._update(req, t, new, patch=True)
        if cur is None:
            raise not_found(t.resource.name, t.resource.group, t.name)
        base = self.doc(cur)
        if ct == "application/json-patch+json":
            new = patches.json_patch(base, body)
        elif ct == "application/merge-patch+json":
            new = patches.merge_patch(base, body)
        else:
            if not isinstance(body, dict):
                raise bad_request("strategic merge patch must be an object")
            new = patches.strategic_merge(base, body, t.resource.kind)
        if isinstance(new, dict) and isinstance(new.get("metadata"), dict):
            # a patch carrying resourceVersion is a precondition (handlers/patch.go)
            prv = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
            if prv and str(prv) != cur.metadata.resource_version:
                raise conflict(t.resource.name, t.resource.group, t.name, MODIFIED)
        return self._update(req, t, new, patch=True)

    # --- delete ---------------------------------------------------------------------------
    def _delete_options(self, req: Request) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if req.body.strip():
            body = self._body(req)
            if isinstance(body, dict):
                opts.update(body)
        for k in ("gracePeriodSeconds", "propagationPolicy"):
            if req.param(k):
                opts[k] = req.param(k)
        if "gracePeriodSeconds" in opts and opts["gracePeriodSeconds"] is not None:
            try:
                opts["gracePeriodSeconds"] = int(opts["gracePeriodSeconds"])
            except (TypeError, ValueError):
                raise bad_request("gracePeriodSeconds must be an integer") from None
        pol = opts.get("propagationPolicy")
        if pol not in (None, "Background", "Foreground", "Orphan"):
            raise bad_request(f"propagationPolicy: Unsupported value: {pol!r}")
        return opts

    def _delete(self, req: Request, t: Target) -> Response:
        if t.subresource:
            raise method_not_allowed("delete", t.resource.name, t.resource.group)
        opts = self._delete_options(req)
        dry = self._dry_run(req, "DeleteOptions")
        cur = self._require(t)
        pre = opts.get("preconditions") or {}
        if isinstance(pre, dict):
            if pre.get("uid") and pre["uid"] != cur.metadata.uid:
                raise conflict(t.resource.name, t.resource.group, t.name,
                               f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                               f"object meta: {cur.metadata.uid}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != cur.metadata.resource_version:
                raise conflict(t.resource.name, t.resource.group, t.name,
                               "Precondition failed: ResourceVersion in precondition: "
                               f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                               f"{cur.metadata.resource_version}")
        if t.resource.kind == "Namespace" and t.name in _SYSTEM_NAMESPACES:
            raise forbidden("namespaces", "", t.name, "this namespace may not be deleted")
        if dry:
            return Response(200, _dumps(self.doc(cur) if cur.kind == "Pod"
                                        else success(t.resource.name, t.resource.group, t.name,
                                                     cur.metadata.uid)))
        return Response(200, _dumps(self._do_delete(t, cur, opts)))

    def _do_delete(self, t: Target, cur: Any, opts: dict[str, Any]) -> Any:
        now = self.now()
        if cur.kind == "Pod":
            grace = opts.get("gracePeriodSeconds")
            self.cluster.delete_pod(cur.key, now, None if grace is None else float(grace))
            after = self.store.get("Pod", cur.metadata.namespace, cur.metadata.name)
            return self.doc(after if after is not None else cur)
        if cur.kind == "Namespace":
            for res_kind in ("Pod", "Service", "Deployment", "ReplicaSet", "StatefulSet",
                             "DaemonSet", "Job", "ConfigMap", "Secret", "Ingress", "EndpointSlice"):
                for o in list(self.store.list(res_kind, cur.metadata.name)):
                    if self.store.get(res_kind, o.metadata.namespace, o.metadata.name) is None:
                        continue
                    if res_kind == "Pod":
                        self.cluster.delete_pod(o.key, now, 0.0)
                    else:
                        self.cluster.delete(res_kind, o.metadata.key, now)
            self.cluster.delete("Namespace", cur.metadata.name, now)
            doc = self.doc(cur)
            doc["status"] = {"phase": "Terminating"}
            return doc
        if opts.get("propagationPolicy") == "Orphan":
            for dep in self.store.owned_by(cur.metadata.uid):
                refs = tuple(r for r in dep.metadata.owner_references if r.uid != cur.metadata.uid)
                self.cluster.apply(evolve(dep, metadata=evolve(dep.metadata, owner_references=refs)),
                                   now)
        self.cluster.delete(cur.kind, cur.metadata.key, now)
        return success(t.resource.name, t.resource.group, t.name, cur.metadata.uid)

    def _delete_collection(self, req: Request, t: Target) -> Response:
        opts = self._delete_options(req)
        dry = self._dry_run(req, "DeleteOptions")
        labels, fields = self._selectors(req, t)
        objs = self._matching(t, labels, fields)
        items = []
        for o in objs:
            if self.store.get(o.kind, o.metadata.namespace, o.metadata.name) is None:
                continue
            d = self.doc(o)
            if not dry:
                self._do_delete(Target(t.resource, o.metadata.namespace, o.metadata.name, "",
                                       "delete"), o, opts)
            items.append(d)
        return Response(200, _dumps({"kind": f"{t.resource.kind}List",
                                     "apiVersion": t.resource.api_version,
                                     "metadata": {"resourceVersion": str(self.store.resource_version)},
                                     "items": items}))

    # --- subresources ---------------------------------------------------------------------
    def _scale_doc(self, obj: Any) -> dict[str, Any]:
        from knet.printers import _selector_str

        doc = self.doc(obj)
        m = doc["metadata"]
        status = doc.get("status") or {}
        sel = _selector_str(obj.selector)
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                               "creationTimestamp") if k in m},
                "spec": {"replicas": obj.replicas},
                "status": {"replicas": int(status.get("replicas", 0)),
                           "selector": "" if sel == "<none>" else sel}}

    def _scale(self, req: Request, t: Target) -> Response:
        obj = self._require(t)
        if t.verb == "get":
            return Response(200, _dumps(self._scale_doc(obj)))
        if t.verb not in ("update", "patch"):
            raise method_not_allowed(t.verb, t.resource.name, t.resource.group)
        base = self._scale_doc(obj)
        body = self._body(req)
        if t.verb == "update":
            new = body
        else:
            ct = req.headers.get("content-type", "").split(";")[0].strip().lower()
            if ct == "application/json-patch+json":
                new = patches.json_patch(base, body)
            elif ct in PATCH_TYPES:
                new = patches.merge_patch(base, body) if isinstance(body, dict) else body
            else:
                raise unsupported_media(list(PATCH_TYPES))
        if not isinstance(new, dict):
            raise bad_request("invalid Scale object")
        spec = new.get("spec") or {}
        replicas = spec.get("replicas", 0) if isinstance(spec, dict) else None
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise bad_request("Scale.spec.replicas must be an integer")
        if replicas < 0:
            raise invalid("Scale", "autoscaling", t.name, [
                ("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")])
        nrv = (new.get("metadata") or {}).get("resourceVersion")
        if t.verb == "update" and nrv and int(nrv) < int(obj.metadata.resource_version):
            raise conflict(t.resource.name, t.resource.group, t.name, MODIFIED)
        if self._dry_run(req, "UpdateOptions"):
            base["spec"]["replicas"] = replicas
            return Response(200, _dumps(base))
        if replicas != obj.replicas:
            self.cluster.scale(obj.kind, obj.metadata.key, replicas, self.now())
        return Response(200, _dumps(self._scale_doc(self._require(t))))

    def _stream(self, req: Request, t: Target) -> Response:
        pod = self._require(t)
        if t.subresource == "log":
            cs = [c.name for c in pod.spec.containers]
            container = req.param("container")
            if not container:
                if len(cs) != 1:
                    raise bad_request(f"a container name must be specified for pod {t.name}, "
                                      f"choose one of: [{' '.join(cs)}]")
                container = cs[0]
            init = [c.name for c in pod.spec.init_containers]
            if container not in cs and container not in init:
                raise bad_request(f"container {container} is not valid for pod {t.name}")
            return Response(200, b"", "text/plain", stream={
                "kind": "log", "pod": pod.key, "container": container,
                "follow": _truthy(req.param("follow")), "previous": _truthy(req.param("previous")),
                "tailLines": req.param("tailLines"), "timestamps": _truthy(req.param("timestamps")),
                "limitBytes": req.param("limitBytes")})
        if "upgrade" not in req.headers.get("connection", "").lower():
            raise bad_request("Upgrade request required")
        if pod.status.phase != "Running":
            raise bad_request(f"pod {t.name} is not running (phase {pod.status.phase})")
        info: dict[str, Any] = {"kind": t.subresource, "pod": pod.key,
                                "container": req.param("container") or
                                (pod.spec.containers[0].name if pod.spec.containers else ""),
                                "command": req.params.get("command", []),
                                "stdin": _truthy(req.param("stdin")),
                                "stdout": _truthy(req.param("stdout")),
                                "stderr": _truthy(req.param("stderr")),
                                "tty": _truthy(req.param("tty")),
                                "ports": [p for v in req.params.get("ports", []) for p in v.split(",") if p]}
        return Response(101, b"", stream=info)

    def _pod_post(self, req: Request, t: Target) -> Response:
        if t.verb != "create":
            raise method_not_allowed(t.verb, t.resource.name, t.resource.group)
        pod = self._require(t)
        body = self._body(req)
        if t.subresource == "binding":
            node = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
            if not node:
                raise invalid("Binding", "", t.name, [("target.name", "Required value")])
            if pod.spec.node_name:
                raise conflict("pods/binding", "", t.name,
                               f"pod {t.name} is already assigned to node \"{pod.spec.node_name}\"")
            raise ApiError(409, "Conflict", "knet's scheduler binds pods itself")
        # eviction
        opts = (body or {}).get("deleteOptions") if isinstance(body, dict) else None
        if self._dry_run(req, "CreateOptions"):
            return Response(201, _dumps(success("pods", "", t.name, pod.metadata.uid)))
        grace = (opts or {}).get("gracePeriodSeconds") if isinstance(opts, dict) else None
        g = None if grace is None else float(grace)
        evict = getattr(self.cluster, "evict", None)
        if evict is None:
            self.cluster.delete_pod(pod.key, self.now(), g)
        else:  # PodDisruptionBudgets decide (knet.control.disruption)
            res = evict(pod.key, self.now(), g)
            if not res.ok:
                details: dict[str, Any] = {}
                if res.code == 429:
                    details = {"causes": [{"reason": "DisruptionBudget", "message": m}
                                          for m in res.causes]}
                    raise ApiError(429, "TooManyRequests", res.message, details)
                raise ApiError(res.code, res.reason, res.message, details or None)
        return Response(201, _dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                     "status": "Success"}))

    def _events(self, req: Request, t: Target) -> Response:
        if t.verb == "list":
            kind = "EventList"
            return Response(200, _dumps({"kind": kind, "apiVersion": t.resource.api_version,
                                         "metadata": {"resourceVersion": str(self.store.resource_version)},
                                         "items": []}))
        if t.verb == "watch":
            w = Watch(self, t, (), (), False, "Metadata", False, None)
            self.watches.add(w)
            return Response(200, b"", JSON, watch=w)
        if t.verb == "get":
            raise not_found(t.resource.name, t.resource.group, t.name)
        if t.verb == "create":  # recorded nowhere: knet's control plane keeps no Events
            doc = self._body(req)
            return Response(201, _dumps(doc))
        raise method_not_allowed(t.verb, t.resource.name, t.resource.group)


def _truthy(v: str) -> bool:
    return v.lower() in ("1", "true", "yes")
