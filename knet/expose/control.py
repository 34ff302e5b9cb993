"""The control endpoint of ``knet up``: HTTP/JSON on loopback for the CLI and scripts.

Routes (all JSON; errors are ``{"error": "..."}`` with 400/404/409):
  GET  /v1/status                       the address table (as printed at start) + uptime
  GET  /v1/get/{kind}[/{name}]?namespace=NS&all-namespaces=1&output=wide|yaml|json|name
                                        ``knet get`` of the live state: {"text": …} or the object
  POST /v1/trace   {"from": "ns/pod", "url": U | "dns": NAME}
                                        a live request from a pod, with its hop-by-hop story
  POST /v1/faults  {"action": "delete-pod", "pod": "ns/name"[, "grace": S]}
                   {"action": "node-ready", "node": N, "ready": false[, "unreachable": true]}
                   {"action": "partition", "a": NODE, "b": NODE|"outside"} / {"action": "heal"}
                   {"action": "scale", "name": "ns/name", "replicas": R[, "kind": "Deployment"]}
                   {"action": "kill-pod", "pod": "ns/name"}
                                        applied at once; the reply says what was done
Invariants: binds loopback only; a bad request never stops the server; nothing here decides
routing — it calls the running cluster's public methods.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

from aiohttp import web

from knet.errors import KnetError, NotFound, UsageError
from knet.expose import plan

FAULTS = ("delete-pod", "kill-pod", "node-ready", "partition", "heal", "scale")


def state_dir() -> Path:
    """``$XDG_RUNTIME_DIR/knet`` when set, else ``/tmp/knet-$UID``."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "knet"
    return Path(f"/tmp/knet-{os.getuid()}")


def state_file() -> Path:
    return state_dir() / "up.json"


def write_state(data: dict[str, Any]) -> Path:
    path = state_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def remove_state() -> None:
    """Remove the state file if it is ours (another ``knet up`` may have replaced it)."""
    path = state_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if data.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def read_state() -> dict[str, Any] | None:
    """The running ``knet up``'s state file, or None (absent, stale or unreadable)."""
    try:
        data = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None
    pid = data.get("pid")
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
    return data


class ControlServer:
    """aiohttp application over a running cluster and its loopback exposure."""

    def __init__(self, rt: Any, loopback: Any, *, started: float | None = None,
                 on_change: Callable[[str], None] | None = None) -> None:
        self.rt = rt
        self.loopback = loopback
        self.started = time.monotonic() if started is None else started
        self.on_change = on_change
        self.runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None
        self._lock = asyncio.Lock()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.router.add_get("/v1/status", self.status)
        app.router.add_get("/v1/get/{kind}", self.get)
        app.router.add_get("/v1/get/{kind}/{name}", self.get)
        app.router.add_post("/v1/trace", self.trace)
        app.router.add_post("/v1/faults", self.fault)
        return app

    async def start(self, host: str, port: int) -> int:
        host = plan.check_loopback(host, "--control")
        self.runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await self.runner.cleanup()
            self.runner = None
            raise UsageError(f"--control: cannot listen on {host}:{port}: {e.strerror or e}") from None
        addresses = self.runner.addresses
        bound = addresses[0][1] if addresses else port
        self.address = (host, int(bound))
        return int(bound)

    @property
    def url(self) -> str:
        assert self.address is not None
        h, p = self.address
        return f"http://[{h}]:{p}" if ":" in h else f"http://{h}:{p}"

    async def aclose(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # -- middleware
    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except NotFound as e:
            return web.json_response({"error": str(e)}, status=404)
        except (UsageError, ValueError, TypeError, KeyError) as e:
            return web.json_response({"error": str(e)}, status=400)
        except KnetError as e:
            return web.json_response({"error": str(e)}, status=409)

    # -- handlers
    async def status(self, request: web.Request) -> web.Response:
        t = self.loopback.table()
        t["uptime"] = round(time.monotonic() - self.started, 3)
        t["cluster"] = self.rt.state.config.name
        t["pid"] = os.getpid()
        return web.json_response(t)

    async def get(self, request: web.Request) -> web.Response:
        from knet.cli.get import run_get

        q = request.query
        output = q.get("output") or q.get("o") or None
        if output not in (None, "wide", "yaml", "json", "name"):
            raise UsageError(f"output must be wide, yaml, json or name, got {output!r}")
        text = run_get(self.rt.state, request.match_info["kind"], request.match_info.get("name"),
                       q.get("namespace") or q.get("n"),
                       q.get("all-namespaces", "") in ("1", "true"), output,
                       loopback={n: str(a) for n, a in self.loopback.book.nodes.items()})
        if output == "json":
            return web.json_response(json.loads(text))
        return web.json_response({"text": text})

    async def trace(self, request: web.Request) -> web.Response:
        from knet.runtime.capture import traced_request

        body = await _json(request)
        src = body.get("from")
        if not src:
            raise UsageError('trace needs "from" and exactly one of "url" or "dns"')
        async with self._lock:
            result, _ = await traced_request(
                self.rt, src, body.get("url"), body.get("dns"),
                timeout=float(body.get("timeout", 10.0)), verbose=bool(body.get("verbose", False)))
        return web.json_response(result)

    async def fault(self, request: web.Request) -> web.Response:
        body = await _json(request)
        action = body.get("action")
        rt = self.rt
        if action == "delete-pod":
            rt.delete_pod(body["pod"], body.get("grace"))
            done = f"pod {body['pod']} deleted"
        elif action == "kill-pod":
            rt.kill_pod(body["pod"])
            done = f"pod {body['pod']} killed"
        elif action == "node-ready":
            node = body["node"]
            rt.node(node)  # NotFound for an unknown node
            ready = bool(body.get("ready", False))
            rt.set_node_ready(node, ready, unreachable=bool(body.get("unreachable", False)))
            done = f"node {node} {'Ready' if ready else 'NotReady'}"
        elif action == "partition":
            a, b = body["a"], body.get("b", "outside")
            rt.partition(a, b)
            done = f"partitioned {a} from {b}"
        elif action == "heal":
            rt.heal(body.get("a"), body.get("b"))
            done = "healed"
        elif action == "scale":
            rt.scale(body["name"], int(body["replicas"]), body.get("kind", "Deployment"))
            done = f"{body.get('kind', 'Deployment')} {body['name']} scaled to {body['replicas']}"
        else:
            raise UsageError(f"unknown action {action!r}; one of {', '.join(FAULTS)}")
        if self.on_change is not None:
            self.on_change(done)
        return web.json_response({"ok": True, "done": done})


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise UsageError("request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise UsageError("request body must be a JSON object")
    return data


# -- client side (used by the CLI while ``knet up`` runs) ------------------------------------------

def server_url(explicit: str | None = None) -> str | None:
    """``--server URL``, else ``$KNET_SERVER``, else the running ``knet up``'s state file."""
    if explicit:
        return explicit.rstrip("/")
    env = os.environ.get("KNET_SERVER")
    if env:
        return env.rstrip("/")
    st = read_state()
    if st and isinstance(st.get("control"), dict):
        return str(st["control"].get("url", "")).rstrip("/") or None
    return None


def request(url: str, method: str = "GET", body: dict[str, Any] | None = None,
            timeout: float = 30.0) -> Any:
    """One blocking JSON request to a control endpoint (loopback only)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    host = urllib.parse.urlsplit(url).hostname or ""
    plan.check_loopback(host, "--server")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("error", str(e))
        except ValueError:
            msg = str(e)
        if e.code == 404:
            raise NotFound(msg) from None
        raise UsageError(msg) from None
    except urllib.error.URLError as e:
        raise UsageError(f"cannot reach knet up at {url}: {e.reason}") from None


def remote_get(server: str, kind: str, name: str | None, namespace: str | None,
               all_namespaces: bool, output: str | None) -> str:
    """``knet get`` against a running ``knet up``: the same text as the local form."""
    import urllib.parse

    path = f"/v1/get/{urllib.parse.quote(kind)}" + (f"/{urllib.parse.quote(name)}" if name else "")
    q: dict[str, str] = {}
    if namespace:
        q["namespace"] = namespace
    if all_namespaces:
        q["all-namespaces"] = "1"
    if output:
        q["output"] = output
    data = request(server + path + ("?" + urllib.parse.urlencode(q) if q else ""))
    if output == "json":
        return json.dumps(data, indent=4) + "\n"
    return str(data["text"])
