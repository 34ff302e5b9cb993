"""``knet up --metrics HOST:PORT``: the Prometheus endpoint, on loopback only.

Routes: ``/metrics`` (every component, each series labelled with the ``node`` or ``pod`` it
comes from) and ``/metrics/<component>/<instance>`` (one component instance's series, as its
own endpoint serves them: ``/metrics/kube-proxy/kind-worker``, ``/metrics/coredns/<pod>``,
``/metrics/ingress-nginx/-``, ``/metrics/kubelet/<node>``, ``/metrics/knet/-``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from knet.metrics.collector import Runtime, exposition

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
COMPONENTS = ("kube-proxy", "coredns", "ingress-nginx", "kubelet", "knet")


def metrics_app(rt: Runtime, allowed_hosts: set[str] | None = None) -> web.Application:
    """``allowed_hosts``: the ``Host`` values answered (the bound address; None: any), so a
    web page cannot read the metrics through DNS rebinding."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if allowed_hosts is not None and request.host not in allowed_hosts:
            return web.Response(status=421, text="misdirected request: this endpoint answers "
                                                 "only as its bound address\n")
        return await handler(request)

    async def everything(request: web.Request) -> web.Response:
        return _text(exposition(rt))

    async def one(request: web.Request) -> web.Response:
        comp = request.match_info["component"]
        if comp not in COMPONENTS:
            raise web.HTTPNotFound(text=f"unknown component {comp!r}; one of {', '.join(COMPONENTS)}\n")
        inst = request.match_info["instance"]
        return _text(exposition(rt, comp, None if inst == "-" else inst))

    app = web.Application(middlewares=[guard])
    app.router.add_get("/metrics", everything)
    app.router.add_get("/metrics/{component}/{instance}", one)
    return app


def _text(body: bytes) -> web.Response:
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE
    return resp


class MetricsServer:
    """The endpoint on ``host:port`` (loopback only; port 0 picks a free one)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] = ("", 0)

    async def start(self, host: str, port: int) -> MetricsServer:
        from knet.expose.plan import check_loopback

        host = check_loopback(host, "--metrics")
        hosts: set[str] = set()
        self._runner = web.AppRunner(metrics_app(self.rt, hosts), handle_signals=False,
                                     access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.address = (host, sockets[0].getsockname()[1] if sockets else port)
        shown = f"[{host}]" if ":" in host else host
        hosts.add(f"{shown}:{self.address[1]}")
        if host == "127.0.0.1":
            hosts.add(f"localhost:{self.address[1]}")
        return self

    @property
    def url(self) -> str:
        h, p = self.address
        return f"http://{'[' + h + ']' if ':' in h else h}:{p}/metrics"

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


__all__ = ["MetricsServer", "metrics_app"]
