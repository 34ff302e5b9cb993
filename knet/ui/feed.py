"""The page's live flow feed: a capture drained on a short period into bounded flow history.

Invariants:
- While the feed runs, every node's datapath keeps the matched rules (a capture), so each
  flow's story names its deciding rules; the feed's memory is bounded (``keep`` flows; older
  ones and their stories are forgotten).
- Events are assembled per drain: a connection whose packets straddle two drains shows as two
  flows (the page is a live view, not a full capture; ``--capture`` writes everything).
- Subscribers (the page's Server-Sent Events streams) get each new flow summary through a
  bounded queue; a slow page loses flows rather than holding memory.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from knet.trace.record import Flow, Names, assemble
from knet.ui.view import flow_summary, rule_hits, story, traffic_edge


class FlowFeed:
    def __init__(self, rt: Any, *, keep: int = 2000, period: float = 0.2) -> None:
        self.rt = rt
        self.keep = keep
        self.period = period
        self.flows: OrderedDict[int, tuple[dict[str, Any], Flow, Names]] = OrderedDict()
        self.traffic: dict[tuple[str, str], int] = {}
        self.hits: dict[str, dict[str, int]] = {}
        self._subscribers: list[asyncio.Queue[dict[str, Any] | None]] = []
        self._next = 1
        self._cap: Any = None
        self._task: asyncio.Task[None] | None = None
        self.on_flow: Callable[[dict[str, Any]], None] | None = None

    def start(self) -> FlowFeed:
        self._cap = self.rt.capture()
        self._cap.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="knet ui feed")
        return self

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.pump()

    def pump(self) -> list[dict[str, Any]]:
        """Assemble what was recorded since the last pump; returns the new flow summaries."""
        if self._cap is None:
            return []
        events = self._cap.drain()
        if not events:
            return []
        names = self._cap.names
        out = []
        assembly = assemble(events, names)
        for node, hits in rule_hits(assembly.flows).items():
            mine = self.hits.setdefault(node, {})
            for rule, n in hits.items():
                mine[rule] = mine.get(rule, 0) + n
        for fl in assembly.flows:
            fid = self._next
            self._next += 1
            summ = flow_summary(fid, fl, names, epoch=self.rt.epoch)
            self.flows[fid] = (summ, fl, names)
            edge = traffic_edge(fl, names)
            self.traffic[edge] = self.traffic.get(edge, 0) + 1
            out.append(summ)
            self.rt.metrics.flows.inc((summ["verdict"],))
            if self.on_flow is not None:
                self.on_flow(summ)
            for q in self._subscribers:
                if q.full():
                    continue
                q.put_nowait(summ)
        while len(self.flows) > self.keep:
            self.flows.popitem(last=False)
        return out

    def story(self, fid: int) -> dict[str, Any] | None:
        hit = self.flows.get(fid)
        if hit is None:
            return None
        summary, flow, names = hit
        return {"summary": summary, **story(flow, names)}

    def subscribe(self, size: int = 1000) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of new flow summaries; ``None`` when the feed closes."""
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(size)
        self._subscribers.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any] | None]) -> None:
        if q in self._subscribers:
            self._subscribers.remove(q)

    async def aclose(self) -> None:
        for q in self._subscribers:  # end the streams: the page's SSE handlers return
            if q.full():
                q.get_nowait()
            q.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._cap is not None:
            self._cap.stop()
            self._cap = None


__all__ = ["FlowFeed"]
