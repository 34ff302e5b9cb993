"""The image catalog: each image answers its protocol on its default port, through the fabric."""

from __future__ import annotations

from pathlib import Path

from knet.fabric import virtual_time
from knet.manifests import read_texts
from knet.manifests.images import builtin_kind
from knet.runtime import run

BASIC = str(Path(__file__).resolve().parent.parent / "topologies" / "runtime-basic.yaml")


def test_catalog_kinds() -> None:
    table = {"redis:7.4": "redis", "bitnami/redis": "redis", "memcached:1.6": "memcached",
             "postgres:17": "postgres", "bitnami/postgresql:16": "postgres", "mysql:8.4": "mysql",
             "mariadb:11": "mysql", "httpd:2.4": "httpd", "python:3.13-slim": "python",
             "registry.k8s.io/pause:3.10": "idle", "busybox:1.36": "client",
             "curlimages/curl:8.11.1": "client", "nginx:1.27": "nginx",
             "quay.io/acme/billing:2.1": "unknown"}
    assert {i: builtin_kind(i) for i in table} == table


def test_unknown_image_warns_once_at_load() -> None:
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: billing}
spec:
  replicas: 2
  selector: {matchLabels: {app: billing}}
  template:
    metadata: {labels: {app: billing}}
    spec:
      containers: [{name: app, image: "quay.io/acme/billing:2.1", ports: [{containerPort: 9000}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: other}
spec:
  containers: [{name: app, image: "quay.io/acme/billing:2.1"}]
"""
    warnings = [w for w in read_texts([("m.yaml", text)]).warnings if "catalog" in w]
    assert warnings == [
        'm.yaml:2:1: Deployment default/billing container app: image "quay.io/acme/billing:2.1" '
        "is not in knet's catalog: it accepts TCP connections on its declared containerPorts "
        "and answers nothing; attach an app with knet.run(..., apps={'NS/NAME': factory}) or "
        "the annotation knet.dev/app: 'module:factory' (docs/apps.md)"]


SERVERS = """
apiVersion: v1
kind: Pod
metadata: {name: redis, labels: {app: redis}}
spec: {containers: [{name: redis, image: "redis:7.4.1", ports: [{containerPort: 6379}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: redis}
spec: {selector: {app: redis}, ports: [{port: 6379}]}
---
apiVersion: v1
kind: Pod
metadata: {name: pg, labels: {app: pg}}
spec:
  containers:
    - {name: pg, image: "postgres:17", env: [{name: POSTGRES_PASSWORD, value: pw}]}
---
apiVersion: v1
kind: Service
metadata: {name: pg}
spec: {selector: {app: pg}, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Pod
metadata: {name: pg-nopass}
spec: {restartPolicy: Never, containers: [{name: pg, image: "postgres:17"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db}
spec:
  containers:
    - {name: db, image: "mysql:8.4", env: [{name: MYSQL_ROOT_PASSWORD, value: pw}]}
---
apiVersion: v1
kind: Pod
metadata: {name: mc}
spec: {containers: [{name: mc, image: "memcached:1.6"}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: site}
data: {index.html: "<h1>my site</h1>\\n"}
---
apiVersion: v1
kind: Pod
metadata: {name: site}
spec:
  containers:
    - name: nginx
      image: nginx:1.27.3
      volumeMounts: [{name: html, mountPath: /usr/share/nginx/html}]
  volumes: [{name: html, configMap: {name: site}}]
---
apiVersion: v1
kind: Pod
metadata: {name: apache}
spec: {containers: [{name: httpd, image: "httpd:2.4"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: py}
spec:
  containers:
    - {name: py, image: "python:3.13", command: [python, -m, http.server, "8080"]}
---
apiVersion: v1
kind: Pod
metadata: {name: porter}
spec:
  containers:
    - name: porter
      image: registry.k8s.io/e2e-test-images/agnhost:2.52
      args: [porter]
      env: [{name: SERVE_PORT_8081, value: foo}]
---
apiVersion: v1
kind: Pod
metadata: {name: mystery}
spec:
  containers: [{name: m, image: "quay.io/acme/billing:2.1", ports: [{containerPort: 9000}]}]
"""


@virtual_time
async def test_catalog_servers_answer_their_protocols() -> None:
    async with run(BASIC) as c:
        c.apply(SERVERS)
        await c.advance(20)
        cl = c.pod("default/client")
        r = await cl.exec(["redis-cli", "-h", "redis", "ping"])
        assert (r.exit_code, r.stdout) == (0, "PONG\n")
        r = await cl.exec(["sh", "-c", "redis-cli -h redis set k v && redis-cli -h redis get k && "
                                       "redis-cli -h redis incr n"])
        assert r.stdout == 'OK\n"v"\n(integer) 1\n'
        assert (await cl.exec(["pg_isready", "-h", "pg"])).stdout == "pg:5432 - accepting connections\n"
        nopass = c.pod("default/pg-nopass")
        assert nopass.phase == "Failed"
        assert nopass.logs()[0] == ("Error: Database is uninitialized and superuser password is "
                                    "not specified.")
        ip = c.pod("default/db").ip
        assert (await cl.exec(["mysqladmin", "ping", "-h", ip])).stdout == "mysqld is alive\n"
        r = await cl.exec(["sh", "-c", f"printf 'set a 0 0 2\\r\\nhi\\r\\nget a\\r\\n' | "
                                       f"nc -w 1 {c.pod('default/mc').ip} 11211"])
        assert r.stdout == "STORED\r\nVALUE a 0 2\r\nhi\r\nEND\r\n"
        r = await cl.exec(["wget", "-qO-", f"http://{c.pod('default/site').ip}/"])
        assert r.stdout == "<h1>my site</h1>\n"
        r = await cl.exec(["curl", "-sI", f"http://{c.pod('default/apache').ip}/"])
        assert r.stdout.startswith("HTTP/1.1 200 OK\r\n") and "Server: Apache/2.4.62 (Unix)" in r.stdout
        r = await cl.exec(["wget", "-qO-", f"http://{c.pod('default/py').ip}:8080/etc/"])
        assert "<title>Directory listing for /etc/</title>" in r.stdout and "hosts</a>" in r.stdout
        r = await cl.exec(["wget", "-qO-", f"http://{c.pod('default/porter').ip}:8081/"])
        assert r.stdout == "foo"
        # an unknown image accepts connections and answers nothing
        ip = c.pod("default/mystery").ip
        assert (await cl.exec(["nc", "-z", ip, "9000"])).exit_code == 0
        r = await cl.exec(["curl", "-s", "-m", "2", f"http://{ip}:9000/"])
        assert r.exit_code == 28
