"""knet's pytest plugin (entry point ``knet``): fixtures, the ``knet`` marker, options.

Invariants:
- Async tests marked ``@pytest.mark.knet`` or using a knet fixture (directly or through other
  fixtures) run under pytest-asyncio on a ``VirtualTimeLoop`` (real loop with
  ``--knet-real-time``), via pytest-asyncio's ``pytest_asyncio_loop_factories`` hook; they do
  not need ``@pytest.mark.asyncio`` themselves. Every other test keeps asyncio's default loop.
- knet fixtures use a function-scoped loop, the same loop as the test that requests them.
- Clusters are torn down in reverse start order; with ``--knet-pcap-dir`` every cluster's
  traffic is recorded and a failing test's is written as ``<dir>/<test id>[-N].pcapng``.
- Fixtures and markers only; the logic lives in ``knet.testing``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from knet.errors import NotOnRealCluster, UsageError
from knet.testing import ClusterFactory, Settings, default_loop, loop_factory, start_capture

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - knet's test extra installs it
    pytest_asyncio = None  # type: ignore[assignment]

KNET_FIXTURES = frozenset({"knet_cluster", "knet_factory", "knet_capture"})

_SETTINGS = pytest.StashKey[Settings]()
_FACTORIES = pytest.StashKey[list[ClusterFactory]]()
_FAILED = pytest.StashKey[bool]()

_MARKER = ("knet(topology=PATH | [PATHS], seed=None, **run_kwargs): start `knet_cluster` from "
           "these topology files (relative to the test file or the rootdir) on virtual time")


# --- options -----------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("knet", "knet (Kubernetes networking emulator)")
    group.addoption("--knet-seed", dest="knet_seed", type=int, default=None, metavar="N",
                    help="seed for clusters whose knet marker pins none (default: the "
                         "topology's own seed). ini: knet_seed")
    group.addoption("--knet-pcap-dir", dest="knet_pcap_dir", default=None, metavar="DIR",
                    help="record every cluster's traffic and write a failing test's as "
                         "DIR/<test>.pcapng. ini: knet_pcap_dir")
    group.addoption("--knet-real-time", dest="knet_real_time", action="store_true",
                    default=None, help="run knet tests on a real event loop instead of "
                                       "virtual time. ini: knet_real_time")
    group.addoption("--knet-kubeconfig", dest="knet_kubeconfig", default=None, metavar="PATH",
                    help="run knet tests against the cluster of this kubeconfig (kind, a "
                         "real cluster, or knet up --api) instead of the emulator; env "
                         "KNET_KUBECONFIG")
    group.addoption("--knet-context", dest="knet_context", default=None, metavar="NAME",
                    help="the kubeconfig context to use (default: its current context)")
    parser.addini("knet_seed", "default seed for knet clusters (see --knet-seed)", default="")
    parser.addini("knet_pcap_dir", "directory for failing tests' pcapng files, relative to "
                  "the rootdir (see --knet-pcap-dir)", default="")
    parser.addini("knet_real_time", "run knet tests on real time (see --knet-real-time)",
                  type="bool", default=False)


def _settings(config: pytest.Config) -> Settings:
    seed = config.getoption("knet_seed")
    if seed is None:
        raw = str(config.getini("knet_seed")).strip()
        if raw:
            try:
                seed = int(raw)
            except ValueError:
                raise pytest.UsageError(f"knet_seed: expected an integer, got {raw!r}") from None
    pcap = config.getoption("knet_pcap_dir")
    pcap_dir: Path | None = None
    if pcap:
        pcap_dir = Path(pcap).resolve()
    else:
        raw = str(config.getini("knet_pcap_dir")).strip()
        if raw:
            pcap_dir = (config.rootpath / raw).resolve()
    real = config.getoption("knet_real_time")
    if real is None:
        real = bool(config.getini("knet_real_time"))
    import os

    kubeconfig = config.getoption("knet_kubeconfig") or os.environ.get("KNET_KUBECONFIG") or None
    if kubeconfig and pcap_dir is not None:
        raise pytest.UsageError("--knet-pcap-dir needs the emulator: a real cluster's every hop "
                                "cannot be captured")
    return Settings(seed=seed, pcap_dir=pcap_dir, real_time=bool(real),
                    kubeconfig=str(Path(kubeconfig).resolve()) if kubeconfig else None,
                    context=config.getoption("knet_context"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER)
    config.addinivalue_line("markers", "knet_emulator(reason): the test's claim needs the "
                            "emulator (seeded choices, virtual-time precision, one connection "
                            "held across requests); skipped under --knet-kubeconfig")
    config.stash[_SETTINGS] = _settings(config)


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[_SETTINGS].header()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.stash[_SETTINGS].kubeconfig:
        return
    for item in items:
        mark = item.get_closest_marker("knet_emulator")
        if mark is not None:
            reason = mark.args[0] if mark.args else mark.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(
                reason=f"needs the emulator: {reason}" if reason else "needs the emulator"))


# --- which tests are knet tests, and their loop --------------------------------------------------

def _is_knet(item: Any) -> bool:
    if item.get_closest_marker("knet") is not None:
        return True
    return bool(KNET_FIXTURES.intersection(getattr(item, "fixturenames", ())))


@pytest.hookimpl(wrapper=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> Iterator[None]:
    # Runs before pytest-asyncio's own pytest_generate_tests (wrappers first): an async knet
    # test gets the asyncio marker, on the definition (seen now) and on the function (seen by
    # the items built from it).
    fn = metafunc.function
    definition = metafunc.definition
    if (pytest_asyncio is not None and inspect.iscoroutinefunction(fn)
            and definition.get_closest_marker("asyncio") is None and _is_knet(definition)):
        definition.add_marker(pytest.mark.asyncio)
        pytest.mark.asyncio(fn)
    return (yield)


@pytest.hookimpl(trylast=True, optionalhook=True)
def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item
                                  ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    if _is_knet(item):
        settings = config.stash[_SETTINGS]
        return {"knet-real" if settings.real_time else "knet-virtual": loop_factory(settings)}
    return {"asyncio": default_loop}


# --- failure reports and pcapng ---------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if call.excinfo is not None and call.excinfo.errisinstance(NotOnRealCluster):
        # what only the emulator can do, asked of a real cluster: a skip that says so
        report.outcome = "skipped"
        report.longrepr = (str(item.path), (item.location[1] or 0) + 1,
                           f"Skipped: {call.excinfo.value}")
        return report
    factories = item.stash.get(_FACTORIES, [])
    if report.failed and call.when in ("setup", "call") and factories:
        item.stash[_FAILED] = True
        for f in factories:
            f.write_captures()
        text = "\n".join(f.describe() for f in factories if f.started)
        if text:
            report.sections.append(("knet", text))
    return report


# --- fixtures ----------------------------------------------------------------------------------------

def _check_loop(request: pytest.FixtureRequest) -> None:
    if not inspect.iscoroutinefunction(getattr(request.node, "obj", None)):
        pytest.fail(f"{request.fixturename} is async: request it from an `async def` test",
                    pytrace=False)
    marker = request.node.get_closest_marker("asyncio")
    scope = (marker.kwargs.get("loop_scope") if marker is not None else None) \
        or request.config.getini("asyncio_default_test_loop_scope") or "function"
    if scope != "function":
        pytest.fail(f"knet fixtures run on the test's function-scoped event loop; this test "
                    f"runs on a {scope}-scoped loop (remove loop_scope={scope!r})",
                    pytrace=False)


if pytest_asyncio is not None:
    _async_fixture = pytest_asyncio.fixture(loop_scope="function")
else:  # pragma: no cover
    def _async_fixture(fn: Any) -> Any:
        @pytest.fixture(name=fn.__name__)
        def missing() -> None:
            pytest.fail("knet's pytest fixtures need pytest-asyncio (pip install "
                        "pytest-asyncio)", pytrace=False)
        return missing


@pytest.fixture
def knet_settings(request: pytest.FixtureRequest) -> Settings:
    """The session's knet options (seed, pcap dir, real time)."""
    return request.config.stash[_SETTINGS]


@_async_fixture
async def knet_factory(request: pytest.FixtureRequest,
                       knet_settings: Settings) -> AsyncIterator[ClusterFactory]:
    """Start clusters: ``c = await knet_factory("a.yaml", seed=1)`` (torn down at test end) or
    ``async with knet_factory("b.yaml") as c:``; reverse-order teardown."""
    _check_loop(request)
    node = request.node
    # relative topology paths: next to the test file, then the rootdir, then where pytest ran
    invoked = request.config.invocation_params.dir
    bases = ([Path(str(node.path)).parent] if hasattr(node, "path") else []) + [
        request.config.rootpath, invoked]
    factory = ClusterFactory(knet_settings, base_dirs=bases, name=node.nodeid)
    node.stash.setdefault(_FACTORIES, []).append(factory)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
def knet_topology(request: pytest.FixtureRequest) -> list[str]:
    """Topology paths for ``knet_cluster``: from ``@pytest.mark.knet(topology=…)`` (or its
    positional args). Override this fixture to choose them another way."""
    marker = request.node.get_closest_marker("knet")
    paths: list[str] = []
    if marker is not None:
        paths.extend(str(a) for a in marker.args)
        topo = marker.kwargs.get("topology")
        if isinstance(topo, (str, Path)):
            paths.append(str(topo))
        elif topo is not None:
            paths.extend(str(t) for t in topo)
    if not paths:
        pytest.fail("knet_cluster needs a topology: mark the test "
                    "@pytest.mark.knet(topology='path.yaml') or override the knet_topology "
                    "fixture", pytrace=False)
    return paths


@_async_fixture
async def knet_cluster(request: pytest.FixtureRequest, knet_topology: Any,
                       knet_factory: ClusterFactory) -> Any:
    """The running cluster (what ``knet.run`` yields), started from the ``knet`` marker."""
    marker = request.node.get_closest_marker("knet")
    kwargs = dict(marker.kwargs) if marker is not None else {}
    kwargs.pop("topology", None)
    paths = [knet_topology] if isinstance(knet_topology, (str, Path)) else list(knet_topology)
    try:
        pending = knet_factory(paths, **kwargs)
    except UsageError as e:  # e.g. a topology not found: one line, no traceback
        pytest.fail(str(e), pytrace=False)
    return await pending


@pytest.fixture
def knet_capture(knet_cluster: Any) -> Iterator[Any]:
    """A ``knet.trace.Capture`` of ``knet_cluster``'s traffic from the start of the test:
    ``knet_capture.flows()``, ``.story()``, ``.write_pcapng(path)``."""
    cap = start_capture(knet_cluster)
    try:
        yield cap
    finally:
        cap.stop()
