"""``knet up --capture FILE``: stream the fabric's packets to a pcapng file as they come (13.10).

Invariants:
- The file is opened when ``knet up`` starts (an unwritable path is a usage error before the
  cluster boots) and written as the run goes: every ``interval`` seconds the capture's events
  are taken (``Capture.drain``), assembled and appended as pcapng blocks (an Interface
  Description Block the first time an interface is seen, then Enhanced Packet Blocks), and the
  file is flushed. A killed run keeps everything flushed so far; memory holds one interval.
- The fabric carries one packet synchronously, so at a drain (a loop callback) every recorded
  journey is complete. Flows are assembled per drain: a packet's comment tells its own hops,
  and a connection spanning two drains is still one stream in Wireshark (same tuples).
- ``limit`` (packets) or ``limit_bytes`` bounds the file like ``tshark -b packets:N`` /
  ``-b filesize:K`` with a two-file ring buffer: when FILE reaches the limit it is renamed to
  ``FILE.1`` (replacing the previous one) and a new FILE starts, so the run keeps the most
  recent packets, at most twice the limit.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import IO, Any

from knet.errors import UsageError
from knet.trace.pcapng import Record, epb, frames, idb, shb
from knet.trace.record import assemble

FLUSH_INTERVAL = 1.0


def parse_limit(text: str | None) -> tuple[int | None, int | None]:
    """``--capture-limit``: ``N`` packets, or ``N MB`` / ``NMB`` / ``NkB`` (bytes of file)."""
    if text is None:
        return None, None
    t = text.strip().replace(" ", "").lower()
    units = {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2,
             "gib": 1024**3}
    for suffix in sorted(units, key=len, reverse=True):
        if t.endswith(suffix) and t[:-len(suffix)].isdigit() and int(t[:-len(suffix)]) > 0:
            return None, int(t[:-len(suffix)]) * units[suffix]
    t = t.removesuffix("packets")
    if t.isdigit() and int(t) > 0:
        return int(t), None
    raise UsageError(f"--capture-limit: expected a number of packets (100000) or a size "
                     f"(50MB), got {text!r}")


class StreamingCapture:
    """Append a running capture's packets to ``path`` as pcapng, every ``interval`` seconds."""

    def __init__(self, path: str, *, limit: int | None = None, limit_bytes: int | None = None,
                 interval: float = FLUSH_INTERVAL) -> None:
        self.path = Path(path)
        self.limit = limit
        self.limit_bytes = limit_bytes
        self.interval = interval
        self.cap: Any = None
        self.epoch = 0.0
        self.written = 0       # packets in the current file
        self.total = 0         # packets written in the run
        self.size = 0          # bytes in the current file
        self.rotations = 0
        self._fh: IO[bytes] | None = None
        self._ifaces: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None

    def open(self) -> None:
        """Create the file now: a path that cannot be written fails before anything runs."""
        try:
            self._fh = open(self.path, "wb")  # noqa: SIM115 - kept open for the run
        except OSError as e:
            raise UsageError(f"--capture: cannot write {self.path}: "
                             f"{e.strerror or e}") from None
        self._start_file()

    def _start_file(self) -> None:
        assert self._fh is not None
        self._ifaces = {}
        self.written = 0
        head = shb()
        self._fh.write(head)
        self._fh.flush()
        self.size = len(head)

    def attach(self, cap: Any) -> None:
        """Start streaming ``cap`` (a running ``RuntimeCapture``) on the running loop."""
        self.cap = cap
        self._schedule()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        try:
            self.flush()
        except OSError as e:  # disk full …: say it once, stop streaming, keep the cluster up
            import sys

            print(f"warning: --capture: {self.path}: {e.strerror or e}; capture stopped",
                  file=sys.stderr, flush=True)
            self.close()
            return
        self._schedule()

    def flush(self) -> int:
        """Write what was captured since the last flush; returns the packets written."""
        if self.cap is None or self._fh is None:
            return 0
        events = self.cap.drain()
        if not events:
            return 0
        asm = assemble(events, self.cap.names)
        recs = [Record(ob.time, ob.iface, ob.packet, ob.comment)
                for tp in sorted(asm.packets, key=lambda t: t.index) for ob in tp.observations]
        described = {i.name: i for i in self.cap.interfaces(recs)}
        n = 0
        for r in recs:
            ts = int(round((self.epoch + r.time) * 1e9))
            for data in frames(r.packet):
                if self._full():
                    self._rotate()
                if r.iface not in self._ifaces:
                    self._ifaces[r.iface] = len(self._ifaces)
                    self._write(idb(described[r.iface]) if r.iface in described else
                                idb_named(r.iface))
                self._write(epb(self._ifaces[r.iface], ts, data, r.comment))
                self.written += 1
                self.total += 1
                n += 1
        self._fh.flush()
        return n

    def _write(self, block: bytes) -> None:
        assert self._fh is not None
        self._fh.write(block)
        self.size += len(block)

    def _full(self) -> bool:
        return ((self.limit is not None and self.written >= self.limit)
                or (self.limit_bytes is not None and self.size >= self.limit_bytes
                    and self.written > 0))

    def _rotate(self) -> None:
        assert self._fh is not None
        self._fh.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._fh = open(self.path, "wb")  # noqa: SIM115
        self.rotations += 1
        self._start_file()

    def close(self) -> int:
        """Final flush and close; returns the packets written in the run."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._fh is not None:
            try:
                self.flush()
            finally:
                self._fh.close()
                self._fh = None
        return self.total


def idb_named(name: str) -> bytes:
    from knet.trace.pcapng import Interface

    return idb(Interface(name))
