"""exec into running pods: kubelet's files, volumes, and network tools through the fabric."""

from __future__ import annotations

from pathlib import Path

from knet.fabric import virtual_time
from knet.runtime import run
from knet.runtime.apps import NGINX_WELCOME

BASIC = str(Path(__file__).resolve().parent.parent / "topologies" / "runtime-basic.yaml")

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
    - {name: nginx, image: "nginx:1.25.3", ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {app.properties: "color=blue\\n", mode: debug}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {username: admin, password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: tools, labels: {tier: tools}, annotations: {team: net}}
spec:
  hostAliases: [{ip: "1.2.3.4", hostnames: [legacy.local, legacy]}]
  containers:
    - name: sh
      image: busybox:1.36
      command: [sh, -c, "while true; do sleep 1; done"]
      volumeMounts:
        - {name: config, mountPath: /etc/config}
        - {name: config, mountPath: /etc/mode, subPath: mode}
        - {name: creds, mountPath: /etc/creds, readOnly: true}
        - {name: scratch, mountPath: /scratch}
        - {name: info, mountPath: /etc/podinfo}
    - name: side
      image: busybox:1.36
      command: [sh, -c, "echo from-side > /scratch/hello; sleep 3600"]
      volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes:
    - {name: config, configMap: {name: app-config}}
    - name: creds
      secret: {secretName: creds, items: [{key: password, path: db/pass}], defaultMode: 0400}
    - {name: scratch, emptyDir: {}}
    - name: info
      downwardAPI:
        items:
          - {path: labels, fieldRef: {fieldPath: metadata.labels}}
          - {path: name, fieldRef: {fieldPath: metadata.name}}
"""


@virtual_time
async def test_exec_files_volumes_and_network_tools() -> None:
    async with run(BASIC) as c:
        c.apply(PODS)
        await c.wait_ready()
        p = c.pod("default/tools")
        r = await p.exec(["cat", "/etc/hosts"])
        assert r.exit_code == 0 and int(r) == 0 and r == 0
        assert r.stdout.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
        assert f"{p.ip}\ttools\n" in r.stdout
        assert r.stdout.endswith("# Entries added by HostAliases.\n1.2.3.4\tlegacy.local\tlegacy\n")
        r = await p.exec(["cat", "/etc/resolv.conf"])
        assert r.stdout == ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                            "nameserver 10.96.0.10\noptions ndots:5\n")
        r = await p.exec(["sh", "-c", "cat /etc/config/app.properties /etc/mode; "
                                      "cat /etc/creds/db/pass; echo; ls /etc/creds /etc/podinfo; "
                                      "cat /etc/podinfo/labels; echo; cat /scratch/hello; "
                                      "cat /var/run/secrets/kubernetes.io/serviceaccount/namespace"])
        assert r.stdout == ("color=blue\ndebug" "s3cret\n" "/etc/creds:\ndb\n\n/etc/podinfo:\n"
                            "labels\nname\n" 'tier="tools"\n' "from-side\n" "default"), r.stdout
        r = await p.exec(["sh", "-c", "echo x > /etc/config/new"])
        assert r.exit_code == 1 and r.stderr == "sh: can't create /etc/config/new: Read-only file system\n"
        # network tools through the fabric: DNS via the pod's resolv.conf, the Service's ClusterIP
        svc_ip = c.state.service("default/web").spec.cluster_ip
        r = await p.exec(["nslookup", "web"])
        assert r.exit_code == 0 and r.stdout == (
            "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\n"
            f"Name:\tweb.default.svc.cluster.local\nAddress: {svc_ip}\n\n")
        r = await p.exec(["wget", "-qO-", "http://web"])
        assert r.exit_code == 0 and r.stdout == NGINX_WELCOME
        r = await p.exec(["wget", "-O", "-", "http://web/missing"])
        assert r.exit_code == 1 and r.stderr == (
            f"Connecting to web ({svc_ip}:80)\nwget: server returned error: HTTP/1.1 404 Not Found\n")
        r = await p.exec(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{remote_ip}", "web"])
        assert r.stdout == f"200 {svc_ip}"
        r = await p.exec(["curl", "-sS", "http://nosuch/"])
        assert (r.exit_code, r.stderr) == (6, "curl: (6) Could not resolve host: nosuch\n")
        r = await p.exec(["wget", "-q", "http://nosuch/"])
        assert (r.exit_code, r.stderr) == (1, "wget: bad address 'nosuch'\n")
        r = await p.exec(["getent", "hosts", "legacy"])
        assert r.stdout == "1.2.3.4         legacy\n"
        r = await p.exec(["sh", "-c", "hostname; hostname -i"])
        assert r.stdout == f"tools\n{p.ip}\n"
        r = await p.exec(["nosuch"])
        assert r.exit_code == 126 and "executable file not found in $PATH" in r.stderr
        # configMap volumes follow updates after kubelet's sync; subPath mounts do not
        c.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\n"
                "data: {app.properties: \"color=green\\n\", mode: release}\n")
        await c.advance(90)
        r = await p.exec(["sh", "-c", "cat /etc/config/app.properties /etc/config/mode; echo; "
                                      "cat /etc/mode"])
        assert r.stdout == "color=green\nrelease\ndebug"
        # an interactive session keeps its state
        s = p.shell()
        assert (await s.run("cd /etc/config; X=1")).exit_code == 0
        assert (await s.run("echo $X; pwd")).stdout == "1\n/etc/config\n"


MISSING = """
apiVersion: v1
kind: Pod
metadata: {name: needs-config}
spec:
  containers:
    - name: app
      image: busybox:1.36
      command: [sleep, "3600"]
      volumeMounts: [{name: cfg, mountPath: /cfg}]
  volumes: [{name: cfg, configMap: {name: later}}]
---
apiVersion: v1
kind: Pod
metadata: {name: needs-secret-env}
spec:
  containers:
    - name: app
      image: busybox:1.36
      command: [sleep, "3600"]
      env: [{name: P, valueFrom: {secretKeyRef: {name: nope, key: p}}}]
"""


@virtual_time
async def test_missing_references_block_the_container() -> None:
    async with run(BASIC) as c:
        c.apply(MISSING)
        await c.advance(30)
        vol = c.pod("default/needs-config")
        assert vol.phase == "Pending"
        assert vol.container_status().reason == "ContainerCreating"
        events = [e for e in c.events if e.object == "default/needs-config"]
        assert events and events[0].reason == "FailedMount" and events[0].message == (
            'MountVolume.SetUp failed for volume "cfg" : configmap "later" not found')
        env = c.pod("default/needs-secret-env")
        assert env.container_status().reason == "CreateContainerConfigError"
        assert any(e.message == 'Error: secret "nope" not found' for e in c.events
                   if e.object == "default/needs-secret-env")
        c.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {k: v}\n")
        await c.advance(130)
        assert vol.phase == "Running" and (await vol.exec(["cat", "/cfg/k"])).stdout == "v"


SLEEPER = """
apiVersion: v1
kind: Pod
metadata: {name: loop}
spec:
  containers:
    - {name: c, image: busybox, command: [sh, -c, "while true; do echo tick; sleep 1; done"]}
"""


@virtual_time
async def test_forever_loop_stays_running() -> None:
    async with run(BASIC) as c:
        c.apply(SLEEPER)
        await c.advance(120)
        p = c.pod("default/loop")
        st = p.container_status()
        assert p.phase == "Running" and st.state == "running" and st.restart_count == 0
        assert p.logs()[:3] == ["tick", "tick", "tick"]
