"""Job and CronJob controllers (pkg/controller/job, pkg/controller/cronjob v2, ttlafterfinished).

Invariants:
- One ``sync_job`` / ``sync_cronjob`` is one reconcile; time-based work (pod-replacement
  backoff, activeDeadlineSeconds, ttlSecondsAfterFinished, the next cron tick) is asked for
  with ``c.requeue_at``, so ``cluster.advance(3600)`` on the virtual clock runs an hourly job.
- A terminated pod is counted once (the controller's uncounted-pod tracking): a Job's
  succeeded/failed counters never go down when its pods are deleted.
- Terminal conditions as v1.31+ writes them: ``SuccessCriteriaMet`` then ``Complete``;
  ``FailureTarget`` then ``Failed`` (once no pod is left running).
- Job names from a CronJob: ``<cronjob>-<scheduled time in minutes since the epoch>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from knet.control import cron
from knet.control.recorder import record, reference
from knet.control.store import evolve
from knet.control.workloads import is_active, owned_pods, with_labels
from knet.model.apps import Job
from knet.model.controllers import CronJob, CronJobStatus, JobCondition, JobStatus
from knet.model.core import Pod

if TYPE_CHECKING:
    from knet.control.cluster import Cluster

JOB_SOURCE = "job-controller"
CRON_SOURCE = "cronjob-controller"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
BACKOFF_BASE, BACKOFF_MAX = 10.0, 360.0  # DefaultJobPodFailureBackOff, MaxJobPodFailureBackOff
MAX_MISSED = 100


def seconds(ts: str) -> float:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _ts(c: Cluster, t: float | None = None) -> str:
    from knet.control.cluster import timestamp

    return timestamp(c.now if t is None else t)


# --- Job -----------------------------------------------------------------------------------------

class _Tracking:
    """Per-Job memory of counted pods (uid → "s"/"f"/"i") and the last failure time."""

    def __init__(self) -> None:
        self.counted: dict[str, str] = {}
        self.last_failure = 0.0
        self.failures = 0


def _tracking(c: Cluster, job: Job) -> _Tracking:
    table: dict[str, _Tracking] = c.__dict__.setdefault("_job_tracking", {})
    t = table.get(job.metadata.uid)
    if t is None:
        t = table[job.metadata.uid] = _Tracking()
    return t


def pod_index(p: Pod) -> int | None:
    v = p.metadata.annotations.get(INDEX_ANNOTATION)
    return int(v) if v is not None and v.isdigit() else None


def format_indexes(idx: set[int]) -> str:
    """``completedIndexes`` form: "0-2,5,7-8"."""
    out: list[str] = []
    xs = sorted(idx)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(out)


def _failure_policy(job: Job, pod: Pod) -> tuple[str, str]:
    """(action, message) of the first podFailurePolicy rule that matches a failed pod."""
    for i, rule in enumerate(job.pod_failure_policy):
        if rule.values:
            for cs in pod.status.container_statuses:
                if rule.container_name and cs.name != rule.container_name:
                    continue
                code = cs.exit_code
                if code is None or code == 0:
                    continue
                hit = code in rule.values if rule.operator == "In" else code not in rule.values
                if hit:
                    return rule.action, (
                        f"Container {cs.name} for pod {pod.key} failed with exit code {code} "
                        f"matching {rule.action} rule at index {i}")
        for ctype, cstatus in rule.on_pod_conditions:
            if any(pc.type == ctype and pc.status == cstatus for pc in pod.status.conditions):
                return rule.action, (f"Pod {pod.key} has condition {ctype} matching "
                                     f"{rule.action} rule at index {i}")
    return "Count", ""


def _finish(c: Cluster, job: Job, st: JobStatus, ok: bool, reason: str, message: str,
            active: list[Pod]) -> JobStatus:
    now = _ts(c)
    target = "SuccessCriteriaMet" if ok else "FailureTarget"
    conds = list(st.conditions)
    if not any(x.type == target for x in conds):
        conds.append(JobCondition(target, "True", reason, message, now))
        if ok:
            record(c, job, "Normal", "Completed", "Job completed", JOB_SOURCE)
        else:
            record(c, job, "Warning", reason, message, JOB_SOURCE)
    for p in active:
        c.delete_pod(p.key, c.now)
        record(c, job, "Normal", "SuccessfulDelete", f"Deleted pod: {p.name}", JOB_SOURCE)
    left = [p for p in owned_pods(c, job) if p.status.phase not in ("Succeeded", "Failed")]
    final = "Complete" if ok else "Failed"
    if not left and not any(x.type == final for x in conds):
        conds.append(JobCondition(final, "True", reason, message, now))
        st = evolve(st, completion_time=now if ok else st.completion_time)
    return evolve(st, conditions=tuple(conds), active=0, ready=0, terminating=len(left))


def sync_job(c: Cluster, job: Job) -> None:
    st: JobStatus = job.status or JobStatus()
    done = st.finished
    pods = owned_pods(c, job)
    if done:
        _ttl(c, job, st)
        return
    tr = _tracking(c, job)
    indexed = job.completion_mode == "Indexed"
    succeeded_idx: set[int] = set()
    fail_job: tuple[str, str] | None = None
    for p in pods:
        phase = p.status.phase
        uid = p.metadata.uid
        if phase == "Succeeded" and uid not in tr.counted:
            tr.counted[uid] = "s"
        elif phase == "Failed" and uid not in tr.counted:
            action, msg = _failure_policy(job, p)
            tr.counted[uid] = "i" if action == "Ignore" else "f"
            if action == "FailJob" and fail_job is None:
                fail_job = ("PodFailurePolicy", msg)
            if action != "Ignore":
                tr.failures += 1
                tr.last_failure = c.now
        if phase == "Succeeded" and indexed:
            i = pod_index(p)
            if i is not None:
                succeeded_idx.add(i)
    succeeded = sum(1 for v in tr.counted.values() if v == "s")
    failed = sum(1 for v in tr.counted.values() if v == "f")
    active = [p for p in pods if is_active(p)]
    start = st.start_time or _ts(c)
    st = evolve(st, start_time=start, succeeded=succeeded, failed=failed,
                completed_indexes=format_indexes(succeeded_idx) if indexed else "")
    # terminal checks, in the controller's order
    target = next((x for x in st.conditions if x.type in ("SuccessCriteriaMet", "FailureTarget")),
                  None)
    if target is not None:  # decided already: wait for the pods to be gone, then finish
        st = _finish(c, job, st, target.type == "SuccessCriteriaMet", target.reason,
                     target.message, active)
    elif fail_job is not None:
        st = _finish(c, job, st, False, fail_job[0], fail_job[1], active)
    elif failed > job.backoff_limit:
        st = _finish(c, job, st, False, "BackoffLimitExceeded",
                     "Job has reached the specified backoff limit", active)
    elif job.active_deadline_seconds is not None and \
            c.now >= seconds(start) + job.active_deadline_seconds:
        st = _finish(c, job, st, False, "DeadlineExceeded",
                     "Job was active longer than specified deadline", active)
    elif _complete(job, succeeded, len(succeeded_idx), active):
        st = _finish(c, job, st, True, "CompletionsReached",
                     "Reached expected number of succeeded pods", active)
    elif job.suspend:
        for p in active:
            c.delete_pod(p.key, c.now)
        st = evolve(st, active=0)
    else:
        if job.active_deadline_seconds is not None:
            c.requeue_at(job, seconds(start) + job.active_deadline_seconds)
        active = _manage(c, job, tr, active, succeeded, succeeded_idx)
        st = evolve(st, active=len(active),
                    ready=sum(1 for p in active if p.status.ready))
    if st != job.status:
        cur = c.store.get("Job", job.metadata.namespace, job.metadata.name)
        if cur is not None:
            c.create(evolve(cur, status=st))
    if st.finished:
        _ttl(c, job, st)


def _complete(job: Job, succeeded: int, succeeded_indexes: int, active: list[Pod]) -> bool:
    if job.completions is None:  # work queue: one success and nothing left running
        return succeeded > 0 and not active
    if job.completion_mode == "Indexed":
        return succeeded_indexes >= job.completions
    return succeeded >= job.completions


def _manage(c: Cluster, job: Job, tr: _Tracking, active: list[Pod], succeeded: int,
            succeeded_idx: set[int]) -> list[Pod]:
    if tr.failures:
        ready_at = tr.last_failure + min(BACKOFF_BASE * 2 ** (tr.failures - 1), BACKOFF_MAX)
        if c.now < ready_at:
            c.requeue_at(job, ready_at)
            return active
    if job.completion_mode == "Indexed" and job.completions is not None:
        busy = {pod_index(p) for p in active}
        todo = [i for i in range(job.completions) if i not in succeeded_idx and i not in busy]
        room = max(0, job.parallelism - len(active))
        for i in todo[:room]:
            active.append(_create(c, job, i))
        return active
    if job.completions is None:
        want = 0 if succeeded else job.parallelism
    else:
        want = min(job.parallelism, job.completions - succeeded)
    if len(active) > want:
        for p in sorted(active, key=lambda p: -p.metadata.creation_index)[:len(active) - want]:
            c.delete_pod(p.key, c.now)
            record(c, job, "Normal", "SuccessfulDelete", f"Deleted pod: {p.name}", JOB_SOURCE)
        return active[:want]
    for _ in range(max(0, want - len(active))):
        active.append(_create(c, job, None))
    return active


def _create(c: Cluster, job: Job, index: int | None) -> Pod:
    name = job.metadata.name
    uid = job.metadata.uid
    labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
              "controller-uid": uid, "job-name": name}
    if index is None:
        pod = c.create_pod_from_template(job, with_labels(job.template, labels), f"{name}-")
    else:
        labels[INDEX_ANNOTATION] = str(index)
        tpl = with_labels(job.template, labels)
        meta = dict(tpl["metadata"])
        meta["annotations"] = {**(meta.get("annotations") or {}), INDEX_ANNOTATION: str(index)}
        spec = dict(tpl.get("spec") or {})
        spec.setdefault("hostname", f"{name}-{index}")
        spec["containers"] = [_with_index_env(ct) for ct in spec.get("containers") or ()]
        spec["initContainers"] = [_with_index_env(ct) for ct in spec.get("initContainers") or ()]
        if not spec["initContainers"]:
            del spec["initContainers"]
        tpl = {**tpl, "metadata": meta, "spec": spec}
        base = c.pod_for(job, tpl, f"{name}-{index}-", cache_key=("index", index))
        pod = c.create_pod(c.named_pod(job, base, f"{name}-{index}-"))
    record(c, job, "Normal", "SuccessfulCreate", f"Created pod: {pod.name}", JOB_SOURCE)
    return pod


def _with_index_env(ct: Any) -> Any:
    env = [e for e in ct.get("env") or () if e.get("name") != "JOB_COMPLETION_INDEX"]
    env.insert(0, {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}})
    return {**ct, "env": env}


def _ttl(c: Cluster, job: Job, st: JobStatus) -> None:
    """ttl-after-finished controller: delete the Job (and, through the GC, its pods)."""
    if job.ttl_seconds_after_finished is None:
        return
    cond = next((x for x in st.conditions if x.type in ("Complete", "Failed")), None)
    if cond is None:
        return
    due = seconds(cond.last_transition_time) + job.ttl_seconds_after_finished
    if c.now >= due:
        c.delete_object(job)
    else:
        c.requeue_at(job, due)


# --- CronJob ---------------------------------------------------------------------------------

def job_name(cj: CronJob, scheduled: float) -> str:
    """getJobName: ``<name>-<minutes since the epoch>`` of the scheduled time."""
    return f"{cj.metadata.name}-{int(scheduled // 60)}"


def _scheduled_stamp(t: float, zone: str) -> str:
    tz = cron._zone(zone)
    return datetime.fromtimestamp(t, tz).isoformat()


def sync_cronjob(c: Cluster, cj: CronJob) -> None:
    try:
        sched = cron.parse(cj.schedule)
    except cron.CronError as e:
        record(c, cj, "Warning", "UnparseableSchedule",
               f"unparseable schedule: {cj.schedule!r} : {e}", CRON_SOURCE)
        return
    ns = cj.metadata.namespace
    owned: list[Any] = list(c.store.owned_by(cj.metadata.uid))
    jobs = sorted((o for o in owned if o.kind == "Job"),
                  key=lambda j: j.metadata.creation_index)
    st = cj.status
    active_refs = []
    last_ok = st.last_successful_time
    for j in jobs:
        fin = (j.status.finished if j.status is not None else "")
        if not fin:
            active_refs.append(reference(j))
        elif any(r.uid == j.metadata.uid for r in st.active):
            record(c, cj, "Normal", "SawCompletedJob",
                   f"Saw completed job: {j.metadata.name}, status: {fin}", CRON_SOURCE)
            if fin == "Complete" and j.status.completion_time and (
                    not last_ok or seconds(j.status.completion_time) > seconds(last_ok)):
                last_ok = j.status.completion_time
    # history limits (cleanupFinishedJobs): oldest finished jobs beyond the limits go
    for want, limit in (("Complete", cj.successful_jobs_history_limit),
                        ("Failed", cj.failed_jobs_history_limit)):
        done = [j for j in jobs if j.status is not None and j.status.finished == want]
        for j in done[:max(0, len(done) - limit)]:
            c.delete_object(j)
            record(c, cj, "Normal", "SuccessfulDelete", f"Deleted job {j.metadata.name}",
                   CRON_SOURCE)
    st = evolve(st, active=tuple(active_refs), last_successful_time=last_ok)
    if not cj.suspend:
        st = _maybe_start(c, cj, sched, st, ns)
    if st != cj.status:
        cur = c.store.get("CronJob", ns, cj.metadata.name)
        if cur is not None:
            c.create(evolve(cur, status=st))


def _maybe_start(c: Cluster, cj: CronJob, sched: cron.Schedule, st: CronJobStatus,
                 ns: str) -> CronJobStatus:
    zone = cj.time_zone
    earliest = seconds(st.last_schedule_time) if st.last_schedule_time else (
        seconds(cj.metadata.creation_timestamp) if cj.metadata.creation_timestamp else 0.0)
    if cj.starting_deadline_seconds is not None:
        earliest = max(earliest, c.now - cj.starting_deadline_seconds)
    scheduled, missed = cron.most_recent(sched, earliest, c.now, zone)
    nxt = sched.next_after(c.now, zone)
    if nxt is not None:
        c.requeue_at(cj, nxt)
    if scheduled is None:
        return st
    if missed > MAX_MISSED:
        record(c, cj, "Warning", "TooManyMissedTimes",
               f"too many missed start times: {missed}. Set or decrease "
               ".spec.startingDeadlineSeconds or check clock skew", CRON_SOURCE)
    if cj.starting_deadline_seconds is not None and \
            scheduled < c.now - cj.starting_deadline_seconds:
        record(c, cj, "Warning", "MissSchedule",
               f"Missed scheduled time to start a job: {_scheduled_stamp(scheduled, zone)}",
               CRON_SOURCE)
        return st
    name = job_name(cj, scheduled)
    if c.store.get("Job", ns, name) is not None:
        return evolve(st, last_schedule_time=_ts(c, scheduled))  # already started
    if cj.concurrency_policy == "Forbid" and st.active:
        record(c, cj, "Normal", "JobAlreadyActive", "Not starting job because prior "
               "execution is running and concurrency policy is Forbid", CRON_SOURCE)
        return st
    if cj.concurrency_policy == "Replace":
        for ref in st.active:
            j = c.store.get("Job", ref.namespace, ref.name)
            if j is not None:
                c.delete_object(j)
                record(c, cj, "Normal", "SuccessfulDelete", f"Deleted job {ref.name}",
                       CRON_SOURCE)
        st = evolve(st, active=())
    job = make_job(cj, name, scheduled)
    job = c.create(job)
    record(c, cj, "Normal", "SuccessfulCreate", f"Created job {name}", CRON_SOURCE)
    return evolve(st, active=st.active + (reference(job),),
                  last_schedule_time=_ts(c, scheduled))


def make_job(cj: CronJob, name: str, scheduled: float) -> Job:
    """getJobFromTemplate2: the jobTemplate, named for the tick, owned by the CronJob."""
    import yaml

    from knet.manifests import read_text

    tpl = cj.job_template
    meta = dict(tpl.get("metadata") or {})
    ann = {**(meta.get("annotations") or {}),
           SCHEDULED_ANNOTATION: _scheduled_stamp(scheduled, cj.time_zone)}
    doc = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": cj.metadata.namespace,
                        "labels": dict(meta.get("labels") or {}), "annotations": ann},
           "spec": tpl.get("spec") or {}}
    (job,) = read_text(yaml.safe_dump(doc), f"<cronjob {cj.metadata.key}>").objects
    from knet.control.workloads import owner_ref

    return evolve(job, metadata=evolve(job.metadata, source=None, creation_index=0,
                                       owner_references=(owner_ref(cj, "batch/v1"),)))
