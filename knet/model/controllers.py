"""The remaining controller kinds: CronJob, ReplicationController, PodDisruptionBudget,
HorizontalPodAutoscaler, PriorityClass, and the core/v1 Event their controllers record.

Invariants: frozen values like every model kind; spec fields mirror the API (snake_case);
status is a separate frozen value the controller replaces as a whole (``evolve``). Templates
(a CronJob's jobTemplate, an RC's pod template) stay API mappings, as for the apps kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from knet.model.meta import LabelSelector, ObjectMeta


@dataclass(frozen=True, slots=True)
class JobCondition:
    type: str  # Complete, Failed, SuccessCriteriaMet, FailureTarget, Suspended
    status: str = "True"
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""


@dataclass(frozen=True, slots=True)
class JobStatus:
    active: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    terminating: int = 0
    start_time: str = ""
    completion_time: str = ""
    completed_indexes: str = ""
    failed_indexes: str = ""
    conditions: tuple[JobCondition, ...] = ()

    def condition(self, type: str) -> JobCondition | None:
        return next((c for c in self.conditions if c.type == type and c.status == "True"), None)

    @property
    def finished(self) -> str:
        """"Complete", "Failed" or "" (still running)."""
        for c in self.conditions:
            if c.type in ("Complete", "Failed") and c.status == "True":
                return c.type
        return ""


@dataclass(frozen=True, slots=True)
class PodFailurePolicyRule:
    action: str  # FailJob, FailIndex, Ignore, Count
    container_name: str = ""
    operator: str = ""  # In, NotIn (onExitCodes)
    values: tuple[int, ...] = ()
    on_pod_conditions: tuple[tuple[str, str], ...] = ()  # (type, status)


@dataclass(frozen=True, slots=True)
class ObjectReference:
    kind: str
    namespace: str
    name: str
    uid: str = ""
    api_version: str = ""


@dataclass(frozen=True, slots=True)
class CronJobStatus:
    active: tuple[ObjectReference, ...] = ()
    last_schedule_time: str = ""
    last_successful_time: str = ""


@dataclass(frozen=True, slots=True)
class CronJob:
    metadata: ObjectMeta
    schedule: str
    job_template: Mapping[str, Any] = field(hash=False)  # {"metadata": …, "spec": …}
    time_zone: str = ""
    starting_deadline_seconds: int | None = None
    concurrency_policy: str = "Allow"  # Allow, Forbid, Replace
    suspend: bool = False
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 1
    status: CronJobStatus = CronJobStatus()
    kind = "CronJob"

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace


@dataclass(frozen=True, slots=True)
class ReplicationControllerStatus:
    replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0


@dataclass(frozen=True, slots=True)
class ReplicationController:
    metadata: ObjectMeta
    selector: LabelSelector  # equality-based only (spec.selector is a map)
    template: Mapping[str, Any] = field(hash=False)
    replicas: int = 1
    min_ready_seconds: int = 0
    status: ReplicationControllerStatus = ReplicationControllerStatus()
    kind = "ReplicationController"


@dataclass(frozen=True, slots=True)
class PodDisruptionBudgetStatus:
    current_healthy: int = 0
    desired_healthy: int = 0
    disruptions_allowed: int = 0
    expected_pods: int = 0
    observed_generation: int = 1
    disrupted_pods: Mapping[str, str] = field(default_factory=dict, hash=False)
    conditions: tuple[JobCondition, ...] = ()  # DisruptionAllowed (same shape as a condition)


@dataclass(frozen=True, slots=True)
class PodDisruptionBudget:
    metadata: ObjectMeta
    selector: LabelSelector | None
    min_available: int | str | None = None
    max_unavailable: int | str | None = None
    unhealthy_pod_eviction_policy: str = "IfHealthyBudget"  # or AlwaysAllow
    status: PodDisruptionBudgetStatus = PodDisruptionBudgetStatus()
    kind = "PodDisruptionBudget"


@dataclass(frozen=True, slots=True)
class MetricTarget:
    type: str  # Utilization, AverageValue, Value
    average_utilization: int | None = None
    average_value: float | None = None  # in base units (cores for cpu, bytes for memory)
    value: float | None = None


@dataclass(frozen=True, slots=True)
class MetricSpec:
    type: str  # Resource, ContainerResource, Pods, Object, External
    name: str  # resource name (cpu, memory) or metric name
    target: MetricTarget
    container: str = ""
    described_object: ObjectReference | None = None


@dataclass(frozen=True, slots=True)
class HPAScalingPolicy:
    type: str  # Pods, Percent
    value: int
    period_seconds: int


@dataclass(frozen=True, slots=True)
class HPAScalingRules:
    stabilization_window_seconds: int
    select_policy: str  # Max, Min, Disabled
    policies: tuple[HPAScalingPolicy, ...]


# autoscaling/v2 defaults (pkg/apis/autoscaling/v2/defaults.go)
DEFAULT_SCALE_UP = HPAScalingRules(0, "Max", (HPAScalingPolicy("Pods", 4, 15),
                                              HPAScalingPolicy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = HPAScalingRules(300, "Max", (HPAScalingPolicy("Percent", 100, 15),))


@dataclass(frozen=True, slots=True)
class HPACondition:
    type: str  # AbleToScale, ScalingActive, ScalingLimited
    status: str
    reason: str
    message: str
    last_transition_time: str = ""


@dataclass(frozen=True, slots=True)
class MetricStatus:
    type: str
    name: str
    average_utilization: int | None = None
    average_value: float | None = None
    value: float | None = None


@dataclass(frozen=True, slots=True)
class HPAStatus:
    current_replicas: int = 0
    desired_replicas: int = 0
    last_scale_time: str = ""
    current_metrics: tuple[MetricStatus, ...] = ()
    conditions: tuple[HPACondition, ...] = ()

    def condition(self, type: str) -> HPACondition | None:
        return next((c for c in self.conditions if c.type == type), None)


@dataclass(frozen=True, slots=True)
class HorizontalPodAutoscaler:
    metadata: ObjectMeta
    target_kind: str
    target_name: str
    target_api_version: str = "apps/v1"
    min_replicas: int = 1
    max_replicas: int = 1
    metrics: tuple[MetricSpec, ...] = ()
    scale_up: HPAScalingRules = DEFAULT_SCALE_UP
    scale_down: HPAScalingRules = DEFAULT_SCALE_DOWN
    status: HPAStatus = HPAStatus()
    kind = "HorizontalPodAutoscaler"


@dataclass(frozen=True, slots=True)
class PriorityClass:
    metadata: ObjectMeta
    value: int
    global_default: bool = False
    preemption_policy: str = "PreemptLowerPriority"  # or Never
    description: str = ""
    kind = "PriorityClass"


@dataclass(frozen=True, slots=True)
class CoreEvent:
    """A core/v1 Event as controllers record it (``kubectl get events``)."""

    metadata: ObjectMeta
    involved_object: ObjectReference
    reason: str
    message: str
    type: str = "Normal"  # Normal, Warning
    source: str = ""  # reporting component, e.g. cronjob-controller
    count: int = 1
    first_timestamp: str = ""
    last_timestamp: str = ""
    kind = "Event"
