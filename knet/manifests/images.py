"""The image catalog, pure: which of knet's programs runs for a container image.

Invariants: a pure function of the image reference (registry, tag and digest ignored); no IO.
The runtime (``knet.runtime.apps``) maps each kind to its program; the manifest reader warns
once per image that is not in the catalog (docs/apps.md lists it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

IDLE_CLIENT_IMAGES = ("busybox", "curl", "curlimages/curl", "alpine", "ubuntu", "debian",
                      "nicolaka/netshoot", "netshoot", "fedora", "centos", "dnsutils",
                      "jessie-dnsutils", "bash", "praqma/network-multitool",
                      "network-multitool", "wbitt/network-multitool", "rockylinux",
                      "almalinux", "amazonlinux", "archlinux", "opensuse/leap", "bitnami/kubectl",
                      "kubectl", "toolbox", "ubi", "ubi-minimal", "ubi8", "ubi9", "distroless")
SYSTEM_IMAGES = ("kindnetd", "kindest/kindnetd", "kube-proxy", "local-path-provisioner",
                 "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "pause",
                 "metrics-server", "kube-state-metrics")
# image (last path segment, or the full name) → the catalog's program
CATALOG = {"redis": "redis", "bitnami/redis": "redis", "valkey": "redis", "redis-stack-server": "redis",
           "memcached": "memcached", "bitnami/memcached": "memcached",
           "postgres": "postgres", "postgresql": "postgres", "bitnami/postgresql": "postgres",
           "mysql": "mysql", "mariadb": "mysql", "bitnami/mysql": "mysql",
           "bitnami/mariadb": "mysql", "httpd": "httpd", "python": "python"}


def image_name(image: str) -> str:
    """``registry.k8s.io/e2e-test-images/agnhost:2.52`` → ``e2e-test-images/agnhost``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1]) + last[-1].index(":")]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if parts and parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts)


def builtin_kind(image: str) -> str:
    """The built-in program for an image (docs/apps.md's table)."""
    name = image_name(image)
    base = name.rsplit("/", 1)[-1]
    if name == "knet/echo":
        return "echo"
    if name == "knet/gateway":
        return "gateway"  # knet's Gateway API data plane (knet.gateway.dataplane)
    if name.endswith(("k8s-staging-gateway-api/echo-basic",
                      "k8s-staging-gateway-api/echo-advanced")):
        return "gateway-echo"  # the Gateway API conformance echo server (knet.gateway.echo)
    if base == "agnhost":
        return "agnhost"
    if name.endswith("http-echo"):
        return "http-echo"
    if "ingress-nginx/controller" in name:
        return "ingress-nginx"
    if base == "coredns":
        return "coredns"
    if base in ("nginx", "nginx-unprivileged") or name.startswith("nginxinc/"):
        return "nginx"
    if name in IDLE_CLIENT_IMAGES or base in IDLE_CLIENT_IMAGES:
        return "client"
    if name in SYSTEM_IMAGES or base in SYSTEM_IMAGES:
        return "idle"
    if name in CATALOG or base in CATALOG:
        return CATALOG.get(name) or CATALOG[base]
    return "unknown"  # accepts TCP on its declared ports, answers nothing (a warning says so)


UNKNOWN_HINT = ("it accepts TCP connections on its declared containerPorts and answers nothing; "
                "attach an app with knet.run(..., apps={'NS/NAME': factory}) or the annotation "
                "knet.dev/app: 'module:factory' (docs/apps.md)")


def _containers(obj: Any) -> list[tuple[Any, str, str, bool]]:
    """(source, container name, image, has app annotation) of a Pod or workload template."""
    spec = getattr(obj, "spec", None)
    meta = getattr(obj, "metadata", None)
    if obj.kind == "Pod" and spec is not None:
        ann = dict(meta.annotations) if meta is not None else {}
        return [(meta.source if meta is not None else "", c.name, c.image,
                 "knet.dev/app" in ann or f"knet.dev/app.{c.name}" in ann)
                for c in (*spec.init_containers, *spec.containers)]
    tpl = getattr(obj, "template", None) or (getattr(spec, "template", None) if spec else None)
    if not isinstance(tpl, dict):
        return []
    ann = (tpl.get("metadata") or {}).get("annotations") or {}
    pspec = tpl.get("spec") or {}
    out = []
    for c in [*(pspec.get("initContainers") or ()), *(pspec.get("containers") or ())]:
        name = str(c.get("name", ""))
        out.append((meta.source if meta is not None else "", name, str(c.get("image", "")),
                    "knet.dev/app" in ann or f"knet.dev/app.{name}" in ann))
    return out


def unknown_image_warnings(objects: Iterable[Any]) -> list[str]:
    """One warning per image knet's catalog does not know (no app annotation attached)."""
    seen: set[str] = set()
    out = []
    for obj in objects:
        kind = getattr(obj, "kind", "")
        if kind not in ("Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job",
                        "CronJob", "ReplicationController"):
            continue
        for source, cname, image, annotated in _containers(obj):
            if annotated or not image or image in seen or builtin_kind(image) != "unknown":
                continue
            seen.add(image)
            where = f"{source}: " if source else ""
            out.append(f'{where}{kind} {obj.metadata.key} container {cname}: image "{image}" is '
                       f"not in knet's catalog: {UNKNOWN_HINT}")
    return out
