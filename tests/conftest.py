"""Suite-wide test plumbing.

- Isolation: no test sees a ``knet up`` the user (or another checkout) is running. ``knet
  get``/``trace``/… without ``-f`` talk to the ``knet up`` recorded under
  ``$XDG_RUNTIME_DIR/knet`` (else ``/tmp/knet-$UID``); every test gets its own empty one.
- Wall-clock budgets (``wall_budget``): unit tests assert behaviour, not speed; a test marked
  ``perf`` also states how long its scenario may take, asserted only under ``--perf``
  (``make perf``), where the machine is quiet enough for it to mean something.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis: CI (`.ci/run` sets HYPOTHESIS_PROFILE=ci) explores the same examples on every run
# (derandomized: a red build is reproducible), with no example database left behind; locally,
# random exploration. No per-example deadline either way: the machine is shared.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--perf", action="store_true",
                     help="assert the wall-clock budgets of tests marked perf (make perf)")


@pytest.fixture(autouse=True)
def _own_runtime_dir(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("xdg", numbered=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    return path


@pytest.fixture
def wall_budget(request: pytest.FixtureRequest) -> Callable[[float], contextlib.AbstractContextManager[None]]:
    """``with wall_budget(0.5): ...``: the block's wall time, asserted under ``--perf`` only."""
    enforce = bool(request.config.getoption("--perf"))

    @contextlib.contextmanager
    def budget(seconds: float) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        took = time.perf_counter() - t0
        if enforce:
            assert took < seconds, f"took {took:.3f}s of wall time; the budget is {seconds}s"

    return budget
