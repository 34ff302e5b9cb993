"""Packet traces: every hop recorded from the fabric's tap, explained from the netfilter steps,
exported as pcapng (Wireshark) and Hubble-shaped JSON flows.

Public API::

    async with Capture(fabric, pod="shop/client", port=80,
                       resolve_pod=..., service_of=...) as cap:
        ...traffic...
    cap.flows(); cap.packets(); cap.explain(flow); cap.write_pcapng(path); cap.to_jsonl()
    render_story(flow_or_packets_or_events) -> str

Nothing here is imported by the fabric; scapy is imported only when a pcapng file is written.
"""

from knet.trace.capture import Capture
from knet.trace.filter import Filter
from knet.trace.hubble import flow_record, to_jsonl
from knet.trace.pcapng import Interface, Record, write_pcapng
from knet.trace.record import (Flow, Names, NodeHop, Observation, PodInfo, TracedPacket,
                               TraceVerdict, assemble, service_from_steps)
from knet.trace.story import hop_lines, packet_summary, render_story

__all__ = [
    "Capture", "Filter", "Flow", "Interface", "Names", "NodeHop", "Observation", "PodInfo",
    "Record", "TraceVerdict", "TracedPacket", "assemble", "flow_record", "hop_lines",
    "packet_summary", "render_story", "service_from_steps", "to_jsonl", "write_pcapng",
]
