"""The TLS port of an nginx-like server: a TLS handshake, or a plain HTTP request refused.

nginx behaviour reproduced (``ngx_http_ssl_handshake``, ``ngx_http_special_response.c``):
- the first byte decides: a TLS record (``0x16``, handshake) starts TLS; anything else is read
  as plain HTTP and answered ``400`` "The plain HTTP request was sent to HTTPS port", then the
  connection closes;
- the handshake is bounded by ``client_header_timeout`` from the accept (nginx's
  ``post_accept_timeout``): an incomplete handshake is closed, never logged as a traceback.

Adapter code: asyncio's own ``SSLProtocol`` does TLS over whatever transport accepted the
connection (real sockets or knet's virtual fabric).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import Any

log = logging.getLogger("knet.ingress")

_PLAIN_HTTP_TITLE = "400 The plain HTTP request was sent to HTTPS port"
PLAIN_HTTP_BODY = (f"<html>\r\n<head><title>{_PLAIN_HTTP_TITLE}</title></head>\r\n<body>\r\n"
                   "<center><h1>400 Bad Request</h1></center>\r\n"
                   "<center>The plain HTTP request was sent to HTTPS port</center>\r\n"
                   "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode()
_HEAD_LIMIT = 16 * 1024


def plain_http_response(date: bytes) -> bytes:
    return (b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nDate: " + date +
            b"\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % len(PLAIN_HTTP_BODY) + PLAIN_HTTP_BODY)


class TLSPort(asyncio.Protocol):
    """Per-connection protocol of a TLS listener (see the module docstring)."""

    def __init__(self, app_factory: Callable[[], asyncio.BaseProtocol],
                 context: ssl.SSLContext, handshake_timeout: float,
                 date: Callable[[], bytes]) -> None:
        self.app_factory = app_factory
        self.context = context
        self.timeout = handshake_timeout
        self.date = date
        self.transport: Any = None
        self.buf = b""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(self.timeout, self._expired)

    def _expired(self) -> None:
        self.timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport = None

    def eof_received(self) -> bool:
        return False

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if not self.buf and data[:1] == b"\x16":
            return self._start_tls(data)
        self.buf += data  # plain HTTP: answer once its head is complete (or too big)
        if b"\n\r\n" in self.buf or b"\n\n" in self.buf or len(self.buf) > _HEAD_LIMIT:
            self.transport.write(plain_http_response(self.date()))
            self.transport.close()
            self.buf = b"-"

    def _start_tls(self, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        if self.timer is not None:
            remaining = max(0.001, self.timer.when() - loop.time())
            self.timer.cancel()
            self.timer = None
        else:
            remaining = self.timeout
        waiter: Any = None  # typeshed wants a Future and an int; asyncio takes None / float
        timeout: Any = remaining
        proto = sslproto.SSLProtocol(loop, self.app_factory(), self.context, waiter,
                                     server_side=True, ssl_handshake_timeout=timeout)
        transport = self.transport
        self.transport = None
        transport.set_protocol(proto)
        proto.connection_made(transport)
        view = memoryview(first)
        while view:
            buf = memoryview(proto.get_buffer(len(view))).cast("B")
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            proto.buffer_updated(n)
            view = view[n:]


__all__ = ["PLAIN_HTTP_BODY", "TLSPort", "plain_http_response"]
