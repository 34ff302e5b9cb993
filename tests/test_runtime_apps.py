"""Runtime: built-in apps by image, user apps, ingress controller, rolling changes."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from knet.fabric import virtual_time
from knet.runtime import PodContext, run
from knet.runtime.apps import NGINX_WELCOME, builtin_kind, image_name

ROOT = Path(__file__).resolve().parent.parent / "topologies"
DEMO = str(ROOT / "demo.yaml")
BASIC = str(ROOT / "runtime-basic.yaml")


def test_image_table() -> None:
    assert image_name("registry.k8s.io/e2e-test-images/agnhost:2.52") == "e2e-test-images/agnhost"
    assert image_name("docker.io/library/nginx:1.27") == "nginx"
    assert builtin_kind("registry.k8s.io/e2e-test-images/agnhost:2.52") == "agnhost"
    assert builtin_kind("hashicorp/http-echo:1.0") == "http-echo"
    assert builtin_kind("nginx") == "nginx"
    assert builtin_kind("registry.k8s.io/ingress-nginx/controller:v1.12.0@sha256:ab") == "ingress-nginx"
    assert builtin_kind("registry.k8s.io/coredns/coredns:v1.11.3") == "coredns"
    assert builtin_kind("busybox:1.36") == "client"
    assert builtin_kind("knet/echo:anything") == "echo"
    assert builtin_kind("example.com/team/own-server:3") == "unknown"


@virtual_time
async def test_demo_ingress_http_echo_and_builtin_controller() -> None:
    async with run(DEMO) as c:
        ctl = [p for p in c.state.pods("ingress-nginx")]
        assert len(ctl) == 1 and ctl[0].status.ready
        svc = c.state.service("ingress-nginx/ingress-nginx-controller")
        assert str(svc.spec.type) == "LoadBalancer" and [p.port for p in svc.spec.ports] == [80, 443]
        client = c.pod("default/client")
        # http-echo directly, through its ClusterIP Service.
        async with client.http.get("http://app-a/") as r:
            assert r.status == 200 and await r.text() == "hello from a\n"
            assert r.headers["X-App-Name"] == "http-echo"
        # Through the ingress controller Service (ClusterIP → controller pod → app pod).
        for host, text in (("a.example.com", "hello from a\n"), ("b.example.com", "hello from b\n")):
            async with client.http.get("http://ingress-nginx-controller.ingress-nginx/",
                                       headers={"Host": host}) as r:
                assert r.status == 200 and await r.text() == text
        async with client.http.get("http://ingress-nginx-controller.ingress-nginx/",
                                   headers={"Host": "nobody.example.com"}) as r:
            assert r.status == 404
        # From outside via the LoadBalancer IP.
        lb = svc.load_balancer_ingress[0].ip
        async with c.external().http.get(f"http://{lb}/", headers={"Host": "b.example.com"}) as r:
            assert await r.text() == "hello from b\n"


NGINX_AGNHOST = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
    - {name: nginx, image: "nginx:1.25.3", ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: netexec}
spec:
  containers:
    - name: agnhost
      image: registry.k8s.io/e2e-test-images/agnhost:2.52
      args: [netexec, --http-port=8080]
      ports: [{containerPort: 8080}]
"""


@virtual_time
async def test_nginx_and_agnhost_apply_at_runtime() -> None:
    async with run(BASIC) as c:
        c.apply(NGINX_AGNHOST)
        await c.wait_ready()
        client = c.pod("default/client")
        web_ip = c.pod("default/web").ip
        async with client.http.get(f"http://{web_ip}/") as r:
            assert r.status == 200 and r.headers["Server"] == "nginx/1.25.3"
            assert await r.text() == NGINX_WELCOME
        async with client.http.get(f"http://{web_ip}/missing") as r:
            assert r.status == 404 and "<center>nginx/1.25.3</center>" in await r.text()
        ip = c.pod("default/netexec").ip
        async with client.http.get(f"http://{ip}:8080/hostname") as r:
            assert await r.text() == "netexec"
        async with client.http.get(f"http://{ip}:8080/clientip") as r:
            assert (await r.text()).split(":")[0] == client.ip
        async with client.http.get(f"http://{ip}:8080/echo?msg=hi") as r:
            assert await r.text() == "hi"
        async with client.http.get(f"http://{ip}:8080/shell?cmd=ls") as r:
            assert r.status == 501
        c.delete("Pod", "default/web")
        await c.advance(1)
        assert c.state.store.get("Pod", "default", "web") is None


def make_app(ctx: PodContext) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"me": ctx.name, "color": ctx.env.get("COLOR", ""),
                                  "node": ctx.node})

    app = web.Application()
    app.router.add_get("/", hello)
    return app


@virtual_time
async def test_user_app_via_python_api_and_scale_and_set_image() -> None:
    async with run(BASIC, apps={"default/echo": make_app}) as c:
        client = c.pod("default/client")
        async with client.http.get("http://echo/") as r:
            body = json.loads(await r.text())
        assert body["me"].startswith("echo-")
        c.scale("echo", 5)
        await c.wait_ready()
        assert len([p for p in c.state.pods("default") if p.metadata.labels.get("app") == "echo"]) == 5
        # A rolling update (new template → new ReplicaSet); the user app stays bound to the
        # workload, so the new pods run it too.
        old = {p.name for p in c.state.pods("default") if p.metadata.labels.get("app") == "echo"}
        c.set_image("echo", "nginx:1.27.3")
        await c.wait_for(lambda: all(
            p.spec.containers[0].image == "nginx:1.27.3" and p.status.ready
            for p in c.state.pods("default") if p.metadata.labels.get("app") == "echo"
            and not p.terminating), 300)
        await c.wait_synced()
        pod = next(p for p in c.state.pods("default") if p.metadata.labels.get("app") == "echo"
                   and not p.terminating)
        assert pod.name not in old
        async with client.http.get(f"http://{pod.ip}:8080/") as r:
            assert json.loads(await r.text())["me"] == pod.name


ANNOTATED = """
apiVersion: v1
kind: Pod
metadata:
  name: mine
  annotations: {knet.dev/app: "test_runtime_apps:make_app"}
spec:
  containers:
    - name: app
      image: example.com/mine:1
      ports: [{containerPort: 9090}]
      env: [{name: COLOR, value: green}]
"""


@virtual_time
async def test_user_app_via_annotation_gets_env_and_ports() -> None:
    async with run(BASIC) as c:
        c.apply(ANNOTATED)
        await c.wait_ready()
        client = c.pod("default/client")
        async with client.http.get(f"http://{c.pod('default/mine').ip}:9090/") as r:
            body = json.loads(await r.text())
        assert body == {"me": "mine", "color": "green", "node": c.pod("default/mine").node}
