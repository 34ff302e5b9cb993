"""The state of running ``knet up`` clusters: one private directory, one file per cluster.

Used by ``knet up`` (writes), by knet's clients (``knet get`` without ``-f``, ``knet trace
--server`` …: read) and by any other server ``knet up`` runs (the Kubernetes API keeps its
files in ``cluster_dir(name)``).

    state_dir()                 the private directory (created, ownership and mode checked)
    cluster_dir(name)           a private sub-directory for one cluster's other files
    claim(name, data)           register a starting cluster: unique name, a free loopback slot
    write(name, data)           replace ``<dir>/<name>.json`` atomically (mode 0600)
    read(name) / running()      the live clusters' state (dead pids and foreign files ignored)
    remove(name)                remove our file (never another process's)
    new_token()                 a per-run secret for a control endpoint (256 bits, URL-safe)

Invariants (issue 13.1: a shared /tmp must not let another local user redirect or overwrite):
- The directory is ``$XDG_RUNTIME_DIR/knet`` when that variable is set (a per-user 0700
  directory by the XDG spec), else ``/tmp/knet-$UID``. Either way knet creates it itself with
  mode 0700 and refuses to use one that is a symlink, not owned by the current user, or open
  to group/others: a directory planted beforehand by someone else is an error, not a home.
- Files are written by ``open(O_CREAT|O_EXCL|O_NOFOLLOW, 0600)`` of a fresh random name in that
  directory, then ``rename`` over the target: no pre-existing file or symlink is ever opened
  for writing.
- Reading opens with ``O_NOFOLLOW`` and checks the file is a regular file owned by the current
  user and not group/other accessible; anything else is ignored as if absent.
- Names are DNS-1123 labels (as kind cluster names), so a name never forms a path.
- Loopback slots: slot 0 is 127.0.1.x (nodes) / 127.0.2.x (LoadBalancer IPs); slot k ≥ 1 is
  127.(2k+1).x.y / 127.(2k+2).x.y. Loopback is shared by every user and every state directory
  of the host (network namespace), so a slot is held by binding the abstract Unix socket
  ``@knet-up-slot-<k>`` for the life of the process: the kernel makes the claim exclusive
  across users and releases it when the process dies, whatever happens to the files. A claim
  takes the lowest free slot, under an exclusive ``flock`` of ``<dir>/lock`` for the name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from knet.errors import UsageError

MAX_SLOTS = 63
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class StateError(UsageError):
    """The state directory or a state file cannot be used safely."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"--name: expected a DNS-1123 label (lowercase letters, digits, '-', "
                         f"at most 63 characters), got {name!r}")
    return name


def _uid() -> int:
    return os.getuid()


def _ensure_private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700, or accept it only if it is ours and private."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        raise StateError(f"state directory {path}: parent does not exist") from None
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise StateError(f"refusing state directory {path}: not a directory (a symlink or a "
                         f"file is in the way); remove it")
    if st.st_uid != _uid():
        raise StateError(f"refusing state directory {path}: owned by uid {st.st_uid}, not by "
                         f"you (uid {_uid()}); someone else created it, remove it or set "
                         f"XDG_RUNTIME_DIR")
    if st.st_mode & 0o077:
        raise StateError(f"refusing state directory {path}: mode "
                         f"{stat.S_IMODE(st.st_mode):04o}, expected 0700")
    return path


def state_dir(create: bool = True) -> Path:
    """``$XDG_RUNTIME_DIR/knet`` when set, else ``/tmp/knet-$UID``; created and checked."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(xdg) / "knet" if xdg else Path(f"/tmp/knet-{_uid()}")
    if not create:
        return path
    return _ensure_private_dir(path)


def cluster_dir(name: str) -> Path:
    """A private directory for one cluster's other files (kubeconfig, certificates …)."""
    return _ensure_private_dir(state_dir() / check_name(name))


def state_path(name: str) -> Path:
    return state_dir(create=False) / f"{check_name(name)}.json"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_bytes(directory: Path, filename: str, data: bytes, mode: int = 0o600) -> Path:
    """Atomically replace ``directory/filename`` with ``data`` (never following a symlink)."""
    target = directory / filename
    for _ in range(8):
        tmp = directory / f".{filename}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | getattr(os, "O_CLOEXEC", 0), mode)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return target
    raise StateError(f"cannot create a temporary file in {directory}")


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes if it is a regular file owned by us and private; else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != _uid() or st.st_mode & 0o077
                or st.st_size > 1 << 22):
            return None
        return fh.read()


def write(name: str, data: dict[str, Any]) -> Path:
    d = state_dir()
    return write_bytes(d, f"{check_name(name)}.json", (json.dumps(data, indent=2) + "\n").encode())


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _load(path: Path) -> dict[str, Any] | None:
    raw = read_bytes(path)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not _alive(data.get("pid")):
        return None
    return data


def read(name: str) -> dict[str, Any] | None:
    """A running cluster's state, or None (absent, stale, unsafe or unreadable)."""
    try:
        d = state_dir()
    except StateError:
        return None
    return _load(d / f"{check_name(name)}.json")


def running() -> dict[str, dict[str, Any]]:
    """Every running cluster's state by name (sorted by name)."""
    try:
        d = state_dir()
    except StateError:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(d.glob("*.json")):
        name = p.stem
        if not _NAME.match(name):
            continue
        data = _load(p)
        if data is not None:
            out[name] = data
    return out


def remove(name: str) -> None:
    """Remove ``name``'s state file if this process wrote it, and free its loopback slot."""
    try:
        d = state_dir()
    except StateError:
        return
    path = d / f"{check_name(name)}.json"
    raw = read_bytes(path)
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:
        return
    if isinstance(data, dict) and data.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()
        if isinstance(data.get("slot"), int):
            release_slot(data["slot"])


@contextlib.contextmanager
def _locked(d: Path) -> Iterator[None]:
    fd = os.open(d / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                 | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


_slots: dict[int, tuple[socket.socket, str]] = {}


def _hold_slot(slot: int, name: str) -> bool:
    """Bind ``@knet-up-slot-<slot>`` (Linux abstract namespace) for cluster ``name``; False
    if another process (or another of our clusters) holds it."""
    if slot in _slots:
        return _slots[slot][1] == name
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(f"\0knet-up-slot-{slot}")
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            return False
        raise
    _slots[slot] = (sock, name)
    return True


def release_slot(slot: int) -> None:
    held = _slots.pop(slot, None)
    if held is not None:
        held[0].close()


def _free_slot(used: set[Any], name: str) -> int | None:
    for s in range(MAX_SLOTS):
        if s in used:
            continue
        try:
            if _hold_slot(s, name):
                return s
        except OSError:  # no abstract namespace (not Linux): the state directory decides
            return s
    return None


def claim(name: str, data: dict[str, Any]) -> int:
    """Register a starting cluster ``name``: its state file (with ``data``, our pid and the
    loopback ``slot``) is written now. Returns the slot. A live cluster of the same name is a
    UsageError naming its pid."""
    d = state_dir()
    check_name(name)
    try:
        with _locked(d):
            live = running()
            other = live.get(name)
            if other is not None and other.get("pid") != os.getpid():
                raise UsageError(f'a cluster named "{name}" is already running (pid '
                                 f'{other.get("pid")}); stop it or choose another --name')
            used = {v.get("slot") for k, v in live.items() if k != name}
            slot = _free_slot(used, name)
            if slot is None:
                raise UsageError(f"{MAX_SLOTS} clusters are running; stop one first")
            write(name, {**data, "name": name, "pid": os.getpid(), "slot": slot})
            return slot
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EACCES, errno.EPERM):
            raise StateError(f"cannot use state directory {d}: {e.strerror}") from None
        raise


def owner_of(address: str) -> str | None:
    """The name of the running cluster (other than us) that lists ``address`` ("host:port")."""
    for name, data in running().items():
        if data.get("pid") == os.getpid():
            continue
        if f'"{address}"' in json.dumps(data):
            return name
    return None
