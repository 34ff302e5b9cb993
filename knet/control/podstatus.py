"""What the running cluster will show for a pod, known without running it (the static view).

Invariants: pure (no IO, no asyncio); a prediction only where the runtime's outcome is
certain from the manifests: a missing ConfigMap/Secret reference (``CreateContainerConfigError``
for env, ``ContainerCreating`` for volumes), a container whose program ends (a shell script
without a long-running step, a client image without a command, postgres/mysql without their
password variable): ``Completed``/``Error`` for restartPolicy Never/OnFailure, else
``CrashLoopBackOff``. Anything else (servers, loops, ``sleep`` of a minute or more, user apps)
is left to the control plane's status. ``knet get pods`` (static) prints these.
"""

from __future__ import annotations

import re
from typing import Any

from knet.model.core import Container, Pod

LONG_SLEEP = 60.0
SERVER_APPLETS = frozenset({"nginx", "httpd", "redis-server", "tail", "nc", "netcat", "ncat",
                            "python", "python3", "top", "watch"})
_NEVER_ENDS = "forever"


def _env_missing(state: Any, pod: Pod, c: Container) -> bool:
    ns = pod.namespace
    for src in c.env_from:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = src.get(key)
            if ref and not ref.get("optional") and \
                    state.store.get(kind, ns, ref.get("name", "")) is None:
                return True
    for e in c.env:
        vf = e.get("valueFrom") or {}
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            ref = vf.get(key)
            if not ref or ref.get("optional"):
                continue
            obj = state.store.get(kind, ns, ref.get("name", ""))
            data = dict(getattr(obj, "data", {}) or {}) if obj is not None else None
            if obj is not None and kind == "ConfigMap":
                data = {**(data or {}), **dict(getattr(obj, "binary_data", {}) or {})}
            if data is None or ref.get("key") not in data:
                return True
    return False


def _volume_missing(state: Any, pod: Pod) -> bool:
    for v in pod.spec.extra.get("volumes") or ():
        sources = []
        if "configMap" in v:
            sources.append(("ConfigMap", v["configMap"] or {}, "name"))
        if "secret" in v:
            sources.append(("Secret", v["secret"] or {}, "secretName"))
        for s in ((v.get("projected") or {}).get("sources") or ()):
            if "configMap" in s:
                sources.append(("ConfigMap", s["configMap"] or {}, "name"))
            if "secret" in s:
                sources.append(("Secret", s["secret"] or {}, "name"))
        for kind, src, field in sources:
            if src.get("optional"):
                continue
            obj = state.store.get(kind, pod.namespace, str(src.get(field, "")))
            if obj is None:
                return True
            keys = set(getattr(obj, "data", {}) or {}) | set(getattr(obj, "binary_data", {}) or {})
            if any(str(it.get("key", "")) not in keys for it in src.get("items") or ()):
                return True
    return False


def _sleep_seconds(arg: str) -> float:
    if arg in ("infinity", "inf"):
        return float("inf")
    m = re.fullmatch(r"(\d+(?:\.\d*)?)([smhd]?)", arg)
    if not m:
        return 0.0
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _words_end(words: list[str]) -> int | str | None:
    """One simple command: its exit code if it ends at once, ``forever``, or None (unknown)."""
    if not words:
        return 0
    prog = words[0].rsplit("/", 1)[-1]
    if prog == "exec" and len(words) > 1:
        return _words_end(words[1:])
    if prog == "sleep":
        return _NEVER_ENDS if sum(_sleep_seconds(a) for a in words[1:]) >= LONG_SLEEP else 0
    if prog == "exit":
        return int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
    if prog == "false":
        return 1
    if prog in ("tail",) and "-f" in words:
        return _NEVER_ENDS
    if prog in ("nc", "netcat", "ncat") and "-l" in " ".join(words):
        return _NEVER_ENDS
    if prog in SERVER_APPLETS or any("$" in w for w in words[:1]):
        return None
    return 0


def script_end(script: str) -> int | str | None:
    """The exit code a container script ends with, ``forever``, or None when not knowable."""
    from knet.runtime import shparse as ast

    try:
        tree = ast.parse(script)
    except ast.ShellSyntaxError:
        return 2
    return _seq_end(tree)


def _seq_end(seq: Any) -> int | str | None:
    code: int | str | None = 0
    for item in seq.items:
        if item.background:
            continue
        r = _andor_end(item.node)
        if r == _NEVER_ENDS or r is None:
            return r
        code = r
        first = item.node.first.commands[0] if item.node.first.commands else None
        if getattr(first, "words", [""])[:1] == ["exit"]:
            return code
    return code


def _andor_end(node: Any) -> int | str | None:
    from knet.runtime import shparse as ast

    results = []
    for pipe in [node.first] + [p for _, p in node.rest]:
        last = pipe.commands[-1]
        if isinstance(last, ast.Simple):
            r = _words_end(list(last.words))
        elif isinstance(last, ast.Compound) and isinstance(last.node, ast.Loop):
            cond: list[Any] = last.node.cond.items
            head = cond[0].node.first.commands[0] if len(cond) == 1 else None
            words = head.words if isinstance(head, ast.Simple) else []
            infinite = (words in (["true"], [":"]) and not last.node.until) or \
                (words == ["false"] and last.node.until)
            body = _seq_end(last.node.body)
            if infinite and not _mentions(last.node.body, ("break", "exit", "return")):
                return _NEVER_ENDS
            r = None if body is None else 0
        elif isinstance(last, ast.Compound):
            inner = getattr(last.node, "body", None)
            r = _seq_end(inner) if isinstance(inner, ast.Seq) else None
        else:
            r = 0
        if r == _NEVER_ENDS:
            return r
        results.append(r)
        if r is None:
            return None
    if node.rest:
        return None if any(r != 0 for r in results) else results[-1]
    return results[-1] if not node.first.negate or results[-1] is None else \
        (0 if results[-1] else 1)


def _mentions(seq: Any, words: tuple[str, ...]) -> bool:
    text = repr(seq)
    return any(f"'{w}'" in text for w in words)


def container_end(pod: Pod, c: Container, env: dict[str, str] | None = None) -> int | str | None:
    """How ``c``'s program ends: an exit code, ``forever``, or None (unknown)."""
    from knet.manifests.images import builtin_kind

    ann = pod.metadata.annotations
    if "knet.dev/app" in ann or f"knet.dev/app.{c.name}" in ann:
        return None
    argv = [*c.command, *c.args]
    kind = builtin_kind(c.image)
    prog = c.command[0].rsplit("/", 1)[-1] if c.command else ""
    if prog in ("sh", "bash", "ash", "dash"):
        if "-c" in argv:
            i = argv.index("-c")
            return script_end(argv[i + 1] if i + 1 < len(argv) else "")
        return 0
    if c.command:
        return _words_end(argv) if kind in ("client", "unknown", "python") else None
    if kind == "client" or (kind == "python" and not c.args):
        return 0  # the image's shell/REPL without a tty
    names = {e.get("name") for e in c.env}
    if kind == "postgres" and not ({"POSTGRES_PASSWORD"} & names or
                                   any(e.get("name") == "POSTGRES_HOST_AUTH_METHOD" and
                                       e.get("value") == "trust" for e in c.env)):
        return None if c.env_from else 1
    if kind == "mysql" and not any(str(n).endswith(("ROOT_PASSWORD", "ALLOW_EMPTY_PASSWORD",
                                                    "RANDOM_ROOT_PASSWORD",
                                                    "ALLOW_EMPTY_ROOT_PASSWORD"))
                                   for n in names):
        return None if c.env_from else 1
    return None


def predict(state: Any, pod: Pod) -> tuple[str, int] | None:
    """(STATUS column, ready containers) the running cluster converges to, or None."""
    if pod.terminating or not pod.spec.node_name or pod.status.phase != "Running":
        return None
    if _volume_missing(state, pod):
        return "ContainerCreating", 0
    statuses = []
    for c in pod.spec.containers:
        if _env_missing(state, pod, c):
            return "CreateContainerConfigError", 0
        statuses.append(container_end(pod, c))
    if any(s is None or s == _NEVER_ENDS for s in statuses) and not all(
            isinstance(s, int) for s in statuses):
        ended = [s for s in statuses if isinstance(s, int)]
        if not ended or pod.spec.restart_policy != "Always":
            return None
        return "CrashLoopBackOff", 0
    codes = [s for s in statuses if isinstance(s, int)]
    policy = pod.spec.restart_policy
    if policy == "Always" or (policy == "OnFailure" and any(codes)):
        return "CrashLoopBackOff", 0
    return ("Completed" if not any(codes) else "Error"), 0
