"""Container programs: the built-in apps chosen by image, user apps, and their ``PodContext``.

Invariants:
- An app is ``async def main(ctx: PodContext) -> int | None`` (the exit code; None = 0). It
  runs in the pod's network namespace on the fabric; cancelling its task is SIGKILL.
  SIGTERM is ``ctx.stopping`` being set: servers stop listening and return; programs that
  ignore SIGTERM (``sleep`` as PID 1) keep running until the grace period ends.
- The choice is a pure function of the container (image, command, args), the pod's
  ``knet.dev/app`` annotation and the user's ``apps`` mapping (docs/apps.md has the table).
- Answers are deterministic: no wall clock (``ctx.now()`` is the loop's clock), no real IO.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from knet.fabric.aio import KnetSite
from knet.model.core import Container, Pod, Protocol
from knet.manifests.images import (  # noqa: F401 - re-exported (the catalog's names)
    CATALOG,
    IDLE_CLIENT_IMAGES,
    SYSTEM_IMAGES,
    builtin_kind,
    image_name,
)
from knet.runtime import images
from knet.runtime.shell import Shell, is_shell_command
from knet.runtime.vfs import VirtualFS

if TYPE_CHECKING:
    from knet.runtime.cluster import RuntimeCluster

App = Callable[["PodContext"], Awaitable[int | None]]
APP_ANNOTATION = "knet.dev/app"

NGINX_VERSION = "1.27.3"
NGINX_WELCOME = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""


@dataclass
class PodContext:
    """What a container's program sees: its pod, environment, network namespace, files."""

    pod: Pod
    container: Container
    env: dict[str, str]
    netns: Any  # knet.fabric.Namespace
    fs: VirtualFS
    runtime: RuntimeCluster
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    logs: list[str] = field(default_factory=list)
    _http: Any = None

    @property
    def name(self) -> str:
        return self.pod.name

    @property
    def namespace(self) -> str:
        return self.pod.namespace

    @property
    def node(self) -> str:
        return self.pod.spec.node_name

    @property
    def pod_ip(self) -> str:
        return str(self.pod.ip) if self.pod.ip is not None else ""

    @property
    def hostname(self) -> str:
        return self.pod.spec.hostname or self.pod.name

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def log(self, line: str) -> None:
        self.logs.append(line)

    @property
    def http(self) -> Any:
        """An aiohttp ClientSession leaving from this pod (names via the pod's resolver)."""
        if self._http is None or self._http.closed:
            self._http = self.runtime.pod(self.pod.key).new_session()
        return self._http

    async def resolve(self, name: str, family: int = 0) -> list[str]:
        return await self.runtime.pod(self.pod.key).resolve(name, family)

    async def open_connection(self, host: str, port: int, **kw: Any) -> Any:
        return await self.runtime.pod(self.pod.key).open_connection(host, port, **kw)

    async def serve(self, app: web.Application, *ports: int) -> int:
        """Serve an aiohttp app on ``ports`` until SIGTERM, then shut down gracefully."""
        return await serve_until_stopped(self, app, ports)

    async def aclose(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()


# --- helpers ------------------------------------------------------------------------------

async def serve_until_stopped(ctx: PodContext, app: web.Application, ports: Any,
                              udp: Mapping[int, Callable[[], asyncio.DatagramProtocol]] | None = None,
                              ssl_ports: Mapping[int, Any] | None = None) -> int:
    work = getattr(ctx.runtime, "work", None)
    if work is not None and not app.frozen:
        app.middlewares.append(_charge(work, ctx.pod.key))  # knet.runtime.work: CPU per request
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    transports = []
    try:
        for port in dict.fromkeys(ports):
            await KnetSite(runner, ctx.netns, None, port).start()
        for port, sslctx in (ssl_ports or {}).items():
            await KnetSite(runner, ctx.netns, None, port, ssl_context=sslctx).start()
        for port, factory in (udp or {}).items():
            t, _ = await ctx.netns.create_datagram_endpoint(factory, local_addr=("0.0.0.0", port))
            transports.append(t)
        await ctx.stopping.wait()
        return 0
    finally:
        for t in transports:
            t.close()
        await runner.cleanup()


def _charge(work: Any, key: str) -> Any:
    @web.middleware
    async def charge(request: web.Request, handler: Any) -> web.StreamResponse:
        delay = work.charge(key)
        if delay > 0:
            await asyncio.sleep(delay)  # CFS quota spent: throttled
        return await handler(request)
    return charge


def _ports(c: Container, proto: Protocol = Protocol.TCP) -> list[int]:
    return [p.container_port for p in c.ports if p.protocol == proto]


def _flags(args: Any) -> dict[str, str]:
    """Go-style flags: ``-text=x``, ``--text=x``, ``-text x``."""
    out: dict[str, str] = {}
    items = list(args)
    i = 0
    while i < len(items):
        a = items[i]
        if a.startswith("-"):
            k = a.lstrip("-")
            if "=" in k:
                k, v = k.split("=", 1)
            elif i + 1 < len(items) and not items[i + 1].startswith("-"):
                v = items[i + 1]
                i += 1
            else:
                v = "true"
            out[k] = v
        i += 1
    return out


def _listen_port(text: str, default: int) -> int:
    try:
        return int(text.rsplit(":", 1)[-1])
    except ValueError:
        return default


class _UDPEcho(asyncio.DatagramProtocol):
    def __init__(self, answer: Callable[[bytes, Any], bytes | None]) -> None:
        self.answer = answer
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            out = self.answer(data, addr)
        except Exception:  # noqa: BLE001 - servers never die from one packet
            out = None
        if out:
            self.transport.sendto(out, addr)


def _peer_ip(request: web.BaseRequest) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return str(peer[0]) if peer else ""


# --- built-in apps ------------------------------------------------------------------------

def echo_application(pod: str, namespace: str, node: str, pod_ip: str) -> web.Application:
    """knet/echo's HTTP side as a plain aiohttp app: JSON about the request and the pod.

    Also what ``bench/runtime_http.py`` serves on loopback, so both sides run this code."""
    identity = {"pod": pod, "namespace": namespace, "node": node, "podIP": pod_ip}

    async def handle(request: web.Request) -> web.Response:
        body = {
            **identity,
            "method": request.method, "path": request.path,
            "query": {k: v for k, v in request.query.items()},
            "headers": {k: v for k, v in request.headers.items()},
            "host": request.host, "clientIP": _peer_ip(request),
        }
        return web.json_response(body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def echo_app(ctx: PodContext) -> int:
    """knet/echo: JSON about the request and the pod, on every declared port (TCP and UDP)."""
    app = echo_application(ctx.name, ctx.namespace, ctx.node, ctx.pod_ip)
    tcp = _ports(ctx.container) or ([8080] if not ctx.container.ports else [])

    def udp_answer(data: bytes, addr: Any) -> bytes:
        return data

    udp = {p: (lambda: _UDPEcho(udp_answer)) for p in _ports(ctx.container, Protocol.UDP)}
    return await serve_until_stopped(ctx, app, tcp, udp)


async def http_echo_app(ctx: PodContext) -> int:
    """hashicorp/http-echo: ``-text``, ``-listen`` (:5678), ``-status-code`` (200)."""
    flags = _flags((*ctx.container.command[1:], *ctx.container.args))
    text = flags.get("text", "")
    if not text and "text" not in flags:
        ctx.log("Missing -text option!")
        return 127
    port = _listen_port(flags.get("listen", ":5678"), 5678)
    status = int(flags.get("status-code", "200"))
    headers = {"X-App-Name": "http-echo", "X-App-Version": "1.0.0"}

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, headers=headers)

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=status, text=text + "\n", headers=headers,
                            content_type="text/plain")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{tail:.*}", handle)
    return await serve_until_stopped(ctx, app, [port])


async def nginx_app(ctx: PodContext) -> int:
    """nginx: the default server (welcome page on 80), nginx's Server header and 404 page."""
    image = ctx.container.image
    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    version = tag.split("-")[0] if tag.count(".") == 2 and tag[0].isdigit() else NGINX_VERSION
    server = f"nginx/{version}"
    fs = ctx.fs
    html_dir = "/usr/share/nginx/html"
    if html_dir not in fs.mounts:  # the image's files (hidden when a volume is mounted there)
        for name, text in (("index.html", NGINX_WELCOME), ("50x.html", NGINX_50X)):
            if not fs.exists(f"{html_dir}/{name}"):
                fs.write(f"{html_dir}/{name}", text)
    ports, root = _nginx_conf(fs)
    root = root or html_dir

    async def handle(request: web.Request) -> web.StreamResponse:
        import posixpath

        path = posixpath.normpath(posixpath.join(root, request.path.lstrip("/")))
        if not (path == root or path.startswith(root.rstrip("/") + "/")):
            return _nginx_page(400, server)
        if fs.isdir(path):
            if not request.path.endswith("/"):
                r = _nginx_page(301, server)
                r.headers["Location"] = f"http://{request.host}{request.path}/"
                return r
            path = posixpath.join(path, "index.html")
            if fs.read(path) is None:
                return _nginx_page(403, server)
        data = fs.read(path)
        if data is None:
            return _nginx_page(404, server)
        if request.method not in ("GET", "HEAD"):
            return _nginx_page(405, server)
        from knet.runtime.images import _ctype

        return web.Response(body=data, content_type=_ctype(path),
                            headers={"Server": server, "Accept-Ranges": "bytes"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return await serve_until_stopped(ctx, app, ports)


NGINX_50X = """<!DOCTYPE html>
<html>
<head>
<title>Error</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>An error occurred.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>If you are the system administrator of this resource then you should check
the error log for details.</p>
<p><em>Faithfully yours, nginx.</em></p>
</body>
</html>
"""


def _nginx_conf(fs: VirtualFS) -> tuple[list[int], str]:
    """``listen`` ports and the first ``root`` from mounted nginx configuration (80 if none)."""
    import re

    texts = []
    for d in ("/etc/nginx/conf.d",):
        if d in fs.mounts or fs.isdir(d):
            try:
                names = fs.listdir(d)
            except OSError:
                names = []
            texts += [(fs.read(f"{d}/{n}") or b"").decode(errors="replace") for n in names
                      if n.endswith(".conf")]
    if "/etc/nginx/nginx.conf" in fs.mounts:
        texts.append((fs.read("/etc/nginx/nginx.conf") or b"").decode(errors="replace"))
    text = "\n".join(re.sub(r"#.*", "", t) for t in texts)
    ports = sorted({int(m) for m in re.findall(r"\blisten\s+(?:[\w.\[\]:]*:)?(\d+)", text)})
    root = re.search(r"\broot\s+([^;\s]+)\s*;", text)
    return ports or [80], root.group(1) if root else ""


def _nginx_page(status: int, server: str) -> web.Response:
    from knet.ingress.responses import reason

    title = f"{status} {reason(status) if status != 405 else 'Not Allowed'}"
    if status == 301:
        title = "301 Moved Permanently"
    body = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>{server}</center>\r\n"
            f"</body>\r\n</html>\r\n")
    return web.Response(status=status, text=body, content_type="text/html",
                        headers={"Server": server})


async def agnhost_app(ctx: PodContext) -> int:
    """registry.k8s.io/e2e-test-images/agnhost: ``netexec`` and ``serve-hostname``."""
    argv = [*ctx.container.command, *ctx.container.args]
    argv = [a for a in argv if not a.endswith("agnhost")]
    sub = next((a for a in argv if not a.startswith("-")), "")
    flags = _flags([a for a in argv if a != sub])
    if sub == "serve-hostname":
        port = int(flags.get("port", "9376"))

        async def hostname(request: web.Request) -> web.Response:
            return web.Response(text=ctx.hostname)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", hostname)
        udp = {port: (lambda: _UDPEcho(lambda d, a: ctx.hostname.encode()))} \
            if flags.get("udp", "false") == "true" else {}
        tcp = [port] if flags.get("tcp", "true") != "false" and flags.get("http", "true") != "false" \
            else []
        return await serve_until_stopped(ctx, app, tcp, udp)
    if sub in images.AGNHOST_EXTRA:
        return await images.AGNHOST_EXTRA[sub](ctx)
    if sub != "netexec":
        return await idle_app(ctx)
    http_port = int(flags.get("http-port", "8080"))
    udp_port = int(flags.get("udp-port", "8081"))

    async def root(request: web.Request) -> web.Response:
        return web.Response(text=f"NOW: {ctx.now()}")

    async def host(request: web.Request) -> web.Response:
        return web.Response(text=ctx.hostname)

    async def clientip(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return web.Response(text=f"{peer[0]}:{peer[1]}" if peer else "")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.query.get("msg", ""))

    async def header(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get(request.query.get("key", ""), ""))

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="")

    async def unsupported(request: web.Request) -> web.Response:
        return web.Response(status=501, text="knet: /shell is not supported\n")

    app = web.Application()
    app.router.add_route("*", "/", root)
    app.router.add_route("*", "/hostname", host)
    app.router.add_route("*", "/clientip", clientip)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/header", header)
    app.router.add_route("*", "/healthz", healthz)
    app.router.add_route("*", "/shell", unsupported)

    def udp_answer(data: bytes, addr: Any) -> bytes | None:
        text = data.decode(errors="replace").strip()
        if text == "hostname":
            return ctx.hostname.encode()
        if text.startswith("echo "):
            return text[5:].encode()
        if text == "clientip":
            return f"{addr[0]}:{addr[1]}".encode()
        return None

    udp = {udp_port: (lambda: _UDPEcho(udp_answer))} if udp_port > 0 else {}
    return await serve_until_stopped(ctx, app, [http_port], udp)


async def coredns_app(ctx: PodContext) -> int:
    """CoreDNS: cluster DNS on 53 UDP+TCP, /health :8080, /ready :8181, /metrics :9153 (the
    ``prometheus`` plugin's series for this pod, as ``knet up --metrics`` serves them)."""
    import time

    from knet.dns.answer import answer
    from knet.dns.server import DnsDatagramProtocol, DnsStreamProtocol

    view = ctx.runtime.dns_view
    record = ctx.runtime.metrics.dns_answered
    pod = ctx.name

    stats = view.stats

    def answered(data: bytes, addr: Any, tcp: bool) -> bytes | None:
        hits, t = stats["hits"], time.perf_counter()
        reply = answer(view, data, addr, tcp=tcp)
        record(pod, "tcp" if tcp else "udp", 6 if ":" in str(addr[0]) else 4, data, reply,
               time.perf_counter() - t, cached=stats["hits"] > hits)
        return reply

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def metrics(request: web.Request) -> web.Response:
        from knet.metrics.collector import exposition

        return web.Response(body=exposition(ctx.runtime, "coredns", pod),
                            content_type="text/plain", charset="utf-8")

    health = web.Application()
    health.router.add_get("/health", ok)
    ready = web.Application()
    ready.router.add_get("/ready", ok)
    met = web.Application()
    met.router.add_get("/metrics", metrics)
    tcp_server = await ctx.netns.create_server(lambda: DnsStreamProtocol(answered), None, 53)
    runners = []
    try:
        for app, port in ((health, 8080), (ready, 8181)):
            r = web.AppRunner(app, handle_signals=False, access_log=None)
            await r.setup()
            await KnetSite(r, ctx.netns, None, port).start()
            runners.append(r)
        return await serve_until_stopped(ctx, met, [9153], {53: lambda: DnsDatagramProtocol(answered)})
    finally:
        tcp_server.close()
        for r in runners:
            await r.cleanup()


def ingress_metrics(metrics: Any, namespace: str, pod: str, clock: Callable[[], float],
                    rt: Any = None) -> Callable[[Any, int, Any], None]:
    """ingress-nginx's per-request metrics (``nginx_ingress_controller_requests`` …), recorded
    as the controller's Lua monitor does: labelled by the Ingress, path and Service that
    answered; requests no Ingress took are labelled with empty names. While a capture of
    ``rt`` runs, each decision is also recorded for its story (``knet.gateway.l7``)."""
    from knet.gateway import l7

    def observe(conn: Any, status: int, d: Any) -> None:
        t = getattr(d, "template", d)
        ing_ns, _, ing = (t.ingress or "").partition("/")
        svc = (t.service or "").split("/", 1)[-1].rsplit(":", 1)[0]
        labels = (namespace, "k8s.io/ingress-nginx", pod, t.upstream_name or "" if t.canary else "",
                  t.host, ing, conn.method, ing_ns, t.path or "", svc, str(status))
        metrics.request_served(labels, max(0.0, clock() - conn.started))
        if rt is not None and l7.recording(rt):
            l7.record_entry(rt, {
                "kind": "ingress", "time": clock(), "pod": f"{namespace}/{pod}",
                "ingress": t.ingress or "", "path_rule": t.path or "", "backend": t.service or "",
                "status": status, "method": conn.method, "host": t.host,
                "path": t.upstream_path or "", "protocol": "http"})

    return observe


async def ingress_nginx_app(ctx: PodContext) -> int:
    """ingress-nginx controller: knet's ingress proxy on 80/443, /healthz on :10254."""
    from knet.ingress import ControllerConfig, build_table
    from knet.ingress.proxy import IngressProxy

    rt = ctx.runtime
    st = rt.state
    # the controller's own flags decide which Ingresses it claims (--watch-ingress-without-class…)
    config = ControllerConfig.from_args(tuple(ctx.container.command) + tuple(ctx.container.args))

    def table() -> Any:
        return build_table(st.ingresses(), st.ingress_classes(), st.services(),
                           st.endpoint_slices(), config)

    async def open_upstream(host: str, port: int) -> Any:
        return await ctx.netns.open_connection(host, port, limit=64 * 1024)

    loop = asyncio.get_running_loop()
    proxy = IngressProxy.from_table(table(), open_upstream, seed=rt.seed,
                                    secrets=st.secrets(), clock=loop.time)
    proxy.observe = ingress_metrics(rt.metrics, ctx.namespace, ctx.name, loop.time, rt)

    def refresh() -> None:
        proxy.update(table(), st.secrets())

    unwatch = rt.watch(refresh)
    servers = []
    try:
        servers.append(await ctx.netns.create_server(proxy.protocol_factory("http"), None, 80))
        servers.append(await ctx.netns.create_server(proxy.tls_protocol_factory(), None, 443))

        async def healthz(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        return await serve_until_stopped(ctx, app, [10254])
    finally:
        unwatch()
        for s in servers:
            s.close()
        await proxy.aclose()


async def idle_app(ctx: PodContext) -> int:
    """A process that does nothing until killed (system pods: kindnet, kube-proxy)."""
    await ctx.stopping.wait()
    return 0


def shell_app(argv: list[str]) -> App:
    async def run(ctx: PodContext) -> int:
        rt = ctx.runtime
        sh = Shell(ctx.fs, ctx.hostname, log=ctx.log, env=dict(ctx.env), net=rt.pod(ctx.pod.key),
                   stopping=ctx.stopping, pid1=True, clock=rt.now)
        return await sh.run_argv(argv)
    return run


# --- selection ----------------------------------------------------------------------------

BUILTINS: dict[str, App] = {
    "echo": echo_app, "agnhost": agnhost_app, "http-echo": http_echo_app, "nginx": nginx_app,
    "coredns": coredns_app, "ingress-nginx": ingress_nginx_app, "idle": idle_app,
    "redis": images.redis_app, "memcached": images.memcached_app,
    "postgres": images.postgres_app, "mysql": images.mysql_app, "httpd": images.httpd_app,
    "python": images.python_app, "unknown": images.tcp_accept_app,
    "gateway": lambda ctx: _gateway_app(ctx),
    "gateway-echo": lambda ctx: _gateway_echo_app(ctx),
}


async def _gateway_echo_app(ctx: PodContext) -> int:
    from knet.gateway.echo import echo_basic_app

    return await echo_basic_app(ctx)


async def _gateway_app(ctx: PodContext) -> int:
    from knet.gateway.dataplane import gateway_app

    return await gateway_app(ctx)


def load_factory(spec: str) -> Callable[..., Any]:
    """``"package.module:factory"`` → the factory object."""
    mod, _, attr = spec.partition(":")
    if not mod or not attr:
        from knet.errors import UsageError

        raise UsageError(f"{APP_ANNOTATION} must be 'module:factory', got {spec!r}")
    obj: Any = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def user_app(factory: Callable[..., Any]) -> App:
    """Adapt a user factory: it returns a ``web.Application`` (served on the container's TCP
    ports, 8080 if none) or is/returns an async callable taking the ``PodContext``."""

    async def run(ctx: PodContext) -> int | None:
        obj = factory(ctx) if _wants_ctx(factory) else factory()
        if asyncio.iscoroutine(obj):
            obj = await obj
        if isinstance(obj, web.Application):
            return await serve_until_stopped(ctx, obj, _ports(ctx.container) or [8080])
        if callable(obj):
            res = obj(ctx)
            return await res if asyncio.iscoroutine(res) else res
        return None

    return run


def _wants_ctx(factory: Callable[..., Any]) -> bool:
    import inspect

    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return False
    return len([p for p in sig.parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                       p.POSITIONAL_OR_KEYWORD)]) >= 1


def select_app(pod: Pod, container: Container, index: int,
               user_factory: Callable[..., Any] | None) -> App:
    if user_factory is not None and index == 0:
        return user_app(user_factory)
    ann = pod.metadata.annotations.get(f"{APP_ANNOTATION}.{container.name}") or (
        pod.metadata.annotations.get(APP_ANNOTATION) if index == 0 else None)
    if ann:
        return user_app(load_factory(ann))
    argv = [*container.command, *container.args]
    kind = builtin_kind(container.image)
    prog = container.command[0].rsplit("/", 1)[-1] if container.command else ""
    if prog.startswith("python") and images.python_server(argv) is not None:
        return images.python_app
    if container.command and is_shell_command(argv):
        return shell_app(argv)
    if kind == "client":
        return shell_app(argv)  # no command: the image's default exits at once
    if kind == "python" and not container.command and not container.args:
        return shell_app([])  # python's REPL without a tty exits at once
    return BUILTINS[kind]


__all__ = ["App", "PodContext", "builtin_kind", "echo_application", "image_name", "select_app", "user_app",
           "load_factory", "serve_until_stopped", "BUILTINS", "NGINX_WELCOME",
           "socket"]
