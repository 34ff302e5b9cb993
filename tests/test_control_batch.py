"""Jobs, CronJobs and ReplicationControllers on the pure core with a virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from knet.control import Cluster, cron
from knet.control.batch import format_indexes, job_name, seconds
from knet.errors import ManifestError
from knet.manifests import read_text

NODES = """
apiVersion: v1
kind: Node
metadata: {name: worker}
"""


def make(text: str, **kw) -> Cluster:
    return Cluster.from_input(read_text(NODES + "---\n" + text, "t.yaml"), seed=0,
                              system_objects=False, **kw)


def job_yaml(extra: str = "", pod: str = "") -> str:
    return f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: work}}
spec:
{extra}
  template:
    spec:
      restartPolicy: Never
{pod}
      containers: [{{name: main, image: busybox, command: [sh, -c, "exit 0"]}}]
"""


def events(c: Cluster, kind: str | None = None) -> list[tuple[str, str]]:
    evs = sorted(c.store.list("Event"), key=lambda e: e.metadata.creation_index)
    return [(e.reason, e.message) for e in evs
            if kind is None or e.involved_object.kind == kind]


def live(c: Cluster, prefix: str = "") -> list:
    return [p for p in c.pods("default") if p.name.startswith(prefix) and not p.terminating
            and p.status.phase not in ("Succeeded", "Failed")]


def finish(c: Cluster, pod, phase: str = "Succeeded", code: int = 0, now: float | None = None):
    from knet.control.store import evolve

    cur = c.pod(pod.key)
    st = evolve(cur.status, phase=phase, container_statuses=tuple(
        evolve(cs, state="terminated", exit_code=code) for cs in cur.status.container_statuses))
    c.apply(evolve(cur, status=st), now=now)


# --- cron schedules (robfig/cron v3 semantics, as the CronJob controller) ----------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # a Thursday


def nxt(spec: str, after: str, zone: str = "") -> str:
    t = datetime.fromisoformat(after).timestamp()
    r = cron.parse(spec).next_after(t, zone)
    assert r is not None
    return datetime.fromtimestamp(r, UTC).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize("spec,after,expected", [
    ("@hourly", "2026-01-01T00:00:00+00:00", "2026-01-01 01:00"),
    ("@hourly", "2026-01-01T00:59:59+00:00", "2026-01-01 01:00"),
    ("@daily", "2026-01-01T00:00:00+00:00", "2026-01-02 00:00"),
    ("@midnight", "2026-01-01T12:00:00+00:00", "2026-01-02 00:00"),
    ("@weekly", "2026-01-01T00:00:00+00:00", "2026-01-04 00:00"),  # next Sunday
    ("@monthly", "2026-01-15T00:00:00+00:00", "2026-02-01 00:00"),
    ("@yearly", "2026-01-01T00:00:00+00:00", "2027-01-01 00:00"),
    ("*/15 * * * *", "2026-01-01T00:16:00+00:00", "2026-01-01 00:30"),
    ("5/20 * * * *", "2026-01-01T00:06:00+00:00", "2026-01-01 00:25"),  # N/step = N-max/step
    ("0 9-17/4 * * mon-fri", "2026-01-02T14:00:00+00:00", "2026-01-02 17:00"),
    ("0 9-17/4 * * mon-fri", "2026-01-02T17:00:00+00:00", "2026-01-05 09:00"),  # Fri → Mon
    ("30 2 * * SUN,sat", "2026-01-01T00:00:00+00:00", "2026-01-03 02:30"),
    ("0 0 13 * 5", "2026-01-01T00:00:00+00:00", "2026-01-02 00:00"),  # dom OR dow: Friday 2nd
    ("0 0 13 * *", "2026-01-01T00:00:00+00:00", "2026-01-13 00:00"),
    ("0 0 */2 * 5", "2026-01-01T00:00:00+00:00", "2026-01-02 00:00"),  # */2 is not a star
    ("0 0 * * 5", "2026-01-01T00:00:00+00:00", "2026-01-02 00:00"),
    ("0 0 29 feb *", "2026-01-01T00:00:00+00:00", "2028-02-29 00:00"),
    ("0 12 * * ?", "2026-01-01T12:00:00+00:00", "2026-01-02 12:00"),
])
def test_cron_next(spec: str, after: str, expected: str) -> None:
    assert nxt(spec, after) == expected


def test_cron_time_zone_and_dst() -> None:
    # 09:00 in New York is 14:00 UTC in winter, 13:00 UTC in summer
    assert nxt("0 9 * * *", "2026-01-01T00:00:00+00:00", "America/New_York") == "2026-01-01 14:00"
    assert nxt("0 9 * * *", "2026-07-01T00:00:00+00:00", "America/New_York") == "2026-07-01 13:00"


@pytest.mark.parametrize("spec,message", [
    ("* * * *", "expected exactly 5 fields, found 4"),
    ("61 * * * *", "end of range (61) above maximum (59)"),
    ("* * * * 7", "end of range (7) above maximum (6)"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1)"),
    ("*/0 * * * *", "invalid step"),
    ("@every 5m", "unrecognized descriptor"),
    ("@fortnightly", "unrecognized descriptor"),
    ("TZ=UTC 0 * * * *", "cannot use TZ or CRON_TZ in schedule"),
    ("x * * * *", "failed to parse int from x"),
])
def test_cron_errors(spec: str, message: str) -> None:
    with pytest.raises(cron.CronError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cron.parse(spec)


def test_indexes_and_names() -> None:
    assert format_indexes({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert format_indexes(set()) == ""
    assert job_name(make(CRON % ("@hourly", "")).get("CronJob", "default/hello"), 3600) == \
        "hello-60"


# --- CronJob --------------------------------------------------------------------------------

CRON = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: hello}
spec:
  schedule: "%s"
%s
  jobTemplate:
    metadata: {labels: {team: a}}
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: hello, image: busybox, command: [sh, -c, "echo hi"]}]
"""


def test_cronjob_runs_hourly_on_the_virtual_clock() -> None:
    c = make(CRON % ("@hourly", ""))
    assert c.jobs("default") == [] and c.next_deadline() == 3600
    c.sync(3599)
    assert c.jobs("default") == []
    c.sync(3600)
    (job,) = c.jobs("default")
    assert job.metadata.name == "hello-60"
    assert job.metadata.labels["team"] == "a"
    assert job.metadata.annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] == \
        "1970-01-01T01:00:00+00:00"
    assert job.metadata.owner_references[0].kind == "CronJob"
    (pod,) = live(c, "hello-60-")
    cj = c.get("CronJob", "default/hello")
    assert [r.name for r in cj.status.active] == ["hello-60"]
    assert cj.status.last_schedule_time == "1970-01-01T01:00:00Z"
    finish(c, pod, now=3612)
    cj = c.get("CronJob", "default/hello")
    assert cj.status.active == () and cj.status.last_successful_time == "1970-01-01T01:00:12Z"
    assert events(c, "CronJob") == [("SuccessfulCreate", "Created job hello-60"),
                                    ("SawCompletedJob", "Saw completed job: hello-60, status: "
                                                        "Complete")]
    assert c.next_deadline() == 7200


def test_cronjob_history_limits_keep_the_newest() -> None:
    c = make(CRON % ("*/1 * * * *", "  successfulJobsHistoryLimit: 2\n"))
    for minute in range(1, 6):
        c.sync(minute * 60)
        for p in live(c, f"hello-{minute}-"):
            finish(c, p, now=minute * 60 + 1)
    assert [j.metadata.name for j in c.jobs("default")] == ["hello-4", "hello-5"]
    assert ("SuccessfulDelete", "Deleted job hello-1") in events(c, "CronJob")


@pytest.mark.parametrize("policy,active_after", [
    ("Allow", ["hello-1", "hello-2"]),
    ("Forbid", ["hello-1"]),
    ("Replace", ["hello-2"]),
])
def test_cronjob_concurrency_policy(policy: str, active_after: list[str]) -> None:
    c = make(CRON % ("*/1 * * * *", f"  concurrencyPolicy: {policy}\n"))
    c.sync(60)
    c.sync(120)
    cj = c.get("CronJob", "default/hello")
    assert [r.name for r in cj.status.active] == active_after
    assert sorted(j.metadata.name for j in c.jobs("default")) == active_after
    if policy == "Forbid":
        assert ("JobAlreadyActive", "Not starting job because prior execution is running and "
                "concurrency policy is Forbid") in events(c, "CronJob")
        # the missed run starts as soon as the active one ends
        finish(c, live(c, "hello-1-")[0], now=130)
        assert "hello-2" in {j.metadata.name for j in c.jobs("default")}


def test_cronjob_suspend_and_starting_deadline() -> None:
    c = make(CRON % ("@hourly", "  suspend: true\n  startingDeadlineSeconds: 100\n"))
    c.sync(3600)
    assert c.jobs("default") == []
    cj = c.get("CronJob", "default/hello")
    from knet.control.store import evolve
    c.apply(evolve(cj, suspend=False), now=3650)  # within 100 s of 01:00: it starts late
    assert [j.metadata.name for j in c.jobs("default")] == ["hello-60"]
    c.apply(evolve(c.get("CronJob", "default/hello"), suspend=True), now=3660)
    c.sync(7200)
    c.apply(evolve(c.get("CronJob", "default/hello"), suspend=False), now=7400)
    # 02:00 was 200 s ago, beyond startingDeadlineSeconds: missed, not started
    assert [j.metadata.name for j in c.jobs("default")] == ["hello-60"]


def test_cronjob_time_zone() -> None:
    c = make(CRON % ("0 9 * * *", "  timeZone: Asia/Tokyo\n"))
    # 09:00 in Tokyo = 00:00 UTC
    assert c.next_deadline() == 86400
    c.sync(86400)
    (job,) = c.jobs("default")
    assert job.metadata.name == "hello-1440"
    assert job.metadata.annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] == \
        "1970-01-02T09:00:00+09:00"


@pytest.mark.parametrize("spec,message", [
    ('schedule: "61 * * * *"', "spec.schedule: Invalid value"),
    ('schedule: "@hourly"\n  timeZone: Mars/Olympus', "unknown time zone Mars/Olympus"),
    ('schedule: "@hourly"\n  concurrencyPolicy: Sometimes', "spec.concurrencyPolicy: Unsupported"),
    ('schedule: "TZ=UTC 0 * * * *"', "use timeZone field instead"),
])
def test_cronjob_validation(spec: str, message: str) -> None:
    text = f"""
apiVersion: batch/v1
kind: CronJob
metadata: {{name: bad}}
spec:
  {spec}
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{{name: a, image: busybox}}]
"""
    with pytest.raises(ManifestError, match=message):
        read_text(text, "cj.yaml")


# --- Job ---------------------------------------------------------------------------------------

def test_indexed_job_env_hostname_and_completed_indexes() -> None:
    c = make(job_yaml("  completions: 3\n  parallelism: 2\n  completionMode: Indexed\n",
                      "      subdomain: work"))
    pods = sorted(live(c, "work-"), key=lambda p: p.name)
    assert [p.metadata.annotations["batch.kubernetes.io/job-completion-index"]
            for p in pods] == ["0", "1"]
    assert [p.spec.hostname for p in pods] == ["work-0", "work-1"]
    assert all(p.spec.subdomain == "work" for p in pods)
    assert pods[0].name.startswith("work-0-")
    env = pods[0].spec.containers[0].env[0]
    assert env["name"] == "JOB_COMPLETION_INDEX"
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    finish(c, pods[1], now=5)
    job = c.get("Job", "default/work")
    assert job.status.completed_indexes == "1" and job.status.succeeded == 1
    nxt_pods = {p.metadata.annotations["batch.kubernetes.io/job-completion-index"]
                for p in live(c, "work-")}
    assert nxt_pods == {"0", "2"}
    for p in live(c, "work-"):
        finish(c, p, now=6)
    job = c.get("Job", "default/work")
    assert job.status.completed_indexes == "0-2"
    assert [x.type for x in job.status.conditions] == ["SuccessCriteriaMet", "Complete"]


def test_backoff_limit_with_exponential_replacement_delay() -> None:
    c = make(job_yaml("  backoffLimit: 2\n"))
    times = []
    for _ in range(3):
        (p,) = live(c, "work-")
        times.append(c.now)
        finish(c, p, "Failed", 1, now=c.now + 1)
        if c.get("Job", "default/work").status.finished:
            break
        assert live(c, "work-") == []  # replacement waits for the back-off
        c.sync(c.next_deadline())
    # failures at t=1 and t=12: replacements 10 s then 20 s after each failure
    assert times == [0.0, 11.0, 32.0]
    job = c.get("Job", "default/work")
    assert job.status.failed == 3
    assert [(x.type, x.reason) for x in job.status.conditions] == [
        ("FailureTarget", "BackoffLimitExceeded"), ("Failed", "BackoffLimitExceeded")]
    assert ("BackoffLimitExceeded", "Job has reached the specified backoff limit") in \
        events(c, "Job")


def test_active_deadline_and_ttl_after_finished() -> None:
    c = make(job_yaml("  activeDeadlineSeconds: 30\n  ttlSecondsAfterFinished: 100\n"))
    assert len(live(c, "work-")) == 1
    assert c.next_deadline() == 30
    c.sync(30)
    job = c.get("Job", "default/work")
    assert job.status.conditions[0].reason == "DeadlineExceeded"
    assert job.status.conditions[0].message == "Job was active longer than specified deadline"
    assert live(c, "work-") == []  # the pod is terminating (30 s grace)
    c.sync(60)
    job = c.get("Job", "default/work")
    assert [x.type for x in job.status.conditions] == ["FailureTarget", "Failed"]
    c.sync(159)
    assert c.jobs("default")
    c.sync(160)  # Failed at 60 + ttl 100
    assert c.jobs("default") == [] and c.pods("default") == []


def test_pod_failure_policy_fail_job_and_ignore() -> None:
    policy = """  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: Ignore
      onPodConditions: [{type: DisruptionTarget}]
    - action: FailJob
      onExitCodes: {containerName: main, operator: In, values: [42]}
"""
    c = make(job_yaml(policy))
    (p,) = live(c, "work-")
    finish(c, p, "Failed", 3, now=1)  # counted, not fatal
    assert c.get("Job", "default/work").status.failed == 1
    c.sync(11)
    (p,) = live(c, "work-")
    finish(c, p, "Failed", 42, now=12)
    job = c.get("Job", "default/work")
    assert job.status.conditions[0].reason == "PodFailurePolicy"
    assert job.status.conditions[0].message == (
        f"Container main for pod default/{p.name} failed with exit code 42 matching FailJob "
        "rule at index 1")


def test_job_pod_failure_policy_needs_never() -> None:
    text = job_yaml("  podFailurePolicy:\n    rules: [{action: FailJob, onExitCodes: "
                    "{operator: In, values: [1]}}]\n").replace("Never", "OnFailure")
    with pytest.raises(ManifestError, match='only "Never" is supported'):
        read_text(text, "j.yaml")


# --- ReplicationController ------------------------------------------------------------------

RC = """
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  replicas: 3
  selector: {app: legacy}
  template:
    metadata: {labels: {app: legacy, tier: web}}
    spec: {containers: [{name: c, image: knet/echo, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: legacy}
spec:
  selector: {app: legacy}
  ports: [{port: 80, targetPort: 8080}]
"""


def test_replication_controller_keeps_replicas_and_feeds_a_service() -> None:
    c = make(RC)
    pods = live(c, "legacy-")
    assert len(pods) == 3
    assert all(p.metadata.owner_references[0].kind == "ReplicationController" for p in pods)
    rc = c.get("ReplicationController", "default/legacy")
    assert (rc.status.replicas, rc.status.ready_replicas) == (3, 3)
    eps = {e.target_ref.name for s in c.endpoint_slices("default/legacy") for e in s.endpoints}
    assert eps == {p.name for p in pods}
    c.delete_pod(pods[0].key, now=1)
    assert len(live(c, "legacy-")) == 3  # replaced at once
    c.scale("ReplicationController", "default/legacy", 1, now=2)
    assert len(live(c, "legacy-")) == 1
    assert c.get("ReplicationController", "default/legacy").status.replicas == 1


def test_replication_controller_selector_defaults_to_template_labels() -> None:
    c = make(RC.replace("  selector: {app: legacy}\n", ""))
    rc = c.get("ReplicationController", "default/legacy")
    assert dict(rc.selector.match_labels) == {"app": "legacy", "tier": "web"}


def test_no_kind_of_this_issue_is_skipped() -> None:
    text = CRON % ("@daily", "") + "---\n" + RC + """---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
spec: {minAvailable: 1, selector: {matchLabels: {app: legacy}}}
---
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: hpa}
spec:
  scaleTargetRef: {apiVersion: v1, kind: ReplicationController, name: legacy}
  minReplicas: 1
  maxReplicas: 5
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
"""
    inp = read_text(text, "all.yaml")
    assert inp.warnings == []
    kinds = {o.kind for o in inp.objects}
    assert {"CronJob", "ReplicationController", "PodDisruptionBudget", "HorizontalPodAutoscaler",
            "PriorityClass"} <= kinds
    assert seconds("1970-01-01T01:00:00Z") == 3600


def test_events_expire_after_an_hour() -> None:
    # a CronJob every minute for three hours: Events stay bounded (kube-apiserver --event-ttl)
    c = make(CRON % ("*/1 * * * *", "  successfulJobsHistoryLimit: 1\n"))
    for minute in range(1, 181):
        c.sync(minute * 60)
        for p in live(c, f"hello-{minute}-"):
            finish(c, p, now=minute * 60 + 1)
    events = c.store.list("Event")
    assert 0 < len(events) < 60 * 6  # about an hour's worth, not three
    from knet.control.batch import seconds
    assert min(seconds(e.last_timestamp) for e in events) >= 180 * 60 - 3600 - 60
