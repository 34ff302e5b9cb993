"""Workload kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job.

The pod template is kept as the API mapping (``template``): controllers turn it into Pods
through knet.manifests, exactly as a user's Pod manifest is turned into a Pod, so both paths
validate and default the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

from knet.model.meta import LabelSelector, ObjectMeta


@dataclass(frozen=True, slots=True)
class Deployment:
    metadata: ObjectMeta
    selector: LabelSelector
    template: Mapping[str, Any] = field(hash=False)
    replicas: int = 1
    strategy_type: str = "RollingUpdate"  # RollingUpdate, Recreate
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    min_ready_seconds: int = 0
    revision_history_limit: int = 10
    paused: bool = False
    progress_deadline_seconds: int | None = 600
    status: Any = None  # knet.control.rollout.DeploymentStatus once the controller synced
    kind = "Deployment"


@dataclass(frozen=True, slots=True)
class ReplicaSet:
    metadata: ObjectMeta
    selector: LabelSelector
    template: Mapping[str, Any] = field(hash=False)
    replicas: int = 1
    kind = "ReplicaSet"


@dataclass(frozen=True, slots=True)
class StatefulSet:
    metadata: ObjectMeta
    selector: LabelSelector
    template: Mapping[str, Any] = field(hash=False)
    service_name: str = ""
    replicas: int = 1
    pod_management_policy: str = "OrderedReady"  # OrderedReady, Parallel
    ordinals_start: int = 0
    update_strategy_type: str = "RollingUpdate"
    partition: int = 0  # updateStrategy.rollingUpdate.partition
    volume_claim_templates: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    kind = "StatefulSet"


@dataclass(frozen=True, slots=True)
class DaemonSet:
    metadata: ObjectMeta
    selector: LabelSelector
    template: Mapping[str, Any] = field(hash=False)
    update_strategy_type: str = "RollingUpdate"  # or OnDelete
    max_unavailable: int | str = 1
    max_surge: int | str = 0
    kind = "DaemonSet"


@dataclass(frozen=True, slots=True)
class Job:
    metadata: ObjectMeta
    template: Mapping[str, Any] = field(hash=False)
    selector: LabelSelector | None = None
    completions: int | None = 1
    parallelism: int = 1
    backoff_limit: int = 6
    # batch/v1 fields the Job controller of knet.control.batch honours
    completion_mode: str = "NonIndexed"  # or Indexed
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    suspend: bool = False
    pod_failure_policy: tuple[Any, ...] = ()  # PodFailurePolicyRule (knet.model.controllers)
    status: Any = None  # JobStatus (knet.model.controllers), None until the controller syncs
    kind = "Job"
