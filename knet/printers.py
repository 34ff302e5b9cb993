"""kubectl's printers: the table columns of ``knet get`` (pkg/printers/internalversion/
printers.go), plus ``-o yaml|json|name`` of the converged objects as manifests knet can load
again. Below the CLI, the control endpoint of ``knet up`` and the API server, which all show
the same tables."""

from __future__ import annotations

import functools
import json
from typing import Any, Protocol
from collections.abc import Callable, Iterable, Mapping

from knet.errors import NotFound, UsageError
from knet.model.policy import (
    AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy, NetworkPolicy,
)
from knet.model import (
    ConfigMap, DaemonSet, Deployment, EndpointSlice, Ingress, IngressClass, Job, Namespace, Node,
    Pod, ReplicaSet, Secret, Service, StatefulSet,
)
from datetime import UTC



class _Kind(Protocol):
    @property
    def kind(self) -> str: ...


# kind → (resource name for "kind/name", model type, namespaced)
KINDS: dict[str, tuple[str, type[_Kind], bool]] = {
    "pods": ("pod", Pod, True),
    "services": ("service", Service, True),
    "nodes": ("node", Node, False),
    "endpointslices": ("endpointslice.discovery.k8s.io", EndpointSlice, True),
    "deployments": ("deployment.apps", Deployment, True),
    "replicasets": ("replicaset.apps", ReplicaSet, True),
    "statefulsets": ("statefulset.apps", StatefulSet, True),
    "daemonsets": ("daemonset.apps", DaemonSet, True),
    "jobs": ("job.batch", Job, True),
    "ingresses": ("ingress.networking.k8s.io", Ingress, True),
    "ingressclasses": ("ingressclass.networking.k8s.io", IngressClass, False),
    "configmaps": ("configmap", ConfigMap, True),
    "secrets": ("secret", Secret, True),
    "namespaces": ("namespace", Namespace, False),
    "networkpolicies": ("networkpolicy.networking.k8s.io", NetworkPolicy, True),
    "clusternetworkpolicies": ("clusternetworkpolicy.policy.networking.k8s.io",
                               ClusterNetworkPolicy, False),
    "adminnetworkpolicies": ("adminnetworkpolicy.policy.networking.k8s.io",
                             AdminNetworkPolicy, False),
    "baselineadminnetworkpolicies": ("baselineadminnetworkpolicy.policy.networking.k8s.io",
                                     BaselineAdminNetworkPolicy, False),
}
ALIASES = {
    "po": "pods", "pod": "pods", "svc": "services", "service": "services", "no": "nodes",
    "node": "nodes", "endpointslice": "endpointslices", "deploy": "deployments",
    "deployment": "deployments", "rs": "replicasets", "replicaset": "replicasets",
    "sts": "statefulsets", "statefulset": "statefulsets", "ds": "daemonsets",
    "daemonset": "daemonsets", "job": "jobs", "ing": "ingresses", "ingress": "ingresses",
    "ingressclass": "ingressclasses", "cm": "configmaps", "configmap": "configmaps",
    "secret": "secrets", "ns": "namespaces", "namespace": "namespaces",
    "netpol": "networkpolicies", "networkpolicy": "networkpolicies",
    "cnp": "clusternetworkpolicies", "clusternetworkpolicy": "clusternetworkpolicies",
    "anp": "adminnetworkpolicies", "adminnetworkpolicy": "adminnetworkpolicies",
    "banp": "baselineadminnetworkpolicies",
    "baselineadminnetworkpolicy": "baselineadminnetworkpolicies",
}
# kubectl get all: the categories "all" covers, in kubectl's order.
ALL_KINDS = ["pods", "services", "daemonsets", "deployments", "replicasets", "statefulsets", "jobs"]


def resolve_kind(kind: str) -> str:
    k = kind.lower()
    k = ALIASES.get(k, k)
    if k not in KINDS and k != "all":
        raise UsageError(f'the server doesn\'t have a resource type "{kind}"')
    return k


def run_get(cluster: Any, kind: str, name: str | None, namespace: str | None,
            all_namespaces: bool, output: str | None,
            loopback: Mapping[str, str] | None = None) -> str:
    """kubectl's output for ``kind``. ``loopback`` (from a running ``knet up``): each node's
    loopback address for real clients, shown as a last ``-o wide`` column of nodes."""
    from knet.gateway import view as gateway_view

    gw = gateway_view.resolve_resource(kind)
    if gw is not None:  # Gateway API kinds: printer columns and status from knet.gateway
        return gateway_view.run_get(cluster, gw, name, namespace, all_namespaces, output)
    # kubectl get pods,svc: several types, each table's names prefixed with the type
    kinds: list[str] = []
    for part in kind.split(","):
        rk = resolve_kind(part) if part else resolve_kind(kind)
        for kk in (ALL_KINDS if rk == "all" else [rk]):
            if kk not in kinds:
                kinds.append(kk)
    k = "all" if len(kinds) > 1 else kinds[0]
    ns = None if all_namespaces else (namespace or "default")
    selected: list[tuple[str, list[Any]]] = []
    for kk in kinds:
        objs = [o for o in cluster.objects(KINDS[kk][1].kind)
                if not KINDS[kk][2] or ns is None or o.metadata.namespace == ns]
        if name is not None:
            objs = [o for o in objs if o.metadata.name == name]
        objs.sort(key=lambda o: (o.metadata.namespace, o.metadata.name))
        selected.append((kk, objs))
    if name is not None and not any(objs for _, objs in selected):
        raise NotFound(f'{KINDS[kinds[0]][0]} "{name}" not found')
    if output in ("yaml", "json"):
        from knet.manifests import to_manifest, to_yaml

        items = [to_manifest(o) for _, objs in selected for o in objs]
        data: Any = items[0] if name is not None and len(items) == 1 else {
            "apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
        if output == "json":
            return json.dumps(data, indent=4) + "\n"
        return to_yaml(data)
    if output == "name":
        return "".join(f"{KINDS[kk][0]}/{o.metadata.name}\n" for kk, objs in selected for o in objs)
    out: list[str] = []
    for kk, objs in selected:
        if not objs:
            continue
        header, rowfn = PRINTERS[kk]
        wide = output == "wide"
        cols = list(header(wide))
        rows = [rowfn(cluster, o, wide) for o in objs]
        if kk == "nodes" and wide and loopback is not None:
            cols.append("LOOPBACK")
            rows = [[*r, loopback.get(o.metadata.name, "<none>")] for o, r in zip(objs, rows)]
        if ns is None and KINDS[kk][2]:
            cols.insert(0, "NAMESPACE")
            rows = [[o.metadata.namespace, *r] for o, r in zip(objs, rows)]
        if k == "all":
            prefix = KINDS[kk][0]
            idx = 1 if ns is None and KINDS[kk][2] else 0
            for r in rows:
                r[idx] = f"{prefix}/{r[idx]}"
        out.append(table(cols, rows))
    if not out:
        where = f" in {ns} namespace" if ns is not None else ""
        raise NoResources(f"No resources found{where}.")
    return "\n".join(out)


class NoResources(NotFound):
    """kubectl prints "No resources found in NS namespace." on stderr and exits 0."""


def table(cols: list[str], rows: Iterable[list[str]]) -> str:
    """Like kubectl's tabwriter: columns padded to the widest cell plus three spaces."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    lines = []
    for r in [cols, *rows]:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def age(cluster: Any, obj: Any) -> str:
    """Time since creationTimestamp on the cluster's clock (knet-created objects start at 0)."""
    ts = obj.metadata.creation_timestamp
    now = getattr(cluster, "now", None)
    if not ts or now is None:
        return "<unknown>"
    created = _epoch(ts)
    if created is None:
        return "<unknown>"
    seconds = now - created
    return "<unknown>" if seconds < 0 else human_duration(seconds)


@functools.lru_cache(maxsize=4096)
def _epoch(ts: str) -> float | None:
    """creationTimestamp → seconds (cached: a 10,000-pod table parses few distinct stamps)."""
    from datetime import datetime

    try:
        return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y{d % 365}d" if d % 365 else f"{d // 365}y"


def _selector_str(sel: Any) -> str:
    if sel is None:
        return "<none>"
    labels = getattr(sel, "match_labels", sel)
    parts = [f"{k}={v}" for k, v in labels.items()]
    for r in getattr(sel, "match_expressions", ()):
        parts.append(f"{r.key} {r.operator.lower()} ({','.join(r.values)})")
    return ",".join(parts) or "<none>"


# --- pods -------------------------------------------------------------------------------------

def _pod_header(wide: bool) -> list[str]:
    h = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    return h + ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"] if wide else h


def _pod_status(pod: Pod) -> str:
    if pod.terminating:
        return "Terminating"
    st = pod.status
    if st.reason:
        return st.reason
    sidecars = {c.name for c in pod.spec.init_containers if c.restart_policy == "Always"}
    for i, cs in enumerate(st.init_container_statuses):  # kubectl printPod
        if cs.state == "terminated" and cs.reason in ("", "Completed") and not cs.exit_code:
            continue
        if cs.name in sidecars and cs.started:
            continue  # a started sidecar does not hold initialisation
        if cs.state == "terminated" and cs.reason not in ("", "Completed"):
            return f"Init:{cs.reason}"
        if cs.state == "terminated":
            return f"Init:ExitCode:{cs.exit_code}"
        if cs.state == "waiting" and cs.reason and cs.reason != "PodInitializing":
            return f"Init:{cs.reason}"
        return f"Init:{i}/{len(pod.spec.init_containers)}"
    for cs in st.container_statuses:
        if cs.state == "waiting" and cs.reason:
            return cs.reason
        if cs.state == "terminated" and cs.reason:
            return cs.reason
    return st.phase


def _restarts(pod: Pod, status: str) -> int:
    """kubectl printPod: while the pod initialises, the init containers' restarts; after, the
    restartable (sidecar) init containers' plus the regular containers'."""
    st = pod.status
    if status.startswith("Init:"):
        return sum(c.restart_count for c in st.init_container_statuses)
    sidecars = {c.name for c in pod.spec.init_containers if c.restart_policy == "Always"}
    return (sum(c.restart_count for c in st.init_container_statuses if c.name in sidecars)
            + sum(c.restart_count for c in st.container_statuses))


def _pod_row(cluster: Any, pod: Pod, wide: bool) -> list[str]:
    # kubectl counts restartable (sidecar) init containers among the pod's containers
    sidecars = {c.name for c in pod.spec.init_containers if c.restart_policy == "Always"}
    n = len(pod.spec.containers) + len(sidecars)
    ready = sum(1 for c in pod.status.container_statuses if c.ready) + sum(
        1 for c in pod.status.init_container_statuses if c.name in sidecars and c.ready)
    status = _pod_status(pod)
    if getattr(cluster, "ready_on_start", False):  # the static view: what the runtime will show
        from knet.control.podstatus import predict

        predicted = predict(cluster, pod)
        if predicted is not None:
            status, ready = predicted
    row = [pod.metadata.name, f"{ready}/{n}", status, str(_restarts(pod, status)),
           age(cluster, pod)]
    if wide:
        row += [str(pod.ip) if pod.ip else "<none>", pod.spec.node_name or "<none>",
                pod.status.nominated_node_name or "<none>",
                f"{0}/{len(pod.spec.readiness_gates)}" if pod.spec.readiness_gates else "<none>"]
    return row


# --- services ---------------------------------------------------------------------------------

def _svc_header(wide: bool) -> list[str]:
    h = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    return h + ["SELECTOR"] if wide else h


def _svc_row(cluster: Any, svc: Service, wide: bool) -> list[str]:
    spec = svc.spec
    if spec.type == "ExternalName":
        external = spec.external_name
    else:
        lb = [i.ip or i.hostname for i in svc.load_balancer_ingress]
        ext = list(spec.external_ips)
        if spec.type == "LoadBalancer":
            external = ",".join(lb + ext) if (lb or ext) else "<pending>"
        else:
            external = ",".join(ext) if ext else "<none>"
    ports = ",".join(
        (f"{p.port}:{p.node_port}/{p.protocol}" if p.node_port else f"{p.port}/{p.protocol}")
        for p in spec.ports) or "<none>"
    row = [svc.metadata.name, str(spec.type), spec.cluster_ip or "<none>", external, ports,
           age(cluster, svc)]
    if wide:
        row.append(_selector_str(spec.selector) if spec.selector else "<none>")
    return row


# --- nodes ------------------------------------------------------------------------------------

def _node_header(wide: bool) -> list[str]:
    h = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    return h + ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                "CONTAINER-RUNTIME"] if wide else h


def _node_row(cluster: Any, node: Node, wide: bool) -> list[str]:
    roles = sorted(k.split("/", 1)[1] for k in node.labels
                   if k.startswith("node-role.kubernetes.io/"))
    status = "Ready" if node.ready else "NotReady"
    if node.unschedulable:
        status += ",SchedulingDisabled"
    info = node.extra.get("nodeInfo", {}) if node.extra else {}
    row = [node.name, status, ",".join(roles) or "<none>", age(cluster, node),
           info.get("kubeletVersion", "v1.32.0")]
    if wide:
        internal = [a.address for a in node.addresses if a.type == "InternalIP"]
        external = [a.address for a in node.addresses if a.type == "ExternalIP"]
        row += [",".join(internal) or "<none>", ",".join(external) or "<none>",
                info.get("osImage", "Debian GNU/Linux 12 (bookworm)"),
                info.get("kernelVersion", "knet"),
                info.get("containerRuntimeVersion", "knet://0.1.0")]
    return row


# --- endpointslices ---------------------------------------------------------------------------

def _eps_header(wide: bool) -> list[str]:
    return ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]


def _eps_row(cluster: Any, s: EndpointSlice, wide: bool) -> list[str]:
    ports = ",".join(str(p.port) for p in s.ports if p.port) or "<unset>"
    addrs = [a for e in s.endpoints for a in e.addresses[:1]]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [s.metadata.name, s.address_type, ports, shown or "<unset>", age(cluster, s)]


# --- workloads --------------------------------------------------------------------------------

def _containers(template: Any) -> tuple[str, str]:
    cs = (template or {}).get("spec", {}).get("containers", []) or []
    return (",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs))


def _owned_pods(cluster: Any, obj: Any) -> list[Pod]:
    fn = getattr(cluster, "owned_pods", None)
    if fn is not None:
        return list(fn(obj))
    return [p for p in cluster.objects("Pod") if p.metadata.namespace == obj.metadata.namespace
            and obj.selector.matches(p.metadata.labels)]


def _ready(pods: list[Pod]) -> int:
    return sum(1 for p in pods if p.status.ready and not p.terminating)


def _deploy_header(wide: bool) -> list[str]:
    h = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    return h + ["CONTAINERS", "IMAGES", "SELECTOR"] if wide else h


def _deploy_row(cluster: Any, d: Deployment, wide: bool) -> list[str]:
    pods = _owned_pods(cluster, d)
    r = _ready(pods)
    row = [d.metadata.name, f"{r}/{d.replicas}", str(len(pods)), str(r), age(cluster, d)]
    return row + [*_containers(d.template), _selector_str(d.selector)] if wide else row


def _rs_header(wide: bool) -> list[str]:
    h = ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    return h + ["CONTAINERS", "IMAGES", "SELECTOR"] if wide else h


def _rs_row(cluster: Any, rs: ReplicaSet, wide: bool) -> list[str]:
    pods = _owned_pods(cluster, rs)
    row = [rs.metadata.name, str(rs.replicas), str(len(pods)), str(_ready(pods)), age(cluster, rs)]
    return row + [*_containers(rs.template), _selector_str(rs.selector)] if wide else row


def _sts_header(wide: bool) -> list[str]:
    h = ["NAME", "READY", "AGE"]
    return h + ["CONTAINERS", "IMAGES"] if wide else h


def _sts_row(cluster: Any, s: StatefulSet, wide: bool) -> list[str]:
    pods = _owned_pods(cluster, s)
    row = [s.metadata.name, f"{_ready(pods)}/{s.replicas}", age(cluster, s)]
    return row + list(_containers(s.template)) if wide else row


def _ds_header(wide: bool) -> list[str]:
    h = ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"]
    return h + ["CONTAINERS", "IMAGES", "SELECTOR"] if wide else h


def _ds_row(cluster: Any, d: DaemonSet, wide: bool) -> list[str]:
    pods = _owned_pods(cluster, d)
    r = _ready(pods)
    sel = (d.template or {}).get("spec", {}).get("nodeSelector") or {}
    row = [d.metadata.name, str(len(pods)), str(len(pods)), str(r), str(len(pods)), str(r),
           ",".join(f"{k}={v}" for k, v in sel.items()) or "<none>", age(cluster, d)]
    return row + [*_containers(d.template), _selector_str(d.selector)] if wide else row


def _job_duration(cluster: Any, st: Any) -> str:
    """kubectl printJob: empty without status.startTime; completionTime − startTime once
    finished, else the time since the start."""
    start = _epoch(st.start_time) if st is not None and st.start_time else None
    if start is None:
        return ""
    end = _epoch(st.completion_time) if st.completion_time else getattr(cluster, "now", None)
    if end is None or end < start:
        return ""
    return human_duration(end - start)


def _job_header(wide: bool) -> list[str]:
    h = ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    return h + ["CONTAINERS", "IMAGES", "SELECTOR"] if wide else h


def _job_row(cluster: Any, j: Job, wide: bool) -> list[str]:
    pods = _owned_pods(cluster, j) if j.selector else []
    st = j.status
    done = st.succeeded if st is not None else sum(
        1 for p in pods if p.status.phase == "Succeeded")
    want = j.completions if j.completions is not None else 1
    status = (getattr(st, "finished", "") or "Running") if st is not None else (
        "Complete" if done >= want else "Running")
    row = [j.metadata.name, status, f"{done}/{want}", _job_duration(cluster, st),
           age(cluster, j)]
    return row + [*_containers(j.template), _selector_str(j.selector)] if wide else row


# --- ingress ----------------------------------------------------------------------------------

def _ing_header(wide: bool) -> list[str]:
    return ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]


def _ing_row(cluster: Any, ing: Ingress, wide: bool) -> list[str]:
    hosts = ",".join(r.host or "*" for r in ing.rules) or "*"
    addr = ",".join(i.ip or i.hostname for i in ing.load_balancer_ingress)
    ports = "80, 443" if ing.tls else "80"
    return [ing.metadata.name, ing.ingress_class_name or "<none>", hosts, addr, ports,
            age(cluster, ing)]


def _ingclass_header(wide: bool) -> list[str]:
    return ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]


def _ingclass_row(cluster: Any, c: IngressClass, wide: bool) -> list[str]:
    return [c.metadata.name, c.controller, "<none>", age(cluster, c)]


def _cm_header(wide: bool) -> list[str]:
    return ["NAME", "DATA", "AGE"]


def _cm_row(cluster: Any, c: ConfigMap, wide: bool) -> list[str]:
    return [c.metadata.name, str(len(c.data) + len(c.binary_data)), age(cluster, c)]


def _secret_header(wide: bool) -> list[str]:
    return ["NAME", "TYPE", "DATA", "AGE"]


def _secret_row(cluster: Any, s: Secret, wide: bool) -> list[str]:
    return [s.metadata.name, s.type, str(len(s.data)), age(cluster, s)]


def _ns_header(wide: bool) -> list[str]:
    return ["NAME", "STATUS", "AGE"]


def _ns_row(cluster: Any, n: Namespace, wide: bool) -> list[str]:
    return [n.metadata.name, "Active", age(cluster, n)]


def _netpol_header(wide: bool) -> list[str]:
    return ["NAME", "POD-SELECTOR", "AGE"]


def _netpol_row(cluster: Any, p: NetworkPolicy, wide: bool) -> list[str]:
    return [p.metadata.name, _selector_str(p.pod_selector) or "<none>", age(cluster, p)]


def _cnp_header(wide: bool) -> list[str]:
    return ["NAME", "TIER", "PRIORITY", "AGE"]


def _cnp_row(cluster: Any, p: ClusterNetworkPolicy, wide: bool) -> list[str]:
    return [p.metadata.name, p.tier, str(p.priority), age(cluster, p)]


PRINTERS: dict[str, tuple[Callable[[bool], list[str]], Callable[..., list[str]]]] = {
    "networkpolicies": (_netpol_header, _netpol_row),
    "clusternetworkpolicies": (_cnp_header, _cnp_row),
    "adminnetworkpolicies": (_cnp_header, _cnp_row),
    "baselineadminnetworkpolicies": (_cnp_header, _cnp_row),
    "pods": (_pod_header, _pod_row),
    "services": (_svc_header, _svc_row),
    "nodes": (_node_header, _node_row),
    "endpointslices": (_eps_header, _eps_row),
    "deployments": (_deploy_header, _deploy_row),
    "replicasets": (_rs_header, _rs_row),
    "statefulsets": (_sts_header, _sts_row),
    "daemonsets": (_ds_header, _ds_row),
    "jobs": (_job_header, _job_row),
    "ingresses": (_ing_header, _ing_row),
    "ingressclasses": (_ingclass_header, _ingclass_row),
    "configmaps": (_cm_header, _cm_row),
    "secrets": (_secret_header, _secret_row),
    "namespaces": (_ns_header, _ns_row),
}


def _register_storage() -> None:
    from knet import printers_storage as getstorage

    KINDS.update(getstorage.KINDS)
    ALIASES.update(getstorage.ALIASES)
    PRINTERS.update(getstorage.PRINTERS)  # type: ignore[arg-type]


_register_storage()

# the controller kinds (knet.manifests.render_controllers): CronJob, RC, PDB, HPA, PriorityClass
from knet.manifests import render_controllers as _rc  # noqa: E402

KINDS.update(_rc.KINDS)
ALIASES.update(_rc.ALIASES)
PRINTERS.update(_rc.PRINTERS)
