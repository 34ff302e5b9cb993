"""``Capture``: attach a recorder to a fabric for the duration of an ``async with`` block.

Invariants:
- Off by default and free when off: nothing of knet.trace runs unless a Capture is active; the
  fabric builds tap events only while it has a tap (``if self._taps``), and the tap itself is
  ``list.append``. Decoding, name resolution, flow assembly and filtering run on query.
- Queries are pure functions of the recorded events (cached until new events arrive), so
  calling them during or after the capture gives the same answer for the same events.
- The runtime supplies metadata through callbacks: ``resolve_pod(ip) -> PodInfo | None`` and
  ``service_of(ip, port, proto) -> "ns/name[:port]" | None``. Without them, pods are named
  from the fabric's namespaces and Services from kube-proxy's rule comments.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from knet.errors import UsageError
from knet.fabric.network import Fabric, FabricEvent, veth_name
from knet.trace.filter import Filter
from knet.trace.hubble import flow_record, to_jsonl
from knet.trace.pcapng import Interface, Record, write_pcapng
from knet.trace.record import (Assembly, Flow, Names, PodInfo, Recorder, ServiceOf,
                               TracedPacket, assemble)
from knet.trace.story import flow_story, packet_story


class Capture:
    """Record every hop of the packets crossing ``fabric`` while active.

    ``async with Capture(fabric, pod="shop/client", port=80) as cap: …`` then
    ``cap.flows()``, ``cap.packets()``, ``cap.explain(flow)``, ``cap.write_pcapng(path)``,
    ``cap.to_jsonl()``. Filter keywords follow ``hubble observe`` (see ``Filter``).
    """

    def __init__(self, fabric: Fabric, filter: Filter | dict[str, object] | None = None, *,
                 resolve_pod: Callable[[object], PodInfo | None] | None = None,
                 service_of: ServiceOf | None = None, epoch: float = 0.0,
                 **filters: object) -> None:
        self.fabric = fabric
        self.filter = Filter.of(filter, **filters)
        self.names = Names(fabric, resolve_pod, service_of)
        self.epoch = epoch
        self._recorder = Recorder()
        self._remove: Callable[[], None] | None = None
        self._cache: tuple[int, Assembly] | None = None

    # -- lifecycle
    def start(self) -> Capture:
        if self._remove is not None:
            raise UsageError("capture already running")
        self._remove = self.fabric.add_tap(self._recorder.tap)
        return self

    def stop(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None

    @property
    def running(self) -> bool:
        return self._remove is not None

    async def __aenter__(self) -> Capture:
        return self.start()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.stop()

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- queries
    @property
    def events(self) -> list[FabricEvent]:
        return list(self._recorder.events)

    def drain(self) -> list[FabricEvent]:
        """Take the events recorded so far and forget them (a live consumer's bounded feed);
        later queries see only what arrives after."""
        events = self._recorder.events
        taken = events[:]
        del events[:]  # in place: the fabric's tap is this list's bound append
        self._cache = None
        return taken

    def _assembled(self) -> Assembly:
        n = len(self._recorder.events)
        if self._cache is None or self._cache[0] != n:
            self._cache = (n, assemble(list(self._recorder.events), self.names))
        return self._cache[1]

    def packets(self) -> list[TracedPacket]:
        """Traced packets matching the filter, in capture order."""
        f, names = self.filter, self.names
        return [tp for tp in self._assembled().packets if f.matches(tp, names)]

    def flows(self) -> list[Flow]:
        """Connections with at least one matching packet (each with all its packets)."""
        f, names = self.filter, self.names
        return [fl for fl in self._assembled().flows
                if any(f.matches(tp, names) for tp in fl.packets)]

    def flow(self, index: int) -> Flow:
        for fl in self._assembled().flows:
            if fl.id == index:
                return fl
        raise UsageError(f"no flow {index} in this capture")

    def explain(self, subject: Flow | TracedPacket | int, *, verbose: bool = False) -> str:
        """The story of one flow (or one packet): every hop, rule and translation."""
        if isinstance(subject, int):
            subject = self.flow(subject)
        if isinstance(subject, Flow):
            return "\n".join(flow_story(subject, self.names, verbose=verbose)) + "\n"
        return "\n".join(packet_story(subject, self.names, verbose=verbose)) + "\n"

    def story(self, *, verbose: bool = False) -> str:
        return "\n".join(self.explain(fl, verbose=verbose) for fl in self.flows())

    # -- export
    def records(self) -> list[Record]:
        """pcapng records: every capture point of every packet of the matching flows."""
        out: list[Record] = []
        for tp in sorted((tp for fl in self.flows() for tp in fl.packets),
                         key=lambda t: t.index):
            for ob in tp.observations:
                out.append(Record(ob.time, ob.iface, ob.packet, ob.comment))
        return out

    def interfaces(self, records: list[Record]) -> list[Interface]:
        by_veth = {veth_name(name): ns for name, ns in self.fabric.namespaces.items()
                   if ns.kind == "pod"}
        out: dict[str, Interface] = {}
        for r in records:
            if r.iface in out:
                continue
            node, _, dev = r.iface.partition("/")
            ns = by_veth.get(dev)
            if ns is not None:
                desc = f"host side of {ns.name}'s eth0 ({', '.join(map(str, ns.ips))}) on {node}"
            elif node in self.fabric.nodes:
                desc = f"{node} {dev} ({', '.join(map(str, self.fabric.nodes[node].addresses))})"
            else:
                desc = r.iface
            out[r.iface] = Interface(r.iface, desc)
        return list(out.values())

    def write_pcapng(self, path: str | Path | IO[bytes]) -> int:
        """Write the matching flows as pcapng (one interface per capture point, the
        explanation of each packet as its comment). Returns the number of packets."""
        recs = self.records()
        target = str(path) if isinstance(path, Path) else path
        return write_pcapng(target, recs, self.interfaces(recs), epoch=self.epoch)

    def hubble(self) -> list[dict[str, object]]:
        return [flow_record(tp, self.names, epoch=self.epoch) for tp in self.packets()]

    def to_jsonl(self) -> str:
        """Hubble-shaped flow records, one JSON object per line."""
        return to_jsonl(self.packets(), self.names, epoch=self.epoch)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Capture {state} {len(self._recorder.events)} events>"


__all__ = ["Capture"]
