"""The control endpoint of ``knet up``: HTTP/JSON on loopback for the CLI and scripts.

Routes (all JSON; errors are ``{"error": "..."}`` with 400/401/403/404/409/421):
  GET  /v1/status                       the address table (as printed at start) + uptime
  GET  /v1/get/{kind}[/{name}]?namespace=NS&all-namespaces=1&output=wide|yaml|json|name
                                        ``knet get`` of the live state: {"text": …} or the object
  POST /v1/trace   {"from": "ns/pod", "url": U | "dns": NAME[, "timeout": S, "verbose": B]}
                                        a live request from a pod, with its hop-by-hop story
  POST /v1/exec    {"pod": "ns/name", "command": [ARGV…][, "container": C, "stdin": TEXT]}
                                        ``knet exec``: {"exitCode", "stdout", "stderr"}
  POST /v1/faults  {"action": "delete-pod", "pod": "ns/name"[, "grace": S]}
                   {"action": "node-ready", "node": N, "ready": false[, "unreachable": true]}
                   {"action": "partition", "a": NODE, "b": NODE|"outside"} / {"action": "heal"}
                   {"action": "scale", "name": "ns/name", "replicas": R[, "kind": "Deployment"]}
                   {"action": "kill-pod", "pod": "ns/name"}
                                        applied at once; the reply says what was done
Invariants:
- Binds loopback only; a bad request never stops the server and never answers 500 with a
  traceback (an unexpected exception is a one-line 500).
- Every request carries ``Authorization: Bearer <token>``, the per-run token ``knet up`` keeps
  in its 0600 state file (``knet.expose.state``); knet's own clients send it. A request with an
  ``Origin`` header (a browser) is refused with 403, one whose ``Host`` is not the bound
  address (DNS rebinding) with 421, a missing or wrong token with 401.
- Inputs are bounded as the API server bounds them (``LIMITS``): names are DNS-1123, replicas
  an int32 ≥ 0 and at most ``MAX_REPLICAS``, grace periods integers ≥ 0, trace timeouts in
  (0, ``MAX_TRACE_TIMEOUT``], URLs http(s) only, bodies at most ``MAX_BODY`` bytes and
  ``MAX_JSON_DEPTH`` levels deep. Unknown pods and nodes are 404.
- Traces run concurrently (at most ``MAX_TRACES`` at once); nothing here decides routing: it
  calls the running cluster's public methods.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from aiohttp import web

from knet.errors import KnetError, NotFound, UsageError
from knet.expose import plan, state

FAULTS = ("delete-pod", "kill-pod", "node-ready", "partition", "heal", "scale")

MAX_BODY = 64 * 1024
MAX_JSON_DEPTH = 8
MAX_REPLICAS = 5000  # one scale through the control endpoint (the reply waits for nothing)
MAX_TRACE_TIMEOUT = 60.0
MAX_TRACES = 8
MAX_EXEC_SECONDS = 300.0
MAX_URL = 8192
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
LIMITS = {"body": MAX_BODY, "jsonDepth": MAX_JSON_DEPTH, "replicas": MAX_REPLICAS,
          "traceTimeout": MAX_TRACE_TIMEOUT, "concurrentTraces": MAX_TRACES, "url": MAX_URL}
SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet")

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Invalid(UsageError):
    """A request field out of bounds (answered 400 with the API server's wording)."""


class ControlServer:
    """aiohttp application over a running cluster and its loopback exposure."""

    def __init__(self, rt: Any, loopback: Any, *, started: float | None = None,
                 on_change: Callable[[str], None] | None = None, token: str | None = None,
                 err: Callable[[str], None] | None = None) -> None:
        self.rt = rt
        self.loopback = loopback
        self.started = time.monotonic() if started is None else started
        self.on_change = on_change
        self.token = token or state.new_token()
        self._err = err or (lambda m: print(m, file=sys.stderr, flush=True))
        self.runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None
        self._hosts: frozenset[str] = frozenset()
        self._traces = asyncio.Semaphore(MAX_TRACES)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard, self._errors], client_max_size=MAX_BODY)
        app.router.add_get("/v1/status", self.status)
        app.router.add_get("/v1/get/{kind}", self.get)
        app.router.add_get("/v1/get/{kind}/{name}", self.get)
        app.router.add_post("/v1/trace", self.trace)
        app.router.add_post("/v1/faults", self.fault)
        app.router.add_post("/v1/exec", self.exec_)
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
            raise UsageError(in_use("--control", host, port, e)) from None
        addresses = self.runner.addresses
        bound = addresses[0][1] if addresses else port
        self.address = (host, int(bound))
        self._hosts = frozenset({f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"})
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
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if "Origin" in request.headers:
            return web.json_response({"error": "requests with an Origin header are refused "
                                               "(the control endpoint is not for browsers)"},
                                     status=403)
        if request.headers.get("Host", "") not in self._hosts:
            return web.json_response({"error": "Host must be the bound address "
                                               + " or ".join(sorted(self._hosts))}, status=421)
        auth = request.headers.get("Authorization", "")
        if not hmac.compare_digest(auth.encode("utf-8", "replace"),
                                   f"Bearer {self.token}".encode()):
            return web.json_response(
                {"error": "missing or wrong token: send 'Authorization: Bearer TOKEN' with the "
                          "token from knet up's state file (see docs/up.md)"},
                status=401, headers={"WWW-Authenticate": 'Bearer realm="knet up"'})
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except NotFound as e:
            return web.json_response({"error": str(e)}, status=404)
        except UsageError as e:
            return web.json_response({"error": str(e)}, status=400)
        except KnetError as e:
            return web.json_response({"error": str(e)}, status=409)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - one line, never a traceback to the client
            self._err(f"control: {request.method} {request.path}: internal error: "
                      f"{type(e).__name__}: {e}")
            return web.json_response({"error": f"internal error: {type(e).__name__}"},
                                     status=500)

    # -- handlers
    async def status(self, request: web.Request) -> web.Response:
        t = self.loopback.table()
        t["uptime"] = round(time.monotonic() - self.started, 3)
        t["cluster"] = self.rt.state.config.name
        t["pid"] = os.getpid()
        t["limits"] = LIMITS
        return web.json_response(t)

    async def get(self, request: web.Request) -> web.Response:
        from knet.printers import run_get

        q = request.query
        output = q.get("output") or q.get("o") or None
        if output not in (None, "wide", "yaml", "json", "name"):
            raise UsageError(f"output must be wide, yaml, json or name, got {output!r}")
        kind = request.match_info["kind"]
        if len(kind) > 63:
            raise Invalid("kind: must be no more than 63 characters")
        name = request.match_info.get("name")
        if name is not None:
            _check_name(name, "metadata.name", 253)
        ns = q.get("namespace") or q.get("n") or None
        if ns is not None:
            _check_name(ns, "metadata.namespace", 63, label=True)
        text = run_get(self.rt.state, kind, name, ns,
                       q.get("all-namespaces", "") in ("1", "true"), output,
                       loopback={n: str(a) for n, a in self.loopback.book.nodes.items()})
        if output == "json":
            return web.json_response(json.loads(text))
        return web.json_response({"text": text})

    async def trace(self, request: web.Request) -> web.Response:
        from knet.runtime.capture import traced_request

        body = await _json(request)
        _only(body, ("from", "url", "dns", "timeout", "verbose"))
        src = _pod_key(body, "from")
        url, dns = body.get("url"), body.get("dns")
        if (url is None) == (dns is None):
            raise Invalid('trace needs "from" and exactly one of "url" or "dns"')
        if url is not None:
            url = _url(url)
        else:
            dns = _str(body, "dns", 253)
        timeout = _number(body, "timeout", 10.0, MAX_TRACE_TIMEOUT)
        verbose = _bool(body, "verbose", False)
        self.rt.pod(src)  # NotFound (404) before anything runs
        async with self._traces:
            result, _ = await traced_request(self.rt, src, url, dns, timeout=timeout,
                                             verbose=verbose)
        return web.json_response(result)

    def _node(self, body: dict[str, Any], key: str, *, outside: bool = False,
              required: bool = True) -> str | None:
        if not required and body.get(key) is None:
            return None
        name = _str(body, key, 253)
        if outside and name == "outside":
            return name
        if name not in {n.name for n in self.rt.state.nodes()}:
            raise NotFound(f'nodes "{name}" not found')
        return name

    async def fault(self, request: web.Request) -> web.Response:
        body = await _json(request)
        action = body.get("action")
        rt = self.rt
        if action == "delete-pod":
            _only(body, ("action", "pod", "grace"))
            pod = _pod_key(body, "pod")
            grace = _int(body, "grace", 0, INT64_MAX, None,
                         "must be greater than or equal to 0")
            rt.delete_pod(pod, grace)
            done = f"pod {pod} deleted"
        elif action == "kill-pod":
            _only(body, ("action", "pod"))
            pod = _pod_key(body, "pod")
            rt.kill_pod(pod)
            done = f"pod {pod} killed"
        elif action == "node-ready":
            _only(body, ("action", "node", "ready", "unreachable"))
            node = self._node(body, "node")
            assert node is not None
            ready = _bool(body, "ready", False)
            rt.set_node_ready(node, ready, unreachable=_bool(body, "unreachable", False))
            done = f"node {node} {'Ready' if ready else 'NotReady'}"
        elif action == "partition":
            _only(body, ("action", "a", "b"))
            a = self._node(body, "a")
            b = self._node(body, "b", outside=True, required=False) or "outside"
            if a == b:
                raise Invalid("partition: a and b must differ")
            rt.partition(a, b)
            done = f"partitioned {a} from {b}"
        elif action == "heal":
            _only(body, ("action", "a", "b"))
            rt.heal(self._node(body, "a", required=False),
                    self._node(body, "b", outside=True, required=False))
            done = "healed"
        elif action == "scale":
            _only(body, ("action", "name", "replicas", "kind"))
            kind = body.get("kind", "Deployment")
            if kind not in SCALABLE:
                raise Invalid(f"kind: Unsupported value: {kind!r}: supported values: "
                              + ", ".join(f'"{k}"' for k in SCALABLE))
            key = _pod_key(body, "name")
            what = f'{kind}.apps "{key.partition("/")[2]}" is invalid: spec.replicas'
            replicas = _int(body, "replicas", 0, INT32_MAX, ..., "must be greater than or "
                            "equal to 0", what=what)
            if replicas > MAX_REPLICAS:
                raise Invalid(f"{what}: Invalid value: {replicas}: knet up scales to at most "
                              f"{MAX_REPLICAS} replicas through the control endpoint")
            rt.scale(key, replicas, kind)
            done = f"{kind} {key} scaled to {replicas}"
        else:
            raise UsageError(f"unknown action {str(action)[:64]!r}; one of {', '.join(FAULTS)}")
        if self.on_change is not None:
            self.on_change(done)
        return web.json_response({"ok": True, "done": done})


    async def exec_(self, request: web.Request) -> web.Response:
        """``knet exec``: a command in a running container (knet.runtime.exec.exec_in)."""
        from knet.runtime.exec import exec_in

        body = await _json(request)
        _only(body, ("pod", "command", "container", "stdin"))
        key = _pod_key(body, "pod")
        argv = body.get("command")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise Invalid('"command": expected a non-empty list of strings')
        container = body.get("container") or None
        stdin = body.get("stdin") or ""
        if not isinstance(stdin, str) or (container is not None and not isinstance(container, str)):
            raise Invalid('"stdin" and "container" must be strings')
        if self.rt.state.store.get("Pod", *key.split("/", 1)) is None:
            raise NotFound(f'pods "{key.split("/", 1)[1]}" not found')
        try:
            r = await asyncio.wait_for(exec_in(self.rt.pod(key), argv, container, stdin=stdin),
                                       MAX_EXEC_SECONDS)
        except TimeoutError:
            raise Invalid(f"command did not finish within {MAX_EXEC_SECONDS:.0f} s") from None
        return web.json_response({"exitCode": r.exit_code, "stdout": r.stdout,
                                  "stderr": r.stderr})


# -- input bounds ------------------------------------------------------------------------------

def _depth(x: Any, limit: int) -> bool:
    """True if ``x`` nests no deeper than ``limit`` (iterative)."""
    stack = [(x, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            if d > limit:
                return False
            stack.extend((c, d + 1) for c in v.values())
        elif isinstance(v, list):
            if d > limit:
                return False
            stack.extend((c, d + 1) for c in v)
    return True


async def _json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise Invalid(f"request body larger than {MAX_BODY} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise Invalid("request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise Invalid("request body must be a JSON object")
    if not _depth(data, MAX_JSON_DEPTH):
        raise Invalid(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    return data


def _only(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    extra = sorted(k for k in body if k not in keys)
    if extra:
        raise Invalid(f"unknown field {extra[0][:64]!r}; expected {', '.join(keys)}")


def _str(body: dict[str, Any], key: str, max_len: int) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v:
        raise Invalid(f'"{key}": expected a non-empty string')
    if len(v) > max_len:
        raise Invalid(f'"{key}": must be no more than {max_len} characters')
    return v


def _check_name(v: str, field: str, max_len: int, label: bool = False) -> None:
    if len(v) > max_len:
        raise Invalid(f"{field}: Invalid value: {v[:64]!r}: must be no more than {max_len} "
                      f"characters")
    if not (_LABEL if label else _SUBDOMAIN).match(v):
        raise Invalid(f"{field}: Invalid value: {v[:64]!r}: a lowercase RFC 1123 "
                      f"{'label' if label else 'subdomain'} must consist of lower case "
                      f"alphanumeric characters, '-' or '.'")


def _pod_key(body: dict[str, Any], key: str) -> str:
    """``ns/name`` (or ``name`` in default), validated as the API server validates names."""
    v = _str(body, key, 63 + 1 + 253)
    ns, sep, name = v.rpartition("/")
    if not sep:
        ns = "default"
    _check_name(ns, "metadata.namespace", 63, label=True)
    _check_name(name, "metadata.name", 253)
    return f"{ns}/{name}"


def _int(body: dict[str, Any], key: str, lo: int, hi: int, default: Any, low_msg: str,
         *, what: str | None = None) -> Any:
    v = body.get(key, default)
    if v is ... :
        raise Invalid(f'"{key}": required')
    if v is None and default is None:
        return None
    where = what or f'"{key}"'
    if isinstance(v, bool) or not isinstance(v, int):
        raise Invalid(f"{where}: Invalid value: {json.dumps(v)[:64]}: must be an integer")
    if v < lo:
        raise Invalid(f"{where}: Invalid value: {v}: {low_msg}")
    if v > hi:
        raise Invalid(f"{where}: Invalid value: {v}: must be no more than {hi}")
    return v


def _number(body: dict[str, Any], key: str, default: float, hi: float) -> float:
    v = body.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= hi:
        raise Invalid(f'"{key}": expected a number of seconds in (0, {hi:g}], got '
                      f"{json.dumps(v)[:64]}")
    return float(v)


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    v = body.get(key, default)
    if not isinstance(v, bool):
        raise Invalid(f'"{key}": expected true or false, got {json.dumps(v)[:64]}')
    return v


def _url(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise Invalid('"url": expected a non-empty string')
    if len(v) > MAX_URL:
        raise Invalid(f'"url": must be no more than {MAX_URL} characters')
    try:
        parts = urllib.parse.urlsplit(v)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise Invalid(f'"url": {e}') from None
    if parts.scheme not in ("http", "https"):
        raise Invalid(f'"url": scheme must be http or https, got {parts.scheme!r}')
    if not parts.hostname:
        raise Invalid('"url": no host')
    return v


def in_use(what: str, host: str, port: int, e: OSError) -> str:
    """A bind error; names the running cluster holding the address when there is one."""
    who = state.owner_of(f"{host}:{port}") if port else None
    if who is not None:
        return f'{what}: {host}:{port} is already in use by cluster "{who}"'
    return f"{what}: cannot listen on {host}:{port}: {e.strerror or e}"


# -- client side (used by the CLI while ``knet up`` runs) ------------------------------------------

def server_url(explicit: str | None = None, cluster: str | None = None) -> str | None:
    """``--server URL``, else ``$KNET_SERVER``, else the running ``knet up``: the one named
    ``cluster``, or the only one running (several running and no name: a UsageError)."""
    if explicit:
        return explicit.rstrip("/")
    env = os.environ.get("KNET_SERVER")
    if env and cluster is None:
        return env.rstrip("/")
    live = state.running()
    if cluster is not None:
        state.check_name(cluster)
        st = live.get(cluster)
        if st is None:
            names = ", ".join(live) or "none"
            raise UsageError(f'no running cluster named "{cluster}" (running: {names})')
    elif not live:
        return None
    elif len(live) > 1:
        raise UsageError(f"{len(live)} clusters are running ({', '.join(live)}): choose one "
                         f"with --cluster NAME")
    else:
        st = next(iter(live.values()))
    ctl = st.get("control")
    if not isinstance(ctl, dict) or not ctl.get("url"):
        name = st.get("name", cluster)
        raise UsageError(f'cluster "{name}" has no control endpoint (still booting, or '
                         f"started with --no-control)")
    return str(ctl["url"]).rstrip("/")


def token_for(url: str) -> str | None:
    """The token of the running cluster serving ``url`` (its state file), else $KNET_TOKEN."""
    base = url.rstrip("/")
    for st in state.running().values():
        ctl = st.get("control")
        if isinstance(ctl, dict) and str(ctl.get("url", "")).rstrip("/") == base:
            tok = ctl.get("token")
            if isinstance(tok, str):
                return tok
    return os.environ.get("KNET_TOKEN") or None


def request(url: str, method: str = "GET", body: dict[str, Any] | None = None,
            timeout: float = 30.0, token: str | None = None) -> Any:
    """One blocking JSON request to a control endpoint (loopback only)."""
    import urllib.error
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    plan.check_loopback(parts.hostname or "", "--server")
    if token is None:
        token = token_for(f"{parts.scheme}://{parts.netloc}")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("error", str(e))
        except ValueError:
            msg = str(e)
        finally:
            e.close()
        if e.code == 404:
            raise NotFound(msg) from None
        raise UsageError(msg) from None
    except urllib.error.URLError as e:
        raise UsageError(f"cannot reach knet up at {url}: {e.reason}") from None


def remote_get(server: str, kind: str, name: str | None, namespace: str | None,
               all_namespaces: bool, output: str | None) -> str:
    """``knet get`` against a running ``knet up``: the same text as the local form."""
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
