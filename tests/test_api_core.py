"""The API server core (knet.api.core) over the real control plane: pure, no sockets.

Every request goes through ``ApiCore.handle`` exactly as the HTTPS adapter sends it; the
answers are checked against the reference's formats (Status errors, Tables, watch lines)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

import knet
from knet.api.core import TABLE, ApiCore, Request, Response, User
from knet.api.discovery import AGGREGATED

ROOT = Path(__file__).resolve().parents[1]
ADMIN = User("kubernetes-admin", ("system:masters", "system:authenticated"))
DEP = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
       "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "knet/echo:1"}]}}}}


@pytest.fixture()
def core() -> ApiCore:
    c = knet.load([str(ROOT / "topologies" / "runtime-basic.yaml")], seed=7)
    return ApiCore(c)


def call(core: ApiCore, method: str, path: str, query: str = "", body: Any = None,
         user: User | None = ADMIN, **headers: str) -> Response:
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    if raw and "content-type" not in hdrs:
        hdrs["content-type"] = "application/json"
    return core.handle(Request(method, path, query, hdrs, raw, user))


def test_version_health_and_anonymous(core: ApiCore) -> None:
    r = call(core, "GET", "/version", user=None)
    assert r.status == 200 and r.json()["minor"] == "32" and r.json()["gitVersion"] == "v1.32.13"
    assert call(core, "GET", "/healthz", user=None).body == b"ok"
    r = call(core, "GET", "/api/v1/pods", user=None)
    assert r.status == 401
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def test_discovery_legacy_and_aggregated(core: ApiCore) -> None:
    r = call(core, "GET", "/api/v1")
    res = {x["name"]: x for x in r.json()["resources"]}
    assert res["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True,
                                    "group": "policy", "version": "v1", "kind": "Eviction",
                                    "verbs": ["create"]}
    assert res["pods"]["shortNames"] == ["po"] and res["pods"]["categories"] == ["all"]
    accept = f"{AGGREGATED},application/json"
    r = call(core, "GET", "/apis", accept=accept)
    assert r.content_type == AGGREGATED
    apps = next(i for i in r.json()["items"] if i["metadata"]["name"] == "apps")
    dep = next(x for x in apps["versions"][0]["resources"] if x["resource"] == "deployments")
    assert {"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1",
                                                     "kind": "Scale"},
            "verbs": ["get", "patch", "update"]} in dep["subresources"]
    etag = dict(r.headers)["ETag"]
    assert call(core, "GET", "/apis", accept=accept, if_none_match=etag).status == 304
    assert call(core, "GET", "/apis").json()["kind"] == "APIGroupList"
    root = call(core, "GET", "/openapi/v3").json()["paths"]
    url = root["apis/apps/v1"]["serverRelativeURL"]
    doc = call(core, "GET", url.split("?")[0], url.split("?")[1]).json()
    op = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1",
                                                     "kind": "Deployment"}
    assert any(p["name"] == "fieldValidation" for p in op["parameters"])


def test_list_table_selectors_and_chunks(core: ApiCore) -> None:
    r = call(core, "GET", "/api/v1/namespaces/default/pods", "limit=500", accept=TABLE)
    t = r.json()
    assert t["kind"] == "Table"
    names = [c["name"] for c in t["columnDefinitions"]]
    assert names == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node",
                     "Nominated Node", "Readiness Gates"]
    assert [c["priority"] for c in t["columnDefinitions"]] == [0] * 5 + [1] * 4
    row = t["rows"][0]
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["cells"][2] == "Running"
    r = call(core, "GET", "/api/v1/pods", "labelSelector=app%3Decho&fieldSelector=status.phase%3DRunning")
    items = r.json()["items"]
    assert len(items) == 3 and all("kind" not in i for i in items)
    assert all(i["metadata"]["labels"]["app"] == "echo" for i in items)
    r = call(core, "GET", "/api/v1/pods", "labelSelector=app+notin+(echo),k8s-app")
    assert {i["metadata"]["labels"]["k8s-app"] for i in r.json()["items"]} >= {"kube-dns"}
    r = call(core, "GET", "/api/v1/pods", "fieldSelector=spec.bogus%3D1")
    assert (r.status, r.json()["message"]) == (400, "field label not supported: spec.bogus")
    # chunking: limit + continue walk every pod exactly once
    seen: list[str] = []
    q = "limit=4"
    while True:
        d = call(core, "GET", "/api/v1/pods", q).json()
        seen += [f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in d["items"]]
        if not d["metadata"].get("continue"):
            break
        assert d["metadata"]["remainingItemCount"] > 0
        q = "limit=4&continue=" + d["metadata"]["continue"]
    assert seen == sorted(seen) and len(seen) == len(core.store.list("Pod"))
    assert call(core, "GET", "/api/v1/pods", "continue=%%%").status == 400


def test_create_conflicts_and_validation(core: ApiCore) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}}
    r = call(core, "POST", "/api/v1/namespaces/default/configmaps", body=cm)
    assert r.status == 201
    created = r.json()
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    r = call(core, "POST", "/api/v1/namespaces/default/configmaps", body=cm)
    assert (r.status, r.json()["reason"], r.json()["message"]) == (
        409, "AlreadyExists", 'configmaps "cfg" already exists')
    # stale update → 409 Conflict; fresh one → 200
    created["data"] = {"a": "2"}
    assert call(core, "PUT", "/api/v1/namespaces/default/configmaps/cfg", body=created).status == 200
    r = call(core, "PUT", "/api/v1/namespaces/default/configmaps/cfg",
             body={**created, "metadata": {**created["metadata"], "resourceVersion": "1"}})
    assert r.status == 409 and r.json()["message"] == (
        'Operation cannot be fulfilled on configmaps "cfg": the object has been modified; '
        "please apply your changes to the latest version and try again")
    # 422 with causes, nothing stored
    bad = json.loads(json.dumps(DEP))
    bad["spec"]["replicas"] = -1
    before = core.store.resource_version
    r = call(core, "POST", "/apis/apps/v1/namespaces/default/deployments", body=bad)
    assert r.status == 422
    assert r.json()["message"] == ('Deployment.apps "web" is invalid: spec.replicas: Invalid value: '
                                   "-1: must be greater than or equal to 0")
    assert r.json()["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                              "message": "Invalid value: -1: must be greater than "
                                                         "or equal to 0"}]
    assert core.store.resource_version == before
    # namespace must exist; body namespace must match the URL's
    r = call(core, "POST", "/api/v1/namespaces/nope/configmaps", body=cm)
    assert (r.status, r.json()["message"]) == (404, 'namespaces "nope" not found')
    r = call(core, "POST", "/api/v1/namespaces/default/configmaps",
             body={**cm, "metadata": {"name": "x", "namespace": "kube-system"}})
    assert r.status == 400 and "does not match the namespace" in r.json()["message"]
    # generateName
    r = call(core, "POST", "/api/v1/namespaces/default/configmaps",
             body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}})
    name = r.json()["metadata"]["name"]
    assert r.status == 201 and name.startswith("gen-") and len(name) == 9


def test_field_validation_and_dry_run(core: ApiCore) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "v"}, "bogus": 1}
    r = call(core, "POST", "/api/v1/namespaces/default/configmaps", "fieldValidation=Strict", body=cm)
    assert r.status == 400 and r.json()["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "bogus"')
    r = call(core, "POST", "/api/v1/namespaces/default/configmaps", body=cm)
    assert r.status == 201 and ("Warning", '299 - "unknown field \\"bogus\\""') in r.headers or \
        ("Warning", '299 - "unknown field "bogus""') in r.headers
    r = call(core, "POST", "/api/v1/namespaces/default/configmaps", "dryRun=All",
             body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}})
    assert r.status == 201 and core.store.get("ConfigMap", "default", "dry") is None
    r = call(core, "POST", "/api/v1/namespaces/default/configmaps", "dryRun=x", body=cm)
    assert r.status == 422 and r.json()["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"x"}: '
        'supported values: "All"')


def test_patches_flow_into_the_cluster(core: ApiCore) -> None:
    assert call(core, "POST", "/apis/apps/v1/namespaces/default/deployments", body=DEP).status == 201
    base = "/apis/apps/v1/namespaces/default/deployments/web"
    r = call(core, "PATCH", base, body={"spec": {"replicas": 3}},
             content_type="application/merge-patch+json")
    assert r.status == 200 and r.json()["spec"]["replicas"] == 3
    assert len([p for p in core.store.list("Pod", "default") if p.metadata.labels.get("app") == "web"]) == 3
    r = call(core, "PATCH", base, body=[{"op": "replace", "path": "/spec/replicas", "value": 1}],
             content_type="application/json-patch+json")
    assert r.status == 200 and r.json()["spec"]["replicas"] == 1
    r = call(core, "PATCH", base, body=[{"op": "test", "path": "/spec/replicas", "value": 9}],
             content_type="application/json-patch+json")
    assert r.status == 422
    # strategic merge: the container list merges by name (set image)
    r = call(core, "PATCH", base, body={"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "knet/echo:2"}]}}}},
        content_type="application/strategic-merge-patch+json")
    c = r.json()["spec"]["template"]["spec"]["containers"]
    assert c == [{"name": "web", "image": "knet/echo:2"}]
    assert r.json()["metadata"]["generation"] == 4
    rss = [o for o in core.store.list("ReplicaSet", "default") if o.metadata.name.startswith("web-")]
    assert len(rss) == 2  # a rolling update made a second ReplicaSet
    # scale subresource (kubectl scale)
    r = call(core, "PATCH", base + "/scale", body={"spec": {"replicas": 2}},
             content_type="application/merge-patch+json")
    assert r.json()["kind"] == "Scale" and r.json()["spec"]["replicas"] == 2
    assert r.json()["status"]["selector"] == "app=web"
    assert call(core, "PATCH", base, body={}, content_type="text/plain").status == 415
    # server-side apply needs a field manager
    r = call(core, "PATCH", base, body=DEP, content_type="application/apply-patch+yaml")
    assert r.status == 422 and "fieldManager: Required value" in r.json()["message"]


def test_delete_pod_is_graceful_and_namespaces_protected(core: ApiCore) -> None:
    pod = next(p for p in core.store.list("Pod", "default") if p.metadata.labels.get("app") == "echo")
    r = call(core, "DELETE", f"/api/v1/namespaces/default/pods/{pod.name}",
             body={"propagationPolicy": "Background"})
    assert r.status == 200 and r.json()["metadata"]["deletionTimestamp"]
    t = call(core, "GET", f"/api/v1/namespaces/default/pods/{pod.name}", accept=TABLE).json()
    assert t["rows"][0]["cells"][2] == "Terminating"
    r = call(core, "DELETE", "/api/v1/namespaces/default")
    assert (r.status, r.json()["message"]) == (
        403, 'namespaces "default" is forbidden: this namespace may not be deleted')
    r = call(core, "DELETE", "/api/v1/namespaces/default/configmaps/none")
    assert (r.status, r.json()["details"]) == (404, {"name": "none", "kind": "configmaps"})


def test_watch_replay_selectors_and_expiry(core: ApiCore) -> None:
    rv = core.store.resource_version
    r = call(core, "GET", "/api/v1/namespaces/default/configmaps",
             f"watch=true&resourceVersion={rv}&labelSelector=team%3Da")
    w = r.watch
    assert w is not None
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"team": "a"}}}
    created = call(core, "POST", "/api/v1/namespaces/default/configmaps", body=cm).json()
    created["metadata"]["labels"] = {"team": "b"}
    call(core, "PUT", "/api/v1/namespaces/default/configmaps/c", body=created)
    events = [json.loads(x) for x in w.drain()]
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]  # left the selector
    assert events[0]["object"]["kind"] == "ConfigMap"
    w.close()
    # resuming from a version inside the window replays; older than the window is 410
    r = call(core, "GET", "/api/v1/namespaces/default/configmaps", f"watch=true&resourceVersion={rv}")
    assert [json.loads(x)["type"] for x in r.watch.drain()] == ["ADDED", "MODIFIED"]  # type: ignore[union-attr]
    small = ApiCore(core.cluster, history=2)
    for i in range(3):
        call(small, "POST", "/api/v1/namespaces/default/configmaps",
             body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"z{i}"}})
    r = call(small, "GET", "/api/v1/configmaps", f"watch=true&resourceVersion={rv}")
    (line,) = r.watch.drain()  # type: ignore[union-attr]
    ev = json.loads(line)
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 410
    assert ev["object"]["reason"] == "Expired" and ev["object"]["message"].startswith(
        f"too old resource version: {rv} (")


def test_workload_status_events(core: ApiCore) -> None:
    r = call(core, "GET", "/apis/apps/v1/namespaces/default/deployments",
             "watch=true&fieldSelector=metadata.name%3Decho&resourceVersion=0")
    w = r.watch
    assert w is not None
    first = [json.loads(x) for x in w.drain()]
    assert first[0]["type"] == "ADDED" and first[0]["object"]["status"]["readyReplicas"] == 3
    call(core, "PATCH", "/apis/apps/v1/namespaces/default/deployments/echo/scale",
         body={"spec": {"replicas": 1}}, content_type="application/merge-patch+json")
    core.flush()
    evs = [json.loads(x) for x in w.drain()]
    assert evs and all(e["type"] == "MODIFIED" for e in evs)
    assert evs[-1]["object"]["spec"]["replicas"] == 1


def test_protobuf_bodies_decode() -> None:
    from knet.api import protobuf

    def field(n: int, v: bytes) -> bytes:
        return bytes([n << 3 | 2, len(v)]) + v

    attrs = field(1, b"shop") + field(2, b"list") + field(5, b"pods")
    raw = field(2, field(1, attrs))
    env = protobuf.MAGIC + field(1, field(1, b"authorization.k8s.io/v1") +
                                 field(2, b"SelfSubjectAccessReview")) + field(2, raw)
    doc = protobuf.decode(env)
    assert doc["spec"]["resourceAttributes"] == {"namespace": "shop", "verb": "list",
                                                 "resource": "pods"}
    assert protobuf.decode(protobuf.MAGIC + field(1, field(2, b"DeleteOptions")) +
                           field(2, b"\x08\x05" + field(4, b"Foreground"))) == {
        "apiVersion": "", "kind": "DeleteOptions", "gracePeriodSeconds": 5,
        "propagationPolicy": "Foreground"}


@pytest.mark.parametrize("body", [b"\x00\xff", b"{", b"[1,2]", b"null", b'{"metadata": 5}',
                                  b'{"kind": "Pod", "metadata": {"name": 5}, "spec": []}',
                                  base64.b64encode(b"x" * 50)])
def test_malformed_bodies_are_status_errors(core: ApiCore, body: bytes) -> None:
    for path in ("/api/v1/namespaces/default/pods", "/api/v1/namespaces/default/configmaps"):
        r = call(core, "POST", path, body=body)
        assert 400 <= r.status < 500 and r.json()["kind"] == "Status"


ALICE = User("alice", ("dev", "system:authenticated"))


def test_rbac_roles_bindings_and_escalation(core: ApiCore) -> None:
    r = call(core, "GET", "/api/v1/namespaces/default/pods", user=ALICE)
    assert (r.status, r.json()["message"]) == (403, (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the '
        'namespace "default"'))
    assert call(core, "GET", "/apis", user=ALICE).status == 200  # system:discovery
    view = call(core, "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/view").json()
    assert {"verbs": ["get", "list", "watch"], "apiGroups": [""]} .items() <= \
        next(r for r in view["rules"] if "pods" in r.get("resources", [])).items()
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "alice-view"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "view"},
               "subjects": [{"kind": "User", "name": "alice"}]}
    rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings"
    assert call(core, "POST", rb, body=binding).status == 201
    assert call(core, "GET", "/api/v1/namespaces/default/pods", user=ALICE).status == 200
    assert call(core, "GET", "/api/v1/namespaces/kube-system/pods", user=ALICE).status == 403
    assert call(core, "GET", "/api/v1/namespaces/default/secrets", user=ALICE).status == 403
    # alice may not grant herself edit (she holds neither its rules nor "bind")
    mine = {**binding, "metadata": {"name": "alice-edit"},
            "roleRef": {**binding["roleRef"], "name": "edit"}}
    r = call(core, "POST", rb, body=mine, user=ALICE)
    assert r.status == 403  # creating rolebindings is not in view at all
    admin_role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                  "metadata": {"name": "rb-writer"},
                  "rules": [{"apiGroups": ["rbac.authorization.k8s.io"],
                             "resources": ["rolebindings"], "verbs": ["create"]}]}
    roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles"
    assert call(core, "POST", roles, body=admin_role).status == 201
    call(core, "POST", rb, body={**binding, "metadata": {"name": "alice-rb"},
                                 "roleRef": {**binding["roleRef"], "kind": "Role",
                                             "name": "rb-writer"}})
    r = call(core, "POST", rb, body=mine, user=ALICE)
    assert r.status == 403
    msg = r.json()["message"]
    assert msg.startswith('rolebindings.rbac.authorization.k8s.io "alice-edit" is forbidden: user '
                          '"alice" (groups=["dev" "system:authenticated"]) is attempting to grant '
                          "RBAC permissions not currently held:\n{APIGroups:[")
    # a binding to view (which she holds) is fine
    ok = {**binding, "metadata": {"name": "alice-view-2"}}
    assert call(core, "POST", rb, body=ok, user=ALICE).status == 201
    t = call(core, "GET", rb + "/alice-view-2", accept=TABLE).json()
    assert [c["name"] for c in t["columnDefinitions"]] == [
        "Name", "Role", "Age", "Users", "Groups", "Serviceaccounts"]
    assert t["rows"][0]["cells"][:2] == ["alice-view-2", "ClusterRole/view"]
    assert t["rows"][0]["cells"][3] == "alice"
    bad = {**binding, "metadata": {"name": "x"}, "roleRef": {"kind": "Role", "name": ""}}
    r = call(core, "POST", rb, body=bad)
    assert r.status == 422 and {c["field"] for c in r.json()["details"]["causes"]} == {
        "roleRef.apiGroup", "roleRef.name"}


def test_access_reviews(core: ApiCore) -> None:
    ssar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "list",
                                            "resource": "pods"}}}
    url = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    r = call(core, "POST", url, body=ssar, user=ALICE)
    assert r.status == 201 and r.json()["status"] == {"allowed": False}
    r = call(core, "POST", url, body=ssar)
    assert r.json()["status"]["allowed"] is True
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": "bob", "groups": ["system:masters"],
                    "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}}
    r = call(core, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=sar)
    assert r.json()["status"]["allowed"] is True
    r = call(core, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
             body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
             user=ALICE)
    assert r.json()["status"]["userInfo"] == {"username": "alice",
                                              "groups": ["dev", "system:authenticated"]}
    # ServiceAccount controller: every namespace gets "default"
    call(core, "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": "shop"}})
    core.flush()
    assert call(core, "GET", "/api/v1/namespaces/shop/serviceaccounts/default").status == 200


def test_eviction_honours_pod_disruption_budgets(tmp_path: Path) -> None:
    pdb = tmp_path / "pdb.yaml"
    pdb.write_text("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: echo\n"
                   "  namespace: default\nspec:\n  minAvailable: 3\n  selector:\n"
                   "    matchLabels: {app: echo}\n")
    c = knet.load([str(ROOT / "topologies" / "runtime-basic.yaml"), str(pdb)], seed=7)
    core = ApiCore(c)
    pod = next(p for p in c.store.list("Pod", "default") if p.metadata.labels.get("app") == "echo")
    body = {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": "default"}}
    r = call(core, "POST", f"/api/v1/namespaces/default/pods/{pod.name}/eviction", body=body)
    assert r.status == 429 and r.json()["reason"] == "TooManyRequests"
    assert r.json()["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert r.json()["details"]["causes"] == [{"reason": "DisruptionBudget", "message": (
        "The disruption budget echo needs 3 healthy pods and has 3 currently")}]
    assert not c.store.get("Pod", "default", pod.name).terminating
    other = next(p for p in c.store.list("Pod", "default") if p.metadata.labels.get("app") != "echo")
    r = call(core, "POST", f"/api/v1/namespaces/default/pods/{other.name}/eviction",
             body={**body, "metadata": {"name": other.name}})
    assert r.status == 201 and c.store.get("Pod", "default", other.name).terminating
