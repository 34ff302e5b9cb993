"""kubelet's volume manager and managed files: what a container's filesystem has mounted.

Invariants (pkg/kubelet/volumemanager, pkg/volume/*, kubelet_pods.go makeMounts, v1.32):
- Every container gets kubelet's ``/etc/hosts`` (managedHostsFileContent), ``/etc/resolv.conf``
  (GetPodDNS) and ``/etc/hostname``; the pod's service-account token volume
  ``kube-api-access-<5>`` (projected: token, ca.crt, namespace) is mounted at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` unless ``automountServiceAccountToken`` is
  false. The token text comes from ``TOKEN_SOURCE`` (a placeholder until the API server
  issues real tokens; ``set_token_source`` plugs one in).
- Volumes are built once per pod (before any container starts) and shared by its containers:
  emptyDir (gone with the pod), configMap/secret/downwardAPI/projected (read-only, files per
  key, ``items``, ``defaultMode``/``mode``, ``optional``), hostPath (one directory tree per
  node and path), nfs (one export per server and path, shared cluster-wide),
  persistentVolumeClaim (the bound PersistentVolume's data, kept by the runtime).
- A non-optional reference to a missing ConfigMap/Secret (or key) fails the mount with the
  kubelet's FailedMount message; the pod stays ContainerCreating and kubelet retries.
- configMap/secret/downwardAPI/projected contents are refreshed by the kubelet's periodic sync
  (``SYNC_PERIOD`` + the ConfigMap cache TTL on the virtual clock); subPath mounts are copies
  taken at container start and never update, as in a real cluster.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from knet.dns.stub import etc_hosts_for_pod, resolv_conf_for_pod
from knet.model.core import Container, Pod
from knet.runtime.env import field_ref
from knet.runtime.vfs import Dir, File, VirtualFS

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
SYNC_PERIOD = 60.0  # kubelet --sync-frequency; configMap/secret volumes follow within ~1 min


class MountError(Exception):
    """FailedMount: the volume could not be set up (the message is kubelet's)."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume


@dataclass(frozen=True)
class TokenRequest:
    namespace: str
    service_account: str
    pod: str
    pod_uid: str
    audience: str
    expiration_seconds: int


TokenSource = Callable[[TokenRequest], str]
_PLACEHOLDER_CA = ("-----BEGIN CERTIFICATE-----\n"
                   "knet placeholder: the emulated API server's CA is not issued yet\n"
                   "-----END CERTIFICATE-----\n")


def placeholder_token(req: TokenRequest) -> str:
    """Not a valid JWT: a stable stand-in until an API server signs tokens."""
    h = hashlib.sha256(f"{req.namespace}/{req.service_account}/{req.pod_uid}/{req.audience}"
                       .encode()).hexdigest()
    return f"knet-placeholder-token.{req.namespace}.{req.service_account}.{h[:32]}"


TOKEN_SOURCE: dict[str, Any] = {"token": placeholder_token, "ca": _PLACEHOLDER_CA}


def set_token_source(token: TokenSource, ca_crt: str) -> None:
    """Plug in the API server's token issuer (TokenRequest) and its CA certificate."""
    TOKEN_SOURCE["token"] = token
    TOKEN_SOURCE["ca"] = ca_crt


def _bytes(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode()


def _mode(v: Any, default: int) -> int:
    try:
        return int(v) if v is not None else default
    except (TypeError, ValueError):
        return default


class PodVolumes:
    """The volumes of one pod: built from the pod spec and the cluster state."""

    def __init__(self, runtime: Any, pod: Pod) -> None:
        self.rt = runtime
        self.pod = pod
        self.dirs: dict[str, Dir] = {}
        self.readonly: set[str] = set()
        self.hosts = File()
        self.resolv = File()
        self.hostname = File()

    # -- managed files --------------------------------------------------------------------
    def _managed(self, pod: Pod) -> None:
        domain = self.rt.state.config.dns_domain
        self.hosts.data = etc_hosts_for_pod(pod, domain).encode()
        dns_ip = self.rt.dns_ip
        self.resolv.data = resolv_conf_for_pod(pod, cluster_dns=[dns_ip] if dns_ip else [],
                                               cluster_domain=domain).render().encode()
        self.hostname.data = ((pod.spec.hostname or pod.name[:63]) + "\n").encode()

    def _automount(self, pod: Pod) -> bool:
        v = pod.spec.extra.get("automountServiceAccountToken")
        if v is None:
            sa = self.rt.state.store.get("ServiceAccount", pod.namespace,
                                         str(pod.spec.extra.get("serviceAccountName") or "default"))
            v = getattr(sa, "automount_service_account_token", None) if sa is not None else None
        return v is not False

    def token_volume_name(self) -> str:
        h = hashlib.sha256(self.pod.metadata.uid.encode()).hexdigest()
        alphabet = "bcdfghjklmnpqrstvwxz2456789"
        return "kube-api-access-" + "".join(alphabet[int(h[i:i + 2], 16) % len(alphabet)]
                                            for i in range(0, 10, 2))

    # -- setup ----------------------------------------------------------------------------
    def setup(self, pod: Pod | None = None) -> None:
        """Build (or refresh) every volume; raises MountError for a missing reference."""
        pod = pod or self.pod
        self.pod = pod
        self._managed(pod)
        for v in pod.spec.extra.get("volumes") or ():
            name = str(v.get("name", ""))
            d = self._build(pod, v)
            if d is None:
                continue
            old = self.dirs.get(name)
            if old is None:
                self.dirs[name] = d
            elif name in self.readonly:
                old.replace_with(d)
        if self._automount(pod):
            name = self.token_volume_name()
            d = self._token_dir(pod)
            if name in self.dirs:
                self.dirs[name].replace_with(d)
            else:
                self.dirs[name] = d
                self.readonly.add(name)

    def refresh(self, pod: Pod) -> None:
        """kubelet's periodic sync: re-project configMap/secret/downwardAPI/projected volumes."""
        try:
            self.setup(pod)
        except MountError:
            pass  # keeps the last good contents, as the kubelet does

    def _token_dir(self, pod: Pod) -> Dir:
        sa = str(pod.spec.extra.get("serviceAccountName") or "default")
        req = TokenRequest(pod.namespace, sa, pod.name, pod.metadata.uid,
                           "https://kubernetes.default.svc.cluster.local", 3607)
        d = Dir(readonly=True)
        d.put("token", TOKEN_SOURCE["token"](req), 0o644)
        d.put("ca.crt", TOKEN_SOURCE["ca"], 0o644)
        d.put("namespace", pod.namespace, 0o644)
        return d

    def _build(self, pod: Pod, v: Any) -> Dir | None:
        name = str(v.get("name", ""))
        if "emptyDir" in v:
            return self.dirs.get(name) or Dir(mode=0o777)
        if "configMap" in v or "secret" in v:
            self.readonly.add(name)
            return self._keyed(pod, name, v, Dir(readonly=True))
        if "downwardAPI" in v:
            self.readonly.add(name)
            d = Dir(readonly=True)
            self._downward(pod, v["downwardAPI"], d, name)
            return d
        if "projected" in v:
            self.readonly.add(name)
            d = Dir(readonly=True)
            src = v["projected"] or {}
            default = _mode(src.get("defaultMode"), 0o644)
            for s in src.get("sources") or ():
                if "configMap" in s or "secret" in s:
                    self._keyed(pod, name, {**s, "_default": default}, d)
                elif "downwardAPI" in s:
                    self._downward(pod, s["downwardAPI"], d, name)
                elif "serviceAccountToken" in s:
                    t = s["serviceAccountToken"] or {}
                    req = TokenRequest(pod.namespace,
                                       str(pod.spec.extra.get("serviceAccountName") or "default"),
                                       pod.name, pod.metadata.uid,
                                       str(t.get("audience") or
                                           "https://kubernetes.default.svc.cluster.local"),
                                       int(t.get("expirationSeconds") or 3600))
                    d.put(str(t.get("path") or "token"), TOKEN_SOURCE["token"](req), default)
                elif "clusterTrustBundle" in s:
                    pass
            return d
        if "hostPath" in v:
            hp = v["hostPath"] or {}
            path = str(hp.get("path") or "/")
            typ = str(hp.get("type") or "")
            store = self.rt.__dict__.setdefault("_host_paths", {})
            key = (pod.spec.node_name, path)
            if key not in store:
                if typ in ("Directory", "File", "Socket", "CharDevice", "BlockDevice"):
                    raise MountError(name, f"hostPath type check failed: {path} is not a "
                                           f"{'directory' if typ == 'Directory' else typ.lower()}")
                store[key] = Dir()
            return store[key]
        if "nfs" in v:
            n = v["nfs"] or {}
            store = self.rt.__dict__.setdefault("_nfs_exports", {})
            key = (str(n.get("server", "")), str(n.get("path", "/")))
            return store.setdefault(key, Dir(mode=0o777))
        if "persistentVolumeClaim" in v:
            claim = str((v["persistentVolumeClaim"] or {}).get("claimName", ""))
            return volume_data(self.rt, pod.namespace, claim, pod.spec.node_name)
        return Dir()  # other volume types (csi, ephemeral, image…): an empty directory

    def _keyed(self, pod: Pod, vol: str, v: Any, into: Dir) -> Dir:
        kind = "ConfigMap" if "configMap" in v else "Secret"
        src = v.get("configMap") if kind == "ConfigMap" else v.get("secret")
        src = src or {}
        ref = str(src.get("name") if kind == "ConfigMap" else
                  src.get("secretName", src.get("name", "")))
        optional = bool(src.get("optional"))
        default = _mode(src.get("defaultMode"), v.get("_default", 0o644))
        obj = self.rt.state.store.get(kind, pod.namespace, ref)
        if obj is None:
            if optional:
                return into
            raise MountError(vol, f'{kind.lower()} "{ref}" not found')
        data: dict[str, bytes] = {k: _bytes(val) for k, val in obj.data.items()}
        for k, val in getattr(obj, "binary_data", {}).items():
            data[k] = _bytes(val)
        items = src.get("items")
        if items:
            for it in items:
                key = str(it.get("key", ""))
                if key not in data:
                    if optional:
                        continue
                    raise MountError(vol, f"{kind.lower()} references non-existent "
                                          f"{'config' if kind == 'ConfigMap' else 'secret'} "
                                          f"key: {key}")
                into.put(str(it.get("path") or key), data[key], _mode(it.get("mode"), default))
        else:
            for k, val in sorted(data.items()):
                into.put(k, val, default)
        return into

    def _downward(self, pod: Pod, src: Any, d: Dir, vol: str) -> None:
        default = _mode((src or {}).get("defaultMode"), 0o644)
        for it in (src or {}).get("items") or ():
            path = str(it.get("path", ""))
            if "fieldRef" in it:
                text = field_ref(pod, str((it["fieldRef"] or {}).get("fieldPath", "")))
            elif "resourceFieldRef" in it:
                r = it["resourceFieldRef"] or {}
                cname = str(r.get("containerName") or "")
                c = next((c for c in pod.spec.containers if c.name == cname),
                         pod.spec.containers[0] if pod.spec.containers else None)
                res = str(r.get("resource", ""))
                kind, _, rname = res.partition(".")
                text = str((c.limits if kind == "limits" else c.requests).get(rname, "0")) \
                    if c is not None else "0"
            else:
                continue
            d.put(path, text, _mode(it.get("mode"), default))

    # -- mounting ---------------------------------------------------------------------------
    def filesystem(self, c: Container) -> VirtualFS:
        """A fresh root for ``c`` (a restart gets a new one) with kubelet's files and mounts."""
        fs = VirtualFS()
        fs.mount("/etc/hosts", self.hosts)  # hostNetwork pods get the node's (kubelet's text)
        fs.mount("/etc/resolv.conf", self.resolv)
        fs.mount("/etc/hostname", self.hostname)
        mounts = list(c.extra.get("volumeMounts") or ())
        if self._automount(self.pod) and not any(
                posixpath.normpath(str(m.get("mountPath", ""))) == SA_MOUNT for m in mounts):
            mounts.append({"name": self.token_volume_name(), "mountPath": SA_MOUNT,
                           "readOnly": True})
        for m in mounts:
            vol = str(m.get("name", ""))
            d = self.dirs.get(vol)
            if d is None:
                continue
            path = str(m.get("mountPath", ""))
            ro = bool(m.get("readOnly")) or vol in self.readonly
            sub = str(m.get("subPath") or "")
            if sub:
                node = _walk(d, sub)
                if node is None:
                    if vol in self.readonly:
                        continue
                    node = d.mkdirs(sub)
                if vol in self.readonly and isinstance(node, File):
                    node = File(node.data, node.mode)  # a copy: subPath never updates
                fs.mount(path, node, readonly=ro)
            else:
                fs.mount(path, d, readonly=ro)
        return fs


@dataclass(frozen=True)
class PodEvent:
    """A kubelet Event about a pod (``kubectl get events`` / ``describe pod``)."""

    time: float
    type: str      # Normal, Warning
    reason: str    # FailedMount, Failed, …
    message: str
    object: str    # ns/name
    source: str = "kubelet"

    def __str__(self) -> str:
        return f"{self.type}\t{self.reason}\tpod/{self.object.split('/', 1)[-1]}\t{self.message}"


def record_event(rt: Any, pod: Pod, type_: str, reason: str, message: str) -> None:
    events: list[PodEvent] = rt.__dict__.setdefault("events", [])
    events.append(PodEvent(rt.now(), type_, reason, message, pod.key,
                           f"kubelet, {pod.spec.node_name}" if pod.spec.node_name else "kubelet"))


def _walk(d: Dir, rel: str) -> File | Dir | None:
    node: File | Dir | None = d
    for part in [p for p in rel.split("/") if p]:
        if not isinstance(node, Dir):
            return None
        node = node.entries.get(part)
    return node


def volume_data(rt: Any, namespace: str, claim: str, node: str = "") -> Dir:
    """The data of the PersistentVolume bound to ``namespace/claim``, kept across pods: a
    hostPath/local volume (kind's local-path ones included) is the node's directory, an nfs
    one the export shared cluster-wide, any other kind one tree per volume."""
    pvc = rt.state.store.get("PersistentVolumeClaim", namespace, claim)
    name = getattr(pvc, "volume_name", "") if pvc is not None else ""
    pv = rt.state.store.get("PersistentVolume", "", name) if name else None
    source = dict(getattr(pv, "source", {}) or {})
    if "hostPath" in source or "local" in source:
        path = str((source.get("hostPath") or source.get("local") or {}).get("path", "/"))
        hosts: dict[tuple[str, str], Dir] = rt.__dict__.setdefault("_host_paths", {})
        return hosts.setdefault((node, path), Dir(mode=0o777))
    if "nfs" in source:
        n = source["nfs"] or {}
        exports: dict[tuple[str, str], Dir] = rt.__dict__.setdefault("_nfs_exports", {})
        return exports.setdefault((str(n.get("server", "")), str(n.get("path", "/"))),
                                  Dir(mode=0o777))
    store: dict[str, Dir] = rt.__dict__.setdefault("_pv_data", {})
    return store.setdefault(name or f"claim:{namespace}/{claim}", Dir(mode=0o777))


__all__ = ["PodVolumes", "MountError", "TokenRequest", "set_token_source", "SA_MOUNT",
           "volume_data", "placeholder_token", "PodEvent", "record_event"]
