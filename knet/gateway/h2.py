"""HTTP/2 on Gateway listeners: h2c with prior knowledge on HTTP listeners, ALPN ``h2`` on
HTTPS listeners; each stream is decided like an HTTP/1.1 request and forwarded to the backend
over HTTP/1.1.

Invariants:
- the HTTP/2 framing, HPACK and flow control are the ``h2`` library's (sans-IO: bytes in,
  events and bytes out); this module only pumps bytes and maps streams to decisions;
- the first bytes of an HTTP connection decide its protocol (the HTTP/2 connection preface,
  RFC 9113 §3.4, else HTTP/1.1 handled by knet.ingress.http1); on TLS the ALPN result does;
- responses larger than the peer's flow-control window wait for WINDOW_UPDATE frames; a
  stream reset by the client drops its pending data; a protocol error closes the connection
  with GOAWAY, never the server;
- upstream requests are HTTP/1.1 on a fresh connection each (``Connection: close``): bodies are
  buffered in memory, bounded by ``BODY_LIMIT``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from knet.gateway.decision import GatewayRequest, decide
from knet.ingress.http1 import Chunked, FramingError, error_page

log = logging.getLogger("knet.gateway")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
BODY_LIMIT = 16 * 1024 * 1024
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
                  "te", "trailer", "content-length", "host"})


class Sniff(asyncio.Protocol):
    """The first protocol of a Gateway HTTP(S) connection: picks HTTP/2 or HTTP/1.1."""

    def __init__(self, proxy: Any, scheme: str, http1: Callable[[], asyncio.Protocol]) -> None:
        self.proxy = proxy
        self.scheme = scheme
        self.http1 = http1
        self.transport: Any = None
        self.buf = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        ssl_obj = transport.get_extra_info("ssl_object")
        if ssl_obj is not None and ssl_obj.selected_alpn_protocol() == "h2":
            self._switch(H2Server(self.proxy, self.scheme))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        n = min(len(self.buf), len(PREFACE))
        if self.buf[:n] != PREFACE[:n]:
            self._switch(self.http1())
        elif len(self.buf) >= len(PREFACE):
            self._switch(H2Server(self.proxy, self.scheme))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def _switch(self, proto: asyncio.Protocol) -> None:
        t = self.transport
        if t is None:
            return
        self.transport = None
        t.set_protocol(proto)
        proto.connection_made(t)
        if self.buf:
            buf, self.buf = self.buf, b""
            proto.data_received(buf)


class _Stream:
    __slots__ = ("headers", "body", "pending", "ended")

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.headers = headers
        self.body = bytearray()
        self.pending = b""  # response bytes waiting for flow-control window
        self.ended = False  # the response's END_STREAM is queued with ``pending``


class H2Server(asyncio.Protocol):
    """One HTTP/2 client connection of a Gateway listener."""

    def __init__(self, proxy: Any, scheme: str) -> None:
        self.proxy = proxy
        self.scheme = scheme
        self.transport: Any = None
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8", validate_inbound_headers=True))
        self.streams: dict[int, _Stream] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.client_ip = "127.0.0.1"

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = str(peer[0])
        self.conn.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for t in self.tasks:
            t.cancel()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._flush()  # h2 queued a GOAWAY
            if self.transport is not None:
                self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.streams[ev.stream_id] = _Stream(list(ev.headers))  # type: ignore[arg-type]
            elif isinstance(ev, h2.events.DataReceived):
                st = self.streams.get(ev.stream_id)
                if st is not None:
                    st.body += ev.data
                    if len(st.body) > BODY_LIMIT:
                        self._respond(ev.stream_id, 413, [], error_page(413))
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self._dispatch(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.streams.pop(ev.stream_id, None)
            elif isinstance(ev, h2.events.WindowUpdated):
                self._drain(ev.stream_id)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self._flush()
                if self.transport is not None:
                    self.transport.close()
                return
        self._flush()

    # -- requests --
    def _dispatch(self, stream_id: int) -> None:
        st = self.streams.get(stream_id)
        if st is None:
            return
        task = asyncio.ensure_future(self._serve(stream_id, st))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, stream_id: int, st: _Stream) -> None:
        pseudo = {k: v for k, v in st.headers if k.startswith(":")}
        headers = [(k, v) for k, v in st.headers if not k.startswith(":")]
        host = pseudo.get(":authority", "") or next((v for k, v in headers if k == "host"), "")
        ctype = next((v for k, v in headers if k == "content-type"), "")
        req = GatewayRequest(pseudo.get(":method", "GET"), pseudo.get(":path", "/"), host,
                             headers, self.scheme, self.proxy.port, None,
                             ctype.startswith("application/grpc"))
        d = decide(self.proxy.tables, self.proxy.gateway, req, self.proxy.rng)
        if getattr(self.proxy, "observer", None) is not None:
            self.proxy.observer(req, d, "HTTP/2")
        extra = list(d.response_headers.items())
        if d.status != 200 or not d.addresses:
            if d.location:
                extra.append(("location", d.location))
            body = b"" if d.status in (204, 304) or req.method == "HEAD" else error_page(d.status)
            if req.grpc and d.status == 404:
                self._respond(stream_id, 200, [("content-type", "application/grpc"),
                                               ("grpc-status", "12")] + extra, b"")
                return
            self._respond(stream_id, d.status, extra + [("content-type", "text/html")]
                          if body else extra, body)
            return
        ip, port = d.addresses[self.proxy.rng.randrange(len(d.addresses))]
        r = d.request
        try:
            status, rheaders, rbody = await asyncio.wait_for(
                fetch(self.proxy.connect, ip, port, r["method"], r["path"], r["host"],
                      list(r["headers"].items()), bytes(st.body)),
                d.backend_timeout or d.timeout or 60.0)
        except TimeoutError:
            self._respond(stream_id, 504, [], error_page(504))
            return
        except Exception:  # noqa: BLE001 - any upstream failure is a 502 for this stream
            log.debug("gateway h2: upstream %s:%s failed", ip, port, exc_info=True)
            self._respond(stream_id, 502, [], error_page(502))
            return
        out = [(k.lower(), v) for k, v in rheaders if k.lower() not in _HOP]
        self._respond(stream_id, status, out + extra, b"" if req.method == "HEAD" else rbody)

    def _respond(self, stream_id: int, status: int, headers: list[tuple[str, str]],
                 body: bytes) -> None:
        st = self.streams.get(stream_id)
        if st is None or self.transport is None:
            return
        st.ended = True
        try:
            self.conn.send_headers(stream_id, [(":status", str(status)),
                                               ("content-length", str(len(body))), *headers],
                                   end_stream=not body)
        except h2.exceptions.H2Error:
            self.streams.pop(stream_id, None)
            return
        if body:
            st.pending = body
            self._drain(stream_id)
        else:
            self.streams.pop(stream_id, None)
        self._flush()

    def _drain(self, stream_id: int) -> None:
        ids = [stream_id] if stream_id else list(self.streams)
        for sid in ids:
            st = self.streams.get(sid)
            if st is None or not st.pending:
                continue
            try:
                while st.pending:
                    window = min(self.conn.local_flow_control_window(sid),
                                 self.conn.max_outbound_frame_size)
                    if window <= 0:
                        break
                    chunk, st.pending = st.pending[:window], st.pending[window:]
                    self.conn.send_data(sid, chunk, end_stream=not st.pending)
            except h2.exceptions.H2Error:
                st.pending = b""
            if not st.pending:
                self.streams.pop(sid, None)
        self._flush()


class _Fetch(asyncio.Protocol):
    """One HTTP/1.1 exchange with ``Connection: close``; the response buffered."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.done: asyncio.Future[tuple[int, list[tuple[str, str]], bytes]] = \
            asyncio.get_running_loop().create_future()
        self.head: tuple[int, list[tuple[str, str]]] | None = None
        self.length: int | None = None
        self.chunked: Chunked | None = None
        self.body: list[bytes] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.buf += data
        try:
            self._parse()
        except (ValueError, FramingError) as e:
            self._fail(e)

    def _parse(self) -> None:
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    raise ValueError("upstream head too big")
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise ValueError("bad status line")
            status = int(parts[1])
            headers = []
            for line in lines[1:]:
                k, sep, v = line.partition(":")
                if not sep:
                    raise ValueError("bad header line")
                headers.append((k.strip(), v.strip()))
            if 100 <= status < 200:
                return self._parse()
            self.head = (status, headers)
            low = {k.lower(): v for k, v in headers}
            if "chunked" in low.get("transfer-encoding", "").lower():
                self.chunked = Chunked(decode=True)
            elif "content-length" in low:
                self.length = int(low["content-length"])
            if status in (204, 304):
                self.length = 0
        if self.chunked is not None:
            pieces, used = self.chunked.feed(bytes(self.buf))
            del self.buf[:used]
            self.body += pieces
            if self.chunked.done:
                self._finish()
        elif self.length is not None and len(self.buf) >= self.length:
            self.body.append(bytes(self.buf[:self.length]))
            self._finish()
        if sum(map(len, self.body)) + len(self.buf) > BODY_LIMIT:
            raise ValueError("upstream body too big")

    def _finish(self) -> None:
        assert self.head is not None
        if not self.done.done():
            self.done.set_result((self.head[0], self.head[1], b"".join(self.body)))
        if self.transport is not None:
            self.transport.close()

    def _fail(self, e: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(e)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if self.head is not None and self.length is None and self.chunked is None:
            self.body.append(bytes(self.buf))
            self._finish()  # EOF-delimited body
        else:
            self._fail(ConnectionError("upstream closed before the response ended"))


async def fetch(connect: Any, ip: str, port: int, method: str, path: str, host: str,
                headers: list[tuple[str, str]], body: bytes) -> tuple[int, list[tuple[str, str]],
                                                                      bytes]:
    """One HTTP/1.1 request to ``ip:port`` (the backend of an HTTP/2 stream)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP]
    lines += ["Connection: close", f"Content-Length: {len(body)}"] if body or method in (
        "POST", "PUT", "PATCH") else ["Connection: close"]
    proto = _Fetch()
    transport, _ = await connect(lambda: proto, ip, port)
    transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body)
    return await proto.done


__all__ = ["H2Server", "PREFACE", "Sniff", "fetch"]
