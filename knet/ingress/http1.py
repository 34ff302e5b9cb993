"""HTTP/1.1 for the ingress proxy: plain asyncio Protocols on both sides (no task per request).

Invariants:
- a client connection handles one request at a time; pipelined requests wait in its buffer,
  which is bounded (reading pauses beyond ``PIPELINE_LIMIT``);
- a request head is parsed once (RFC 9112 §2-§6: whole-block regular expressions for the
  grammar, then one ``CIMultiDict``) and routed by the proxy's ``Router``; nothing else parses it;
- an upstream response is parsed only as far as framing needs (status line, Content-Length,
  Transfer-Encoding, Connection); its other header lines are relayed as bytes minus the ones
  nginx hides (``ngx_http_proxy_hide_headers``), its body is relayed as it arrives (chunked
  bodies are re-framed without extensions/trailers, as nginx does);
- backpressure both ways: a paused writer pauses the reader that feeds it; memory per
  connection is bounded by the head limits plus one read;
- only upstream connects are awaited (cold path); timeouts are deadlines checked by the proxy's
  sweeper, not one timer per request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from knet.ingress.decision import Decision, Request, upstream_headers
from knet.ingress.responses import REASONS, SERVER, page
from knet.ingress.routecache import Routed

if TYPE_CHECKING:
    from knet.ingress.proxy import IngressProxy

log = logging.getLogger("knet.ingress")

PIPELINE_LIMIT = 64 * 1024  # buffered bytes of later requests before reading pauses
RESPONSE_HEAD_LIMIT = 4096  # ingress-nginx proxy-buffer-size: "upstream sent too big header" → 502
CHUNK_LINE_LIMIT = 4096
UPSTREAM_KEEPALIVE_REQUESTS = 10000  # ingress-nginx upstream-keepalive-requests
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

# RFC 9110 §5.6.2 token; field values: VCHAR / obs-text / SP / HTAB (RFC 9110 §5.5)
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQUEST_LINE = re.compile(rf"({_TOKEN}) ([^\x00-\x20\x7f]+) HTTP/(\d)\.(\d)")
_HTTP09_LINE = re.compile(rb"GET (/[^\x00-\x20\x7f]*)\r?\n")  # RFC 1945 §4.1 Simple-Request
_HEAD_END = re.compile(rb"\r?\n\r?\n")  # nginx accepts bare LF line ends (RFC 9112 §2.2)
_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII digits only: str.isdigit() accepts "²"
_FIELDS = re.compile(rf"(?:{_TOKEN}:[\t\x20-\x7e\x80-\xff]*\r\n)*")
_FIELD = re.compile(rf"({_TOKEN}):[\t ]*([^\r]*?)[\t ]*\r\n")

_STATUS_LINE = re.compile(rb"HTTP/1\.(\d) ((\d{3})[^\r\n]*)")
_RFIELDS = re.compile(rb"(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")
_FRAMING = re.compile(rb"^(content-length|transfer-encoding|connection):[\t ]*([^\r]*?)[\t ]*\r$",
                      re.I | re.M)
# ngx_http_proxy_module hides Date/Server/X-Pad/X-Accel-*; hop-by-hop and framing are redone.
_HIDE = re.compile(rb"\n(?:connection|keep-alive|transfer-encoding|content-length|server|date|"
                   rb"x-pad|x-accel-[!#$%&'*+.^_`|~0-9a-z-]*|proxy-connection|trailer):[^\r]*\r",
                   re.I)

_EXTRA_REASONS = {501: "Not Implemented", 505: "HTTP Version Not Supported"}
# ngx_http_special_response_handler: these errors turn keep-alive off
_CLOSE_AFTER = frozenset({400, 408, 413, 414, 431, 500, 501, 505})

_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The Date header value, formatted once per second (like nginx's cached time)."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def reason_phrase(status: int) -> str:
    return REASONS.get(status) or _EXTRA_REASONS.get(status) or "Unknown"


def error_page(status: int) -> bytes:
    if status in REASONS:
        return page(status)
    title = f"{status} {reason_phrase(status)}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>{SERVER}</center>\r\n"
            f"</body>\r\n</html>\r\n").encode()


def local_response(status: int, *, keep: bool, head_only: bool = False,
                   location: str | None = None,
                   headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A response nginx generates itself (error pages, redirects, CORS preflight)."""
    out = [f"HTTP/1.1 {status} {reason_phrase(status)}\r\nServer: {SERVER}\r\nDate: ",
           http_date().decode(), "\r\n"]
    body = b""
    if status != 204:
        body = error_page(status)
        out.append(f"Content-Type: text/html\r\nContent-Length: {len(body)}\r\n")
    out.append("Connection: keep-alive\r\n" if keep else "Connection: close\r\n")
    if location:
        out.append(f"Location: {location}\r\n")
    for k, v in headers:
        out.append(f"{k}: {v}\r\n")
    out.append("\r\n")
    head = "".join(out).encode("latin-1", "replace")
    return head if head_only else head + body


class FramingError(ValueError):
    """A malformed chunked body."""


class Chunked:
    """Incremental ``Transfer-Encoding: chunked`` framing (RFC 9112 §7.1).

    ``feed(data, pos)`` returns ``(pieces, pos)``: in relay mode the pieces are the body
    re-framed (``%x\\r\\n`` size lines without extensions, trailers dropped, ``0\\r\\n\\r\\n``);
    in decode mode the bare data. ``done`` once the last chunk and trailer section are read.
    """

    __slots__ = ("decode", "state", "left", "line", "total", "done")
    SIZE, DATA, CRLF, TRAILER = range(4)

    def __init__(self, decode: bool = False) -> None:
        self.decode = decode
        self.state = self.SIZE
        self.left = 0
        self.line = b""
        self.total = 0
        self.done = False

    def feed(self, data: bytes, pos: int = 0) -> tuple[list[bytes], int]:
        out: list[bytes] = []
        n = len(data)
        while pos < n and not self.done:
            st = self.state
            if st == self.DATA:
                take = min(self.left, n - pos)
                out.append(data[pos:pos + take] if take != n or pos else data)
                self.left -= take
                pos += take
                if not self.left:
                    self.state, self.left = self.CRLF, 2
            elif st == self.CRLF:
                want = b"\r\n"[2 - self.left:]
                got = data[pos:pos + len(want)]
                if not want.startswith(got):
                    raise FramingError("chunk data not followed by CRLF")
                pos += len(got)
                self.left -= len(got)
                if not self.left:
                    self.state = self.SIZE
                    if not self.decode:
                        out.append(b"\r\n")
            else:
                i = data.find(b"\n", pos)
                if i < 0:
                    self.line += data[pos:]
                    if len(self.line) > CHUNK_LINE_LIMIT:
                        raise FramingError("chunk line too long")
                    return out, n
                line = self.line + data[pos:i + 1] if self.line else data[pos:i + 1]
                self.line = b""
                pos = i + 1
                if len(line) > CHUNK_LINE_LIMIT:
                    raise FramingError("chunk line too long")
                if st == self.SIZE:
                    size_s = line.split(b";", 1)[0].strip()
                    if not size_s or len(size_s) > 15 or size_s.strip(b"0123456789abcdefABCDEF"):
                        raise FramingError(f"bad chunk size {line[:32]!r}")
                    size = int(size_s, 16)
                    if size:
                        self.total += size
                        self.state, self.left = self.DATA, size
                        if not self.decode:
                            out.append(b"%x\r\n" % size)
                    else:
                        self.state = self.TRAILER
                elif line in (b"\r\n", b"\n"):  # end of the trailer section (trailers dropped)
                    self.done = True
                    if not self.decode:
                        out.append(b"0\r\n\r\n")
        return out, pos



HEAD_MEMO = 512  # parsed request heads / upstream heads / response heads kept per proxy
MEMO_HEAD_BYTES = 2048  # only heads up to this size are memoised (bounded memory)
_MARK = "\x00knet-request-id\x00"
_MARK_B = _MARK.encode()


class RequestHead:
    """A validated request head (never mutated: memoised by its bytes and shared)."""

    __slots__ = ("method", "target", "http10", "keep", "host", "headers", "chunked", "length",
                 "has_length", "upgrade", "expect_continue", "has_expect")

    method: str
    target: str
    http10: bool
    keep: bool
    host: str
    headers: CIMultiDict[str]
    chunked: bool
    length: int
    has_length: bool
    upgrade: bool
    expect_continue: bool
    has_expect: bool


def validate_host(host: str) -> str | None:
    """``ngx_http_validate_host``: the Host without port, lowercased, one trailing dot removed;
    None for an invalid one (empty, ``..``, NUL, ``/``, control characters or spaces)."""
    dot = -2
    end = len(host)
    literal = rest = False
    for i, ch in enumerate(host):
        if ch == ".":
            if dot == i - 1:
                return None
            dot = i
        elif ch == ":":
            if not rest and not literal:
                end, rest = i, True
        elif ch == "[":
            literal = i == 0
        elif ch == "]":
            if literal and not rest:
                end, rest, literal = i + 1, True, False
        elif ch == "/" or ch <= " " or ch == "\x7f":
            return None
    if dot == end - 1:
        end -= 1
    if end <= 0:
        return None
    return host[:end].lower()


def parse_request_head(raw: bytes, max_line: int, max_field: int,
                       max_headers: int) -> RequestHead | int:
    """Parse a request head (request line + fields + CRLF, without the final empty line).

    Returns the head, or the status of the error page nginx would answer with (RFC 9112:
    §3 request line, §5 fields, §6.3 framing; 414/431/505/501 as nginx chooses them).
    """
    if b"\r\n" not in raw or raw.count(b"\n") != raw.count(b"\r\n"):
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # bare LF line ends
    text = raw.decode("latin-1")
    first = text.find("\r\n")
    m = _REQUEST_LINE.fullmatch(text, 0, first)
    if m is None:
        return 414 if first > max_line else 400
    method, target, major, minor = m.groups()
    if major != "1":
        return 505 if major != "0" else 400
    if first > max_line:
        return 414
    if _FIELDS.fullmatch(text, first + 2) is None:
        return _oversized(raw, max_line, max_field, request_line_ok=True)
    pairs = _FIELD.findall(text, first + 2)
    if len(pairs) > max_headers:
        return 431
    if len(text) - first > max_field and any(len(k) + len(v) + 2 > max_field for k, v in pairs):
        return 431
    headers: CIMultiDict[str] = CIMultiDict(pairs)
    h = RequestHead()
    h.method = method
    h.target = target
    h.http10 = http10 = minor == "0"
    conn = headers.get("Connection")
    if conn is None:
        h.keep = not http10
    else:
        tokens = conn.lower()
        h.keep = "close" not in tokens and (not http10 or "keep-alive" in tokens)
    hosts = headers.getall("Host", ())
    if len(hosts) > 1 or (not hosts and not http10):
        return 400  # RFC 9112 §3.2
    if hosts and validate_host(hosts[0]) is None:
        return 400  # ngx_http_validate_host: "client sent invalid host header"
    h.host = hosts[0] if hosts else ""
    # RFC 9112 §6: Transfer-Encoding and Content-Length (nginx ≥ 1.23 refuses duplicates of
    # either, both together, a coding list where chunked is not final; other codings → 501)
    tes = headers.getall("Transfer-Encoding", ())
    cl = headers.getall("Content-Length", ())
    h.chunked = False
    h.length = 0
    h.has_length = bool(cl) or bool(tes)
    if tes:
        if cl or len(tes) > 1 or http10:
            return 400
        codings = [c.strip().lower() for c in tes[0].split(",")]
        if codings != ["chunked"]:
            # chunked not final (or repeated): RFC 9112 §6.3 → 400; other codings: nginx 501
            return 400 if "chunked" in codings[:-1] or "" in codings else 501
        h.chunked = True
    elif cl:
        if len(cl) > 1 or _DIGITS.fullmatch(cl[0]) is None:
            return 400
        h.length = int(cl[0])
    h.headers = headers
    h.upgrade = "Upgrade" in headers
    expect = headers.get("Expect")
    h.has_expect = expect is not None
    h.expect_continue = expect is not None and expect.lower() == "100-continue"
    return h


def render_upstream_head(head: RequestHead, d: Any, hdrs: list[tuple[str, str]]) -> bytes:
    """The request head sent upstream: ``upstream_headers`` plus the body framing (nginx
    removes ``Expect``; ``ngx_http_proxy_headers``)."""
    if head.has_expect:
        hdrs = [kv for kv in hdrs if kv[0].lower() != "expect"]
    framing = ("\r\nTransfer-Encoding: chunked" if head.chunked else
               f"\r\nContent-Length: {head.length}" if head.has_length else "")
    fields = "\r\n".join(map(": ".join, hdrs)) if hdrs else ""
    text = (f"{head.method} {d.upstream_path} HTTP/1.1" + ("\r\n" if hdrs else "") + fields
            + framing + "\r\n\r\n")
    return text.encode("latin-1", "replace")


class ResponseHead:
    """What the proxy needs from an upstream response head (memoised by its bytes)."""

    __slots__ = ("code", "status_line", "fields", "length", "te", "keep")

    def __init__(self, code: int, status_line: bytes, fields: bytes, length: bytes | None,
                 te: bytes, keep: bool) -> None:
        self.code = code
        self.status_line = status_line  # b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: "
        self.fields = fields  # b"\r\n" + the relayed header lines, each ending in CRLF
        self.length = length
        self.te = te
        self.keep = keep


def parse_response_head(raw: bytes) -> ResponseHead | None:
    """Status line + framing of an upstream response head (status line and fields, each
    ending in CRLF); None when nginx would call it invalid (→ 502)."""
    first = raw.find(b"\r\n")
    m = _STATUS_LINE.fullmatch(raw, 0, first)
    if m is None or _RFIELDS.fullmatch(raw, first + 2) is None:
        return None
    code = int(m.group(3))
    cl: bytes | None = None
    te = b""
    conn = b""
    for name, value in _FRAMING.findall(raw, first + 2):
        n0 = name[0] | 0x20
        if n0 == 0x63 and len(name) == 14:  # content-length
            if cl is not None and cl != value:
                return None  # "upstream sent duplicate header line"
            cl = value
        elif n0 == 0x74:
            te = value.lower() if not te else te + b"," + value.lower()
        else:
            conn = value.lower()
    if cl is not None and (te or not cl.isdigit() or len(cl) > 18):
        return None  # both framings (nginx ≥1.23 refuses the response) or a bad length
    status = m.group(2)
    if len(status) == 3:
        status += b" " + reason_phrase(code).encode()
    keep = m.group(1) != b"0" and b"close" not in conn  # HTTP/1.0 upstreams: no keep-alive
    return ResponseHead(code, b"HTTP/1.1 " + status + b"\r\nServer: " + SERVER.encode() +
                        b"\r\nDate: ", _HIDE.sub(b"", raw[first:]), cl, te, keep)


# --- the client side --------------------------------------------------------------------------

H_HEAD, H_BODY, H_WAIT, H_TUNNEL, H_CLOSED = range(5)
_PAUSE_PIPELINE, _PAUSE_UPSTREAM = 1, 2


class ClientConnection(asyncio.Protocol):
    """One downstream connection (what nginx calls the client side)."""

    __slots__ = (
        "proxy", "scheme", "transport", "client_ip", "buf", "state", "deadline", "requests",
        "paused", "eof", "write_paused",
        # the exchange in flight
        "method", "keep", "http10", "upgrade", "decision", "up", "up_head", "address",
        "tries", "has_body", "body_left", "body_chunked", "body_done", "body_sent",
        "response_started", "response_done", "parsing", "http09", "status", "started",
    )

    def __init__(self, proxy: IngressProxy, scheme: str) -> None:
        self.proxy = proxy
        self.scheme = scheme
        self.transport: Any = None
        self.client_ip = "127.0.0.1"
        self.buf = bytearray()
        self.state = H_HEAD
        self.deadline = 0.0
        self.requests = 0
        self.paused = 0
        self.eof = False
        self.write_paused = False
        self.parsing = False
        self.http09 = False
        self._reset()

    def _reset(self) -> None:
        self.method = "GET"
        self.keep = False
        self.http10 = False
        self.upgrade = False
        self.decision: Decision | Routed | None = None
        self.up: UpstreamConnection | None = None
        self.up_head = b""
        self.address = ""
        self.tries = 0
        self.has_body = False
        self.body_left = 0
        self.body_chunked: Chunked | None = None
        self.body_done = True
        self.body_sent = False
        self.response_started = False
        self.response_done = False
        self.status = 0  # the response status, once known (for proxy.observe)
        self.started = 0.0

    # -- asyncio.Protocol --
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = str(peer[0])
        self.proxy._conns.add(self)
        self.deadline = self.proxy._now() + self.proxy.client_header_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = H_CLOSED
        self.proxy._conns.discard(self)
        up = self.up
        if up is not None:
            self.up = None
            up.client_gone()
        self.buf = bytearray()

    def eof_received(self) -> bool:
        self.eof = True
        if self.state == H_HEAD:
            return False  # idle, or a partial head that can never complete: close
        if self.state == H_TUNNEL and self.up is not None:
            self.up.transport.write_eof() if self.up.transport.can_write_eof() else None
        return True  # answer what was asked, then close

    def pause_writing(self) -> None:
        self.write_paused = True
        self.deadline = self.proxy._now() + self.proxy.send_timeout
        if self.up is not None:
            self.up.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._idle_deadline()
        if self.up is not None:
            self.up.resume_reading()

    def data_received(self, data: bytes) -> None:
        st = self.state
        if st == H_HEAD:
            if self.buf:
                self.buf += data
            else:
                if data[:1] in (b"\r", b"\n"):
                    data = data.lstrip(b"\r\n")  # RFC 9112 §2.2: ignore empty lines first
                    if not data:
                        return
                self.buf = bytearray(data)
                if self.requests:  # a head starts: client_header_timeout for all of it
                    self.deadline = self.proxy._now() + self.proxy.client_header_timeout
            self._next_request()
        elif st == H_BODY:
            self.buf += data
            self._pump_body()
        elif st == H_TUNNEL:
            if self.up is not None:
                self.up.transport.write(data)
        elif st == H_WAIT:
            self.buf += data
            if len(self.buf) > PIPELINE_LIMIT:
                self._pause(_PAUSE_PIPELINE)

    # -- flow control --
    def _pause(self, why: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= why

    def _resume(self, why: int) -> None:
        if self.paused & why:
            self.paused &= ~why
            if not self.paused and self.state != H_CLOSED:
                self.transport.resume_reading()

    def expire(self, now: float) -> None:
        """The sweeper found ``deadline`` passed."""
        if self.state == H_BODY and not self.write_paused:
            self._fail(408)  # client_body_timeout
        else:
            self._close()  # client_header_timeout / keepalive_timeout / send_timeout

    def _idle_deadline(self) -> None:
        p = self.proxy
        st = self.state
        if st == H_HEAD:
            if not (self.buf and self.deadline):  # a started head keeps its own deadline
                self.deadline = p._now() + (p.client_header_timeout if self.buf or not self.requests
                                            else p.keepalive_timeout)
        elif st == H_BODY:
            self.deadline = p._now() + p.client_body_timeout
        else:
            self.deadline = 0.0

    def _close(self) -> None:
        if self.state != H_CLOSED:
            self.state = H_CLOSED
            self.transport.close()

    # -- requests --
    def _next_request(self) -> None:
        """Parse and start the request at the front of ``buf`` (state H_HEAD)."""
        proxy = self.proxy
        if self.parsing:
            return  # the loop below picks the next request up
        self.parsing = True
        try:
            self._parse_loop(proxy)
        finally:
            self.parsing = False

    def _parse_loop(self, proxy: IngressProxy) -> None:
        while self.state == H_HEAD and self.buf:
            buf = self.buf
            if buf[:5] == b"GET /" and (m09 := _HTTP09_LINE.match(buf)) is not None:
                return self._http09(m09.group(1).decode("latin-1"))
            m = _HEAD_END.search(buf)
            if m is None:
                if len(buf) > proxy.head_limit or (b"\n" not in buf and len(buf) > proxy.max_line_size):
                    self._reject(_oversized(bytes(buf), proxy.max_line_size, proxy.max_field_size))
                elif self.eof:
                    self._close()  # half-closed with a partial head: nginx closes, no answer
                # else: the whole head keeps the deadline set when it started (nginx's
                # client_header_timeout is not re-armed by each packet: slowloris)
                return
            end = m.start()
            head = bytes(buf[:end]) + b"\r\n"
            del buf[:m.end()]
            self.requests += 1
            try:
                self._request(head)
            except Exception:  # the server never dies from one request
                log.exception("ingress: internal error")
                if self.state != H_CLOSED:
                    self._fail(500)

    def _http09(self, target: str) -> None:
        """An HTTP/0.9 Simple-Request (``GET /path``, no version, no headers): nginx serves it
        from the default server and answers with the body only, then closes."""
        self.buf.clear()
        self.requests += 1
        self.http09 = True
        proxy = self.proxy
        req = Request("GET", "", target, CIMultiDict(), self.scheme, self.client_ip, None)
        d = proxy.routes.route(req, now=proxy.clock())
        self.method = "GET"
        self.http10 = True
        self.keep = False
        if d.status != 200:
            self.transport.write(error_page(d.status))
            return self._close()
        self.decision = d
        empty = RequestHead()
        empty.method, empty.target, empty.http10, empty.keep = "GET", target, True, False
        empty.host, empty.headers, empty.chunked, empty.length = "", CIMultiDict(), False, 0
        empty.has_length = empty.upgrade = empty.expect_continue = empty.has_expect = False
        self.up_head = render_upstream_head(empty, d, upstream_headers(
            req, d, proxy.router.table.config))
        self.state = H_WAIT
        self.deadline = 0.0
        self.tries = 0
        self._dispatch(d.upstream or "")

    def _reject(self, status: int) -> None:
        self.keep = False
        self.transport.write(local_response(status, keep=False))
        self._close()

    def _request(self, raw: bytes) -> None:
        proxy = self.proxy
        head = proxy._heads.get(raw)
        if head is None:
            parsed = parse_request_head(raw, proxy.max_line_size, proxy.max_field_size,
                                        proxy.max_headers)
            if isinstance(parsed, int):
                return self._reject(parsed)
            head = parsed
            if len(raw) <= MEMO_HEAD_BYTES:
                if len(proxy._heads) >= HEAD_MEMO:
                    proxy._heads.clear()
                proxy._heads[raw] = head
        self.method = head.method
        self.started = proxy.clock() if proxy.observe is not None else 0.0
        self.http10 = head.http10
        self.keep = head.keep and self.requests < proxy.keepalive_requests
        self.upgrade = head.upgrade
        self.body_left = head.length
        self.body_chunked = Chunked() if head.chunked else None
        self.has_body = head.chunked or head.length > 0
        self.body_done = not self.has_body
        d: Decision | Routed | None = None
        if not head.has_length:
            d = proxy.routes.lookup(self.scheme, head.method, head.host, head.target, head.headers)
        req = None
        if d is None:
            req = Request(head.method, head.host, head.target, head.headers, self.scheme,
                          self.client_ip, None)
            d = proxy.routes.route(req, now=proxy.clock())
        if d.status != 200:
            return self._local(d)
        self.decision = d
        if head.expect_continue and not self.body_done and not self.buf:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if req is None:  # a memoised route: the upstream head around the request id is memoised too
            assert isinstance(d, Routed)
            key = (raw, self.scheme, self.client_ip, bool(d.request_id))
            pair = d.heads.get(key)
            if pair is None:
                pair = self._upstream_head_parts(head, d)
                if len(raw) <= MEMO_HEAD_BYTES:
                    if len(d.heads) >= HEAD_MEMO:
                        d.heads.clear()
                    d.heads[key] = pair
            self.up_head = pair[0] + d.request_id.encode() + pair[1] if pair[1] is not None \
                else pair[0]
        else:
            self.up_head = proxy.upstream_head(head, req, d)
        self.state = H_BODY if not self.body_done else H_WAIT
        self._idle_deadline()
        self.tries = 0
        self.response_started = self.response_done = False
        self._dispatch(d.upstream or "")

    def _upstream_head_parts(self, head: RequestHead, d: Routed) -> tuple[bytes, bytes | None]:
        """The upstream head split around the request id: (before, after), or (whole, None)."""
        req = Request(head.method, head.host, head.target, head.headers, self.scheme,
                      self.client_ip, None)
        marked = Routed(d.template, _MARK if d.request_id else "", None, d.heads)
        whole = render_upstream_head(head, d, upstream_headers(
            req, marked, self.proxy.router.table.config))  # type: ignore[arg-type]
        if not d.request_id:
            return whole, None
        parts = whole.split(_MARK_B)
        if len(parts) != 2:  # the marker appears elsewhere: render each time instead
            return render_upstream_head(head, d, upstream_headers(
                req, d, self.proxy.router.table.config)), None  # type: ignore[arg-type]
        return parts[0], parts[1]

    def _local(self, d: Decision | Routed) -> None:
        status = d.status
        if self.proxy.observe is not None:
            self.proxy.observe(self, status, d)
        keep = self.keep and status not in _CLOSE_AFTER and (
            self.body_done or self.body_chunked is not None or self.body_left <= PIPELINE_LIMIT)
        self.keep = keep
        self.transport.write(local_response(
            status, keep=keep, head_only=self.method == "HEAD", location=d.location,
            headers=d.response_headers))
        self.response_started = self.response_done = True
        if not keep:
            return self._close()
        if not self.body_done:
            self.up = None
            self.state = H_BODY  # discard the body (ngx_http_discard_request_body)
            self._pump_body()
        else:
            self._finished()

    # -- upstream side of the exchange --
    def _dispatch(self, address: str) -> None:
        self.address = address
        self.tries += 1
        up = self.proxy._idle_conn(address)
        if up is not None:
            self._attach(up)
        else:
            self.proxy._connect(self, address)

    def _attach(self, up: UpstreamConnection) -> None:
        """An upstream connection is ready: send the head and what we have of the body."""
        if self.state == H_CLOSED:
            self.proxy._release(up)
            return
        self.up = up
        up.start(self)
        if self.body_done:
            up.transport.write(self.up_head)
            self.body_sent = True
        else:
            up.transport.write(self.up_head)
            self._pump_body()

    def connect_failed(self, status: int, retry: bool, sent: bool) -> None:
        """The upstream could not be reached (502/504; ``sent`` False), or closed a reused
        keep-alive connection before answering (``sent`` True: replayed only when safe)."""
        self.up = None
        if self.state == H_CLOSED:
            return
        d = self.decision
        addrs = d.addresses if d is not None else ()
        if retry and not self.response_started and (
                not sent or (not self.has_body and self.method in _IDEMPOTENT)):
            limit = min(self.proxy.max_tries, len(addrs)) + (1 if len(addrs) == 1 else 0)
            if self.tries < limit:
                if len(addrs) > 1:
                    self.address = _next_address(addrs, self.address)
                self.body_sent = False
                return self._dispatch(self.address)
        self._fail(status)

    def _fail(self, status: int) -> None:
        """An error page if nothing was sent yet, then close (the exchange is broken)."""
        up = self.up
        if up is not None:
            self.up = None
            up.abort()
        if self.state == H_CLOSED:
            return
        if not self.response_started:
            self.response_started = True
            self.transport.write(error_page(status) if self.http09 else local_response(
                status, keep=False, head_only=self.method == "HEAD"))
            if self.proxy.observe is not None and self.decision is not None:
                self.proxy.observe(self, status, self.decision)
        self._close()

    def _pump_body(self) -> None:
        """Move request body bytes from ``buf`` to the upstream (or drop them for local answers)."""
        buf = self.buf
        if self.up is None and not self.response_done:
            if len(buf) > PIPELINE_LIMIT:
                self._pause(_PAUSE_PIPELINE)  # still connecting: bounded buffering
            return
        if self.paused & _PAUSE_PIPELINE:
            self._resume(_PAUSE_PIPELINE)
        up = self.up
        sink = up.transport if up is not None else None
        if self.body_chunked is None:
            n = min(self.body_left, len(buf))
            if n:
                if sink is not None:
                    sink.write(bytes(buf[:n]))
                del buf[:n]
                self.body_left -= n
            done = not self.body_left
        else:
            ch = self.body_chunked
            try:
                pieces, used = ch.feed(bytes(buf))
            except FramingError:
                return self._fail(400)
            del buf[:used]
            d = self.decision
            limit = d.body_limit if d is not None and up is not None else None
            if limit is not None and ch.total > limit:
                return self._fail(413)
            if sink is not None and pieces:
                sink.write(b"".join(pieces))
            done = ch.done
        if done:
            self.body_done = True
            self.body_sent = up is not None
            self.body_chunked = None
            self.state = H_WAIT
            self.deadline = 0.0
            if self.response_done:
                self._finished()
            elif len(buf) > PIPELINE_LIMIT:
                self._pause(_PAUSE_PIPELINE)
        else:
            self.deadline = self.proxy._now() + self.proxy.client_body_timeout

    # -- the response --
    def begin_response(self) -> None:
        self.response_started = True

    def end_response(self, keep_client: bool = True) -> None:
        """The upstream finished the response (the upstream connection is released)."""
        self.up = None
        self.response_done = True
        if self.proxy.observe is not None and self.decision is not None:
            self.proxy.observe(self, self.status, self.decision)
        if not keep_client:
            self.keep = False
        if self.state == H_CLOSED:
            return
        if not self.body_done:
            # answered before the whole request body was read: nginx closes too
            self.keep = False
        if self.body_done or not self.keep:
            self._finished()

    def start_tunnel(self, up: UpstreamConnection) -> None:
        self.state = H_TUNNEL
        self.deadline = 0.0
        if self.buf:
            up.transport.write(bytes(self.buf))
            self.buf.clear()

    def _finished(self) -> None:
        """Request and response complete: next request or close."""
        if not self.keep or self.state == H_CLOSED or (self.eof and not self.buf):
            return self._close()
        self._reset()
        self.state = H_HEAD
        self.deadline = self.proxy._now() + (
            self.proxy.client_header_timeout if self.buf else self.proxy.keepalive_timeout)
        if self.paused:
            self.paused = 0  # whatever paused this exchange is over
            self.transport.resume_reading()
        if self.buf:
            self._next_request()


def _oversized(raw: bytes, max_line: int, max_field: int, request_line_ok: bool = False) -> int:
    """Which error a head that is too big or malformed gets: 414, 431 or 400."""
    lines = raw.split(b"\r\n")
    if not request_line_ok and len(lines[0]) > max_line:
        return 414
    if any(len(x) > max_field for x in lines[1:]) or len(raw) > max_line + 100 * max_field:
        return 431
    if request_line_ok:
        return 400
    return 431 if len(raw) > max_line else 400


def _next_address(addrs: tuple[tuple[str, int], ...], current: str) -> str:
    fmt = [f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in addrs]
    i = fmt.index(current) if current in fmt else -1
    return fmt[(i + 1) % len(fmt)]


# --- the upstream side ------------------------------------------------------------------------

U_IDLE, U_HEAD, U_LENGTH, U_CHUNKED, U_EOF, U_TUNNEL, U_CLOSED = range(7)


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to an upstream address, pooled by the proxy when idle."""

    __slots__ = ("proxy", "address", "transport", "client", "state", "buf", "left", "chunked",
                 "keep", "wrap", "requests", "deadline", "reused", "got", "read_paused", "owner")

    def __init__(self, proxy: IngressProxy, address: str) -> None:
        self.proxy = proxy
        self.address = address
        self.transport: Any = None
        self.client: ClientConnection | None = None
        self.state = U_IDLE
        self.buf = b""
        self.left = 0
        self.chunked: Chunked | None = None
        self.keep = True
        self.wrap = 0  # 0 relay as is, 1 chunk-encode an EOF-delimited body
        self.requests = 0
        self.deadline = 0.0
        self.reused = False
        self.got = False
        self.read_paused = False
        self.owner: object = None  # keeps a stream opener's StreamWriter (which closes on GC)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.proxy._conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        st = self.state
        self.state = U_CLOSED
        self.proxy._conns.discard(self)
        self.proxy._forget(self)
        c = self.client
        self.client = None
        if c is None:
            return
        if st == U_HEAD:
            c.connect_failed(502, retry=self.reused and not self.got, sent=True)
        elif st == U_EOF:
            if self.wrap:
                c.transport.write(b"0\r\n\r\n")
            c.end_response(keep_client=bool(self.wrap))
        elif st in (U_LENGTH, U_CHUNKED, U_TUNNEL):
            c.up = None
            c._close()  # truncated response: the client sees the connection close (nginx too)

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        c = self.client
        if c is not None:
            c._pause(_PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        c = self.client
        if c is not None:
            c._resume(_PAUSE_UPSTREAM)

    def pause_reading(self) -> None:
        if not self.read_paused and self.state != U_CLOSED:
            self.read_paused = True
            self.deadline = 0.0  # proxy_read_timeout runs only while nginx reads
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.state != U_CLOSED:
            self.read_paused = False
            self.transport.resume_reading()
            c = self.client
            if c is not None and c.decision is not None:
                self.deadline = self.proxy._now() + c.decision.read_timeout

    # -- exchange --
    def start(self, client: ClientConnection) -> None:
        self.client = client
        self.state = U_HEAD
        self.got = False
        self.requests += 1
        d = client.decision
        self.deadline = self.proxy._now() + (d.read_timeout if d is not None else 60.0)

    def client_gone(self) -> None:
        """The client closed mid-exchange: this connection's framing state is unknown."""
        self.client = None
        if self.state != U_IDLE:
            self.abort()

    def abort(self) -> None:
        self.client = None
        if self.state != U_CLOSED:
            self.state = U_CLOSED
            self.transport.close()

    def expire(self, now: float) -> None:
        c = self.client
        st = self.state
        self.client = None
        if c is not None:
            c.up = None
            if st == U_HEAD:
                c._fail(504)  # proxy_read_timeout before the response head
            else:
                c._close()
        self.abort()

    def data_received(self, data: bytes) -> None:
        st = self.state
        c = self.client
        if c is None or st == U_IDLE:
            return self.abort()  # unsolicited bytes: the connection is unusable
        self.got = True
        if st == U_LENGTH:
            self.deadline = self.proxy._now() + c.decision.read_timeout  # type: ignore[union-attr]
            n = len(data)
            if n < self.left:
                self.left -= n
                c.transport.write(data)
                return
            if n > self.left:
                data = data[:self.left]
                self.keep = False  # more than Content-Length: do not reuse
            self.left = 0
            c.transport.write(data)
            return self._done()
        if st == U_HEAD:
            return self._head(data)
        if st == U_CHUNKED:
            self.deadline = self.proxy._now() + c.decision.read_timeout  # type: ignore[union-attr]
            return self._chunked(data, 0, [])
        if st == U_EOF:
            self.deadline = self.proxy._now() + c.decision.read_timeout  # type: ignore[union-attr]
            c.transport.write(b"%x\r\n%b\r\n" % (len(data), data) if self.wrap else data)
            return
        if st == U_TUNNEL:
            c.transport.write(data)

    def _head(self, data: bytes) -> None:
        c = self.client
        assert c is not None
        if self.buf:
            data = self.buf + data
            self.buf = b""
        while True:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > RESPONSE_HEAD_LIMIT:
                    return self._bad()
                self.buf = data
                return
            if end > RESPONSE_HEAD_LIMIT:
                return self._bad()
            raw = data[:end + 2]
            memo = self.proxy._responses
            rh = memo.get(raw)
            if rh is None:
                rh = parse_response_head(raw)
                if rh is None:
                    return self._bad()
                if len(memo) >= HEAD_MEMO:
                    memo.clear()
                memo[raw] = rh
            code = c.status = rh.code
            if 100 <= code < 200 and code != 101:
                data = data[end + 4:]  # interim responses are not relayed
                if not data:
                    return
                continue
            break
        cl = rh.length
        te = rh.te
        keep = rh.keep
        head_only = c.method == "HEAD" or code in (204, 304)
        rest = data[end + 4:]
        d = c.decision
        out = [rh.status_line, http_date(), rh.fields]
        client_keep = c.keep and c.body_done  # an early answer ends the connection
        body_mode = U_LENGTH
        wrap = 0
        if code == 101:
            if not c.upgrade:
                return self._bad()
            out.append(b"Connection: upgrade\r\n")
            # Upgrade header is relayed with the rest (hop-by-hop, but nginx passes it on 101)
            body_mode = U_TUNNEL
        elif head_only:
            if cl is not None:
                out.append(b"Content-Length: " + cl + b"\r\n")
            body_mode = U_IDLE
        elif te:
            if te.endswith(b"chunked"):
                if c.http10:
                    client_keep = False
                else:
                    out.append(b"Transfer-Encoding: chunked\r\n")
                body_mode = U_CHUNKED
            else:
                body_mode = U_EOF
                keep = False
        elif cl is not None:
            out.append(b"Content-Length: " + cl + b"\r\n")
            self.left = int(cl)
        else:
            body_mode = U_EOF
            keep = False
        if body_mode == U_EOF:
            if c.http10:
                client_keep = False
            else:
                out.append(b"Transfer-Encoding: chunked\r\n")
                wrap = 1
        if body_mode != U_TUNNEL:
            out.append(b"Connection: keep-alive\r\n" if client_keep else b"Connection: close\r\n")
        if d is not None and d.response_headers:
            out.append("".join(f"{k}: {v}\r\n" for k, v in d.response_headers)
                       .encode("latin-1", "replace"))
        out.append(b"\r\n")
        if c.http09:
            out = []  # HTTP/0.9: the body only (ngx_http_header_filter sends no head)
        self.keep = keep
        c.keep = client_keep
        c.response_started = True
        if body_mode == U_LENGTH:
            left = self.left
            if len(rest) >= left:
                if len(rest) > left:
                    self.keep = False
                    rest = rest[:left]
                out.append(rest)
                c.transport.write(b"".join(out))
                self.left = 0
                return self._done()
            out.append(rest)
            c.transport.write(b"".join(out))
            self.left = left - len(rest)
            self.state = U_LENGTH
            return
        if body_mode == U_IDLE:
            if rest:
                self.keep = False
            c.transport.write(b"".join(out))
            return self._done()
        if body_mode == U_CHUNKED:
            self.state = U_CHUNKED
            self.chunked = Chunked(decode=c.http10)
            return self._chunked(rest, 0, out)
        if body_mode == U_EOF:
            self.state = U_EOF
            self.wrap = wrap
            if rest:
                out.append(b"%x\r\n%b\r\n" % (len(rest), rest) if wrap else rest)
            c.transport.write(b"".join(out))
            return
        # 101: tunnel
        self.state = U_TUNNEL
        self.keep = False
        if rest:
            out.append(rest)
        c.transport.write(b"".join(out))
        c.start_tunnel(self)

    def _chunked(self, data: bytes, pos: int, out: list[bytes]) -> None:
        c = self.client
        ch = self.chunked
        assert c is not None and ch is not None
        try:
            pieces, used = ch.feed(data, pos)
        except FramingError:
            if out:
                return self._bad()
            c.up = None
            c._close()
            return self.abort()
        out += pieces
        if out:
            c.transport.write(b"".join(out))
        if ch.done:
            if used < len(data):
                self.keep = False
            self.chunked = None
            self._done()

    def _bad(self) -> None:
        """A response nginx would call invalid: 502 to the client, drop this connection."""
        c = self.client
        self.client = None
        if c is not None:
            c.up = None
            c._fail(502)
        self.abort()

    def _done(self) -> None:
        c = self.client
        self.client = None
        self.state = U_IDLE
        if c is not None and not c.body_done:
            self.keep = False  # answered mid-request-body: the request framing is unfinished
        self.deadline = 0.0
        if self.read_paused:
            self.resume_reading()
        if self.keep and self.requests < UPSTREAM_KEEPALIVE_REQUESTS:
            self.proxy._release(self)
        else:
            self.state = U_CLOSED
            self.transport.close()
        if c is not None:
            c.end_response()


__all__ = ["Chunked", "ClientConnection", "UpstreamConnection", "error_page", "http_date",
           "local_response"]
