"""The event loop of ``knet up``: boot on virtual time, then run on real time.

Invariants:
- Time only moves forward and is continuous across the switch: at ``go_real()`` the loop's
  time becomes ``monotonic() + offset`` with the offset chosen so that ``time()`` is unchanged;
  timers scheduled during boot keep their (virtual-base) deadlines and fire on real time.
- Before ``go_real()`` the loop is a ``VirtualTimeLoop``: while idle it warps to the next timer,
  so a boot that waits for probes' ``initialDelaySeconds`` (ingress-nginx: 10 s) costs only
  the CPU of its callbacks. After ``go_real()`` the selector is the plain one (no polling
  wrapper on the hot path) and nothing warps: real clients see a real-time cluster.
"""

from __future__ import annotations

import asyncio
import time

from knet.fabric.clock import VirtualClock, VirtualTimeLoop


class BootClock(VirtualClock):
    """A ``VirtualClock`` that can turn into the wall clock (monotonic) once."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self._offset: float | None = None

    @property
    def real(self) -> bool:
        return self._offset is not None

    def now(self) -> float:
        off = self._offset
        return self._now if off is None else time.monotonic() + off

    def go_real(self) -> None:
        if self._offset is None:
            self._offset = self._now - time.monotonic()
            self.virtual = False

    def _warp_to(self, when: float) -> None:
        if self._offset is None:
            super()._warp_to(when)

    def __repr__(self) -> str:
        return f"<BootClock {'real' if self.real else 'virtual'} t={self.now():.6f}>"


class BootWarpLoop(VirtualTimeLoop):
    """``VirtualTimeLoop`` until ``go_real()``, a plain selector loop on monotonic time after."""

    def __init__(self) -> None:
        super().__init__(BootClock())

    @property
    def real(self) -> bool:
        return bool(self.clock.real)  # type: ignore[attr-defined]

    def time(self) -> float:
        return self.clock.now()

    def go_real(self) -> None:
        """Switch to real time (idempotent); call from inside the loop."""
        if self.clock.real:  # type: ignore[attr-defined]
            return
        self.clock.go_real()  # type: ignore[attr-defined]
        inner = getattr(self._selector, "_inner", None)
        if inner is not None:
            self._selector = inner


def run_up(main: asyncio.Future[int] | object) -> int:
    """``asyncio.run`` on a fresh ``BootWarpLoop``."""
    with asyncio.Runner(loop_factory=BootWarpLoop) as runner:
        return runner.run(main)  # type: ignore[arg-type]
