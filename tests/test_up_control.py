"""``knet up``'s control endpoint in-process (issues 13.2, 13.3, 12.2, 12.3): token, Host and
Origin checks, bounded inputs (table-driven and fuzzed: never a 500), concurrent traces,
option validation and clean stops."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from knet.cli import main as knet_main
from knet.expose.loop import run_up as run_loop
from knet.expose.session import UpOptions, run_up

ROOT = Path(__file__).resolve().parents[1]
TOPO = str(ROOT / "topologies" / "runtime-basic.yaml")
KNET = str(Path(sys.executable).with_name("knet"))


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("KNET_SERVER", raising=False)
    return tmp_path / "knet"


class Session:
    def __init__(self, out: io.StringIO, err: io.StringIO, name: str) -> None:
        self.out, self.err, self.name = out, err, name

    @property
    def state(self) -> dict[str, Any]:
        from knet.expose import state

        data = state.read(self.name)
        assert data is not None
        return data

    @property
    def url(self) -> str:
        return str(self.state["control"]["url"])

    @property
    def token(self) -> str:
        return str(self.state["control"]["token"])


def call(url: str, body: Any = None, *, token: str | None = None,
         headers: dict[str, str] | None = None, raw: bytes | None = None,
         timeout: float = 20.0) -> tuple[int, Any]:
    """A blocking request (run it in a thread while the session's loop serves)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text.decode("latin-1")


def with_up(body: Callable[[Session], Awaitable[None]], *, name: str = "knet",
            **kw: Any) -> tuple[int, Session]:
    """Run ``knet up`` in-process on its boot-warp loop; ``body`` runs once it is up."""
    out, err = io.StringIO(), io.StringIO()
    sess = Session(out, err, name)

    async def main() -> int:
        stop = asyncio.Event()
        opts = UpOptions(files=(TOPO,), out=out, err=err, stop=stop, nodeports=False,
                         name=name if name != "knet" else None, **kw)
        task = asyncio.ensure_future(run_up(opts))
        while "up; Ctrl-C to stop" not in out.getvalue():
            if task.done():
                return await task
            await asyncio.sleep(0.02)
        try:
            await body(sess)
        finally:
            stop.set()
        return await task

    return run_loop(main()), sess


async def in_thread(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))


# --- authentication (13.2) ------------------------------------------------------------------------

def test_requests_need_the_token_a_bound_host_and_no_origin(xdg: Path) -> None:
    seen: dict[str, Any] = {}

    async def body(s: Session) -> None:
        url = s.url + "/v1/status"
        seen["none"] = await in_thread(call, url)
        seen["wrong"] = await in_thread(call, url, token="x" * 43)
        seen["ok"] = await in_thread(call, url, token=s.token)
        seen["origin"] = await in_thread(call, url, token=s.token,
                                         headers={"Origin": "http://evil.example"})
        seen["host"] = await in_thread(call, url, token=s.token,
                                       headers={"Host": "evil.example:80"})
        seen["post"] = await in_thread(
            call, s.url + "/v1/faults", raw=b'{"action": "scale", "name": "default/echo", '
            b'"replicas": 0}', headers={"Content-Type": "text/plain",
                                        "Origin": "http://evil.example"})
        seen["mode"] = os.stat(xdg / "knet.json").st_mode & 0o777
        seen["pods"] = s.state  # still three echo pods: the browser-style POST did nothing

    rc, s = with_up(body)
    assert rc == 0
    assert seen["none"][0] == 401 and "token" in seen["none"][1]["error"]
    assert seen["wrong"][0] == 401
    assert seen["ok"][0] == 200 and seen["ok"][1]["cluster"] == "knet"
    assert seen["origin"][0] == 403 and "Origin" in seen["origin"][1]["error"]
    assert seen["host"][0] == 421
    assert seen["post"][0] == 403
    assert seen["mode"] == 0o600
    assert "scaled" not in s.out.getvalue()


# --- bounded inputs (13.3) ------------------------------------------------------------------------

FAULTS: list[tuple[dict[str, Any], int, str]] = [
    ({"action": "scale", "name": "default/echo", "replicas": -5}, 400,
     'Deployment.apps "echo" is invalid: spec.replicas: Invalid value: -5: must be greater '
     "than or equal to 0"),
    ({"action": "scale", "name": "default/echo", "replicas": 3.9}, 400, "must be an integer"),
    ({"action": "scale", "name": "default/echo", "replicas": "3"}, 400, "must be an integer"),
    ({"action": "scale", "name": "default/echo", "replicas": True}, 400, "must be an integer"),
    ({"action": "scale", "name": "default/echo", "replicas": 50000}, 400, "at most 5000"),
    ({"action": "scale", "name": "default/echo", "replicas": 2**31}, 400,
     "must be no more than 2147483647"),
    ({"action": "scale", "name": "default/echo"}, 400, "required"),
    ({"action": "scale", "name": "default/echo", "replicas": 1, "kind": "Pod"}, 400,
     "Unsupported value"),
    ({"action": "scale", "name": "default/nope", "replicas": 1}, 404, "nope"),
    ({"action": "delete-pod", "pod": "default/" + "x" * 254}, 400,
     "must be no more than 253 characters"),
    ({"action": "delete-pod", "pod": "default/client", "grace": -1}, 400,
     "must be greater than or equal to 0"),
    ({"action": "delete-pod", "pod": "default/client", "grace": "soon"}, 400,
     "must be an integer"),
    ({"action": "delete-pod", "pod": "default/Bad_Name"}, 400, "RFC 1123"),
    ({"action": "delete-pod", "pod": "default/nope"}, 404, "nope"),
    ({"action": "kill-pod", "pod": 7}, 400, "expected a non-empty string"),
    ({"action": "partition", "a": "nope"}, 404, 'nodes "nope" not found'),
    ({"action": "partition", "a": "knet-worker", "b": "nope"}, 404, 'nodes "nope" not found'),
    ({"action": "heal", "a": "nope"}, 404, 'nodes "nope" not found'),
    ({"action": "node-ready", "node": "nope"}, 404, 'nodes "nope" not found'),
    ({"action": "node-ready", "node": "knet-worker", "ready": "no"}, 400,
     "expected true or false"),
    ({"action": "explode"}, 400, "unknown action"),
    ({"action": "heal", "extra": {"a": [1]}}, 400, "unknown field 'extra'"),
]

TRACES: list[tuple[dict[str, Any], int, str]] = [
    ({"from": "default/client", "url": "file:///etc/passwd"}, 400,
     "scheme must be http or https, got 'file'"),
    ({"from": "default/client", "url": "http://web:99999/"}, 400, "out of range"),
    ({"from": "default/client", "url": "http://" + "a" * 9000}, 400, "8192"),
    ({"from": "default/client", "url": "http://web/", "timeout": 1e9}, 400, "(0, 60]"),
    ({"from": "default/client", "url": "http://web/", "timeout": -1}, 400, "(0, 60]"),
    ({"from": "default/client", "url": "http://web/", "dns": "web"}, 400, "exactly one"),
    ({"from": "default/nope", "url": "http://web/"}, 404, "nope"),
    ({"from": "default/client", "dns": "x" * 300}, 400, "253"),
]


def test_every_input_is_bounded_and_nothing_answers_500(xdg: Path) -> None:
    got: list[tuple[str, Any, int, Any]] = []

    async def body(s: Session) -> None:
        for b, _, _ in FAULTS:
            got.append(("faults", b, *await in_thread(call, s.url + "/v1/faults", b,
                                                      token=s.token)))
        for b, _, _ in TRACES:
            got.append(("trace", b, *await in_thread(call, s.url + "/v1/trace", b,
                                                     token=s.token)))
        deep = b"[" * 30_000 + b"]" * 30_000  # under MAX_BODY, over the recursion limit
        got.append(("deep", None, *await in_thread(call, s.url + "/v1/faults", raw=deep,
                                                   token=s.token)))
        nested = json.dumps({"action": "heal", "a": {"b": {"c": {"d": {"e": {"f": {"g": {
            "h": {"i": 1}}}}}}}}}).encode()
        got.append(("nested", None, *await in_thread(call, s.url + "/v1/faults", raw=nested,
                                                     token=s.token)))
        got.append(("big", None, *await in_thread(call, s.url + "/v1/faults",
                                                  raw=b" " * (1 << 20), token=s.token)))
        got.append(("notjson", None, *await in_thread(call, s.url + "/v1/faults",
                                                      raw=b"\xff\xfe", token=s.token)))
        got.append(("longname", None, *await in_thread(
            call, s.url + "/v1/get/pods/" + "a" * 300, token=s.token)))
        got.append(("badns", None, *await in_thread(
            call, s.url + "/v1/get/pods?namespace=" + "A" * 70, token=s.token)))
        got.append(("ok", None, *await in_thread(
            call, s.url + "/v1/faults", {"action": "scale", "name": "default/echo",
                                         "replicas": 2}, token=s.token)))

    rc, s = with_up(body)
    assert rc == 0
    for (what, b, status, answer), (_, want, text) in zip(got, FAULTS + TRACES, strict=False):
        assert status == want, (what, b, status, answer)
        assert text in answer["error"], (what, b, answer)
    tail = {what: (status, answer) for what, _, status, answer in got[len(FAULTS + TRACES):]}
    assert tail["deep"][0] == 400 and "JSON object" in tail["deep"][1]["error"]
    assert tail["nested"][0] == 400 and "deeper than 8 levels" in tail["nested"][1]["error"]
    assert tail["big"][0] == 413
    assert tail["notjson"][0] == 400
    assert tail["longname"][0] == 400 and "253" in tail["longname"][1]["error"]
    assert tail["badns"][0] == 400
    assert tail["ok"] == (200, {"ok": True, "done": "Deployment default/echo scaled to 2"})
    assert "Traceback" not in s.err.getvalue() and "internal error" not in s.err.getvalue()


def test_fuzzed_bodies_never_give_a_500(xdg: Path) -> None:
    """Hypothesis-generated JSON for every route: 4xx or 200, never a 500, never a hang."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text(max_size=20), st.sampled_from(
                            ["default/client", "default/echo", "knet-worker", "outside",
                             "http://web/", "file:///", "Deployment", "heal", "scale",
                             "partition", "delete-pod", "kill-pod", "node-ready", "web"]))
    values = st.recursive(scalars, lambda c: st.lists(c, max_size=3)
                          | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=6)
    keys = st.sampled_from(["action", "pod", "grace", "node", "ready", "unreachable", "a", "b",
                            "name", "replicas", "kind", "from", "url", "dns", "timeout",
                            "verbose", "x"])
    bodies = st.dictionaries(keys, values, max_size=5)
    failures: list[Any] = []

    def fuzz(url: str, token: str) -> None:
        @settings(max_examples=80, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(route=st.sampled_from(["/v1/faults", "/v1/trace"]), body=bodies)
        def one(route: str, body: dict[str, Any]) -> None:
            if route == "/v1/trace" and isinstance(body.get("timeout"), (int, float)):
                body["timeout"] = 0.5  # keep valid traces short
            if body.get("action") == "partition":
                body["action"] = "heal"  # a partition would hold later traces
            status, answer = call(url + route, body, token=token)
            if status >= 500 or not isinstance(answer, dict):
                failures.append((route, body, status, answer))

        one()

    async def body(s: Session) -> None:
        await in_thread(fuzz, s.url, s.token)

    rc, s = with_up(body)
    assert rc == 0
    assert failures == []
    assert "internal error" not in s.err.getvalue()


def test_a_slow_trace_does_not_hold_the_others(xdg: Path) -> None:
    times: dict[str, float] = {}

    async def body(s: Session) -> None:
        t0 = time.monotonic()

        def timed(key: str, b: dict[str, Any]) -> None:
            status, _ = call(s.url + "/v1/trace", b, token=s.token)
            times[key] = time.monotonic() - t0
            times[key + "-status"] = status

        slow = in_thread(timed, "slow", {"from": "default/client",
                                         "url": "http://192.0.2.1/", "timeout": 1.5})
        await asyncio.sleep(0.3)
        fast = in_thread(timed, "fast", {"from": "default/client", "dns": "echo"})
        await asyncio.gather(slow, fast)

    rc, _ = with_up(body)
    assert rc == 0
    assert times["slow-status"] == 200 and times["fast-status"] == 200
    assert times["slow"] >= 1.4 and times["fast"] < 1.2, times


# --- options and stopping (12.2) ------------------------------------------------------------------

def test_a_deadline_a_hair_away_is_reached_not_spun_on() -> None:
    """Virtual time summed from float timers stops 1e-13 s short of a boot deadline; waiting
    for that remainder fired at once without moving time, forever, at full CPU."""
    import threading

    import knet
    from knet.errors import NetworkError
    from knet.fabric.clock import run_virtual

    async def main() -> str:
        async with knet.run(TOPO) as c:
            loop = asyncio.get_running_loop()
            task = asyncio.ensure_future(c.wait_for(lambda: False, timeout=4e-13))
            watchdog = threading.Timer(5.0, lambda: loop.call_soon_threadsafe(task.cancel))
            watchdog.start()
            try:
                await task
            except NetworkError as e:
                return str(e)
            except asyncio.CancelledError:
                return "spun for 5 s of real time"
            finally:
                watchdog.cancel()
            return "returned"

    assert run_virtual(main()) == "condition not met before timeout"


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_boot_timeout_must_be_positive(value: str, xdg: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    assert knet_main(["up", "-f", TOPO, "--boot-timeout", value]) == 2
    assert time.monotonic() - t0 < 5
    assert "--boot-timeout" in capsys.readouterr().err


def test_a_signal_during_the_boot_stops_cleanly(tmp_path: Path) -> None:
    """SIGINT/SIGTERM during a real-time boot: exit 0, capture written, state file gone
    (before: a failed boot hung in the runtime's shutdown, spinning, deaf to both)."""
    procs = []
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            d = tmp_path / sig.name
            d.mkdir()
            p = subprocess.Popen([KNET, "up", "-f", TOPO, "--real-boot", "--no-nodeports",
                                  "--capture", str(d / "boot.pcapng")], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "XDG_RUNTIME_DIR": str(d)})
            procs.append((p, sig, d))
        for p, sig, d in procs:
            deadline = time.monotonic() + 30
            while not (d / "knet" / "knet.json").exists() and time.monotonic() < deadline:
                time.sleep(0.05)  # written when the boot starts; a real-time boot takes ~5 s
            p.send_signal(sig)
        for p, sig, d in procs:
            _, err = p.communicate(timeout=30)
            assert p.returncode == 0, (sig, err)
            assert "interrupted during boot" in err and "Traceback" not in err, err
            assert (d / "boot.pcapng").read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
            assert not (d / "knet" / "knet.json").exists()
    finally:
        for p, _, _ in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()


# --- names (12.3) ---------------------------------------------------------------------------------

def test_named_clusters_have_their_own_state_and_addresses(xdg: Path) -> None:
    seen: dict[str, Any] = {}

    async def outer(s: Session) -> None:
        # a second cluster in a thread of its own (its own loop), while the first runs
        def second() -> None:
            async def inner(s2: Session) -> None:
                seen["second"] = s2.state
                seen["both"] = sorted(__import__("knet.expose.state", fromlist=["x"])
                                      .running())
            seen["rc2"] = with_up(inner, name="other")[0]

        seen["first"] = s.state
        await in_thread(second)
        seen["dup"] = await in_thread(
            subprocess.run, [KNET, "up", "-f", TOPO, "--no-nodeports"], capture_output=True,
            text=True, timeout=60, env={**os.environ, "XDG_RUNTIME_DIR": str(xdg.parent)})

    rc, s = with_up(outer)
    assert rc == 0 and seen["rc2"] == 0
    a, b = seen["first"], seen["second"]
    assert (a["name"], b["name"]) == ("knet", "other") and a["slot"] != b["slot"]
    assert a["control"]["token"] != b["control"]["token"]
    assert {n["loopback"] for n in b["nodes"]} == {None}  # --no-nodeports in these runs
    assert seen["both"] == ["knet", "other"]
    assert seen["dup"].returncode == 2
    assert 'a cluster named "knet" is already running' in seen["dup"].stderr
    assert not (xdg / "knet.json").exists() and not (xdg / "other.json").exists()


# --- broken pods do not stop knet up (12.1) -------------------------------------------------------

BROKEN = """
apiVersion: v1
kind: Pod
metadata: {name: pending}
spec:
  nodeSelector: {disk: nowhere}
  containers: [{name: app, image: knet/echo:1}]
---
apiVersion: v1
kind: Pod
metadata:
  name: crashing
  annotations: {knet.dev/app: "knet_no_such_module:app"}
spec:
  containers: [{name: app, image: example.com/crashing:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: unready}
spec:
  containers:
    - name: app
      image: knet/echo:1
      readinessProbe: {httpGet: {path: /healthz, port: 9999}, periodSeconds: 2}
"""


def test_pods_that_never_get_ready_are_listed_and_the_cluster_serves(xdg: Path,
                                                                     tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    seen: dict[str, Any] = {}

    async def body(s: Session) -> None:
        seen["status"] = await in_thread(call, s.url + "/v1/status", token=s.token)

    out, err = io.StringIO(), io.StringIO()

    async def main() -> int:
        stop = asyncio.Event()
        opts = UpOptions(files=(TOPO, str(broken)), out=out, err=err, stop=stop,
                         nodeports=False, boot_timeout=40)
        task = asyncio.ensure_future(run_up(opts))
        while "up; Ctrl-C to stop" not in out.getvalue():
            if task.done():
                return await task
            await asyncio.sleep(0.02)
        try:
            await body(Session(out, err, "knet"))
        finally:
            stop.set()
        return await task

    assert run_loop(main()) == 0, err.getvalue()
    text = out.getvalue()
    assert seen["status"][0] == 200
    assert "; 3 pods not Ready" in text.splitlines()[0] and " up in " in text.splitlines()[0]
    rows = {ln.split()[1]: ln for ln in text.splitlines()
            if ln.startswith("default ")}
    assert any(ln.startswith("NOT READY: 3 of ") for ln in text.splitlines())
    assert rows["pending"].split()[2:4] == ["<none>", "Pending"]
    assert "0/3 nodes are available" in rows["pending"] and "node affinity/selector" in rows["pending"]
    assert "CrashLoopBackOff" in rows["crashing"]
    assert "No module named 'knet_no_such_module'" in rows["crashing"]
    assert ('Readiness probe failed: Get "http://' in rows["unready"]
            and ':9999/healthz": dial tcp ' in rows["unready"]
            and "connect: connection refused" in rows["unready"]), rows["unready"]
    assert "Traceback" not in err.getvalue()
