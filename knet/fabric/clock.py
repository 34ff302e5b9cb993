"""Clocks for the fabric and the runtime: real loop time, or a virtual time that warps.

Invariants:
- Every wait in knet (TCP SYN/RTO retransmits, link latency, probes, timeouts) is a timer on the
  event loop, read through ``loop.time()``; nothing calls ``time.time()`` or sleeps on the wall
  clock. A ``Clock`` is therefore just a view of one loop's time plus ``advance``.
- Virtual time only moves forward, and only when the loop has nothing ready to run.

Choice (evaluated against the alternatives):
- A clock with its own timer heap (``VirtualClock.call_later`` separate from the loop) does not
  reach third-party asyncio code: aiohttp's keep-alive, ``ceil_timeout`` and ``asyncio.timeout``
  call ``loop.call_at(loop.time() + d)`` directly, and would keep running on wall time.
- Patching ``loop.time`` on a running loop (looptime-style) works with any loop but has to
  re-base already scheduled timers and un-patch afterwards; it is fragile.
- Chosen: ``VirtualTimeLoop``, a ``SelectorEventLoop`` subclass whose ``time()`` is virtual and
  whose selector, when the loop would block waiting for a timer and no real I/O is ready,
  jumps virtual time to that timer instead of sleeping ("time-warping", as in Twisted's
  ``task.Clock`` or aiotools' ``VirtualClock``). All of asyncio (``sleep``, ``wait_for``,
  ``asyncio.timeout``, aiohttp's timers) then runs on virtual time unchanged, timers fire in
  ``when`` order, and a 60 s scenario costs only the CPU of its callbacks. Real loopback
  sockets still work (they are polled with timeout 0 before each warp); while work runs in a
  thread executor, or inside ``clock.real_time()``, the loop waits for real instead of warping,
  so a thread or subprocess is not overtaken by virtual timeouts.

Using it: ``asyncio.run(main(), loop_factory=...)`` is 3.12+, so use ``run_virtual(main())`` or
``asyncio.Runner(loop_factory=VirtualTimeLoop)``; in pytest decorate an ``async def`` test with
``@virtual_time`` (it becomes a plain test running on a fresh virtual loop; fixtures still
resolve by name), or return ``{"virtual": VirtualTimeLoop}`` from pytest-asyncio's
``pytest_asyncio_loop_factories`` hook and mark tests ``@pytest.mark.asyncio(loop_factories=
["virtual"])``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import selectors
import concurrent.futures
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, TypeVarTuple, runtime_checkable

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

_Ts = TypeVarTuple("_Ts")

T = TypeVar("T")

# asyncio.sleep(0) rounds until the loop is quiet; bounded so a busy-looping task cannot hang us.
_IDLE_ROUNDS_MAX = 100_000


@runtime_checkable
class Clock(Protocol):
    """What the fabric and the runtime need from time."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any
                ) -> asyncio.TimerHandle: ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any
                   ) -> asyncio.TimerHandle: ...

    async def sleep(self, seconds: float) -> None: ...

    async def advance(self, seconds: float) -> None: ...

    async def run_until_idle(self) -> None: ...


class _LoopClock:
    """Shared implementation: a clock is a view of one event loop's time."""

    virtual = False

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self.loop.time()

    def call_at(self, when: float, callback: Callable[..., object], *args: Any
                ) -> asyncio.TimerHandle:
        return self.loop.call_at(when, callback, *args)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any
                   ) -> asyncio.TimerHandle:
        return self.loop.call_at(self.loop.time() + delay, callback, *args)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def run_until_idle(self) -> None:
        """Return once no callback is ready and no timer is due at the current time."""
        loop = self.loop
        for _ in range(_IDLE_ROUNDS_MAX):
            ready = getattr(loop, "_ready", None)
            scheduled = getattr(loop, "_scheduled", None)
            busy = bool(ready)
            if not busy and scheduled:
                now = loop.time()
                busy = any(h.when() <= now and not h.cancelled() for h in scheduled)
            if not busy:
                return
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: every timer due by then runs, in order; then settle."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        await asyncio.sleep(seconds)
        await self.run_until_idle()


class RealClock(_LoopClock):
    """Wall time as the event loop sees it; ``advance`` really waits."""

    def __repr__(self) -> str:
        return "<RealClock>"


class VirtualClock(_LoopClock):
    """The clock of a ``VirtualTimeLoop``: virtual seconds starting at ``start``."""

    virtual = True

    def __init__(self, start: float = 0.0) -> None:
        super().__init__(None)
        self._now = float(start)
        self._holds = 0

    def now(self) -> float:
        return self._now

    def _bind(self, loop: VirtualTimeLoop) -> None:
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError("a VirtualClock drives exactly one loop")
        self._loop = loop

    @property
    def holding(self) -> bool:
        return self._holds > 0

    @contextlib.contextmanager
    def real_time(self) -> Iterator[None]:
        """While inside, an idle loop waits for real I/O instead of warping time."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1

    def _warp_to(self, when: float) -> None:
        if when > self._now:
            self._now = when

    def __repr__(self) -> str:
        return f"<VirtualClock t={self._now:.6f}>"


class _WarpingSelector(selectors.BaseSelector):
    """Wraps the loop's selector: poll real I/O without blocking, else jump to the next timer."""

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._inner = inner
        self._loop = loop

    def register(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return self._inner.select(0)
        events = self._inner.select(0)
        if events:
            return events
        loop = self._loop
        if loop._executor_jobs or loop.clock.holding:
            # Real work in flight: wait for it for real, in short slices, without warping.
            return self._inner.select(0.01 if timeout is None else min(timeout, 0.01))
        if timeout is None:
            # Nothing scheduled at all: only real I/O (or another thread) can wake us.
            return self._inner.select(None)
        scheduled = loop._scheduled
        if scheduled:
            loop.clock._warp_to(scheduled[0].when())
        else:
            loop.clock._warp_to(loop.clock.now() + timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is a ``VirtualClock`` that warps when the loop is idle."""

    # asyncio.BaseEventLoop internals this loop drives (CPython's own attribute names)
    _scheduled: list[asyncio.TimerHandle]
    _selector: selectors.BaseSelector

    def __init__(self, clock: VirtualClock | None = None) -> None:
        clock = clock if clock is not None else VirtualClock()
        super().__init__()
        if clock._loop is not None:
            self.close()
            raise RuntimeError("a VirtualClock drives exactly one loop")
        self.clock = clock
        clock._bind(self)
        self._executor_jobs = 0
        self._selector = _WarpingSelector(self._selector, self)

    def time(self) -> float:
        return self.clock._now

    def run_in_executor(self, executor: concurrent.futures.Executor | None,
                        func: Callable[[*_Ts], T], *args: *_Ts) -> asyncio.Future[T]:
        fut = super().run_in_executor(executor, func, *args)
        self._executor_jobs += 1

        def done(_: object) -> None:
            self._executor_jobs -= 1

        fut.add_done_callback(done)
        return fut


def clock_of(loop: asyncio.AbstractEventLoop | None = None) -> RealClock | VirtualClock:
    """The clock that governs ``loop`` (default: the running loop)."""
    loop = loop if loop is not None else asyncio.get_running_loop()
    if isinstance(loop, VirtualTimeLoop):
        return loop.clock
    return RealClock(loop)


def run_virtual(main: Awaitable[T], *, clock: VirtualClock | None = None) -> T:
    """``asyncio.run`` on a fresh ``VirtualTimeLoop``."""
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(clock)) as runner:
        return runner.run(main)  # type: ignore[arg-type]


def virtual_time(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Decorator for pytest: run an ``async def`` test on its own ``VirtualTimeLoop``."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError("@virtual_time decorates an async function")

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return run_virtual(fn(*args, **kwargs))

    return wrapper


__all__ = [
    "Clock", "RealClock", "VirtualClock", "VirtualTimeLoop", "clock_of", "run_virtual",
    "virtual_time",
]
