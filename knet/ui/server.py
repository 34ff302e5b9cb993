"""``knet up --ui HOST:PORT`` and ``knet ui -f …``: the page and its JSON API, on loopback only.

Routes (all GET unless said):
    /                       the single-page app (static assets ship in the package)
    /static/<file>          its assets (vendored Cytoscape.js with its licence)
    /api/cluster            name, mode, whether it is live
    /api/map                the service map (nodes, pods, Services, routes, policies, edges
                            with live traffic counts)
    /api/flows              recent flow summaries (filters: namespace pod service verdict
                            protocol text; limit)
    /api/flows/stream       the same, live, as Server-Sent Events
    /api/flows/<id>         one flow's story: every packet, every hop, the deciding rules
    POST /api/request       {"from": "ns/pod", "url": …} or {"from", "dns": name}: run one
                            request in the cluster and return its story
    /api/rules?node=N&q=F   a node's rules in its mode's text, with recorded hit counts
    /api/events             the control plane's recent changes (newest last)
    /api/logs?pod=ns/name   a pod's container logs

Security: like the control endpoint, the page only answers requests whose ``Host`` is the
address it is bound to (no DNS rebinding) and refuses cross-origin writes: a POST must carry
``Content-Type: application/json`` and either no ``Origin`` or this page's own origin.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from importlib import resources
from typing import Any

from aiohttp import web

from knet.ui.view import matches, service_map, with_hits

FILTERS = ("namespace", "pod", "service", "verdict", "protocol", "text")
_TYPES = {".html": "text/html", ".js": "application/javascript", ".css": "text/css",
          ".svg": "image/svg+xml", ".png": "image/png", "": "text/plain"}


class UiServer:
    """The page over a static cluster (``state``) or a running one (``rt``)."""

    def __init__(self, state: Any, rt: Any = None, *, keep_events: int = 1000) -> None:
        self.state = rt.state if rt is not None else state
        self.rt = rt
        self.feed: Any = None
        self.address: tuple[str, int] = ("", 0)
        self._runner: web.AppRunner | None = None
        self._events: deque[dict[str, Any]] = deque(maxlen=keep_events)
        self._unsubscribe: Any = None

    # -- lifecycle
    async def start(self, host: str, port: int) -> UiServer:
        from knet.expose.plan import check_loopback

        host = check_loopback(host, "--ui")
        if self.rt is not None:
            from knet.ui.feed import FlowFeed

            self.feed = FlowFeed(self.rt).start()
            self._unsubscribe = self.state.subscribe(self._on_change)
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server  # aiohttp keeps the asyncio Server here
        sockets = getattr(server, "sockets", None) or []
        self.address = (host, sockets[0].getsockname()[1] if sockets else port)
        return self

    @property
    def url(self) -> str:
        h, p = self.address
        return f"http://{'[' + h + ']' if ':' in h else h}:{p}/"

    async def aclose(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.feed is not None:
            await self.feed.aclose()
            self.feed = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _on_change(self, ev: Any) -> None:
        cur = ev.current if ev.current is not None else ev.previous
        if cur is None or ev.kind == "Event":  # Events have their own table
            return
        what = "Deleted" if ev.current is None else ("Added" if ev.previous is None else "Modified")
        ns = getattr(cur, "namespace", "") or ""
        entry = {"time": self.rt.epoch + self.rt.now(), "type": what, "kind": ev.kind,
                 "object": f"{ns}/{cur.name}" if ns else cur.name}
        if ev.kind == "Pod":
            entry["message"] = f"phase {cur.status.phase}" + (
                f", {cur.status.reason}" if cur.status.reason else "")
        self._events.append(entry)

    # -- the application
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        r = app.router
        r.add_get("/", self._index)
        r.add_get("/static/{name:.+}", self._static)
        r.add_get("/api/cluster", self._cluster)
        r.add_get("/api/map", self._map)
        r.add_get("/api/flows", self._flows)
        r.add_get("/api/flows/stream", self._stream)
        r.add_get("/api/flows/{id:\\d+}", self._story)
        r.add_post("/api/request", self._request)
        r.add_get("/api/rules", self._rules)
        r.add_get("/api/events", self._events_view)
        r.add_get("/api/logs", self._logs)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        allowed = {f"{shown}:{port}"} | ({f"localhost:{port}"} if host == "127.0.0.1" else set())
        if request.host not in allowed:
            return _error(421, f"this page answers only as {shown}:{port}")
        origin = request.headers.get("Origin")
        if request.method != "GET":
            if origin is not None and origin not in {f"http://{a}" for a in allowed}:
                return _error(403, "cross-origin requests are refused")
            if request.content_type != "application/json":
                return _error(415, "send application/json")
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as e:  # noqa: BLE001 - a bad request never kills the page
            return _error(500, f"{type(e).__name__}: {e}")

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return _asset("index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if ".." in name.split("/") or name.startswith("/"):
            raise web.HTTPNotFound()
        return _asset(name)

    async def _cluster(self, request: web.Request) -> web.Response:
        cfg = self.state.config
        return web.json_response({
            "name": cfg.name, "mode": cfg.kube_proxy.mode or "iptables", "live": self.rt is not None,
            "nodes": [n.name for n in self.state.nodes()],
            "pods": sorted(p.key for p in self.state.pods())})

    async def _map(self, request: web.Request) -> web.Response:
        traffic = self.feed.traffic if self.feed is not None else None
        return web.json_response(service_map(self.state, traffic))

    def _filters(self, request: web.Request) -> dict[str, str]:
        return {k: request.query.get(k, "") for k in FILTERS}

    async def _flows(self, request: web.Request) -> web.Response:
        if self.feed is None:
            return web.json_response({"flows": [], "live": False})
        self.feed.pump()
        f = self._filters(request)
        limit = _int(request.query.get("limit"), 500, 1, 5000)
        rows = [s for s, _, _ in self.feed.flows.values() if matches(s, f)]
        return web.json_response({"flows": rows[-limit:], "live": True})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        feed = self.feed
        if feed is None:
            await resp.write(b"event: static\ndata: {}\n\n")
            return resp
        f = self._filters(request)
        q = feed.subscribe()
        try:
            await resp.write(b": knet flows\n\n")
            while True:
                try:
                    s = await asyncio.wait_for(q.get(), 15.0)
                except TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if s is None:
                    break
                if matches(s, f):
                    await resp.write(b"data: " + json.dumps(s).encode() + b"\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            feed.unsubscribe(q)
        return resp

    async def _story(self, request: web.Request) -> web.Response:
        if self.feed is None:
            return _error(404, "no flows: this cluster is not running (knet up --ui)")
        self.feed.pump()
        st = self.feed.story(int(request.match_info["id"]))
        if st is None:
            return _error(404, "no such flow (older flows are forgotten)")
        return web.json_response(st)

    async def _request(self, request: web.Request) -> web.Response:
        if self.rt is None:
            return _error(409, "this cluster is not running: start it with knet up --ui")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("from"), str):
            return _error(400, 'expected {"from": "ns/pod", "url": …} or {"from", "dns"}')
        url, dns = body.get("url"), body.get("dns")
        if (url is None) == (dns is None) or not isinstance(url or dns, str):
            return _error(400, "give exactly one of url or dns")
        if url is not None and not url.startswith(("http://", "https://")):
            return _error(400, "url must be http:// or https://")
        from knet.errors import KnetError
        from knet.runtime.capture import traced_request
        from knet.ui.view import l7_lines, story

        try:
            result, cap = await traced_request(self.rt, body["from"], url=url, dns_name=dns,
                                               timeout=10.0)
        except KnetError as e:
            return _error(404, str(e))
        result["flows"] = [story(fl, cap.names) for fl in cap.flows()]
        result["l7"] = l7_lines(cap)
        return web.json_response(result)

    async def _rules(self, request: web.Request) -> web.Response:
        node = request.query.get("node", "")
        proxies = getattr(self.rt, "proxies", None)
        if proxies is not None:
            if node not in proxies:
                return _error(404, f"no node {node!r}; nodes: {', '.join(sorted(proxies))}")
            text = proxies[node].rules()
        else:
            from knet.proxy import modes

            names = [n.name for n in self.state.nodes()]
            if node not in names:
                return _error(404, f"no node {node!r}; nodes: {', '.join(sorted(names))}")
            cfg = self.state.config
            text = str(modes.render(self.state, self.state.node(node), cfg.kube_proxy.mode or "iptables",
                                list(cfg.families), None, "restore", "text"))
        hits = self.feed.hits.get(node, {}) if self.feed is not None else {}
        q = request.query.get("q", "")
        lines = [row for row in with_hits(text, hits) if q.lower() in row["text"].lower()]
        return web.json_response({"node": node, "lines": lines})

    async def _events_view(self, request: web.Request) -> web.Response:
        from knet.ui.view import events

        kubelet = getattr(self.rt, "events", []) if self.rt is not None else []
        return web.json_response({"events": events(self.state, kubelet),
                                  "changes": list(self._events)})

    async def _logs(self, request: web.Request) -> web.Response:
        if self.rt is None:
            return _error(409, "logs need a running cluster (knet up --ui)")
        key = request.query.get("pod", "")
        try:
            pod = self.rt.pod(key)
            lines = pod.logs(request.query.get("container") or None)
        except Exception as e:  # noqa: BLE001 - unknown pod or container: say so
            return _error(404, str(e))
        return web.json_response({"pod": key, "lines": lines[-2000:]})


def _asset(name: str) -> web.Response:
    ref = resources.files("knet.ui").joinpath("static")
    for part in name.split("/"):
        ref = ref.joinpath(part)
    if not ref.is_file():
        raise web.HTTPNotFound()
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    return web.Response(body=ref.read_bytes(), content_type=_TYPES.get(suffix, "text/plain"))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _int(text: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return max(lo, min(hi, int(text))) if text is not None else default
    except ValueError:
        return default


__all__ = ["UiServer"]
