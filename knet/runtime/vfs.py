"""A container's filesystem, in memory: the image's skeleton, a writable layer and mounts.

Invariants:
- Nothing touches the real machine. Paths are absolute, ``/``-separated, normalised here.
- A mount is a shared ``Dir`` (emptyDir shared by a pod's containers, a node's hostPath, an
  NFS export, a PersistentVolume) or a ``File`` (a subPath of one file); the mounted object is
  the same Python object for every container that mounts it, so writes are seen at once.
- Read-only mounts (configMap, secret, downwardAPI, projected; ``readOnly: true``) refuse
  writes with EROFS, as the kernel does.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field


class FSError(OSError):
    """errno-style failure: ``strerror`` is what busybox prints."""


ENOENT = "No such file or directory"
EISDIR = "Is a directory"
ENOTDIR = "Not a directory"
EROFS = "Read-only file system"
EEXIST = "File exists"
ENOTEMPTY = "Directory not empty"


@dataclass
class File:
    data: bytes = b""
    mode: int = 0o644
    mtime: float = 0.0
    link: str | None = None  # a symlink's target


@dataclass
class Dir:
    entries: dict[str, File | Dir] = field(default_factory=dict)
    mode: int = 0o755
    mtime: float = 0.0
    readonly: bool = False

    def mkdirs(self, rel: str) -> Dir:
        d = self
        for part in [p for p in rel.split("/") if p]:
            nxt = d.entries.get(part)
            if not isinstance(nxt, Dir):
                nxt = d.entries[part] = Dir()
            d = nxt
        return d

    def put(self, rel: str, data: bytes | str, mode: int = 0o644) -> None:
        parent, _, name = rel.strip("/").rpartition("/")
        self.mkdirs(parent).entries[name] = File(data.encode() if isinstance(data, str) else data,
                                                 mode)

    def replace_with(self, other: Dir) -> None:
        """Swap contents atomically (kubelet's ``..data`` symlink swap for configMap volumes)."""
        self.entries = other.entries


Node = File | Dir

SKELETON = ("bin", "dev", "etc", "home", "proc", "root", "run", "sys", "tmp", "usr/bin",
            "usr/local/bin", "var/log", "var/run", "var/tmp", "lib")
BUSYBOX_ETC = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                  "nobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n",
    "etc/os-release": 'NAME="knet container"\nID=knet\nPRETTY_NAME="knet virtual container"\n',
}


def norm(path: str, cwd: str = "/") -> str:
    p = posixpath.normpath(posixpath.join(cwd, path)) if path else cwd
    return "/" + p.lstrip("/") if p != "/" else "/"


class VirtualFS:
    """A container's view: root layer (image skeleton + writable layer) plus mounts."""

    def __init__(self, skeleton: bool = True) -> None:
        self.root = Dir()
        self.mounts: dict[str, tuple[Node, bool]] = {}  # path → (node, read-only)
        if skeleton:
            for d in SKELETON:
                self.root.mkdirs(d)
            self.root.mkdirs("tmp").mode = 0o1777
            for rel, text in BUSYBOX_ETC.items():
                self.root.put(rel, text)

    # -- mounts -------------------------------------------------------------------------
    def mount(self, path: str, node: Node, readonly: bool = False) -> None:
        path = norm(path)
        parent = posixpath.dirname(path)
        if parent != "/" and not self.isdir(parent):
            self._mkdir_raw(parent)
        name = posixpath.basename(path)
        pd = self._lookup(parent)
        if isinstance(pd, Dir) and name not in pd.entries:
            pd.entries[name] = Dir() if isinstance(node, Dir) else File()
        self.mounts[path] = (node, readonly)

    def _mkdir_raw(self, path: str) -> None:
        cur = "/"
        for part in [p for p in path.split("/") if p]:
            nxt = posixpath.join(cur, part)
            d = self._lookup(cur)
            if isinstance(d, Dir) and not isinstance(d.entries.get(part), (Dir,)) \
                    and nxt not in self.mounts:
                d.entries[part] = Dir()
            cur = nxt

    def _lookup(self, path: str, follow: bool = True, depth: int = 0) -> Node | None:
        path = norm(path)
        if path in self.mounts:
            return self.mounts[path][0]
        node: Node | None = self.root
        cur = "/"
        for part in [p for p in path.split("/") if p]:
            if not isinstance(node, Dir):
                return None
            cur = posixpath.join(cur, part)
            node = self.mounts[cur][0] if cur in self.mounts else node.entries.get(part)
            if isinstance(node, File) and node.link is not None and (follow or cur != path) \
                    and depth < 8:
                node = self._lookup(norm(node.link, posixpath.dirname(cur)), True, depth + 1)
        return node

    def _readonly(self, path: str) -> bool:
        path = norm(path)
        best = ""
        for m in self.mounts:
            if (path == m or path.startswith(m.rstrip("/") + "/")) and len(m) > len(best):
                best = m
        if best:
            node = self.mounts[best][0]
            return self.mounts[best][1] or (isinstance(node, Dir) and node.readonly)
        return False

    def _parent(self, path: str) -> tuple[Dir, str]:
        path = norm(path)
        parent, name = posixpath.split(path)
        d = self._lookup(parent)
        if d is None:
            raise FSError(2, ENOENT)
        if not isinstance(d, Dir):
            raise FSError(20, ENOTDIR)
        if self._readonly(path):
            raise FSError(30, EROFS)
        return d, name

    # -- queries ------------------------------------------------------------------------
    def node(self, path: str, follow: bool = True) -> Node | None:
        return self._lookup(path, follow)

    def exists(self, path: str) -> bool:
        return self._lookup(path) is not None

    def isdir(self, path: str) -> bool:
        return isinstance(self._lookup(path), Dir)

    def isfile(self, path: str) -> bool:
        return isinstance(self._lookup(path), File)

    def read(self, path: str) -> bytes | None:
        n = self._lookup(path)
        return n.data if isinstance(n, File) else None

    def listdir(self, path: str) -> list[str]:
        n = self._lookup(path)
        if n is None:
            raise FSError(2, ENOENT)
        if not isinstance(n, Dir):
            raise FSError(20, ENOTDIR)
        return sorted(n.entries)

    # -- changes ------------------------------------------------------------------------
    def write(self, path: str, data: bytes | str = b"", append: bool = False, *,
              parents: bool = True, mode: int | None = None) -> None:
        """Write a file (creating parent directories unless ``parents=False``)."""
        b = data.encode() if isinstance(data, str) else data
        path = norm(path)
        if parents:
            self._mkdir_raw(posixpath.dirname(path))
        existing = self._lookup(path)
        if isinstance(existing, Dir):
            raise FSError(21, EISDIR)
        if self._readonly(path):
            raise FSError(30, EROFS)
        if isinstance(existing, File):
            existing.data = existing.data + b if append else b
            return
        d, name = self._parent(path)
        d.entries[name] = File(b, 0o644 if mode is None else mode)

    def mkdir(self, path: str, parents: bool = False) -> None:
        path = norm(path)
        if self._lookup(path) is not None:
            if parents and self.isdir(path):
                return
            raise FSError(17, EEXIST)
        if parents:
            parent = posixpath.dirname(path)
            if parent != path and not self.isdir(parent):
                self.mkdir(parent, True)
        d, name = self._parent(path)
        d.entries[name] = Dir()

    def remove(self, path: str, recursive: bool = False) -> bool:
        path = norm(path)
        if path in self.mounts or path == "/":
            return False
        try:
            d, name = self._parent(path)
        except FSError:
            return False
        n = d.entries.get(name)
        if n is None:
            return False
        if isinstance(n, Dir) and n.entries and not recursive:
            return False
        del d.entries[name]
        return True

    def unlink(self, path: str, recursive: bool = False, dirs: bool = False) -> None:
        """rm semantics with errors: ENOENT, EISDIR (without -r), EROFS, EBUSY on mounts."""
        path = norm(path)
        n = self._lookup(path, follow=False)
        if n is None:
            raise FSError(2, ENOENT)
        if isinstance(n, Dir) and not (recursive or dirs):
            raise FSError(21, EISDIR)
        if isinstance(n, Dir) and dirs and not recursive and n.entries:
            raise FSError(39, ENOTEMPTY)
        if path in self.mounts:
            raise FSError(16, "Resource busy")
        d, name = self._parent(path)
        d.entries.pop(name, None)

    def link(self, path: str, node: Node) -> None:
        d, name = self._parent(path)
        d.entries[name] = node

    def walk(self, path: str) -> list[str]:
        """Every path below ``path`` (files and directories), sorted, mounts included."""
        out: list[str] = []
        n = self._lookup(path)
        if isinstance(n, Dir):
            for name in sorted(n.entries):
                p = posixpath.join(norm(path), name)
                out.append(p)
                out.extend(self.walk(p))
        return out

    @property
    def files(self) -> dict[str, bytes]:
        """Every regular file of the writable layer and mounts: path → bytes."""
        out: dict[str, bytes] = {}
        for p in self.walk("/"):
            n = self._lookup(p)
            if isinstance(n, File):
                out[p] = n.data
        return out

    def __repr__(self) -> str:
        return f"<VirtualFS mounts={sorted(self.mounts)}>"


__all__ = ["VirtualFS", "Dir", "File", "FSError", "norm"]
