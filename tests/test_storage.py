"""Storage: PV/PVC binding, kind's local-path provisioner, volume scheduling, StatefulSet claims,
and data that outlives pods — static (pure control plane) and running."""

from __future__ import annotations

from pathlib import Path

import pytest

from knet.control import Cluster
from knet.control.recorder import events_for
from knet.fabric import virtual_time
from knet.manifests import read_texts
from knet.runtime import run

BASIC = str(Path(__file__).resolve().parent.parent / "topologies" / "runtime-basic.yaml")


def load(text: str) -> Cluster:
    return Cluster.from_input(read_texts([("storage.yaml", text)]), seed=1)


def pv(name: str, size: str, modes: str = "[ReadWriteOnce]", cls: str = '""',
       labels: str = "{}", extra: str = "") -> str:
    return f"""---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {name}, labels: {labels}}}
spec:
  capacity: {{storage: {size}}}
  accessModes: {modes}
  storageClassName: {cls}
  hostPath: {{path: /data/{name}}}
{extra}"""


def pvc(name: str, size: str, modes: str = "[ReadWriteOnce]", cls: str | None = '""',
        extra: str = "") -> str:
    c = f"\n  storageClassName: {cls}" if cls is not None else ""
    return f"""---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}}}
spec:
  accessModes: {modes}
  resources: {{requests: {{storage: {size}}}}}{c}
{extra}"""


# (volumes, claim, expected bound volume or "" for Pending)
BINDING = [
    (pv("small", "1Gi") + pv("big", "10Gi"), pvc("c", "500Mi"), "small"),  # smallest that fits
    (pv("small", "1Gi") + pv("big", "10Gi"), pvc("c", "2Gi"), "big"),
    (pv("a", "1Gi"), pvc("c", "2Gi"), ""),  # too small
    (pv("rwo", "5Gi"), pvc("c", "1Gi", "[ReadWriteMany]"), ""),  # access modes not a superset
    (pv("rwx", "5Gi", "[ReadWriteOnce, ReadWriteMany]"), pvc("c", "1Gi", "[ReadWriteMany]"), "rwx"),
    (pv("fast", "5Gi", cls="fast"), pvc("c", "1Gi"), ""),  # class "" only matches no class
    (pv("fast", "5Gi", cls="fast") + "---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\n"
     "metadata: {name: fast}\nprovisioner: kubernetes.io/no-provisioner\n",
     pvc("c", "1Gi", cls="fast"), "fast"),
    (pv("x", "5Gi", labels="{tier: gold}") + pv("other", "1Gi"),
     pvc("c", "1Gi", extra="  selector: {matchLabels: {tier: gold}}"), "x"),
    (pv("p", "5Gi") + pv("q", "5Gi"), pvc("c", "1Gi", extra="  volumeName: q"), "q"),
]


@pytest.mark.parametrize(("volumes", "claim", "bound"), BINDING)
def test_static_binding(volumes: str, claim: str, bound: str) -> None:
    c = load(volumes + claim)
    got = c.get("PersistentVolumeClaim", "default/c")
    assert (got.phase, got.volume_name) == (("Bound", bound) if bound else ("Pending", ""))
    if bound:
        vol = c.get("PersistentVolume", bound)
        assert vol.phase == "Bound" and (vol.claim_ref.namespace, vol.claim_ref.name) == (
            "default", "c")
        assert got.capacity == vol.capacity


STS = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
        - name: c
          image: busybox:1.36
          command: [sh, -c, "echo $HOSTNAME >> /data/boots; while true; do sleep 1; done"]
          volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""


def test_statefulset_claims_are_provisioned_on_the_pods_node() -> None:
    c = load(STS)
    sc = c.get("StorageClass", "standard")
    assert sc.is_default and sc.volume_binding_mode == "WaitForFirstConsumer"
    for i in range(3):
        claim = c.get("PersistentVolumeClaim", f"default/data-db-{i}")
        assert claim.phase == "Bound" and claim.storage_class_name == "standard"
        assert claim.metadata.labels == {"app": "db"}
        vol = c.get("PersistentVolume", claim.volume_name)
        assert vol.name == f"pvc-{claim.metadata.uid}" and vol.reclaim_policy == "Delete"
        node = c.get("Pod", f"default/db-{i}").spec.node_name
        assert vol.node_affinity == {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
        assert vol.source["hostPath"]["path"] == (
            f"/var/local-path-provisioner/{vol.name}_default_data-db-{i}")
        reasons = [e.reason for e in events_for(c, claim)]
        assert reasons == ["WaitForFirstConsumer", "ExternalProvisioning", "Provisioning",
                           "ProvisioningSucceeded"]
    # scale down keeps the claims; a recreated pod goes back to its volume's node
    c.scale("StatefulSet", "default/db", 1)
    assert c.get("PersistentVolumeClaim", "default/data-db-2").phase == "Bound"
    node = c.get("PersistentVolume", c.get("PersistentVolumeClaim",
                                           "default/data-db-0").volume_name).node_affinity
    c.delete_pod("default/db-0")
    c.finalize_pod_deletion("default/db-0")
    want = node["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0]
    assert c.get("Pod", "default/db-0").spec.node_name == want


UNSCHEDULABLE = """
apiVersion: v1
kind: Pod
metadata: {name: missing}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "1d"]}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: nope}}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: manual}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: unbound}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: waits}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "1d"]}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: unbound}}]
"""


def test_pods_wait_for_their_claims() -> None:
    c = load(UNSCHEDULABLE)
    msg = {p: c.get("Pod", f"default/{p}").status.condition("PodScheduled").message
           for p in ("missing", "waits")}
    n = len(c.nodes())
    assert msg["missing"] == (f'0/{n} nodes are available: persistentvolumeclaim "nope" not '
                              f"found. preemption: 0/{n} nodes are available: {n} Preemption is "
                              f"not helpful for scheduling.")
    assert "pod has unbound immediate PersistentVolumeClaims" in msg["waits"]
    # a matching volume appears: the claim binds and the pod schedules
    c.apply(read_texts([("pv.yaml", pv("late", "1Gi", cls="manual"))]).objects[0])
    assert c.get("PersistentVolumeClaim", "default/unbound").phase == "Bound"
    assert c.get("Pod", "default/waits").spec.node_name


def test_reclaim_policies() -> None:
    c = load(pv("keep", "1Gi") + pvc("c", "1Gi") + "---" + STS.replace("replicas: 3", "replicas: 1"))
    c.delete("PersistentVolumeClaim", "default/c")
    assert c.get("PersistentVolume", "keep").phase == "Released"  # Retain
    claim = c.get("PersistentVolumeClaim", "default/data-db-0")
    c.scale("StatefulSet", "default/db", 0)
    c.delete("PersistentVolumeClaim", "default/data-db-0")
    assert c.store.get("PersistentVolume", "", claim.volume_name) is None  # Delete


@virtual_time
async def test_statefulset_data_survives_pod_deletion() -> None:
    async with run(BASIC) as c:
        c.apply(STS.replace("replicas: 3", "replicas: 2"))
        await c.advance(30)
        p = c.pod("default/db-0")
        assert (await p.exec(["cat", "/data/boots"])).stdout == "db-0\n"
        await p.exec(["sh", "-c", "echo hello > /data/note; echo scratch > /tmp/scratch"])
        c.delete_pod("default/db-0", grace=0)
        await c.advance(30)
        p = c.pod("default/db-0")
        r = await p.exec(["sh", "-c", "cat /data/boots /data/note; ls /tmp"])
        assert r.stdout == "db-0\ndb-0\nhello\n"  # the PVC kept its data, /tmp did not
        assert (await c.pod("default/db-1").exec(["cat", "/data/boots"])).stdout == "db-1\n"


NFS = """
apiVersion: v1
kind: PersistentVolume
metadata: {name: nfs}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteMany]
  storageClassName: ""
  nfs: {server: nfs.example.com, path: /exports}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shared}
spec:
  storageClassName: ""
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: writers}
spec:
  replicas: 2
  selector: {matchLabels: {app: writers}}
  template:
    metadata: {labels: {app: writers}}
    spec:
      containers:
        - name: c
          image: busybox:1.36
          command: [sh, -c, "echo $HOSTNAME >> /shared/log; sleep 1d"]
          volumeMounts: [{name: s, mountPath: /shared}]
      volumes: [{name: s, persistentVolumeClaim: {claimName: shared}}]
"""


@virtual_time
async def test_nfs_claim_is_shared_across_pods() -> None:
    async with run(BASIC) as c:
        c.apply(NFS)
        await c.advance(20)
        pods = sorted(p.name for p in c.state.pods("default") if p.name.startswith("writers"))
        r = await c.pod(f"default/{pods[0]}").exec(["sort", "/shared/log"])
        assert r.stdout == "".join(f"{p}\n" for p in pods)


def test_storage_page_python_snippet_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib
    import io
    import re

    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "storage.md").read_text()
    snippets = re.findall(r"^```python\n(.*?)^```\n\n```text\n(.*?)^```", page, re.S | re.M)
    assert snippets
    monkeypatch.chdir(root)
    for code, expected in snippets:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, "docs/storage.md", "exec"), {"__name__": "__doc__"})
        assert buf.getvalue() == expected
