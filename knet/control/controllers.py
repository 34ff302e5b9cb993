"""Registry of the controllers beyond the apps kinds, for knet.control.cluster's work loop.

``KINDS`` are queued like the workload kinds (an object is re-synced when it or a pod it owns
changes, or when it asked for ``requeue_at``); ``SYNCS`` is the order they run in;
``on_pod`` lets the disruption controller follow pods it selects but does not own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from knet.control import autoscaling, batch, disruption, workloads

if TYPE_CHECKING:
    from knet.control.cluster import Cluster
    from knet.model.core import Pod

KINDS = ("ReplicationController", "CronJob", "PodDisruptionBudget", "HorizontalPodAutoscaler")
API_VERSIONS = {"ReplicationController": "v1", "CronJob": "batch/v1",
                "PodDisruptionBudget": "policy/v1", "HorizontalPodAutoscaler": "autoscaling/v2"}
SYNCS: tuple[tuple[str, Callable[[Any, Any], None]], ...] = (
    ("ReplicationController", workloads.sync_replicationcontroller),
    ("CronJob", batch.sync_cronjob),
    ("Job", batch.sync_job),
    ("PodDisruptionBudget", disruption.sync_pdb),
    ("HorizontalPodAutoscaler", autoscaling.sync_hpa),
)


def on_pod(c: Cluster, pod: Pod) -> None:
    """A pod changed (created, updated or deleted)."""
    disruption.on_pod(c, pod)
