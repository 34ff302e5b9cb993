"""The Datapath contract: a datapath may answer with any Hop-shaped object (plain strings)."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from ipaddress import ip_address

import pytest

from knet.fabric import Fabric, Hop, PassThroughDatapath, RejectWith, Verdict, virtual_time
from knet.netfilter.packet import Packet


@dataclass(frozen=True)
class Answer:
    """Hop-shaped, as a netfilter Result is: string verdicts, iptables reject spellings."""

    verdict: str
    packet: Packet
    local: bool
    reject_with: str = ""


class Strings:
    def __init__(self, addresses: list[str]) -> None:
        self.inner = PassThroughDatapath({ip_address(a) for a in addresses})
        self.by_port: dict[int, tuple[str, str]] = {}

    def forward(self, packet: Packet, entered_from: str, now: float) -> Answer:
        local = self.inner.forward(packet, entered_from, now).local
        verdict, reject = self.by_port.get(packet.dport, ("ACCEPT", ""))
        return Answer(verdict, packet.replace(iif=entered_from), local, reject)


def fabric() -> tuple[Fabric, Strings]:
    f = Fabric(seed=0)
    dp = Strings(["172.18.0.2"])
    f.add_node("node-a", ["172.18.0.2"], ["10.244.0.0/24"], datapath=dp)
    f.add_node("node-b", ["172.18.0.3"], ["10.244.1.0/24"])
    f.add_pod("default/a", "node-a", ["10.244.0.5"])
    f.add_pod("default/b", "node-b", ["10.244.1.7"])
    return f, dp


@virtual_time
async def test_string_verdicts_accept_and_taps_get_hops() -> None:
    f, _ = fabric()
    events: list = []
    f.add_tap(events.append)
    server = await f.namespace("default/b").start_server(lambda r, w: w.close(), None, 80)
    reader, writer = await f.namespace("default/a").open_connection("10.244.1.7", 80)
    assert await reader.read() == b""
    writer.close()
    server.close()
    hops = [e.hop for e in events if str(e.kind) == "hop" and e.node == "node-a"]
    assert hops and all(type(h) is Hop and h.verdict is Verdict.ACCEPT for h in hops)
    assert all(isinstance(h.explanation, Answer) and h.packet is h.explanation.packet
               for h in hops)


@pytest.mark.parametrize(("spelling", "exc", "code"), [
    ("icmp-port-unreachable", ConnectionRefusedError, errno.ECONNREFUSED),
    ("icmp6-adm-prohibited", OSError, errno.EHOSTUNREACH),
    ("icmp-net-unreachable", OSError, errno.ENETUNREACH),
    ("tcp-reset", ConnectionRefusedError, errno.ECONNREFUSED),
])
@virtual_time
async def test_string_reject_spellings_map_to_the_errors(spelling: str, exc: type, code: int
                                                         ) -> None:
    f, dp = fabric()
    dp.by_port[81] = ("REJECT", spelling)
    events: list = []
    f.add_tap(events.append)
    with pytest.raises(exc) as info:
        await f.namespace("default/a").open_connection("10.244.1.7", 81)
    assert info.value.errno == code
    hop = next(e.hop for e in events if str(e.kind) == "hop")
    assert hop.verdict is Verdict.REJECT and isinstance(hop.reject_with, RejectWith)


@virtual_time
async def test_string_drop_is_a_drop() -> None:
    f, dp = fabric()
    dp.by_port[82] = ("DROP", "")
    ns = f.namespace("default/a")
    assert ns.send(Packet(ip_address("10.244.0.5"), ip_address("10.244.1.7"), "udp", 5000, 82)
                   ) is False
