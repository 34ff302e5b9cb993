"""``knet up``'s state directory and files (issue 13.1, 12.3): private, atomic, never followed
through a symlink, one file per named cluster, distinct loopback slots."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from knet.errors import UsageError
from knet.expose import plan, state
from knet.expose.control import server_url, token_for

OTHER_UID = 54321


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("KNET_SERVER", raising=False)
    monkeypatch.delenv("KNET_TOKEN", raising=False)
    return tmp_path / "knet"


def test_state_dir_is_created_private(xdg: Path) -> None:
    d = state.state_dir()
    assert d == xdg
    st = os.lstat(d)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()


def test_tmp_fallback_without_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert state.state_dir(create=False) == Path(f"/tmp/knet-{os.getuid()}")


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")
def test_a_directory_planted_by_another_user_is_refused(xdg: Path) -> None:
    xdg.mkdir(mode=0o700)
    os.chown(xdg, OTHER_UID, OTHER_UID)
    with pytest.raises(state.StateError, match="owned by uid 54321, not by you"):
        state.write("knet", {"pid": os.getpid()})
    assert not (xdg / "knet.json").exists()


def test_an_open_or_symlinked_directory_is_refused(xdg: Path, tmp_path: Path) -> None:
    xdg.mkdir(mode=0o755)
    os.chmod(xdg, 0o755)
    with pytest.raises(state.StateError, match="mode 0755, expected 0700"):
        state.state_dir()
    xdg.rmdir()
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    xdg.symlink_to(target)
    with pytest.raises(state.StateError, match="not a directory"):
        state.state_dir()


def test_planted_symlinks_are_never_written_through(xdg: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    d = state.state_dir()
    # every name the old code wrote through: the pid temp file and the target itself
    for name in (f"up.{os.getpid()}.tmp", f".knet.json.{os.getpid()}.tmp", "knet.json"):
        (d / name).symlink_to(victim)
    state.write("knet", {"pid": os.getpid(), "x": 1})
    assert victim.read_text() == "precious\n"
    assert not (d / "knet.json").is_symlink()
    st = os.lstat(d / "knet.json")
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert json.loads((d / "knet.json").read_text())["x"] == 1


def test_reading_ignores_foreign_or_open_or_symlinked_files(xdg: Path, tmp_path: Path) -> None:
    d = state.state_dir()
    data = json.dumps({"pid": os.getpid(), "control": {"url": "http://127.0.0.1:9", "token": "t"}})
    f = d / "a.json"
    f.write_text(data)
    os.chmod(f, 0o600)
    assert state.read("a") is not None
    os.chmod(f, 0o644)
    assert state.read("a") is None  # readable by others: not ours to trust
    os.chmod(f, 0o600)
    if os.getuid() == 0:
        os.chown(f, OTHER_UID, OTHER_UID)
        assert state.read("a") is None
        os.chown(f, 0, 0)
    elsewhere = tmp_path / "b.json"
    elsewhere.write_text(data)
    os.chmod(elsewhere, 0o600)
    (d / "b.json").symlink_to(elsewhere)
    assert state.read("b") is None
    assert set(state.running()) == {"a"}


def test_dead_pids_are_ignored(xdg: Path) -> None:
    state.write("gone", {"pid": 2**22 + 12345})
    assert state.read("gone") is None and state.running() == {}


def test_names_are_dns_labels(xdg: Path) -> None:
    for bad in ("../x", "A", "a/b", "", "x" * 64, "-a"):
        with pytest.raises(UsageError, match="DNS-1123 label"):
            state.check_name(bad)


def test_claims_give_distinct_slots_and_refuse_a_running_name(xdg: Path) -> None:
    one = state.claim("one", {})
    # another live process holds "two" on the next slot (our parent stands for it)
    state.write("two", {"pid": os.getppid(), "slot": one + 1, "name": "two"})
    three = state.claim("three", {})
    assert three not in (one, one + 1)
    assert state.claim("three", {}) == three  # claiming again keeps the slot
    state.write("four", {"pid": os.getppid(), "name": "four", "slot": 40})
    with pytest.raises(UsageError, match='a cluster named "four" is already running'):
        state.claim("four", {})
    state.remove("one")
    assert not (xdg / "one.json").exists()
    assert state.claim("five", {}) == one  # freed by remove
    state.remove("two")  # not ours: kept
    assert (xdg / "two.json").exists()
    for n in ("three", "five"):
        state.remove(n)


def test_slots_are_exclusive_across_state_directories(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback is shared by every user of the host: a cluster started with another
    XDG_RUNTIME_DIR (another user, another test run) must not get the same slot."""
    code = ("import os, sys; from knet.expose import state; "
            "print(state.claim('knet', {}), flush=True); sys.stdin.read()")
    import subprocess
    import sys
    d1, d2 = tmp_path / "a", tmp_path / "b"
    d1.mkdir()
    d2.mkdir()
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "XDG_RUNTIME_DIR": str(d1)})
    try:
        assert p.stdout is not None
        theirs = int(p.stdout.readline())
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(d2))
        ours = state.claim("knet", {})
        assert ours != theirs
        state.remove("knet")
    finally:
        p.communicate("")


def test_slots_use_disjoint_loopback_ranges() -> None:
    seen: dict[str, int] = {}
    for slot in range(4):
        book = plan.AddressBook(slot)
        book.update([f"n{i}" for i in range(300)], [])
        lb = plan.AddressBook(slot)
        from ipaddress import ip_address
        lb.update([], [ip_address(f"172.18.{i // 250}.{i % 250 + 1}") for i in range(300)])
        for a in [*book.nodes.values(), *lb.lbs.values()]:
            assert a.is_loopback
            assert seen.setdefault(str(a), slot) == slot
    assert str(plan.node_loopback(0, 0)) == "127.0.1.2" and str(plan.lb_loopback(0, 0)) == "127.0.2.1"
    assert str(plan.node_loopback(0, 1)) == "127.3.0.2" and str(plan.lb_loopback(0, 1)) == "127.4.0.1"


def test_clients_pick_the_cluster(xdg: Path) -> None:
    assert server_url(None) is None
    state.write("a", {"pid": os.getpid(), "control": {"url": "http://127.0.0.1:1001", "token": "ta"}})
    assert server_url(None) == "http://127.0.0.1:1001"
    assert token_for("http://127.0.0.1:1001") == "ta"
    state.write("b", {"pid": os.getpid(), "control": {"url": "http://127.0.0.1:1002", "token": "tb"}})
    with pytest.raises(UsageError, match=r"2 clusters are running \(a, b\): choose one with "
                                         r"--cluster NAME"):
        server_url(None)
    assert server_url(None, "b") == "http://127.0.0.1:1002"
    with pytest.raises(UsageError, match=r'no running cluster named "c" \(running: a, b\)'):
        server_url(None, "c")
    state.write("c", {"pid": os.getpid(), "starting": True})
    with pytest.raises(UsageError, match="no control endpoint"):
        server_url(None, "c")
