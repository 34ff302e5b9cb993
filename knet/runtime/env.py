"""A container's environment, as kubelet builds it (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables).

Order of precedence (low → high): Service link variables (enableServiceLinks, the
``kubernetes`` Service in every namespace), ``envFrom`` sources in order, ``env`` entries in
order; ``$(VAR)`` references to earlier variables are expanded, ``$$`` escapes. A missing
non-optional ConfigMap/Secret (or key) is a ``CreateContainerConfigError``.
"""

from __future__ import annotations

import re
from typing import Any

from knet.errors import KnetError
from knet.model.core import Container, Pod


class ConfigError(KnetError):
    """CreateContainerConfigError: a referenced ConfigMap/Secret/key does not exist."""


def _get(state: Any, kind: str, ns: str, name: str) -> Any:
    return state.store.get(kind, ns, name)


def _service_env(state: Any, pod: Pod) -> dict[str, str]:
    if pod.spec.extra.get("enableServiceLinks") is False:
        services = [s for s in state.services("default") if s.name == "kubernetes"]
    else:
        services = list(state.services(pod.namespace))
        if pod.namespace != "default":
            services += [s for s in state.services("default") if s.name == "kubernetes"]
    env: dict[str, str] = {}
    for svc in services:
        ip = svc.spec.cluster_ip
        if not ip or ip == "None" or not svc.spec.ports:
            continue
        name = svc.name.upper().replace("-", "_")
        env[f"{name}_SERVICE_HOST"] = ip
        first = svc.spec.ports[0]
        env[f"{name}_SERVICE_PORT"] = str(first.port)
        for p in svc.spec.ports:
            if p.name:
                env[f"{name}_SERVICE_PORT_{p.name.upper().replace('-', '_')}"] = str(p.port)
        proto = str(first.protocol).lower()
        host = f"[{ip}]" if ":" in ip else ip
        env[f"{name}_PORT"] = f"{proto}://{host}:{first.port}"
        for p in svc.spec.ports:
            pr = str(p.protocol)
            pre = f"{name}_PORT_{p.port}_{pr}"
            env[pre] = f"{pr.lower()}://{host}:{p.port}"
            env[pre + "_PROTO"] = pr.lower()
            env[pre + "_PORT"] = str(p.port)
            env[pre + "_ADDR"] = ip
    return env


def field_ref(pod: Pod, path: str) -> str:
    meta = pod.metadata
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        src = meta.labels if m.group(1) == "labels" else meta.annotations
        return src.get(m.group(2), "")
    st = pod.status
    values = {
        "metadata.name": meta.name, "metadata.namespace": meta.namespace, "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": str(pod.spec.extra.get("serviceAccountName", "default")),
        "status.hostIP": str(st.host_ip or ""),
        "status.hostIPs": str(st.host_ip or ""),
        "status.podIP": str(st.pod_ips[0]) if st.pod_ips else "",
        "status.podIPs": ",".join(map(str, st.pod_ips)),
        "metadata.labels": "\n".join(f'{k}="{v}"' for k, v in sorted(meta.labels.items())),
        "metadata.annotations": "\n".join(f'{k}="{v}"' for k, v in sorted(meta.annotations.items())),
    }
    return values.get(path, "")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion (third_party/forked/golang/expansion)."""
    out = []
    i = 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i):
            j = value.find(")", i)
            if j < 0:
                out.append(value[i:])
                break
            name = value[i + 2:j]
            out.append(env.get(name, f"$({name})"))
            i = j + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _data(obj: Any) -> dict[str, str]:
    if obj.kind == "Secret":
        return {k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
                for k, v in obj.data.items()}
    d = dict(obj.data)
    for k, v in getattr(obj, "binary_data", {}).items():
        d[k] = v.decode(errors="replace") if isinstance(v, bytes) else str(v)
    return d


def container_env(state: Any, pod: Pod, c: Container) -> dict[str, str]:
    ns = pod.namespace
    env: dict[str, str] = {"HOSTNAME": pod.spec.hostname or pod.name}
    env.update(_service_env(state, pod))
    for src in c.env_from:
        prefix = src.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = src.get(key)
            if ref is None:
                continue
            obj = _get(state, kind, ns, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
            for k, v in _data(obj).items():
                env[prefix + k] = v
    for e in c.env:
        name = e.get("name", "")
        if "valueFrom" not in e:
            env[name] = expand(str(e.get("value", "")), env)
            continue
        vf = e["valueFrom"] or {}
        if "fieldRef" in vf:
            env[name] = field_ref(pod, vf["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in vf:
            res = vf["resourceFieldRef"].get("resource", "")
            kind, _, rname = res.partition(".")
            src = c.limits if kind == "limits" else c.requests
            env[name] = str(src.get(rname, "0"))
        else:
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = vf.get(key)
                if ref is None:
                    continue
                obj = _get(state, kind, ns, ref.get("name", ""))
                data = _data(obj) if obj is not None else None
                if data is None or ref.get("key") not in data:
                    if ref.get("optional"):
                        break
                    what = (f'{kind.lower()} "{ref.get("name")}" not found' if data is None
                            else f'couldn\'t find key {ref.get("key")} in {kind} {ns}/{ref.get("name")}')
                    raise ConfigError(what)
                env[name] = data[ref["key"]]
    return env
