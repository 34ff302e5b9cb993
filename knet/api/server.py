"""The HTTPS adapter of the API: aiohttp on loopback, TLS with the cluster's CA.

It only moves bytes: authenticates (client certificate CN/O, bearer tokens from the static
token table), hands a ``Request`` to ``ApiCore``, and writes the ``Response`` — streaming
watches, pod logs, and ``exec`` over WebSocket (``v5.channel.k8s.io`` / ``v4``) into the pod
shell. Invariants: binds loopback only; no request, however malformed, takes the server down
(every handler error becomes a Status 500); request bodies are size-limited.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from knet.api.core import MAX_BODY, ApiCore, Request, Response, User
from knet.api.pki import ClusterPKI
from knet.api.status import ApiError, unauthorized
from knet.errors import KnetError, UsageError

PORTFORWARD_SPDY = "SPDY/3.1+portforward.k8s.io"
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io",
                     "v2.channel.k8s.io", "channel.k8s.io")


def load_token_file(path: str) -> dict[str, User]:
    """kube-apiserver ``--token-auth-file``: CSV ``token,user,uid,"group1,group2"``."""
    import csv

    out: dict[str, User] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for n, row in enumerate(csv.reader(fh), 1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) < 2:
                    raise UsageError(f"{path}:{n}: expected token,user[,uid[,\"groups\"]]")
                groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
                out[row[0]] = User(row[1], groups, row[2] if len(row) > 2 else "")
    except OSError as e:
        raise UsageError(f"--token-file: cannot read {path}: {e.strerror or e}") from None
    return out


def _peer_user(request: web.Request) -> User | None:
    transport = request.transport
    if transport is None:
        return None
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    cn, orgs = "", []
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
            elif k == "organizationName":
                orgs.append(v)
    return User(cn, tuple(orgs)) if cn else None


class ApiServer:
    def __init__(self, core: ApiCore, pki: ClusterPKI, *, runtime: Any = None,
                 tokens: dict[str, User] | None = None, authenticate: Any = None) -> None:
        self.core = core
        self.pki = pki
        self.rt = runtime
        self.tokens = dict(tokens or {})
        self.authenticate_token = authenticate  # extra token authenticator (ServiceAccount JWTs)
        self.runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._flush_pending = False
        self._streams: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        assert self.address is not None
        h, p = self.address
        return f"https://[{h}]:{p}" if ":" in h else f"https://{h}:{p}"

    def ssl_context(self) -> ssl.SSLContext:
        self._tmp = tempfile.TemporaryDirectory(prefix="knet-api-")
        d = Path(self._tmp.name)
        (d / "tls.crt").write_bytes(self.pki.serving.cert_pem + self.pki.ca.cert_pem)
        (d / "tls.key").write_bytes(self.pki.serving.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(d / "tls.crt"), str(d / "tls.key"))
        ctx.load_verify_locations(cadata=self.pki.ca.cert_pem.decode())
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    async def start(self, host: str, port: int) -> int:
        from knet.expose import plan

        host = plan.check_loopback(host, "--api")
        loop = asyncio.get_running_loop()

        def wake() -> None:
            if not self._flush_pending:
                self._flush_pending = True
                loop.call_soon(self._flush)

        self.core.wakeup = wake
        app = web.Application(client_max_size=MAX_BODY + 1024, middlewares=[self._errors])
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, ssl_context=self.ssl_context(),
                           reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await self.aclose()
            raise UsageError(f"--api: cannot listen on {host}:{port}: {e.strerror or e}") from None
        server = site._server
        socks = getattr(server, "sockets", None) or ()
        bound = socks[0].getsockname()[1] if socks else port
        self.address = (host, int(bound))
        self.core.server_address = f"{host}:{bound}"
        return int(bound)

    def _flush(self) -> None:
        self._flush_pending = False
        try:
            self.core.flush()
        except Exception:  # noqa: BLE001 - a status computation must not stop the loop
            pass

    async def aclose(self) -> None:
        for t in list(self._streams):
            t.cancel()
        for w in list(self.core.watches):
            w.close()
        if self.runner is not None:
            await self.runner.shutdown()
            await self.runner.cleanup()
            self.runner = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _status(ApiError(413, "RequestEntityTooLarge", "Request entity too large"))
        except (web.HTTPException, asyncio.CancelledError, ConnectionError):
            raise
        except ApiError as e:
            return _status(e)
        except Exception as e:  # noqa: BLE001 - the server answers 500 and stays up
            return _status(ApiError(500, "InternalError", f"Internal error occurred: {e}",
                                    {"causes": [{"message": str(e)}]}))

    def _user(self, request: web.Request) -> User | None:
        auth = request.headers.get("Authorization", "")
        user: User | None = None
        if auth:
            scheme, _, token = auth.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise unauthorized()
            user = self.tokens.get(token)
            if user is None and self.authenticate_token is not None:
                user = self.authenticate_token(token)
            if user is None:
                raise unauthorized()
        else:
            user = _peer_user(request)
        if user is not None and "system:authenticated" not in user.groups:
            user = User(user.name, (*user.groups, "system:authenticated"), user.uid)
        as_user = request.headers.get("Impersonate-User")
        if user is not None and as_user:
            if not user.admin:
                raise ApiError(403, "Forbidden", f'users "{as_user}" is forbidden: User '
                               f'"{user.name}" cannot impersonate resource "users" in API group '
                               '"" at the cluster scope', {"name": as_user, "kind": "users"})
            groups = tuple(request.headers.getall("Impersonate-Group", []))
            user = User(as_user, (*groups, "system:authenticated"))
        return user

    async def handle(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        body = b""
        if request.can_read_body:
            body = await request.read()
        req = Request(request.method, request.path, request.query_string,
                      dict(request.headers), body, user)
        resp = self.core.handle(req)
        if resp.watch is not None:
            return await self._watch(request, resp)
        if resp.stream is not None:
            return await self._stream(request, resp)
        out = web.Response(status=resp.status, body=resp.body if resp.status != 304 else None)
        out.headers["Content-Type"] = resp.content_type
        for k, v in resp.headers:
            out.headers.add(k, v)
        return out

    async def _watch(self, request: web.Request, resp: Response) -> web.StreamResponse:
        w = resp.watch
        assert w is not None
        loop = asyncio.get_running_loop()
        sr = web.StreamResponse(status=200)
        sr.content_type = "application/json"
        sr.enable_chunked_encoding()
        await sr.prepare(request)
        ev = asyncio.Event()
        w.notify = ev.set
        start = loop.time()
        timeout = w.timeout if w.timeout is not None else random.uniform(1800, 3600)
        deadline = start + timeout
        next_bookmark = start + 60
        try:
            while True:
                ev.clear()
                lines = w.drain()
                if lines:
                    await sr.write(b"".join(lines))
                if w.closed:
                    break
                now = loop.time()
                if now >= deadline:
                    break
                wake = deadline
                if w.bookmarks:
                    wake = min(next_bookmark, max(deadline - 2, now))
                try:
                    await asyncio.wait_for(ev.wait(), timeout=max(0.0, wake - now))
                except TimeoutError:
                    if w.bookmarks and loop.time() >= wake and loop.time() < deadline:
                        w.bookmark()
                        next_bookmark = loop.time() + 60
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            w.close()
        try:
            await sr.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return sr

    # --- streams: logs, exec ------------------------------------------------------------
    async def _stream(self, request: web.Request, resp: Response) -> web.StreamResponse:
        info = resp.stream
        assert info is not None
        if self.rt is None:
            raise ApiError(503, "ServiceUnavailable", "the cluster runtime is not running")
        if info["kind"] == "log":
            return await self._log(request, info)
        if info["kind"] == "exec":
            return await self._exec(request, info)
        if info["kind"] == "portforward":
            protos = request.headers.get("Sec-WebSocket-Protocol", "")
            if request.headers.get("Upgrade", "").lower() == "websocket":
                if PORTFORWARD_SPDY in protos:
                    return await self._portforward_spdy(request, info)
                return await self._portforward_channels(request, info)
            raise ApiError(400, "BadRequest", "knet serves port-forward over WebSocket "
                           f"({PORTFORWARD_SPDY}, or v4.channel.k8s.io) only")
        raise ApiError(400, "BadRequest", f"{info['kind']} is not supported by knet yet "
                       "(see docs/api.md)")

    def _log_lines(self, info: dict[str, Any]) -> list[str] | None:
        try:
            return self.rt.pod(info["pod"]).logs(info["container"])
        except KnetError:
            return None

    async def _log(self, request: web.Request, info: dict[str, Any]) -> web.StreamResponse:
        if info["previous"]:
            raise ApiError(400, "BadRequest", f'previous terminated container "{info["container"]}" '
                           f'in pod "{info["pod"].split("/", 1)[1]}" not found')
        lines = self._log_lines(info)
        if lines is None:
            raise ApiError(400, "BadRequest", f'container "{info["container"]}" in pod '
                           f'"{info["pod"].split("/", 1)[1]}" is waiting to start: ContainerCreating')
        sr = web.StreamResponse(status=200)
        sr.content_type = "text/plain"
        await sr.prepare(request)
        tail = info.get("tailLines")
        if tail and tail.lstrip("-").isdigit() and int(tail) >= 0:
            lines = lines[-int(tail):] if int(tail) else []
            seen = len(self._log_lines(info) or [])
        else:
            seen = len(lines)
        limit = int(info["limitBytes"]) if str(info.get("limitBytes", "")).isdigit() else None
        sent = 0

        def fmt(batch: list[str]) -> bytes:
            out = []
            for ln in batch:
                text = ln if ln.endswith("\n") else ln + "\n"
                if info["timestamps"]:
                    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
                    text = f"{ts} {text}"
                out.append(text)
            return "".join(out).encode()

        try:
            data = fmt(lines)
            if limit is not None:
                data = data[:limit]
            await sr.write(data)
            sent += len(data)
            while info["follow"] and (limit is None or sent < limit):
                await asyncio.sleep(0.2)
                cur = self._log_lines(info)
                pod = self.rt.state.store.get("Pod", *info["pod"].split("/", 1))
                if cur is None or pod is None:
                    break
                if len(cur) > seen:
                    data = fmt(cur[seen:])
                    seen = len(cur)
                    if limit is not None:
                        data = data[: limit - sent]
                    await sr.write(data)
                    sent += len(data)
        except (ConnectionError, asyncio.CancelledError):
            pass
        try:
            await sr.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return sr

    async def _exec(self, request: web.Request, info: dict[str, Any]) -> web.StreamResponse:
        """remotecommand over WebSocket (apimachinery ``wsstream``): byte 0 is the channel
        (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize); v5 adds ``[255, ch]`` = close."""
        from knet.runtime.exec import exec_in

        if request.headers.get("Upgrade", "").lower() != "websocket":
            # SPDY/3.1 is not served: kubectl 1.32 tries the WebSocket first.
            raise ApiError(400, "BadRequest", "knet serves exec over WebSocket "
                           "(v5.channel.k8s.io / v4.channel.k8s.io) only")
        ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, autoping=True, heartbeat=None)
        await ws.prepare(request)
        pod = self.rt.pod(info["pod"])
        container = info["container"] or None
        tty = bool(info["tty"])
        outq: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def sender() -> None:
            while (item := await outq.get()) is not None:
                await ws.send_bytes(item)

        send_task = asyncio.ensure_future(sender())
        try:
            first = 1 if info["stdout"] else 2 if info["stderr"] else 3
            outq.put_nowait(bytes([first]))  # readiness (v5 servers; clients may wait for it)

            streamed = [0, 0]

            def out(text: str) -> None:
                streamed[0] += len(text)
                if info["stdout"]:
                    outq.put_nowait(b"\x01" + text.encode())

            def err(text: str) -> None:
                streamed[1] += len(text)
                if info["stderr"] or tty:
                    outq.put_nowait((b"\x01" if tty else b"\x02") + text.encode())

            argv = list(info["command"])
            if info["stdin"] and tty and len(argv) == 1 and argv[0].rsplit("/", 1)[-1] in (
                    "sh", "bash", "ash", "dash"):
                code = await self._interactive(ws, pod, container, out)
            else:
                stdin = await self._read_stdin(ws) if info["stdin"] else ""
                res = await exec_in(pod, argv, container, stdin=stdin, out=out, err=err)
                code = res.exit_code
                if res.stdout and not streamed[0]:
                    out(res.stdout)
                if res.stderr and not streamed[1]:
                    err(res.stderr)
            status: dict[str, Any] = {"metadata": {}, "status": "Success"}
            if code:
                status = {"metadata": {}, "status": "Failure",
                          "message": f"command terminated with non-zero exit code: error executing "
                                     f"command {argv}, exit code {code}",
                          "reason": "NonZeroExitCode",
                          "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        except KnetError as e:
            status = {"metadata": {}, "status": "Failure", "code": 500, "reason": "InternalError",
                      "message": f"Internal error occurred: error executing command in "
                                 f"container: {e}"}
        try:
            outq.put_nowait(b"\x03" + json.dumps(status).encode())
            outq.put_nowait(None)
            await send_task
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            send_task.cancel()
            await ws.close()
        return ws

    async def _connect(self, pod: Any, port: int) -> Any:
        """A connection to ``port`` inside the pod's network namespace (kubelet's port-forward
        enters the pod's netns): through the fabric, from the pod to its own address."""
        return await pod.open_connection(str(pod.ip), port)

    async def _portforward_spdy(self, request: web.Request, info: dict[str, Any]) -> web.StreamResponse:
        """kubectl 1.32: SPDY/3.1 tunnelled in WebSocket binary messages; per local connection
        two streams (``streamtype: error`` / ``data``) sharing a ``requestid``."""
        from knet.api import spdy

        ws = web.WebSocketResponse(protocols=(PORTFORWARD_SPDY,), heartbeat=None)
        await ws.prepare(request)
        sess = spdy.Session()
        out = _Sender(ws)
        pod = self.rt.pod(info["pod"])
        name = info["pod"].split("/", 1)[1]
        pairs: dict[str, dict[str, Any]] = {}
        by_stream: dict[int, dict[str, Any]] = {}
        tasks: set[asyncio.Task[Any]] = set()

        async def serve(pair: dict[str, Any]) -> None:
            err, data, port = pair["error"], pair["data"], pair["port"]
            try:
                reader, writer = await self._connect(pod, port)
            except (KnetError, OSError, ValueError) as e:
                msg = (f"error forwarding port {port} to pod {name}, uid : failed to connect to "
                       f"localhost:{port} inside namespace: {e}")
                out.send(sess.data(err, msg.encode(), fin=True))
                out.send(sess.data(data, b"", fin=True))
                return
            pair["writer"] = writer
            for chunk in pair.pop("early", []):
                writer.write(chunk)
            try:
                await _pump(reader, lambda b: out.send(sess.data(data, b)))
            except (ConnectionError, KnetError, OSError):
                pass
            out.send(sess.data(data, b"", fin=True))
            out.send(sess.data(err, b"", fin=True))

        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                        break
                    continue
                try:
                    events = sess.feed(msg.data)
                except spdy.ProtocolError:
                    break
                for ev in events:
                    if isinstance(ev, spdy.StreamOpened):
                        out.send(sess.syn_reply(ev.stream_id))
                        rid = ev.headers.get("requestid", str(ev.stream_id))
                        pair = pairs.setdefault(rid, {})
                        kind = ev.headers.get("streamtype", "")
                        pair[kind] = ev.stream_id
                        by_stream[ev.stream_id] = pair
                        try:
                            pair["port"] = int(ev.headers.get("port", "0"))
                        except ValueError:
                            pair["port"] = 0
                        if "error" in pair and "data" in pair and "task" not in pair:
                            pair["task"] = t = asyncio.ensure_future(serve(pair))
                            tasks.add(t)
                            t.add_done_callback(tasks.discard)
                    elif isinstance(ev, spdy.DataReceived):
                        pair = by_stream.get(ev.stream_id, {})
                        if pair.get("data") != ev.stream_id:
                            continue
                        w = pair.get("writer")
                        if w is None:
                            pair.setdefault("early", []).append(ev.data)
                        elif ev.data:
                            w.write(ev.data)
                        if ev.fin and w is not None and w.can_write_eof():
                            w.write_eof()
                    elif isinstance(ev, spdy.PingReceived):
                        out.send(sess.ping(ev.ping_id))
                    elif isinstance(ev, spdy.StreamReset):
                        pair = by_stream.get(ev.stream_id, {})
                        w = pair.get("writer")
                        if w is not None:
                            w.close()
                    elif isinstance(ev, spdy.GoAway):
                        break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for t in list(tasks):
                t.cancel()
            for pair in pairs.values():
                w = pair.get("writer")
                if w is not None:
                    w.close()
            await out.aclose()
            await ws.close()
        return ws

    async def _portforward_channels(self, request: web.Request,
                                    info: dict[str, Any]) -> web.StreamResponse:
        """The Python client's port-forward: channel 2i = data, 2i+1 = error of the i-th port;
        the first message on each channel is the port, 2 bytes little-endian."""
        ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, heartbeat=None)
        await ws.prepare(request)
        out = _Sender(ws)
        pod = self.rt.pod(info["pod"])
        ports = [int(p) for p in info.get("ports", []) if str(p).isdigit()]
        writers: dict[int, Any] = {}
        tasks: list[asyncio.Task[Any]] = []
        for i, port in enumerate(ports):
            for ch in (2 * i, 2 * i + 1):
                out.send(bytes([ch]) + port.to_bytes(2, "little"))
            try:
                reader, writer = await self._connect(pod, port)
            except (KnetError, OSError, ValueError) as e:
                out.send(bytes([2 * i + 1]) + f"error forwarding port {port}: {e}".encode())
                continue
            writers[2 * i] = writer
            prefix = bytes([2 * i])
            tasks.append(asyncio.ensure_future(
                _pump(reader, lambda b, p=prefix: out.send(p + b))))

        async def hang_up() -> None:
            # kubelet: one connection per port for the life of the WebSocket; when every pod
            # side has closed, so does the stream (the client sees EOF on its socket)
            await asyncio.gather(*tasks, return_exceptions=True)
            await out.aclose()
            await ws.close()

        closer = asyncio.ensure_future(hang_up())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                        break
                    continue
                w = writers.get(msg.data[0])
                if w is not None:
                    w.write(msg.data[1:])
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for t in tasks:
                t.cancel()
            for w in writers.values():
                w.close()
            closer.cancel()
            await out.aclose()
            await ws.close()
        return ws

    @staticmethod
    async def _read_stdin(ws: web.WebSocketResponse) -> str:
        """Channel 0 until the client closes it (v5 ``[255, 0]``) or the socket."""
        chunks: list[bytes] = []
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                    break
                continue
            data: bytes = msg.data
            if data[0] == 0:
                chunks.append(data[1:])
            elif data[0] == 255 and data[1:2] == b"\x00":
                break
        return b"".join(chunks).decode(errors="replace")

    @staticmethod
    async def _interactive(ws: web.WebSocketResponse, pod: Any, container: str | None,
                           out: Any) -> int:
        """``kubectl exec -it POD -- sh``: one shell whose state lasts across lines."""
        sh = pod.shell(container)
        out(sh.prompt)
        buf = ""
        code = 0
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                    break
                continue
            data: bytes = msg.data
            if data[0] == 255:
                break
            if data[0] != 0:
                continue  # resize
            text = data[1:].decode(errors="replace").replace("\r", "\n")
            out(text.replace("\n", "\r\n"))  # the terminal echo
            buf += text
            while "\n" in buf:
                line, buf = buf.split("\n", 1)
                res = await sh.run(line)
                code = res.exit_code
                if res.stdout or res.stderr:
                    out((res.stdout + res.stderr).replace("\n", "\r\n"))
                if sh.closed:
                    return code
                out(sh.prompt)
            if "\x04" in buf:
                break
        return code


class _Sender:
    """One task writes to the WebSocket, in order (frames from many streams interleave)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.q: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while (item := await self.q.get()) is not None:
                await self.ws.send_bytes(item)
        except (ConnectionError, RuntimeError):
            pass

    def send(self, data: bytes) -> None:
        self.q.put_nowait(data)

    async def aclose(self) -> None:
        self.q.put_nowait(None)
        try:
            await asyncio.wait_for(self.task, 5)
        except (TimeoutError, ConnectionError):
            self.task.cancel()


async def _pump(reader: Any, out: Any) -> None:
    """Bytes from the pod's socket to ``out(data)`` until EOF."""
    while True:
        data = await reader.read(65536)
        if not data:
            return
        out(data)


def _status(e: ApiError) -> web.Response:
    out = web.Response(status=e.code, body=json.dumps(e.status()).encode())
    out.headers["Content-Type"] = "application/json"
    for k, v in e.headers.items():
        out.headers[k] = v
    return out
