"""Bounded memory and deadlines on ``knet up``'s loopback paths, on real loopback sockets:
the relay while its upstream is still dialling (13.6), DNS over TCP whose client never reads
(13.7), and a client trickling a DNS message one byte at a time (13.8)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Any

from knet.dns import make_query
from knet.dns.server import DnsStreamProtocol
from knet.expose import relay
from knet.expose.relay import RealTcpRelay, RealUdpRelay


def _answer(data: bytes, addr: Any, tcp: bool) -> bytes:
    return data[:2] + b"\x81\x80" + data[4:] + b"\0" * 400  # a reply ~10x the query


def test_tcp_relay_pauses_reading_while_the_upstream_is_pending() -> None:
    """1,000 MB into a NodePort whose upstream drops the SYN used to sit in the relay."""
    async def main() -> tuple[int, int, bool]:
        loop = asyncio.get_running_loop()
        never: asyncio.Future[Any] = loop.create_future()
        relays: list[RealTcpRelay] = []

        async def dial(peer: tuple[str, int], factory: Any) -> Any:
            return await never  # a SYN that is never answered

        def make() -> RealTcpRelay:
            r = RealTcpRelay(dial)
            relays.append(r)
            return r

        server = await loop.create_server(make, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, w = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        chunk = b"x" * 65536
        t0 = time.monotonic()
        while sent < 64 << 20 and time.monotonic() - t0 < 3.0:
            w.write(chunk)
            try:
                await asyncio.wait_for(w.drain(), 0.2)
            except TimeoutError:
                break  # the relay pushes back: the kernel buffers are full
            sent += len(chunk)
        paused = relays[0].transport is not None and not relays[0].transport.is_reading()
        held = relays[0].pending_bytes
        w.transport.abort()
        server.close()
        never.cancel()
        return sent, held, paused

    sent, held, paused = asyncio.run(main())
    assert paused
    assert held <= relay.PENDING_LIMIT + 65536 * 4, held
    assert sent < 32 << 20, sent  # the client was stopped long before 64 MB


def test_udp_relay_bounds_the_flow_table_and_pending_datagrams() -> None:
    async def main() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        never: asyncio.Future[Any] = loop.create_future()

        async def dial(peer: tuple[str, int], factory: Any) -> Any:
            return await never

        stats: dict[str, int] = {}
        tr, proto = await loop.create_datagram_endpoint(
            lambda: RealUdpRelay(dial, max_flows=8, stats=stats), local_addr=("127.0.0.1", 0))
        port = tr.get_extra_info("sockname")[1]
        socks = []
        for _ in range(20):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        for _ in range(100):
            for s in socks:
                s.sendto(b"q" * 100, ("127.0.0.1", port))
            await asyncio.sleep(0.002)  # let the relay read: the kernel drops nothing
        await asyncio.sleep(0.2)
        flows = len(proto.flows)
        pending = max(len(f.pending) for f in proto.flows.values())
        for s in socks:
            s.close()
        tr.close()
        never.cancel()
        return flows, pending, stats.get("udp_dropped", 0)

    flows, pending, dropped = asyncio.run(main())
    assert flows == 8
    assert pending <= relay.PENDING_DATAGRAMS
    assert dropped >= 12 * 50  # 12 clients beyond the table, 36 datagrams beyond 64 for 8


def test_dns_tcp_stops_reading_while_replies_are_not_read() -> None:
    """2M pipelined queries whose replies are never read grew the server's memory linearly."""
    async def main() -> tuple[int, int, bool]:
        loop = asyncio.get_running_loop()
        protos: list[DnsStreamProtocol] = []

        def make() -> DnsStreamProtocol:
            p = DnsStreamProtocol(_answer, idle_timeout=30, read_timeout=30)
            protos.append(p)
            return p

        server = await loop.create_server(make, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(("127.0.0.1", port))
        c.setblocking(False)
        q = make_query("web.default.svc.cluster.local", "A")
        framed = struct.pack("!H", len(q)) + q
        batch = framed * 1000
        sent = 0
        worst = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.0 and sent < 1_000_000:
            try:
                n = c.send(batch)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            sent += n // len(framed)
            await asyncio.sleep(0)
            if protos and protos[0].transport is not None:
                worst = max(worst, protos[0].transport.get_write_buffer_size())
        await asyncio.sleep(0.1)
        paused = bool(protos) and protos[0].transport is not None and \
            not protos[0].transport.is_reading()
        c.close()
        server.close()
        return sent, worst, paused

    sent, worst, paused = asyncio.run(main())
    assert paused
    # asyncio's default high-water mark is 64 KiB; one batch of replies may land above it
    assert worst < 2 << 20, worst
    assert sent < 1_000_000, sent  # the client was pushed back, not served into memory


def test_dns_tcp_message_deadline_is_not_extended_by_trickled_bytes() -> None:
    """A client sending one byte every 0.1 s was never disconnected (slowloris)."""
    async def main() -> tuple[float, bytes]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: DnsStreamProtocol(_answer, idle_timeout=5.0, read_timeout=0.5),
            "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        q = make_query("web.default.svc.cluster.local", "A")
        # one whole message first: answered, and the deadline starts again for the next
        w.write(struct.pack("!H", len(q)) + q)
        (n,) = struct.unpack("!H", await r.readexactly(2))
        first = await r.readexactly(n)
        t0 = time.monotonic()
        framed = struct.pack("!H", len(q)) + q
        closed_after = -1.0
        for b in framed:
            try:
                w.write(bytes([b]))
                await w.drain()
            except (ConnectionError, OSError):
                break
            try:
                data = await asyncio.wait_for(r.read(100), 0.1)
            except TimeoutError:
                continue
            if data == b"":
                closed_after = time.monotonic() - t0
                break
        w.close()
        server.close()
        return closed_after, first

    closed_after, first = asyncio.run(main())
    assert first[2:4] == b"\x81\x80"
    assert 0.4 <= closed_after <= 1.5, closed_after


# --- --capture streams (13.10) ---------------------------------------------------------------------

def _epbs(data: bytes) -> int:
    """Enhanced Packet Blocks in a pcapng byte string (walks the block lengths)."""
    n, i = 0, 0
    while i + 8 <= len(data):
        btype, length = struct.unpack_from("<II", data, i)
        if length < 12 or i + length > len(data):
            break
        n += btype == 6
        i += length
    return n


def test_capture_fails_fast_streams_while_running_and_rings(tmp_path: Any,
                                                           monkeypatch: Any) -> None:
    import io

    from knet.cli import main as knet_main
    from knet.expose.loop import run_up as run_loop
    from knet.expose.session import UpOptions, run_up
    from tests.test_up_control import TOPO, Session, call, in_thread

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    t0 = time.monotonic()
    assert knet_main(["up", "-f", TOPO, "--capture", str(tmp_path / "no" / "such" / "x.pcapng")]) == 2
    assert time.monotonic() - t0 < 10  # refused before the boot, not after the run
    assert knet_main(["up", "-f", TOPO, "--capture", str(tmp_path / "x.pcapng"),
                      "--capture-limit", "lots"]) == 2

    pcap = tmp_path / "run.pcapng"
    seen: dict[str, Any] = {}
    out, err = io.StringIO(), io.StringIO()

    async def main() -> int:
        stop = asyncio.Event()
        opts = UpOptions(files=(TOPO,), out=out, err=err, stop=stop, nodeports=False,
                         capture=str(pcap), capture_limit="40")
        task = asyncio.ensure_future(run_up(opts))
        while "up; Ctrl-C to stop" not in out.getvalue():
            if task.done():
                return await task
            await asyncio.sleep(0.02)
        try:
            s = Session(out, err, "knet")
            for _ in range(3):
                await in_thread(call, s.url + "/v1/trace",
                                {"from": "default/client", "url": "http://echo/"}, token=s.token)
            await asyncio.sleep(1.5)  # one flush interval
            seen["running"] = (pcap.read_bytes(), (tmp_path / "run.pcapng.1").read_bytes())
        finally:
            stop.set()
        return await task

    assert run_loop(main()) == 0, err.getvalue()
    live, previous = seen["running"]
    assert live[:4] == previous[:4] == b"\x0a\x0d\x0d\x0a"
    assert 0 < _epbs(live) <= 40 and _epbs(previous) == 40  # written while up, as a ring
    assert "rotations" in err.getvalue() and "wrote" in err.getvalue()
    final = pcap.read_bytes()
    assert 0 < _epbs(final) <= 40
    import shutil
    import subprocess

    if shutil.which("tshark"):
        r = subprocess.run(["tshark", "-r", str(pcap), "-c", "3"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
