"""knet.codegen: the one exec in knet, and the four things built with it."""

from __future__ import annotations

import dataclasses
from ipaddress import ip_address as A

import pytest

from knet.codegen import define
from knet.control.store import evolve
from knet.fabric.tcp import tcp_packet
from knet.model import ObjectMeta
from knet.netfilter.conntrack import Tuple, _tuple
from knet.netfilter.engine import _rebuild, _with_iif
from knet.netfilter.packet import Packet, Proto


def test_define_compiles_with_its_globals_and_keeps_the_source() -> None:
    add = define("add", ["a", "b=K"], ["return a + b"], {"K": 10})
    assert add(1) == 11 and add(1, 2) == 3
    assert add.__knet_source__ == "def add(a, b=K):\n    return a + b\n"


@pytest.mark.parametrize("name,params", [("x y", ["a"]), ("f", ["a-b"]), ("f", ["a); import os; (b"])])
def test_define_refuses_what_is_not_an_identifier(name: str, params: list[str]) -> None:
    with pytest.raises(ValueError):
        define(name, params, ["return 1"])


def test_generated_constructors_equal_dataclasses_replace() -> None:
    p = Packet(A("10.0.0.1"), A("10.0.0.2"), Proto.UDP, 1000, 53, iif="veth1", mark=0x4000)
    q = _rebuild(p, A("10.0.0.9"), 2000, A("10.0.0.8"), 80, 1)
    assert q == dataclasses.replace(p, src=A("10.0.0.9"), sport=2000, dst=A("10.0.0.8"), dport=80,
                                    mark=1)
    assert type(q) is Packet and _with_iif(p, "eth0") == dataclasses.replace(p, iif="eth0")
    t = tcp_packet(A("10.0.0.1"), A("10.0.0.2"), 1, 2, "S", 5, 0)
    assert t == Packet(A("10.0.0.1"), A("10.0.0.2"), Proto.TCP, 1, 2, "S", seq=5, ack=0)
    assert _tuple(A("10.0.0.1"), 1, A("10.0.0.2"), 2) == Tuple(A("10.0.0.1"), 1, A("10.0.0.2"), 2)
    m = ObjectMeta("a", "ns", labels={"x": "1"})
    assert evolve(m, name="b") == dataclasses.replace(m, name="b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.sport = 1  # type: ignore[misc]
