"""Discovery documents (apiserver ``pkg/endpoints/discovery``, v0.32.13) and the minimal
OpenAPI v3 that kubectl's ``--validate=strict`` needs (reference §4.3).

Pure functions of the resource table: the documents never change while a server runs, so the
adapter may cache the bytes and their ETags.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from knet.api.resources import GROUPS, Resource, in_group_version

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def _storage_hash(r: Resource) -> str:
    import base64

    h = hashlib.sha256(f"{r.group_version}/{r.kind}".encode()).digest()[:8]
    return base64.b64encode(h).decode()


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group(name: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in GROUPS[name]]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g) for g in GROUPS if g]}


def api_group(name: str) -> dict[str, Any] | None:
    if not name or name not in GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    rs = in_group_version(group, version)
    if not rs:
        return None
    out: list[dict[str, Any]] = []
    for r in rs:
        d: dict[str, Any] = {"name": r.name, "singularName": r.singular, "namespaced": r.namespaced,
                             "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            d["shortNames"] = list(r.short_names)
        if r.categories:
            d["categories"] = list(r.categories)
        d["storageVersionHash"] = _storage_hash(r)
        out.append(d)
        for s in r.subresources:
            sd: dict[str, Any] = {"name": f"{r.name}/{s.name}", "singularName": "",
                                  "namespaced": r.namespaced}
            if s.group is not None:
                sd["group"] = s.group
                sd["version"] = s.version
            sd["kind"] = s.kind
            sd["verbs"] = list(s.verbs)
            out.append(sd)
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": out}


def _aggregated_resource(r: Resource) -> dict[str, Any]:
    d: dict[str, Any] = {
        "resource": r.name,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular, "verbs": list(r.verbs)}
    if r.short_names:
        d["shortNames"] = list(r.short_names)
    if r.categories:
        d["categories"] = list(r.categories)
    if r.subresources:
        d["subresources"] = [
            {"subresource": s.name,
             "responseKind": {"group": s.group if s.group is not None else r.group,
                              "version": s.version or r.version, "kind": s.kind},
             "verbs": list(s.verbs)}
            for s in r.subresources]
    return d


def aggregated(core: bool) -> dict[str, Any]:
    """``APIGroupDiscoveryList`` for ``/api`` (core only) or ``/apis`` (every named group)."""
    items = []
    for g, versions in GROUPS.items():
        if bool(g) == core:
            continue
        items.append({"metadata": {"name": g, "creationTimestamp": None},
                      "versions": [{"version": v, "freshness": "Current",
                                    "resources": [_aggregated_resource(r)
                                                  for r in in_group_version(g, v)]}
                                   for v in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}


def etag(body: bytes) -> str:
    return '"' + hashlib.sha512(body).hexdigest() + '"'


# --- OpenAPI v3 -----------------------------------------------------------------------------

def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_root() -> dict[str, Any]:
    paths = {}
    for g, versions in GROUPS.items():
        for v in versions:
            p = _gv_path(g, v)
            doc = json.dumps(openapi_group_version(g, v), sort_keys=True).encode()
            h = hashlib.sha512(doc).hexdigest()[:32].upper()
            paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"}
    return {"paths": paths}


def openapi_group_version(group: str, version: str) -> dict[str, Any] | None:
    """Per-kind PATCH operations with ``x-kubernetes-group-version-kind`` and a
    ``fieldValidation`` parameter; no ``strategic-merge-patch+json`` request body, so kubectl
    computes client-side apply patches from its compiled-in types (reference ambiguity 3)."""
    rs = in_group_version(group, version)
    if not rs:
        return None
    paths: dict[str, Any] = {}
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
    for r in rs:
        base = "/" + _gv_path(group, version)
        coll = f"{base}/namespaces/{{namespace}}/{r.name}" if r.namespaced else f"{base}/{r.name}"
        gvk = {"group": group, "version": version, "kind": r.kind}
        op = {"operationId": f"patch{r.kind}", "parameters": params,
              "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
              "requestBody": {"content": {"application/json-patch+json": {},
                                          "application/merge-patch+json": {},
                                          "application/apply-patch+yaml": {}}},
              "responses": {"200": {"description": "OK"}}}
        post = {"operationId": f"create{r.kind}", "parameters": params,
                "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk,
                "responses": {"201": {"description": "Created"}}}
        put = {**post, "operationId": f"replace{r.kind}", "x-kubernetes-action": "put"}
        paths[coll] = {"post": post}
        paths[coll + "/{name}"] = {"patch": op, "put": put}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.13"},
            "paths": paths}
