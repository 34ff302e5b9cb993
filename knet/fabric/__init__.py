"""knet's virtual L3 network: nodes, pod namespaces, TCP/UDP as packets, asyncio transports.

Public API::

    fabric = Fabric(clock=None, seed=0)
    node = fabric.add_node("node-a", ["172.18.0.2"], ["10.244.0.0/24"], datapath=None)
    ns = fabric.add_pod("default/web", "node-a", ["10.244.0.5"])
    await ns.create_server(factory, None, 80) / ns.create_connection(factory, ip, port)
    await ns.open_connection(ip, port) / ns.start_server(cb, None, port)
    await ns.create_datagram_endpoint(factory, local_addr=..., remote_addr=...)
"""

from knet.fabric.clock import (
    Clock,
    RealClock,
    VirtualClock,
    VirtualTimeLoop,
    clock_of,
    run_virtual,
    virtual_time,
)
from knet.fabric.datapath import LOCAL, WIRE, Datapath, Hop, PassThroughDatapath, RejectWith, Verdict
from knet.fabric.network import OUTSIDE, EventKind, Fabric, FabricEvent, Namespace, Node, veth_name
from knet.fabric.tcp import FabricServer, FabricTransport
from knet.fabric.udp import FabricDatagramTransport

__all__ = [
    "Clock", "RealClock", "VirtualClock", "VirtualTimeLoop", "clock_of", "run_virtual",
    "virtual_time", "LOCAL", "WIRE", "Datapath", "Hop", "PassThroughDatapath", "RejectWith",
    "Verdict", "OUTSIDE", "EventKind", "Fabric", "FabricEvent", "Namespace", "Node", "veth_name",
    "FabricServer", "FabricTransport", "FabricDatagramTransport",
]
