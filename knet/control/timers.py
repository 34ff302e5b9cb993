"""Keyed deadlines: the control plane's delayed work queue (client-go ``AddAfter``).

Invariants:
- At most one deadline per key; setting a key again replaces its deadline.
- ``earliest()`` and ``pop_due(now)`` cost O(log n) per entry (a heap with lazy deletion), so
  50,000 graceful terminations due at the same second finish in one pass, not n² scans.
- Due entries come out in (time, key) order: deterministic for a given input.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    def __init__(self) -> None:
        self._at: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = 0

    def __setitem__(self, key: K, when: float) -> None:
        self._at[key] = when
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, key))
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._at):
            self._compact()

    def __getitem__(self, key: K) -> float:
        return self._at[key]

    def __contains__(self, key: object) -> bool:
        return key in self._at

    def __len__(self) -> int:
        return len(self._at)

    def __iter__(self) -> Iterator[K]:
        return iter(self._at)

    def __delitem__(self, key: K) -> None:
        del self._at[key]

    def get(self, key: K, default: float | None = None) -> float | None:
        return self._at.get(key, default)

    def pop(self, key: K, default: float | None = None) -> float | None:
        return self._at.pop(key, default)

    def items(self) -> list[tuple[K, float]]:
        return list(self._at.items())

    def values(self) -> list[float]:
        return list(self._at.values())

    def earliest(self) -> float | None:
        heap = self._heap
        while heap:
            when, _, key = heap[0]
            if self._at.get(key) == when:
                return when
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> list[tuple[float, K]]:
        """Remove and return every entry due at or before ``now``, earliest first."""
        out: list[tuple[float, K]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, key = heapq.heappop(heap)
            if self._at.get(key) == when:
                del self._at[key]
                out.append((when, key))
        return out

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if self._at.get(e[2]) == e[0]]
        heapq.heapify(self._heap)
