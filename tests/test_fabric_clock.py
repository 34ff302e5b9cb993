"""Virtual time: timers run in order, time warps only when idle, runs are deterministic."""

from __future__ import annotations

import asyncio
import time

import pytest

from knet.fabric.clock import RealClock, VirtualClock, VirtualTimeLoop, clock_of, run_virtual, virtual_time


@pytest.mark.perf
@virtual_time
async def test_sixty_virtual_seconds_take_milliseconds(wall_budget) -> None:
    clock = clock_of()
    assert isinstance(clock, VirtualClock)
    with wall_budget(0.5):
        start = clock.now()
        await asyncio.sleep(60)
    assert clock.now() - start == pytest.approx(60)


@virtual_time
async def test_advance_runs_due_timers_in_order_and_stops_at_target() -> None:
    clock = clock_of()
    fired: list[tuple[str, float]] = []
    for name, delay in [("c", 3.0), ("a", 1.0), ("d", 10.0), ("b", 2.0)]:
        clock.call_later(delay, lambda n=name: fired.append((n, clock.now())))
    await clock.advance(5)
    assert fired == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.now() == pytest.approx(5.0)
    await clock.advance(5)
    assert fired[-1] == ("d", 10.0)


@virtual_time
async def test_wait_for_times_out_on_virtual_time() -> None:
    clock = clock_of()
    never = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(never, 30)
    assert clock.now() == pytest.approx(30)


@virtual_time
async def test_run_until_idle_does_not_move_time() -> None:
    clock = clock_of()
    log: list[int] = []

    async def chain(n: int) -> None:
        for i in range(n):
            log.append(i)
            await asyncio.sleep(0)

    asyncio.get_running_loop().create_task(chain(50))
    await clock.run_until_idle()
    assert log == list(range(50))
    assert clock.now() == 0.0


def test_same_program_same_schedule() -> None:
    async def scenario() -> list[tuple[float, str]]:
        clock = clock_of()
        trace: list[tuple[float, str]] = []

        async def worker(name: str, period: float) -> None:
            for _ in range(5):
                await asyncio.sleep(period)
                trace.append((clock.now(), name))

        await asyncio.gather(worker("x", 0.7), worker("y", 1.1), worker("z", 0.7))
        return trace

    first = run_virtual(scenario())
    second = run_virtual(scenario())
    assert first == second
    assert [t for t, _ in first] == sorted(t for t, _ in first)


def test_executor_work_is_not_overtaken_by_virtual_time() -> None:
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        clock = clock_of()
        await loop.run_in_executor(None, time.sleep, 0.05)
        return clock.now()

    # While a thread works, the loop waits for real and virtual time stands still.
    assert run_virtual(scenario()) == 0.0


def test_virtual_clock_binds_one_loop() -> None:
    clock = VirtualClock(start=100.0)
    loop = VirtualTimeLoop(clock)
    try:
        assert loop.time() == 100.0
        with pytest.raises(RuntimeError):
            VirtualTimeLoop(clock)
    finally:
        loop.close()


@pytest.mark.asyncio
async def test_real_clock_follows_the_loop() -> None:
    clock = clock_of()
    assert isinstance(clock, RealClock)
    before = clock.now()
    await clock.advance(0.01)
    assert clock.now() - before >= 0.009
