"""A sans-IO SPDY/3.1 server session: what kubectl's port-forward speaks (reference §11.5).

``feed(bytes) -> list[event]`` parses frames (control: SYN_STREAM, SYN_REPLY, RST_STREAM,
SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE; data frames) and decompresses header blocks
with one zlib context per direction primed with the SPDY/3 dictionary (moby/spdystream
``spdy/{types,write}.go``; the dictionary constant comes from the ``spdy-py`` package). The
``*_frame`` methods return bytes to send. Flow control is not enforced: WINDOW_UPDATE is
accepted and ignored, as the reference recommends for knet.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from spdy.dictionary import zdict

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN = 0x01
MAX_FRAME = 16 * 1024 * 1024


class ProtocolError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class StreamOpened:
    stream_id: int
    headers: dict[str, str] = field(hash=False)
    fin: bool


@dataclass(frozen=True, slots=True)
class DataReceived:
    stream_id: int
    data: bytes
    fin: bool


@dataclass(frozen=True, slots=True)
class StreamReset:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class PingReceived:
    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    last_stream_id: int


Event = StreamOpened | DataReceived | StreamReset | PingReceived | GoAway


class Session:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=zdict)
        self._deflate = zlib.compressobj(zdict=zdict)

    # --- input ------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        out: list[Event] = []
        while len(self._buf) >= 8:
            length = int.from_bytes(self._buf[5:8], "big")
            if length > MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes")
            if len(self._buf) < 8 + length:
                break
            head = bytes(self._buf[:8])
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = head[4]
            if head[0] & 0x80:
                ev = self._control(int.from_bytes(head[2:4], "big"), flags, payload)
                if ev is not None:
                    out.append(ev)
            else:
                sid = int.from_bytes(head[0:4], "big") & 0x7FFFFFFF
                out.append(DataReceived(sid, payload, bool(flags & FLAG_FIN)))
        return out

    def _control(self, kind: int, flags: int, p: bytes) -> Event | None:
        if kind == SYN_STREAM:
            if len(p) < 10:
                raise ProtocolError("short SYN_STREAM")
            sid = int.from_bytes(p[0:4], "big") & 0x7FFFFFFF
            return StreamOpened(sid, self._headers(p[10:]), bool(flags & FLAG_FIN))
        if kind == HEADERS and len(p) >= 4:
            self._headers(p[4:])  # keep the shared zlib context in step
            return None
        if kind == RST_STREAM and len(p) >= 8:
            return StreamReset(int.from_bytes(p[0:4], "big") & 0x7FFFFFFF,
                               int.from_bytes(p[4:8], "big"))
        if kind == PING and len(p) >= 4:
            return PingReceived(int.from_bytes(p[0:4], "big"))
        if kind == GOAWAY and len(p) >= 4:
            return GoAway(int.from_bytes(p[0:4], "big") & 0x7FFFFFFF)
        return None  # SETTINGS, WINDOW_UPDATE, SYN_REPLY from a client: nothing to do

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as e:
            raise ProtocolError(f"header block: {e}") from None
        out: dict[str, str] = {}
        if len(raw) < 4:
            return out
        n = int.from_bytes(raw[0:4], "big")
        i = 4
        for _ in range(n):
            if i + 4 > len(raw):
                raise ProtocolError("truncated header block")
            ln = int.from_bytes(raw[i:i + 4], "big")
            name = raw[i + 4:i + 4 + ln].decode("latin-1")
            i += 4 + ln
            lv = int.from_bytes(raw[i:i + 4], "big")
            value = raw[i + 4:i + 4 + lv].decode("latin-1")
            i += 4 + lv
            out[name.lower()] = value.split("\x00")[0]
        return out

    # --- output -----------------------------------------------------------------------------
    def _block(self, headers: dict[str, str]) -> bytes:
        raw = bytearray(struct.pack(">I", len(headers)))
        for k, v in headers.items():
            kb, vb = k.lower().encode(), v.encode()
            raw += struct.pack(">I", len(kb)) + kb + struct.pack(">I", len(vb)) + vb
        return self._deflate.compress(bytes(raw)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _ctl(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None,
                  fin: bool = False) -> bytes:
        body = struct.pack(">I", stream_id) + self._block(headers or {})
        return self._ctl(SYN_REPLY, FLAG_FIN if fin else 0, body)

    @staticmethod
    def data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
        out = bytearray()
        view = memoryview(data)
        while True:
            chunk, view = view[:65536], view[65536:]
            last = not len(view)
            out += struct.pack(">II", stream_id & 0x7FFFFFFF,
                               ((FLAG_FIN if fin and last else 0) << 24) | len(chunk)) + chunk
            if last:
                return bytes(out)

    def ping(self, ping_id: int) -> bytes:
        return self._ctl(PING, 0, struct.pack(">I", ping_id))

    def rst(self, stream_id: int, status: int = 5) -> bytes:  # 5 = CANCEL
        return self._ctl(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def goaway(self, last: int = 0) -> bytes:
        return self._ctl(GOAWAY, 0, struct.pack(">II", last, 0))
