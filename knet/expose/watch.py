"""``knet up --watch``: re-apply the topology files when they change, like ``kubectl apply``.

Invariants:
- The diff is by object identity (kind, namespace, name) between the objects of the last good
  read and the new read: new or changed objects are applied (in input order), objects gone
  from the files are deleted (in reverse input order). Objects the cluster made itself
  (ReplicaSets, Pods of workloads, EndpointSlices, knet's built-in add-ons) are never touched.
- A read with errors applies nothing (as ``kubectl apply`` of an invalid file); the errors are
  reported and the previous objects stay the reference for the next diff.
- Cluster-shape settings (the knet/kind/kubeadm configuration kinds) are not re-applied; a
  change there is reported as needing a restart.
- Polling (mtime, size) every ``interval`` seconds: no inotify dependency, bounded cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knet.errors import KnetError, ManifestError

Key = tuple[str, str, str]


def object_key(obj: Any) -> Key:
    return (obj.kind, obj.metadata.namespace or "", obj.metadata.name)


def watched_files(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p == "-":
            continue
        path = Path(p)
        if path.is_dir():
            out.append(path)  # a new or removed file changes the directory's mtime
            out += sorted(x for x in path.iterdir() if x.suffix in (".yaml", ".yml"))
        else:
            out.append(path)
    return out


def fingerprint(paths: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    fp = []
    for f in watched_files(paths):
        try:
            st = f.stat()
            fp.append((str(f), st.st_mtime_ns, st.st_size))
        except OSError:
            fp.append((str(f), -1, -1))
    return tuple(fp)


@dataclass(frozen=True, slots=True)
class Diff:
    apply: tuple[Any, ...]
    delete: tuple[Key, ...]

    @property
    def empty(self) -> bool:
        return not self.apply and not self.delete


def diff(old: Sequence[Any], new: Sequence[Any]) -> Diff:
    """kubectl-apply-like diff of two reads (pure)."""
    before = {object_key(o): o for o in old}
    after = {object_key(o): o for o in new}
    apply = tuple(o for k, o in after.items() if before.get(k) != o)
    delete = tuple(k for k in reversed(list(before)) if k not in after)
    return Diff(apply, delete)


class Watcher:
    """Poll the files; on change re-read, diff and apply to the running cluster."""

    def __init__(self, rt: Any, paths: Sequence[str], objects: Sequence[Any], *,
                 interval: float = 0.5, report: Callable[[str], None] | None = None,
                 error: Callable[[str], None] | None = None, config: Any = None) -> None:
        self.rt = rt
        self.paths = list(paths)
        self.objects = list(objects)
        self.config = config
        self.interval = interval
        self.report = report or print
        self.error = error or print
        self._fp = fingerprint(self.paths)
        self._task: asyncio.Task[None] | None = None
        self.applied = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="knet up --watch")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            fp = fingerprint(self.paths)
            if fp == self._fp:
                continue
            self._fp = fp
            try:
                await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - keep watching
                self.error(f"watch: {type(e).__name__}: {e}")

    async def reload(self) -> Diff | None:
        from knet.manifests import read

        t0 = time.monotonic()
        try:
            inp = read(self.paths)
        except ManifestError as e:
            for p in e.problems:
                self.error(str(p))
            self.error(f"watch: {len(e.problems)} problem(s) found; nothing applied")
            return None
        except KnetError as e:
            self.error(f"watch: {e}; nothing applied")
            return None
        if self.config is not None and inp.config != self.config:
            self.error("watch: cluster configuration changed; restart knet up to apply it "
                       "(objects are still applied)")
        d = diff(self.objects, inp.objects)
        if d.empty:
            return d
        try:
            for obj in d.apply:
                self.rt.apply(obj)
            for kind, ns, name in d.delete:
                try:
                    self.rt.delete(kind, f"{ns}/{name}" if ns else name)
                except KnetError:
                    pass  # already gone
        except KnetError as e:
            self.error(f"watch: {e}")
            return None
        self.objects = list(inp.objects)
        self.applied += 1
        converged = True
        try:
            await self.rt.wait_ready(timeout=60.0)
        except KnetError:
            converged = False
        ms = (time.monotonic() - t0) * 1000
        what = ", ".join(
            [f"{k} {n}/{nm}" if n else f"{k} {nm}" for k, n, nm in map(object_key, d.apply)]
            + [f"deleted {k} {n}/{nm}" if n else f"deleted {k} {nm}" for k, n, nm in d.delete])
        state = f"converged in {ms:.0f} ms" if converged else f"not converged after {ms:.0f} ms"
        self.report(f"watch: applied {len(d.apply)}, deleted {len(d.delete)} ({what}); {state}")
        return d

