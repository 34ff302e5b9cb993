"""Issue 12 items 5 and 6: the built-in ingress-nginx claims what kind's install claims, and
canary routing follows balancer.lua's header → cookie → weight order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ingress_factory import NGINX_CLASS, World, ingress, path

from knet.cli import main
from knet.control import Cluster, ingressnginx
from knet.fabric import virtual_time
from knet.ingress import ControllerConfig
from knet.manifests import read, read_text
from knet.model import IngressClass, ObjectMeta
from knet.runtime import run

DATA = Path(__file__).resolve().parent / "data" / "inputs"
KUBECTL = str(DATA / "kubectl-create-ingress.yaml")
A = "nginx.ingress.kubernetes.io/"


def route(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["route", *argv, "-o", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_controller_flags_parsed_like_go_bool_flags() -> None:
    assert ControllerConfig.from_args(ingressnginx.CONTROLLER_ARGS).watch_ingress_without_class
    assert ControllerConfig.from_args(["--watch-ingress-without-class"]).watch_ingress_without_class
    c = ControllerConfig.from_args(["--watch-ingress-without-class=false", "--ingress-class=x",
                                    "--controller-class=example.com/c"])
    assert (c.watch_ingress_without_class, c.ingress_class, c.controller) == (
        False, "x", "example.com/c")


def test_builtin_install_creates_ingress_class_nginx_unless_the_user_has_one() -> None:
    state = Cluster.from_input(read([KUBECTL]))
    objs = ingressnginx.builtin_objects(state)
    classes = [o for o in objs if o.kind == "IngressClass"]
    assert [(c.metadata.name, c.controller, c.is_default) for c in classes] == [
        ("nginx", "k8s.io/ingress-nginx", False)]
    dep = next(o for o in objs if o.kind == "Deployment")
    args = dep.template["spec"]["containers"][0]["args"]
    assert "--watch-ingress-without-class=true" in args
    own = read_text("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\n"
                    "spec: {controller: k8s.io/ingress-nginx}\n", "own.yaml")
    state2 = Cluster.from_input(read([KUBECTL]))
    for o in own.objects:
        state2.apply(o)
    assert not [o for o in ingressnginx.builtin_objects(state2) if o.kind == "IngressClass"]


@pytest.mark.parametrize("host", ["web.example.com", "classless.example.com"])
def test_route_kubectl_created_ingress_without_ingressclass_object(capsys, host) -> None:
    d = route(capsys, "-f", KUBECTL, "--host", host, "--path", "/")
    assert (d["status"], d["service"]) == (200, "default/web:80")


def test_default_class_of_another_controller_takes_classless_ingresses_away() -> None:
    # admission fills ingressClassName from the single default class; that class is not ours
    other = IngressClass(ObjectMeta(name="other", annotations={
        "ingressclass.kubernetes.io/is-default-class": "true"}), controller="example.com/other")
    cfg = ControllerConfig.from_args(ingressnginx.CONTROLLER_ARGS)
    w = World(ingress("i", [("h.com", [path("/", "web")])], cls=None),
              classes=(NGINX_CLASS, other), config=cfg).svc("web")
    assert w.route("h.com", "/").status == 404
    ours = IngressClass(ObjectMeta(name="nginx", annotations={
        "ingressclass.kubernetes.io/is-default-class": "true"}), controller="k8s.io/ingress-nginx")
    w = World(ingress("i", [("h.com", [path("/", "web")])], cls=None), classes=(ours,)).svc("web")
    assert w.route("h.com", "/").status == 200  # honoured even without --watch-ingress-without-class


@virtual_time
async def test_running_controller_serves_kubectl_created_and_classless_ingresses() -> None:
    async with run(KUBECTL) as c:
        assert [k.metadata.name for k in c.state.ingress_classes()] == ["nginx"]
        client = c.external()
        lb = c.state.service("ingress-nginx/ingress-nginx-controller").load_balancer_ingress[0].ip
        for host in ("web.example.com", "classless.example.com"):
            async with client.http.get(f"http://{lb}/", headers={"Host": host}) as r:
                assert r.status == 200, host


def canary_world(canary_ann: dict[str, str]) -> World:
    main_ = ingress("main", [("h.com", [path("/", "web")])])
    can = ingress("can", [("h.com", [path("/", "web-canary")])], index=1,
                  annotations={A + "canary": "true", **{A + k: v for k, v in canary_ann.items()}})
    return World(main_, can).svc("web", ips=["10.0.0.1"]).svc("web-canary", ips=["10.0.9.9"])


H, V, P, C = "canary-by-header", "canary-by-header-value", "canary-by-header-pattern", "canary-by-cookie"


@pytest.mark.parametrize("ann,headers,expect", [
    # the value replaces always/never: only an equal value routes to the canary
    ({H: "X-Canary", V: "DoCanary"}, {"X-Canary": "DoCanary"}, True),
    ({H: "X-Canary", V: "DoCanary"}, {"x-canary": "DoCanary"}, True),
    ({H: "X-Canary", V: "DoCanary"}, {"X-Canary": "always"}, False),
    ({H: "X-Canary", V: "DoCanary"}, {"X-Canary": "docanary"}, False),
    # ... and a non-matching value goes on to the cookie, then the weight
    ({H: "X-Canary", V: "DoCanary", C: "cc"}, {"X-Canary": "never", "Cookie": "cc=always"}, True),
    ({H: "X-Canary", V: "DoCanary", "canary-weight": "100"}, {"X-Canary": "never"}, True),
    # the pattern is ngx.re.match: unanchored, case-sensitive; ignored when a value is set
    ({H: "X-Canary", P: "Canary"}, {"X-Canary": "DoCanary"}, True),
    ({H: "X-Canary", P: "^Do"}, {"X-Canary": "always"}, False),
    ({H: "X-Canary", P: "^Do"}, {"X-Canary": "Don't"}, True),
    ({H: "X-Canary", P: "canary"}, {"X-Canary": "DoCanary"}, False),
    ({H: "X-Canary", V: "yes", P: ".*"}, {"X-Canary": "DoCanary"}, False),
    ({H: "X-Canary", P: "^Do", C: "cc"}, {"X-Canary": "no", "Cookie": "cc=always"}, True),
    # header keywords decide before the cookie and the weight
    ({H: "X-Canary", C: "cc", "canary-weight": "100"}, {"X-Canary": "never", "Cookie": "cc=always"}, False),
    ({H: "X-Canary", C: "cc", "canary-weight": "0"}, {"X-Canary": "always", "Cookie": "cc=never"}, True),
    # the cookie knows only always/never; anything else goes on to the weight
    ({C: "cc"}, {"Cookie": "cc=DoCanary"}, False),
    ({C: "cc", "canary-weight": "100"}, {"Cookie": "cc=yes"}, True),
    ({C: "cc", "canary-weight": "100"}, {"Cookie": "cc=never"}, False),
    ({C: "cc", "canary-weight": "0"}, {"Cookie": "other=1; cc=always"}, True),
])
def test_canary_precedence_header_then_cookie_then_weight(ann, headers, expect) -> None:
    d = canary_world(ann).route("h.com", "/", headers=headers)
    assert d.status == 200 and d.canary is expect


def test_canary_by_header_value_through_knet_route(capsys, tmp_path) -> None:
    text = (DATA / "kubectl-create-ingress.yaml").read_text() + """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web-canary
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: X-Canary
    nginx.ingress.kubernetes.io/canary-by-header-value: DoCanary
spec:
  ingressClassName: nginx
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Exact, backend: {service: {name: canary, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: canary}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""
    f = tmp_path / "c.yaml"
    f.write_text(text)
    for value, svc in (("DoCanary", "default/canary:80"), ("always", "default/web:80")):
        d = route(capsys, "-f", str(f), "--host", "web.example.com", "--path", "/",
                  "-H", f"X-Canary: {value}")
        assert d["service"] == svc
