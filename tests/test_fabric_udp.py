"""UDP over the fabric: datagrams, ICMP port unreachable for connected sockets, REJECT."""

from __future__ import annotations

import asyncio

import pytest

from knet.fabric import RejectWith, Verdict, clock_of, virtual_time
from tests.test_fabric_tcp import POD_A, POD_B, two_nodes


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple]] = []
        self.errors: list[Exception] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.datagrams.append((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


class Upper(Collect):
    def datagram_received(self, data: bytes, addr: tuple) -> None:
        super().datagram_received(data, addr)
        assert self.transport is not None
        self.transport.sendto(data.upper(), addr)


@virtual_time
async def test_request_response_across_nodes() -> None:
    fabric, _, dp_b = two_nodes()
    server_t, server = await fabric.namespace("default/server").create_datagram_endpoint(
        Upper, local_addr=("0.0.0.0", 53))
    client_t, client = await fabric.namespace("default/client").create_datagram_endpoint(
        Collect, remote_addr=(POD_B, 53))
    client_t.sendto(b"query")
    await clock_of().run_until_idle()
    assert server.datagrams == [(b"query", (POD_A, 32768))]
    assert client.datagrams == [(b"QUERY", (POD_B, 53))]
    assert client_t.get_extra_info("peername") == (POD_B, 53)
    assert [p.proto for _, p in dp_b.seen] == ["udp", "udp"]
    client_t.close()
    server_t.close()


@virtual_time
async def test_connected_socket_sees_port_unreachable() -> None:
    fabric, _, _ = two_nodes()
    connected_t, connected = await fabric.namespace("default/client").create_datagram_endpoint(
        Collect, remote_addr=(POD_B, 5353))
    loose_t, loose = await fabric.namespace("default/client").create_datagram_endpoint(
        Collect, local_addr=("0.0.0.0", 0))
    connected_t.sendto(b"x")
    loose_t.sendto(b"x", (POD_B, 5353))
    await clock_of().run_until_idle()
    assert len(connected.errors) == 1 and isinstance(connected.errors[0], ConnectionRefusedError)
    assert loose.errors == []  # Linux reports ICMP errors only to connected UDP sockets
    connected_t.close()
    loose_t.close()


@pytest.mark.parametrize("verdict", [Verdict.REJECT, Verdict.DROP])
def test_datapath_verdicts(verdict: Verdict) -> None:
    async def scenario() -> None:
        fabric, dp_a, _ = two_nodes()
        server_t, server = await fabric.namespace("default/server").create_datagram_endpoint(
            Upper, local_addr=(POD_B, 53))
        dp_a.verdicts[53] = verdict
        dp_a.reject_with = RejectWith.ICMP_PORT_UNREACHABLE
        client_t, client = await fabric.namespace("default/client").create_datagram_endpoint(
            Collect, remote_addr=(POD_B, 53))
        client_t.sendto(b"q")
        await clock_of().advance(5)
        assert server.datagrams == []
        expected = 1 if verdict == Verdict.REJECT else 0
        assert len(client.errors) == expected
        assert all(isinstance(e, ConnectionRefusedError) for e in client.errors)
        client_t.close()
        server_t.close()

    from knet.fabric import run_virtual
    run_virtual(scenario())


@virtual_time
async def test_connected_socket_ignores_other_senders_and_checks_address() -> None:
    fabric, _, _ = two_nodes()
    fabric.add_pod("default/other", "node-b", ["10.244.1.8"])
    client_t, client = await fabric.namespace("default/client").create_datagram_endpoint(
        Collect, local_addr=(POD_A, 4000), remote_addr=(POD_B, 53))
    other_t, _ = await fabric.namespace("default/other").create_datagram_endpoint(
        Collect, local_addr=("0.0.0.0", 53))
    other_t.sendto(b"spoof", (POD_A, 4000))
    await clock_of().run_until_idle()
    assert client.datagrams == []
    with pytest.raises(ValueError):
        client_t.sendto(b"x", ("10.244.1.8", 53))
    with pytest.raises(OSError):
        await fabric.namespace("default/client").create_datagram_endpoint(
            Collect, local_addr=(POD_A, 4000))
    client_t.close()
    other_t.close()
