"""The pytest plugin seen from inner pytest sessions: marker, options, loops, fixtures, pcapng."""

from __future__ import annotations

from pathlib import Path

import pytest

# Imported here so that pytester's in-process inner sessions find them loaded (pytester drops
# the modules an inner session imports), keeping each inner run fast.
import knet.dns  # noqa: F401
import knet.manifests  # noqa: F401
import knet.proxy  # noqa: F401
import knet.runtime  # noqa: F401
import knet.trace.pcapng  # noqa: F401
import scapy.all  # noqa: F401

pytest_plugins = ["pytester"]

ECHO = str(Path(__file__).resolve().parent.parent / "topologies" / "echo.yaml")

INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider -p no:hypothesispytest
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


def test_marker_registered_for_strict_markers(inner: pytest.Pytester) -> None:
    inner.makepyfile("""
        import pytest

        @pytest.mark.knet(topology="x.yaml", seed=3)
        def test_sync_marked():
            pass
    """)
    inner.runpytest("-W", "error").assert_outcomes(passed=1)
    out = inner.runpytest("--markers").stdout.str()
    assert "@pytest.mark.knet(topology=PATH" in out


def test_knet_tests_run_on_virtual_time_and_others_do_not(inner: pytest.Pytester) -> None:
    inner.makepyfile("""
        import asyncio, time
        import pytest
        from knet.fabric.clock import VirtualTimeLoop

        @pytest.mark.knet
        async def test_marked_without_asyncio_marker():
            loop = asyncio.get_running_loop()
            assert isinstance(loop, VirtualTimeLoop)
            t0, w0 = loop.time(), time.monotonic()
            await asyncio.sleep(3600)
            assert loop.time() - t0 >= 3600 and time.monotonic() - w0 < 5

        @pytest.mark.asyncio
        async def test_plain_asyncio_keeps_default_loop():
            assert not isinstance(asyncio.get_running_loop(), VirtualTimeLoop)

        class TestInClass:
            pytestmark = pytest.mark.knet

            async def test_method(self):
                assert isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
    """)
    inner.runpytest("-W", "error").assert_outcomes(passed=3)


def test_real_time_option_and_ini(inner: pytest.Pytester) -> None:
    inner.makepyfile("""
        import asyncio
        import pytest
        from knet.fabric.clock import VirtualTimeLoop

        @pytest.mark.knet
        async def test_loop():
            assert not isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
    """)
    inner.runpytest("--knet-real-time").assert_outcomes(passed=1)
    inner.runpytest().assert_outcomes(failed=1)
    inner.makeini(INI + "knet_real_time = true\n")
    inner.runpytest().assert_outcomes(passed=1)


def test_report_header_and_ini_twins(inner: pytest.Pytester, tmp_path: Path) -> None:
    inner.makepyfile("def test_nothing(): pass")
    res = inner.runpytest()
    res.stdout.fnmatch_lines(["knet: seed=topology's, time=virtual, pcap-dir=off"])
    inner.makeini(INI + "knet_seed = 42\nknet_pcap_dir = traces\n")
    res = inner.runpytest()
    res.stdout.fnmatch_lines([f"knet: seed=42, time=virtual, pcap-dir={inner.path / 'traces'}"
                              " (failing tests)"])
    res = inner.runpytest("--knet-seed", "7", "--knet-real-time",
                          f"--knet-pcap-dir={tmp_path}")
    res.stdout.fnmatch_lines([f"knet: seed=7, time=real, pcap-dir={tmp_path} (failing tests)"])
    inner.makeini(INI + "knet_seed = seven\n")
    res = inner.runpytest()
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*knet_seed: expected an integer, got 'seven'*"])


def test_cluster_fixture_shares_the_test_loop_and_honours_seeds(inner: pytest.Pytester) -> None:
    inner.makepyfile(f"""
        import asyncio
        import pytest

        @pytest.mark.knet(topology={ECHO!r}, seed=5)
        async def test_pinned(knet_cluster):
            assert knet_cluster.loop is asyncio.get_running_loop()
            assert knet_cluster.seed == 5
            assert knet_cluster.pod("default/client").ready

        @pytest.mark.knet({ECHO!r})
        async def test_default_seed(knet_cluster, knet_settings):
            expected = 1 if knet_settings.seed is None else knet_settings.seed
            assert knet_cluster.seed == expected
    """)
    inner.runpytest("-W", "error").assert_outcomes(passed=2)
    inner.runpytest("--knet-seed", "9").assert_outcomes(passed=2)


def test_relative_topology_and_overridden_knet_topology(inner: pytest.Pytester) -> None:
    (inner.path / "topo").mkdir()
    (inner.path / "topo" / "echo.yaml").write_text(Path(ECHO).read_text())
    inner.makeconftest("""
        import pytest

        @pytest.fixture
        def knet_topology():
            return "topo/echo.yaml"
    """)
    inner.makepyfile("""
        async def test_from_fixture(knet_cluster):
            assert len(knet_cluster.pods({"app": "echo"})) == 3
    """)
    inner.runpytest("-W", "error").assert_outcomes(passed=1)


def test_missing_topology_and_misuse_fail_clearly(inner: pytest.Pytester) -> None:
    inner.makepyfile(f"""
        import pytest

        async def test_no_topology(knet_cluster):
            pass

        @pytest.mark.knet({ECHO!r})
        def test_sync_test(knet_cluster):
            pass

        @pytest.mark.knet({ECHO!r})
        @pytest.mark.asyncio(loop_scope="module")
        async def test_module_loop(knet_cluster):
            pass
    """)
    res = inner.runpytest()
    res.assert_outcomes(errors=3)
    res.stdout.fnmatch_lines([
        "*knet_cluster needs a topology: mark the test @pytest.mark.knet(topology='path.yaml')*",
    ])
    res.stdout.fnmatch_lines(["*knet_factory is async: request it from an `async def` test*"])
    res.stdout.fnmatch_lines(["*this test runs on a module-scoped loop*"])


def test_factory_clusters_torn_down_in_reverse_order(inner: pytest.Pytester) -> None:
    inner.makeconftest("""
        import pytest
        from knet.runtime.cluster import RuntimeCluster

        CLOSED = []

        @pytest.fixture(autouse=True)
        def record_closes(monkeypatch):
            original = RuntimeCluster.aclose

            async def aclose(self):
                if not self._closed:
                    CLOSED.append(self.seed)
                await original(self)

            monkeypatch.setattr(RuntimeCluster, "aclose", aclose)
    """)
    inner.makepyfile(f"""
        import asyncio
        import conftest

        async def test_factory(knet_factory):
            a = await knet_factory({ECHO!r}, seed=1)
            b = await knet_factory({ECHO!r}, seed=2)
            async with knet_factory({ECHO!r}, seed=3) as c, knet_factory({ECHO!r}, seed=4) as d:
                assert {{a.seed, b.seed, c.seed, d.seed}} == {{1, 2, 3, 4}}
                assert a.loop is b.loop is c.loop is asyncio.get_running_loop()
            assert conftest.CLOSED == [4, 3]

        def test_after():
            assert conftest.CLOSED == [4, 3, 2, 1]
    """)
    inner.runpytest("-W", "error", "-p", "no:randomly").assert_outcomes(passed=2)


def test_pcap_written_only_for_failing_tests(inner: pytest.Pytester, tmp_path: Path) -> None:
    inner.makepyfile(f"""
        import pytest
        from knet.testing import assert_reachable

        pytestmark = pytest.mark.knet(topology={ECHO!r})

        async def test_passes(knet_cluster):
            await assert_reachable(knet_cluster.pod("default/client"), "echo", port=80)

        async def test_fails(knet_cluster, knet_factory):
            other = await knet_factory({ECHO!r}, seed=2)
            await assert_reachable(knet_cluster.pod("default/client"), "echo", port=80)
            await assert_reachable(other.pod("default/client"), "nobody", port=80)
    """)
    out = tmp_path / "pcaps"
    res = inner.runpytest(f"--knet-pcap-dir={out}")
    res.assert_outcomes(passed=1, failed=1)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["test_pcap_written_only_for_failing_tests.py_test_fails-2.pcapng",
                     "test_pcap_written_only_for_failing_tests.py_test_fails.pcapng"]
    res.stdout.fnmatch_lines([
        "*- knet -*",
        f"cluster 1: topology {ECHO} seed=1",
        f"  pcapng: {out}/test_pcap_written_only_for_failing_tests.py_test_fails.pcapng",
        f"cluster 2: topology {ECHO} seed=2",
    ])
    # The failing test's file holds its traffic: the REJECTed SYN to the empty Service.
    from scapy.utils import rdpcap  # pcapng reader

    pkts = rdpcap(str(out / "test_pcap_written_only_for_failing_tests.py_test_fails-2.pcapng"))
    syns = [p for p in pkts if p.haslayer("TCP") and p["TCP"].dport == 80
            and p["TCP"].flags == "S"]
    assert syns
    # Without the option nothing is written.
    out2 = tmp_path / "none"
    inner.runpytest().assert_outcomes(passed=1, failed=1)
    assert not out2.exists()


def test_capture_fixture(inner: pytest.Pytester) -> None:
    inner.makepyfile(f"""
        import pytest

        @pytest.mark.knet(topology={ECHO!r})
        async def test_capture(knet_cluster, knet_capture):
            client = knet_cluster.pod("default/client")
            async with client.http.get("http://echo/") as r:
                assert r.status == 200
            flows = [f for f in knet_capture.flows() if "TCP" in knet_capture.explain(f)]
            assert flows and "DNAT 10." in knet_capture.story()
    """)
    inner.runpytest("-W", "error").assert_outcomes(passed=1)


def test_docs_snippets_run(inner: pytest.Pytester) -> None:
    """The python snippets of docs/testing.md (a test and a knet_topology override) run."""
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    test = next(b for b in blocks if "async def test_" in b)
    override = next(b for b in blocks if "def knet_topology" in b)
    topo = inner.path / "topologies"
    topo.mkdir()
    for name in ("echo.yaml", "base.yaml"):
        (topo / name).write_text(Path(ECHO).read_text())
    (topo / "overrides.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: extra}\n")
    inner.makepyfile(test_doc=test)
    inner.runpytest("-W", "error").assert_outcomes(passed=1)
    inner.makeconftest(override.replace("# conftest.py\n", ""))
    inner.makepyfile(test_doc="""
        async def test_override(knet_cluster):
            assert any(ns.metadata.name == "extra" for ns in knet_cluster.state.namespaces())
    """)
    inner.runpytest("-W", "error").assert_outcomes(passed=1)


NEVER_READY = """
apiVersion: v1
kind: Pod
metadata: {name: stuck}
spec:
  containers:
    - name: echo
      image: knet/echo:1
      readinessProbe:
        exec: {command: ["false"]}
        periodSeconds: 5
"""


def test_setup_failure_reports_and_writes_pcap(inner: pytest.Pytester, tmp_path: Path) -> None:
    (inner.path / "stuck.yaml").write_text(NEVER_READY)
    inner.makepyfile("""
        import pytest

        @pytest.mark.knet(topology="stuck.yaml", seed=4, timeout=60)
        async def test_never_starts(knet_cluster):
            pass
    """)
    res = inner.runpytest(f"--knet-pcap-dir={tmp_path}")
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["*NetworkError: pods not ready: default/stuck*",
                              f"cluster 1: topology {inner.path / 'stuck.yaml'} seed=4",
                              f"  pcapng: {tmp_path}/*test_never_starts.pcapng"])
    (pcap,) = tmp_path.iterdir()
    assert pcap.stat().st_size > 0


def test_relative_topology_not_found_says_where_it_looked(inner: pytest.Pytester) -> None:
    # issue 12 item 14: the README snippet outside the repository
    inner.makepyfile(test_outside_repo="""
        import pytest

        @pytest.mark.knet(topology="topologies/demo.yaml")
        async def test_it(knet_cluster):
            pass
    """)
    r = inner.runpytest_inprocess()
    out = r.stdout.str()
    assert r.parseoutcomes().get("errors") == 1, out
    assert "Traceback" not in out and "ManifestError" not in out, out
    where = inner.path / "topologies" / "demo.yaml"
    assert f"topology 'topologies/demo.yaml' not found: looked at {where}" in out, out


def test_relative_topology_found_from_the_invocation_directory(inner: pytest.Pytester) -> None:
    (inner.path / "topos").mkdir()
    (inner.path / "topos" / "echo.yaml").write_text(Path(ECHO).read_text())
    sub = inner.path / "tests"
    sub.mkdir()
    (sub / "test_x.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.knet(topology='topos/echo.yaml')\n"
        "async def test_it(knet_cluster):\n"
        "    assert knet_cluster.pods()\n")
    (sub / "pytest.ini").write_text(INI)  # rootdir = tests/, invoked from its parent
    r = inner.runpytest_inprocess(str(sub))
    r.assert_outcomes(passed=1)
