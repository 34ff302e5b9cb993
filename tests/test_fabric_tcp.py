"""TCP over the fabric: handshake, data, close, errors, and what the datapaths see."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import ip_address

import pytest

from knet.fabric import (
    WIRE,
    Fabric,
    FabricEvent,
    Hop,
    PassThroughDatapath,
    RejectWith,
    Verdict,
    clock_of,
    run_virtual,
    virtual_time,
)
from knet.netfilter.packet import Packet

POD_A, POD_B = "10.244.0.5", "10.244.1.7"


class Recording:
    """Pass-through datapath that records (entered_from, packet) and can drop/reject a port."""

    def __init__(self, addresses: list[str]) -> None:
        self.inner = PassThroughDatapath({ip_address(a) for a in addresses})
        self.seen: list[tuple[str, Packet]] = []
        self.verdicts: dict[int, Verdict] = {}
        self.reject_with = RejectWith.ICMP_PORT_UNREACHABLE

    def forward(self, packet: Packet, entered_from: str, now: float) -> Hop:
        self.seen.append((entered_from, packet))
        verdict = self.verdicts.get(packet.dport)
        if verdict is not None:
            return Hop(verdict, packet, reject_with=self.reject_with)
        return self.inner.forward(packet, entered_from, now)


def two_nodes(seed: int = 0) -> tuple[Fabric, Recording, Recording]:
    fabric = Fabric(seed=seed)
    dp_a, dp_b = Recording(["172.18.0.2"]), Recording(["172.18.0.3"])
    fabric.add_node("node-a", ["172.18.0.2"], ["10.244.0.0/24"], datapath=dp_a)
    fabric.add_node("node-b", ["172.18.0.3"], ["10.244.1.0/24"], datapath=dp_b)
    fabric.add_pod("default/client", "node-a", [POD_A])
    fabric.add_pod("default/server", "node-b", [POD_B])
    return fabric, dp_a, dp_b


async def settle(writer: asyncio.StreamWriter) -> None:
    """Close the client side and let the server's handler see EOF and finish."""
    writer.close()
    await writer.wait_closed()
    await clock_of().advance(1)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@virtual_time
async def test_stream_echo_across_nodes() -> None:
    fabric, dp_a, dp_b = two_nodes()
    server = await fabric.namespace("default/server").start_server(echo, None, 7)
    reader, writer = await fabric.namespace("default/client").open_connection(POD_B, 7)
    assert writer.get_extra_info("peername") == (POD_B, 7)
    assert writer.get_extra_info("sockname") == (POD_A, 32768)
    sock = writer.get_extra_info("socket")
    assert sock.family == socket.AF_INET and sock.getpeername() == (POD_B, 7)
    for chunk in (b"hello", b"x" * 100_000, b"bye"):
        writer.write(chunk)
        assert await reader.readexactly(len(chunk)) == chunk
    assert writer.can_write_eof()
    writer.write_eof()
    assert await reader.read() == b""
    await settle(writer)
    server.close()
    await server.wait_closed()
    # The client's node saw the flow from the pod's veth, the server's node from the wire.
    assert {iface for iface, p in dp_a.seen if p.sport == 32768} == {
        fabric.namespace("default/client").veth}
    assert {iface for iface, p in dp_b.seen if p.sport == 32768} == {WIRE}


@virtual_time
async def test_sequence_numbers_form_a_valid_stream() -> None:
    fabric, dp_a, _ = two_nodes()
    await fabric.namespace("default/server").start_server(echo, None, 7)
    reader, writer = await fabric.namespace("default/client").open_connection(POD_B, 7)
    writer.write(b"abc")
    await reader.readexactly(3)
    writer.write(b"defgh")
    await reader.readexactly(5)
    await settle(writer)

    pkts = [p for _, p in dp_a.seen]  # node-a sees both directions
    c2s = [p for p in pkts if p.sport == 32768]
    s2c = [p for p in pkts if p.dport == 32768]
    syn, synack = c2s[0], s2c[0]
    assert (syn.flags, synack.flags) == ("S", "SA")
    assert synack.ack == (syn.seq + 1) % 2**32
    assert c2s[1].flags == "A" and c2s[1].ack == (synack.seq + 1) % 2**32

    def check(direction: list[Packet], isn: int, peer_isn: int, peer: list[Packet]) -> None:
        nxt = (isn + 1) % 2**32
        for p in direction[1:]:
            assert p.seq == nxt, p
            nxt = (nxt + len(p.payload) + ("F" in p.flags)) % 2**32
        # Every ACK acknowledges exactly what the peer had sent before it.
        for p in direction[1:]:
            assert "A" in p.flags
            assert (p.ack - peer_isn) % 2**32 <= (sum(len(q.payload) + ("F" in q.flags) for q in peer[1:]) + 1)

    check(c2s, syn.seq, synack.seq, s2c)
    check(s2c, synack.seq, syn.seq, c2s)
    assert [p.payload for p in c2s if p.payload] == [b"abc", b"defgh"]
    assert [p.payload for p in s2c if p.payload] == [b"abc", b"defgh"]
    assert any("F" in p.flags for p in c2s) and any("F" in p.flags for p in s2c)
    assert s2c[-1].flags == "A" or c2s[-1].flags == "A"  # the last FIN is acknowledged


@virtual_time
async def test_simultaneous_close_ends_without_resets() -> None:
    # Both ends close before either FIN arrives (an HTTP client with Connection: close and a
    # server that closes after its response): FIN-WAIT-1 → CLOSING → gone on the ACK, as
    # RFC 9293 3.6; the late ACKs must find their sockets, not draw RSTs.
    fabric, dp_a, _ = two_nodes()
    accepted: list[asyncio.StreamWriter] = []

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    await fabric.namespace("default/server").start_server(keep, None, 7)
    _, writer = await fabric.namespace("default/client").open_connection(POD_B, 7)
    await clock_of().advance(0.1)
    writer.close()
    accepted[0].close()
    await clock_of().advance(1)
    flags = [p.flags for _, p in dp_a.seen]
    assert not any("R" in f for f in flags), flags
    assert flags.count("FA") == 2 and flags[-2:] == ["A", "A"]
    assert not fabric.namespace("default/client").connections
    assert not fabric.namespace("default/server").connections


@virtual_time
async def test_closed_port_refuses_with_rst() -> None:
    fabric, _, dp_b = two_nodes()
    with pytest.raises(ConnectionRefusedError):
        await fabric.namespace("default/client").open_connection(POD_B, 81)
    flags = [p.flags for _, p in dp_b.seen]
    assert flags == ["S", "RA"]
    assert fabric.namespace("default/client").connections == []


@pytest.mark.perf
@virtual_time
async def test_drop_times_out_after_linux_syn_retries(wall_budget) -> None:
    fabric, dp_a, _ = two_nodes()
    dp_a.verdicts[80] = Verdict.DROP
    clock = clock_of()
    with wall_budget(0.5), pytest.raises(TimeoutError):
        await fabric.namespace("default/client").open_connection(POD_B, 80)
    assert clock.now() == pytest.approx(127.0)  # tcp_syn_retries=6: 1+2+4+8+16+32+64
    syn_times = [p for _, p in dp_a.seen if p.flags == "S"]
    assert len(syn_times) == 7
    assert fabric.namespace("default/client").connections == []


@virtual_time
async def test_drop_with_caller_timeout() -> None:
    fabric, dp_a, _ = two_nodes()
    dp_a.verdicts[80] = Verdict.DROP
    stamps: list[float] = []
    fabric.add_tap(lambda e: stamps.append(e.time) if e.kind == "hop" else None)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(fabric.namespace("default/client").open_connection(POD_B, 80), 5)
    assert clock_of().now() == pytest.approx(5.0)
    assert stamps == [0.0, 1.0, 3.0]
    assert fabric.namespace("default/client").connections == []


@pytest.mark.parametrize("reject_with", [RejectWith.ICMP_PORT_UNREACHABLE, RejectWith.TCP_RESET])
def test_reject_refuses(reject_with: RejectWith) -> None:
    async def scenario() -> None:
        fabric, _, dp_b = two_nodes()
        await fabric.namespace("default/server").start_server(echo, None, 80)
        dp_b.verdicts[80] = Verdict.REJECT
        dp_b.reject_with = reject_with
        events: list[FabricEvent] = []
        fabric.add_tap(events.append)
        with pytest.raises(ConnectionRefusedError):
            await fabric.namespace("default/client").open_connection(POD_B, 80)
        assert clock_of().now() == 0.0
        icmp = [e for e in events if e.kind == "icmp"]
        assert len(icmp) == 1 and icmp[0].packet.dst == ip_address(POD_A)

    run_virtual(scenario())


@virtual_time
async def test_partition_then_heal() -> None:
    fabric, _, _ = two_nodes()
    await fabric.namespace("default/server").start_server(echo, None, 7)
    client = fabric.namespace("default/client")
    fabric.partition("node-a", "node-b")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.open_connection(POD_B, 7), 2)
    fabric.heal()
    reader, writer = await client.open_connection(POD_B, 7)
    writer.write(b"ok")
    assert await reader.readexactly(2) == b"ok"
    await settle(writer)


@virtual_time
async def test_established_connection_survives_a_short_partition() -> None:
    fabric, dp_a, _ = two_nodes()
    await fabric.namespace("default/server").start_server(echo, None, 7)
    reader, writer = await fabric.namespace("default/client").open_connection(POD_B, 7)
    fabric.partition("node-a", "node-b")
    writer.write(b"one")
    writer.write(b"two")
    clock = clock_of()
    clock.call_later(1.0, fabric.heal)
    assert await reader.readexactly(6) == b"onetwo"
    # RTO 0.2 s doubling: retransmits at 0.2, 0.6, 1.4 s; delivered after the heal.
    assert clock.now() == pytest.approx(1.4)
    sent = [p for _, p in dp_a.seen if p.payload == b"one"]
    assert len(sent) == 4 and len({p.seq for p in sent}) == 1
    await settle(writer)


def test_loss_is_repaired_and_deterministic() -> None:
    async def scenario() -> list[tuple[float, str, int, int]]:
        fabric, dp_a, _ = two_nodes(seed=7)
        fabric.set_link("node-a", "node-b", latency=0.005, loss=0.3)
        events: list[FabricEvent] = []
        fabric.add_tap(lambda e: events.append(e) if e.kind == "hop" and e.node == "node-a" else None)
        await fabric.namespace("default/server").start_server(echo, None, 7)
        reader, writer = await fabric.namespace("default/client").open_connection(POD_B, 7)
        payload = bytes(range(256))
        for i in range(20):
            writer.write(payload[i:] + payload[:i])
        got = await reader.readexactly(20 * 256)
        assert got == b"".join(payload[i:] + payload[:i] for i in range(20))
        await settle(writer)
        return [(e.time, e.packet.flags, e.packet.seq, len(e.packet.payload)) for e in events]

    first = run_virtual(scenario())
    assert first == run_virtual(scenario())
    assert len(first) > 45  # retransmissions happened


@virtual_time
async def test_latency_delays_delivery() -> None:
    fabric, _, _ = two_nodes()
    fabric.set_link("node-a", "node-b", latency=0.010)
    await fabric.namespace("default/server").start_server(echo, None, 7)
    clock = clock_of()
    reader, writer = await fabric.namespace("default/client").open_connection(POD_B, 7)
    assert clock.now() == pytest.approx(0.020)  # SYN + SYN-ACK
    writer.write(b"ping")
    await reader.readexactly(4)
    assert clock.now() == pytest.approx(0.040)
    await settle(writer)


@virtual_time
async def test_pause_reading_buffers_until_resume() -> None:
    fabric, _, _ = two_nodes()
    received: list[bytes] = []
    ready = asyncio.get_running_loop().create_future()

    class Sink(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            transport.pause_reading()  # type: ignore[attr-defined]
            ready.set_result(self)

        def data_received(self, data: bytes) -> None:
            received.append(data)

    await fabric.namespace("default/server").create_server(Sink, None, 9000)
    transport, _ = await fabric.namespace("default/client").create_connection(
        asyncio.Protocol, POD_B, 9000)
    sink = await ready
    assert not sink.transport.is_reading()
    transport.write(b"a")
    transport.write(b"b")
    await clock_of().run_until_idle()
    assert received == []
    sink.transport.resume_reading()
    await clock_of().run_until_idle()
    assert received == [b"a", b"b"]
    transport.close()


@virtual_time
async def test_abort_resets_peer() -> None:
    fabric, _, _ = two_nodes()
    lost = asyncio.get_running_loop().create_future()

    class Watch(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            lost.set_result(exc)

    await fabric.namespace("default/server").create_server(Watch, None, 9000)
    transport, _ = await fabric.namespace("default/client").create_connection(
        asyncio.Protocol, POD_B, 9000)
    await clock_of().run_until_idle()
    transport.abort()
    assert isinstance(await lost, ConnectionResetError)


@virtual_time
async def test_bind_rules() -> None:
    fabric, _, _ = two_nodes()
    ns = fabric.namespace("default/server")
    server = await ns.create_server(asyncio.Protocol, None, 80)
    assert server.sockets[0].getsockname() == ("0.0.0.0", 80)
    with pytest.raises(OSError, match="address already in use"):
        await ns.create_server(asyncio.Protocol, POD_B, 80)
    with pytest.raises(OSError, match="Cannot assign"):
        await ns.create_server(asyncio.Protocol, "10.9.9.9", 81)
    ephemeral = await ns.create_server(asyncio.Protocol, "127.0.0.1", 0)
    assert ephemeral.sockets[0].getsockname() == ("127.0.0.1", 32768)
    server.close()
    await ns.create_server(asyncio.Protocol, POD_B, 80)  # free again
    assert (ip_address(POD_B), 80) in ns.listening


@virtual_time
async def test_pod_loopback_stays_in_the_pod() -> None:
    fabric, dp_a, _ = two_nodes()
    ns = fabric.namespace("default/client")
    await ns.start_server(echo, "127.0.0.1", 8080)
    reader, writer = await ns.open_connection("127.0.0.1", 8080)
    writer.write(b"lo")
    assert await reader.readexactly(2) == b"lo"
    await settle(writer)
    assert dp_a.seen == []
    # Another pod cannot reach a loopback-only listener.
    with pytest.raises(ConnectionRefusedError):
        await fabric.namespace("default/server").open_connection(POD_A, 8080)


@virtual_time
async def test_external_client_reaches_a_node_address_and_host_network() -> None:
    fabric, _, dp_b = two_nodes()
    node_ns = fabric.node("node-b").netns
    await node_ns.start_server(echo, None, 30080)
    outside = fabric.add_external("client", ["203.0.113.10"])
    reader, writer = await outside.open_connection("172.18.0.3", 30080)
    writer.write(b"np")
    assert await reader.readexactly(2) == b"np"
    await settle(writer)
    assert dp_b.seen[0][0] == WIRE and dp_b.seen[0][1].src == ip_address("203.0.113.10")
    # No route to an address nobody owns.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(outside.open_connection("198.51.100.1", 80), 3)


@virtual_time
async def test_removed_pod_resets_its_connections() -> None:
    fabric, _, _ = two_nodes()
    await fabric.namespace("default/server").start_server(echo, None, 7)
    reader, writer = await fabric.namespace("default/client").open_connection(POD_B, 7)
    writer.write(b"x")
    await reader.readexactly(1)
    fabric.remove_namespace("default/server")
    with pytest.raises(ConnectionResetError):
        await reader.read()
    assert fabric.owner(POD_B) is None


@pytest.mark.parametrize("verdict,reject_with", [("REJECT", "icmp6-port-unreachable"),
                                                 ("REJECT", "tcp-reset")])
def test_plain_string_verdicts_from_a_datapath(verdict: str, reject_with: str) -> None:
    """Datapaths other than the fabric's own (the netfilter engine) answer with plain strings,
    including ip6tables spellings; the fabric must treat them like its enums."""

    class Strings(Recording):
        def forward(self, packet: Packet, entered_from: str, now: float) -> Hop:
            hop = super().forward(packet, entered_from, now)
            return Hop(str(hop.verdict), hop.packet, hop.local,  # type: ignore[arg-type]
                       reject_with if packet.dport == 80 else hop.reject_with)  # type: ignore[arg-type]

    async def scenario() -> None:
        fabric = Fabric()
        dp_a, dp_b = Strings(["172.18.0.2"]), Strings(["172.18.0.3"])
        fabric.add_node("node-a", ["172.18.0.2"], ["10.244.0.0/24"], datapath=dp_a)
        fabric.add_node("node-b", ["172.18.0.3"], ["10.244.1.0/24"], datapath=dp_b)
        fabric.add_pod("default/client", "node-a", [POD_A])
        fabric.add_pod("default/server", "node-b", [POD_B])
        await fabric.namespace("default/server").start_server(echo, None, 81)
        await fabric.namespace("default/server").start_server(echo, None, 80)
        reader, writer = await fabric.namespace("default/client").open_connection(POD_B, 81)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"  # "ACCEPT" as a str still forwards
        await settle(writer)
        dp_b.verdicts[80] = verdict  # type: ignore[assignment]
        with pytest.raises(ConnectionRefusedError):
            await fabric.namespace("default/client").open_connection(POD_B, 80)

    run_virtual(scenario())


@virtual_time
async def test_routed_vip_reaches_the_announcing_node() -> None:
    """An address outside every pod CIDR (a LoadBalancer IP) goes to the node announcing it."""
    fabric, _, dp_b = two_nodes()
    outside = fabric.add_external("client", ["203.0.113.10"])
    vip = "172.18.255.200"
    dp_b.inner = PassThroughDatapath({ip_address("172.18.0.3"), ip_address(vip)})
    await fabric.node("node-b").netns.start_server(echo, None, 80)
    with pytest.raises(TimeoutError):  # no route yet: the packet leaves for nowhere
        await asyncio.wait_for(outside.open_connection(vip, 80), 5)
    fabric.set_route(vip, "node-b")
    reader, writer = await outside.open_connection(vip, 80)
    writer.write(b"hi")
    assert await reader.readexactly(2) == b"hi"
    assert any(p.dst == ip_address(vip) for _, p in dp_b.seen)
    await settle(writer)
    fabric.set_route(vip, None)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(outside.open_connection(vip, 80), 5)
