"""Node objects the way kind creates them (kind v0.2x on Kubernetes v1.32).

Invariants: names follow kind (``<cluster>-control-plane``, ``<cluster>-control-plane2``…,
``<cluster>-worker``, ``<cluster>-worker2``…); labels are those kubelet + kubeadm put on a kind
node; control-plane nodes carry kubeadm's ``node-role.kubernetes.io/control-plane:NoSchedule``
taint unless the cluster has no worker (kind then removes it so workloads can run). Addresses
and pod CIDRs are left empty: the control plane assigns them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from knet.model.config import ClusterConfig
from knet.model.core import Node, Taint
from knet.model.meta import ObjectMeta, Source

CONTROL_PLANE = "control-plane"
WORKER = "worker"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
# What a kind node container reports on a typical CI runner; nodes declared as v1 Node
# manifests carry their own capacity.
DEFAULT_CAPACITY: Mapping[str, str] = {
    "cpu": "8", "ephemeral-storage": "100Gi", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
    "memory": "16Gi", "pods": "110",
}


def kind_node_names(cluster_name: str, roles: Sequence[str]) -> list[str]:
    """kind's naming: the n-th node of a role gets suffix n (the first gets none)."""
    counts: dict[str, int] = {}
    names = []
    for role in roles:
        counts[role] = counts.get(role, 0) + 1
        n = counts[role]
        names.append(f"{cluster_name}-{role}" + (str(n) if n > 1 else ""))
    return names


def kind_node(name: str, role: str, *, labels: Mapping[str, str] | None = None,
              tainted: bool = True, source: Source | None = None,
              creation_index: int = 0) -> Node:
    """One node as kind + kubeadm + kubelet label it. ``labels`` are the kind config's extra."""
    all_labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    taints: tuple[Taint, ...] = ()
    if role == CONTROL_PLANE:
        all_labels[CONTROL_PLANE_LABEL] = ""
        all_labels[EXCLUDE_LB_LABEL] = ""
        if tainted:
            taints = (Taint(key=CONTROL_PLANE_LABEL, effect="NoSchedule"),)
    all_labels.update(labels or {})
    meta = ObjectMeta(name=name, labels=dict(sorted(all_labels.items())), source=source,
                      creation_index=creation_index)
    return Node(metadata=meta, taints=taints, capacity=dict(DEFAULT_CAPACITY),
                allocatable=dict(DEFAULT_CAPACITY))


def kind_nodes(cluster_name: str, roles: Sequence[str],
               labels: Sequence[Mapping[str, str]] | None = None,
               sources: Sequence[Source | None] | None = None) -> list[Node]:
    has_worker = any(r == WORKER for r in roles)
    names = kind_node_names(cluster_name, roles)
    return [
        kind_node(n, r, labels=(labels[i] if labels else None), tainted=has_worker,
                  source=(sources[i] if sources else None), creation_index=i)
        for i, (n, r) in enumerate(zip(names, roles))
    ]


def default_nodes(config: ClusterConfig) -> list[Node]:
    """knet's default cluster shape: one control-plane node and two workers, kind-style."""
    return kind_nodes(config.name, [CONTROL_PLANE, WORKER, WORKER])
