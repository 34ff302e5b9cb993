"""The pod shell: POSIX ``sh`` as busybox ``ash`` runs container commands, probes and exec.

Invariants:
- Commands never touch the real machine: files live in the container's ``VirtualFS``; time
  passes through ``asyncio.sleep`` (virtual under the VirtualTimeLoop); network tools go
  through the pod's network namespace on the fabric (``knet.runtime.nettools``).
- The grammar is ``knet.runtime.shparse``; this module expands words (parameters, ``$(…)``,
  backquotes, ``$((…))``, field splitting, globbing against the virtual filesystem) and runs
  the tree: pipelines (stages run in order, each stage's output is the next one's input),
  ``&&``/``||``, ``!``, redirections, compound commands, functions, ``&`` jobs and ``wait``,
  ``trap`` (SIGTERM reaches only PID 1: without a trap the shell ignores it, as PID 1 does),
  ``set -e/-u/-x``.
- A command that is neither a builtin nor an applet (``knet.runtime.coreutils``,
  ``knet.runtime.nettools``) fails with ash's ``sh: X: not found`` and exit code 127.
"""

from __future__ import annotations

import asyncio
import fnmatch
import posixpath
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from knet.runtime import shparse as ast
from knet.runtime.shparse import ShellSyntaxError, parse
from knet.runtime.vfs import FSError, VirtualFS, norm

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "busybox"})
SPECIAL_BUILTINS = frozenset({":", ".", "break", "continue", "eval", "exec", "exit", "export",
                              "readonly", "return", "set", "shift", "trap", "unset"})
SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "TERM": 15,
           "EXIT": 0}
# a runaway loop without a sleep still lets virtual time move (1 ms per 1000 commands)
_YIELD_EVERY = 1000


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Return(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Break(Exception):
    def __init__(self, n: int, cont: bool) -> None:
        self.n = n
        self.cont = cont


class Sink:
    """An output stream: collects text and/or forwards complete lines to a callback."""

    def __init__(self, line: Callable[[str], None] | None = None, keep: bool = True,
                 raw: Callable[[str], None] | None = None) -> None:
        self.parts: list[str] = []
        self.line = line
        self.raw = raw
        self.keep = keep
        self._partial = ""

    def write(self, text: str) -> None:
        if not text:
            return
        if self.keep:
            self.parts.append(text)
        if self.raw is not None:
            self.raw(text)
        if self.line is not None:
            buf = self._partial + text
            *lines, self._partial = buf.split("\n")
            for ln in lines:
                self.line(ln)

    def flush(self) -> None:
        if self.line is not None and self._partial:
            self.line(self._partial)
            self._partial = ""

    def getvalue(self) -> str:
        return "".join(self.parts)


@dataclass
class IO:
    """A command's standard streams: ``stdin`` text, ``out``/``err`` sinks."""

    stdin: str = ""
    out: Sink = field(default_factory=Sink)
    err: Sink = field(default_factory=Sink)

    def print(self, text: str) -> None:
        self.out.write(text)

    def error(self, text: str) -> None:
        self.err.write(text)


Applet = Callable[["Shell", list[str], IO], Awaitable[int]]
APPLETS: dict[str, Applet] = {}


def applet(*names: str) -> Callable[[Applet], Applet]:
    def register(fn: Applet) -> Applet:
        for n in names:
            APPLETS[n] = fn
        return fn
    return register


@dataclass
class _Job:
    pid: int
    task: asyncio.Task[int]


class Shell:
    """One shell process. ``net`` is the pod handle network tools use (None: no network)."""

    def __init__(self, fs: VirtualFS, hostname: str = "", out: Callable[[str], None] | None = None,
                 *, log: Callable[[str], None] | None = None,
                 env: dict[str, str] | None = None, net: Any = None,
                 stopping: asyncio.Event | None = None, err: Callable[[str], None] | None = None,
                 pid1: bool = False, clock: Callable[[], float] | None = None) -> None:
        self.fs = fs
        self.hostname = hostname
        self._raw_out = out  # receives output as written (text chunks)
        self._raw_err = err
        self._log = log  # receives complete lines of stdout and stderr (container logs)
        self.env: dict[str, str] = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                                            "/sbin:/bin", "HOME": "/root", "PWD": "/",
                                    **({"HOSTNAME": hostname} if hostname else {}), **(env or {})}
        self.exported: set[str] = set(self.env)
        self.vars: dict[str, str] = {"IFS": " \t\n", "PS1": "\\w \\$ ", "PS2": "> "}
        self.funcs: dict[str, Any] = {}
        self.positional: list[str] = []
        self.arg0 = "sh"
        self.status = 0
        self.cwd = "/"
        self.net = net
        self.stopping = stopping
        self.pid1 = pid1
        self.traps: dict[str, str] = {}
        self.jobs: list[_Job] = []
        self.last_bg = 0
        self.next_pid = 7
        self.pid = 1 if pid1 else 1000
        self.opts: set[str] = set()
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self._count = 0
        self._cond = 0
        self._term_handled = False
        self._in_trap = False

    # -- entry points -----------------------------------------------------------------------
    async def run_argv(self, argv: Sequence[str], io: IO | None = None) -> int:
        """Run a container command (``command`` + ``args``) or an exec; returns the exit code."""
        io = io or self._default_io()
        try:
            code = await self._argv(list(argv), io)
        finally:
            await self._exit_trap(io)
            io.out.flush()
            io.err.flush()
        return code

    async def _argv(self, argv: list[str], io: IO) -> int:
        if not argv:
            return 0
        prog = posixpath.basename(argv[0])
        if prog == "busybox" and len(argv) > 1:
            return await self._argv(argv[1:], io)
        if prog in SHELLS:
            args = argv[1:]
            while args and args[0].startswith("-") and args[0] != "-c" and len(args[0]) > 1:
                for ch in args[0][1:]:
                    self._setopt(ch, True)
                args = args[1:]
            if args and args[0] == "-c":
                script = args[1] if len(args) > 1 else ""
                if len(args) > 2:
                    self.arg0 = args[2]
                    self.positional = list(args[3:])
                return await self.run_script(script, io)
            if args:
                data = self.fs.read(norm(args[0], self.cwd))
                if data is None:
                    io.error(f"{prog}: can't open '{args[0]}': No such file or directory\n")
                    return 2
                self.arg0, self.positional = args[0], list(args[1:])
                return await self.run_script(data.decode(errors="replace"), io)
            if io.stdin:
                return await self.run_script(io.stdin, IO("", io.out, io.err))
            return 0  # a shell without a script and without a tty exits at once
        try:
            return await self._command(argv, io)
        except _Exit as e:
            return e.code

    async def run_script(self, script: str, io: IO | None = None) -> int:
        io = io or self._default_io()
        try:
            tree = parse(script)
        except ShellSyntaxError as e:
            io.error(f"sh: {e}\n")
            return 2
        try:
            return await self.run_seq(tree, io)
        except _Exit as e:
            self.status = e.code
            return e.code
        except _Return as e:
            return e.code
        except _Break:
            return self.status

    async def run_script_keep(self, script: str, io: IO) -> int:
        """One line of an interactive session: ``exit`` propagates as ``_Exit``."""
        try:
            tree = parse(script)
        except ShellSyntaxError as e:
            io.error(f"sh: {e}\n")
            self.status = 2
            return 2
        try:
            return await self.run_seq(tree, io)
        except (_Return, _Break):
            return self.status

    def _default_io(self) -> IO:
        return IO("", Sink(self._log, keep=False, raw=self._raw_out),
                  Sink(self._log, keep=False, raw=self._raw_err))

    # -- tree walking -----------------------------------------------------------------------
    async def run_seq(self, seq: ast.Seq, io: IO) -> int:
        status = self.status
        for item in seq.items:
            if item.background:
                self._spawn(item.node, io)
                status = 0
            else:
                status = await self.run_andor(item.node, io)  # type: ignore[arg-type]
            self.status = status
            await self._check_signals(io)
        return status

    def _spawn(self, node: Any, io: IO) -> None:
        child = self.clone()
        pid = self.next_pid
        self.next_pid += 1
        child.pid = pid

        async def job() -> int:
            try:
                return await child.run_andor(node, IO("", io.out, io.err))
            except _Exit as e:
                return e.code
            except (_Return, _Break):
                return child.status
        task = asyncio.get_running_loop().create_task(job(), name=f"sh job {pid}")
        self.jobs.append(_Job(pid, task))
        self.last_bg = pid

    async def run_andor(self, node: ast.AndOr, io: IO) -> int:
        pipes = [node.first] + [p for _, p in node.rest]
        status = 0
        for i, pipe in enumerate(pipes):
            if i > 0 and (node.rest[i - 1][0] == "&&") != (status == 0):
                continue
            last = i == len(pipes) - 1
            if not last:
                self._cond += 1
            try:
                status = await self.run_pipeline(pipe, io)  # type: ignore[arg-type]
            finally:
                if not last:
                    self._cond -= 1
            self.status = status
        return status

    async def run_pipeline(self, pipe: ast.Pipeline, io: IO) -> int:
        if pipe.negate:
            self._cond += 1
        try:
            if len(pipe.commands) == 1:
                status = await self.run_command(pipe.commands[0], io)
            else:
                data = io.stdin
                status = 0
                for i, cmd in enumerate(pipe.commands):
                    last = i == len(pipe.commands) - 1
                    sink = io.out if last else Sink()
                    sub = self if last else self.clone()
                    try:
                        status = await sub.run_command(cmd, IO(data, sink, io.err))
                    except _Exit as e:
                        status = e.code
                    data = "" if last else sink.getvalue()
        finally:
            if pipe.negate:
                self._cond -= 1
        if pipe.negate:
            return 0 if status else 1
        return status

    async def run_command(self, cmd: Any, io: IO) -> int:
        self._count += 1
        if self._count % _YIELD_EVERY == 0:
            await asyncio.sleep(0.001)
        if isinstance(cmd, ast.Simple):
            status = await self._simple(cmd, io)
            if status and "e" in self.opts and not self._cond:
                raise _Exit(status)
            return status
        if isinstance(cmd, ast.FuncDef):
            self.funcs[cmd.name] = cmd.body
            return 0
        assert isinstance(cmd, ast.Compound)
        try:
            io2 = await self._redirect(cmd.redirects, io)
        except FSError as e:
            io.error(f"sh: {e.strerror}\n")
            return 1
        try:
            return await self._compound(cmd.node, io2)
        finally:
            self._close(io2, io)

    async def _compound(self, node: Any, io: IO) -> int:
        if isinstance(node, ast.Group):
            if node.subshell:
                sub = self.clone()
                try:
                    return await sub.run_seq(node.body, io)
                except _Exit as e:
                    return e.code
            return await self.run_seq(node.body, io)
        if isinstance(node, ast.If):
            for cond, body in node.branches:
                if await self._test(cond, io) == 0:
                    return await self.run_seq(body, io)
            if node.orelse is not None:
                return await self.run_seq(node.orelse, io)
            return 0
        if isinstance(node, ast.Loop):
            status = 0
            while True:
                c = await self._test(node.cond, io)
                if (c == 0) == node.until:
                    break
                try:
                    status = await self.run_seq(node.body, io)
                except _Break as b:
                    if b.n > 1:
                        raise _Break(b.n - 1, b.cont) from None
                    if not b.cont:
                        break
                await asyncio.sleep(0)
            return status
        if isinstance(node, ast.For):
            words = list(self.positional) if node.words is None else \
                [f for w in node.words for f in await self.expand(w, io)]
            status = 0
            for w in words:
                self.setvar(node.var, w)
                try:
                    status = await self.run_seq(node.body, io)
                except _Break as b:
                    if b.n > 1:
                        raise _Break(b.n - 1, b.cont) from None
                    if not b.cont:
                        break
            return status
        if isinstance(node, ast.Case):
            word = await self.expand_str(node.word, io)
            for pats, body in node.arms:
                for p in pats:
                    if fnmatch.fnmatchcase(word, await self._pattern(p, io)):
                        return await self.run_seq(body, io)
            return 0
        raise AssertionError(node)

    async def _test(self, seq: ast.Seq, io: IO) -> int:
        self._cond += 1
        try:
            return await self.run_seq(seq, io)
        finally:
            self._cond -= 1

    async def _simple(self, cmd: ast.Simple, io: IO) -> int:
        argv: list[str] = []
        for w in cmd.words:
            argv += await self.expand(w, io)
        assigns = []
        for a in cmd.assigns:
            name, _, value = a.partition("=")
            assigns.append((name, await self.expand_str(value, io, assign=True)))
        if "x" in self.opts and (argv or assigns):
            io.error("+ " + " ".join([f"{n}={v}" for n, v in assigns] + argv) + "\n")
        try:
            io2 = await self._redirect(cmd.redirects, io)
        except FSError as e:
            io.error(f"sh: {e.filename or ''}{': ' if e.filename else ''}{e.strerror}\n")
            return 1
        except _ExpandError as e:
            io.error(f"sh: {e}\n")
            raise _Exit(1) from None  # a non-interactive shell exits on an expansion error
        try:
            if not argv:
                for name, value in assigns:
                    self.setvar(name, value)
                return self.status if cmd.words else 0
            saved: dict[str, str | None] = {}
            if assigns:
                if argv[0] in SPECIAL_BUILTINS:
                    for name, value in assigns:
                        self.setvar(name, value)
                else:
                    for name, value in assigns:
                        saved[name] = self.env.get(name)
                        self.env[name] = value
            try:
                return await self._command(argv, io2)
            finally:
                for name, old in saved.items():
                    if old is None:
                        self.env.pop(name, None)
                    else:
                        self.env[name] = old
        finally:
            self._close(io2, io)

    async def _command(self, argv: list[str], io: IO) -> int:
        name = argv[0]
        if name in self.funcs:
            saved = self.positional
            self.positional = argv[1:]
            try:
                return await self.run_command(self.funcs[name], io)
            except _Return as r:
                return r.code
            finally:
                self.positional = saved
        b = _BUILTINS.get(name)
        if b is not None:
            return await b(self, argv, io)
        prog = posixpath.basename(name) if "/" in name else name
        if prog in SHELLS:
            sub = self.clone()
            sub.pid1 = False
            sub.positional = []
            return await sub._argv(argv, io)
        fn = APPLETS.get(prog)
        if fn is None or ("/" in name and not _applet_path(name)):
            io.error(f"sh: {name}: not found\n")
            return 127
        try:
            return await fn(self, argv, io)
        except FSError as e:
            io.error(f"{prog}: {e.filename + ': ' if e.filename else ''}{e.strerror}\n")
            return 1

    # -- redirections ----------------------------------------------------------------------
    async def _redirect(self, redirects: list[ast.Redirect], io: IO) -> IO:
        if not redirects:
            return io
        out, err, stdin = io.out, io.err, io.stdin
        files: list[tuple[str, Sink, bool]] = []
        for r in redirects:
            if r.op in ("<<", "<<-"):
                text = r.heredoc or ""
                stdin = text if r.quoted else await self.expand_str(text, io, heredoc=True)
                continue
            target = await self.expand_str(r.target, io)
            fd = r.fd if r.fd is not None else (0 if r.op in ("<", "<&", "<>") else 1)
            if r.op in (">&", "<&"):
                if target == "-":
                    sink: Sink = Sink(keep=False)
                elif target in ("1", "2"):
                    sink = out if target == "1" else err
                    if fd == 1:
                        out = sink
                    elif fd == 2:
                        err = sink
                    continue
                else:
                    raise FSError(9, "Bad file descriptor")
            elif r.op == "<":
                data = self.fs.read(norm(target, self.cwd))
                if data is None:
                    raise FSError(2, "No such file or directory", f"can't open '{target}'")
                stdin = data.decode(errors="replace")
                continue
            else:
                path = norm(target, self.cwd)
                if path in ("/dev/null", "/dev/zero"):
                    sink = Sink(keep=False)
                elif path in ("/dev/stdout", "/proc/self/fd/1"):
                    sink = io.out
                elif path in ("/dev/stderr", "/proc/self/fd/2"):
                    sink = io.err
                else:
                    append = r.op == ">>"
                    if self.fs.isdir(path):
                        raise FSError(21, "Is a directory", f"can't create {target}")
                    parent = posixpath.dirname(path)
                    if not self.fs.isdir(parent):
                        raise FSError(2, "nonexistent directory", f"can't create {target}")
                    try:
                        self.fs.write(path, b"", append=True, parents=False)
                        if not append:
                            self.fs.write(path, b"", parents=False)
                    except FSError as e:
                        raise FSError(e.errno, e.strerror, f"can't create {target}") from None
                    sink = Sink()
                    files.append((path, sink, append))
            if fd == 1:
                out = sink
            elif fd == 2:
                err = sink
        io2 = IO(stdin, out, err)
        io2._files = files  # type: ignore[attr-defined]
        return io2

    def _close(self, io2: IO, io: IO) -> None:
        for path, sink, _ in getattr(io2, "_files", ()):
            try:
                self.fs.write(path, sink.getvalue(), append=True, parents=False)
            except FSError:
                pass

    # -- signals, jobs ---------------------------------------------------------------------
    async def _check_signals(self, io: IO) -> None:
        if self.stopping is not None and self.stopping.is_set() and self.pid1 and \
                not self._term_handled and not self._in_trap:
            self._term_handled = True
            action = self.traps.get("TERM")
            if action:
                self._in_trap = True
                try:
                    await self.run_seq(parse(action), io)
                finally:
                    self._in_trap = False
            elif action is None and not self.pid1:
                raise _Exit(143)

    async def _exit_trap(self, io: IO) -> None:
        action = self.traps.pop("EXIT", None)
        if action:
            try:
                await self.run_seq(parse(action), io)
            except (_Exit, _Return, _Break, ShellSyntaxError):
                pass

    def term_pending(self) -> bool:
        return bool(self.stopping is not None and self.stopping.is_set() and self.pid1
                    and self.traps.get("TERM") and not self._term_handled)

    # -- state -----------------------------------------------------------------------------
    def clone(self) -> Shell:
        sub = Shell.__new__(Shell)
        sub.__dict__.update(self.__dict__)
        sub.env = dict(self.env)
        sub.exported = set(self.exported)
        sub.vars = dict(self.vars)
        sub.funcs = dict(self.funcs)
        sub.positional = list(self.positional)
        sub.traps = {}
        sub.jobs = []
        sub.opts = set(self.opts)
        sub.pid1 = False
        return sub

    def getvar(self, name: str) -> str | None:
        if name in self.env:
            return self.env[name]
        return self.vars.get(name)

    def setvar(self, name: str, value: str) -> None:
        if name in self.env or name in self.exported:
            self.env[name] = value
        else:
            self.vars[name] = value
        if name == "PWD":
            self.cwd = value

    def unset(self, name: str) -> None:
        self.env.pop(name, None)
        self.vars.pop(name, None)
        self.exported.discard(name)

    def _setopt(self, ch: str, on: bool) -> None:
        if ch in "eux":
            (self.opts.add if on else self.opts.discard)(ch)

    def path(self, p: str) -> str:
        return norm(p, self.cwd)

    # -- expansion -------------------------------------------------------------------------
    def _special(self, name: str) -> str | None:
        if name == "?":
            return str(self.status)
        if name == "$":
            return str(self.pid)
        if name == "!":
            return str(self.last_bg) if self.last_bg else ""
        if name == "#":
            return str(len(self.positional))
        if name == "0":
            return self.arg0
        if name.isdigit():
            i = int(name)
            return self.positional[i - 1] if i <= len(self.positional) else None
        if name in ("@", "*"):
            return " ".join(self.positional)
        if name == "-":
            return "".join(sorted(self.opts))
        return self.getvar(name)

    async def expand(self, word: str, io: IO) -> list[str]:
        """Full word expansion: a list of fields."""
        segs = await self._segments(word, io, in_dq=False)
        fields: list[str] = []
        cur: list[str] = []
        have = False  # the current field exists even if empty (quotes)
        glob = False
        ifs = self.vars.get("IFS", " \t\n") if "IFS" not in self.env else self.env["IFS"]
        for text, quoted, split in segs:
            if text is _FIELD_BREAK:
                if have or cur:
                    fields.append("".join(cur))
                cur, have = [], False
                continue
            if quoted:
                cur.append(_escape_glob(text))
                have = True
            elif split:
                parts = _ifs_split(text, ifs)
                for i, p in enumerate(parts):
                    if i > 0:
                        if have or cur:
                            fields.append("".join(cur))
                        cur, have = [], False
                    if p:
                        cur.append(_escape_glob(p))
                        have = True
                if text and text[-1] in ifs and text.strip(ifs):
                    if have or cur:
                        fields.append("".join(cur))
                    cur, have = [], False
            else:
                if any(c in text for c in "*?["):
                    glob = True
                cur.append(text)
                have = True
        if have or cur:
            fields.append("".join(cur))
        out = []
        for f in fields:
            if glob and any(c in f for c in "*?["):
                matches = self._glob(f)
                if matches:
                    out.extend(matches)
                    continue
            out.append(_unescape_glob(f))
        return out

    async def expand_str(self, word: str, io: IO, *, assign: bool = False,
                         heredoc: bool = False) -> str:
        """Expansion without field splitting or globbing (assignments, redirects, here-docs)."""
        segs = await self._segments(word, io, in_dq=heredoc, heredoc=heredoc)
        return "".join(" " if t is _FIELD_BREAK else t for t, _, _ in segs)

    async def _pattern(self, word: str, io: IO) -> str:
        segs = await self._segments(word, io, in_dq=False)
        return "".join(_fn_escape(t) if q else t for t, q, _ in segs if t is not _FIELD_BREAK)

    def _glob(self, pattern: str) -> list[str]:
        absolute = pattern.startswith("/")
        parts = [p for p in pattern.split("/") if p]
        bases = ["/" if absolute else ""]
        for i, part in enumerate(parts):
            nxt = []
            for b in bases:
                d = self.path(b or ".")
                if any(c in part for c in "*?[") and "\\" not in part.replace("\\\\", ""):
                    try:
                        names = self.fs.listdir(d)
                    except FSError:
                        continue
                    for n in names:
                        if n.startswith(".") and not part.startswith("."):
                            continue
                        if fnmatch.fnmatchcase(n, part):
                            nxt.append(posixpath.join(b, n) if b else n)
                else:
                    lit = _unescape_glob(part)
                    p = posixpath.join(b, lit) if b else lit
                    if i == len(parts) - 1 and not self.fs.exists(self.path(p)):
                        continue
                    nxt.append(p)
            bases = nxt
        return sorted(bases)

    async def _segments(self, w: str, io: IO, in_dq: bool, heredoc: bool = False
                        ) -> list[tuple[Any, bool, bool]]:
        out: list[tuple[Any, bool, bool]] = []
        i = 0
        n = len(w)
        lit: list[str] = []

        def flush() -> None:
            if lit:
                out.append(("".join(lit), in_dq, False))
                lit.clear()

        if not in_dq and w.startswith("~") and (n == 1 or w[1] == "/"):
            out.append((self.getvar("HOME") or "/root", True, False))
            i = 1
        while i < n:
            c = w[i]
            if c == "\\":
                if i + 1 >= n:
                    lit.append("\\")
                    i += 1
                    continue
                nx = w[i + 1]
                if in_dq and nx not in '$`"\\\n':
                    if heredoc and nx == '"':
                        lit.append("\\")
                    else:
                        lit.append("\\")
                    lit.append(nx)
                elif nx == "\n":
                    pass
                else:
                    flush()
                    out.append((nx, True, False))
                i += 2
            elif c == "'" and not in_dq:
                flush()
                j = w.find("'", i + 1)
                out.append((w[i + 1:j], True, False))
                i = j + 1
            elif c == '"' and not in_dq:
                flush()
                j = _dq_end(w, i + 1)
                inner = await self._segments(w[i + 1:j], io, in_dq=True)
                out.extend(inner if inner else [("", True, False)])
                i = j + 1
            elif c == "`":
                flush()
                j = i + 1
                buf = []
                while j < n and w[j] != "`":
                    if w[j] == "\\" and j + 1 < n and w[j + 1] in "$`\\":
                        buf.append(w[j + 1])
                        j += 2
                    else:
                        buf.append(w[j])
                        j += 1
                out.append((await self._subst("".join(buf), io), in_dq, not in_dq))
                i = j + 1
            elif c == "$" and i + 1 < n:
                flush()
                i = await self._dollar(w, i, io, in_dq, out)
            else:
                lit.append(c)
                i += 1
        flush()
        return out

    async def _dollar(self, w: str, i: int, io: IO, in_dq: bool,
                      out: list[tuple[Any, bool, bool]]) -> int:
        nx = w[i + 1]
        if w.startswith("$((", i):
            j = _skip(w, i)
            expr = w[i + 3:j - 2]
            expr = await self.expand_str(expr, io, heredoc=True)
            try:
                val = arith(expr, self)
            except (ValueError, ZeroDivisionError) as e:
                raise _ExpandError(f"arithmetic syntax error: {e}") from None
            out.append((str(val), in_dq, not in_dq))
            return j
        if nx == "(":
            j = _skip(w, i)
            out.append((await self._subst(w[i + 2:j - 1], io), in_dq, not in_dq))
            return j
        if nx == "{":
            j = _skip(w, i)
            val = await self._param(w[i + 2:j - 1], io)
            if val is _FIELD_BREAK:
                self._at(out, in_dq)
            else:
                out.append((val, in_dq, not in_dq))
            return j
        if nx in "@*" and in_dq and nx == "@":
            self._at(out, True)
            return i + 2
        if nx in "?$!#@*-0123456789":
            if nx in "@*" and not in_dq:
                for k, p in enumerate(self.positional):
                    if k:
                        out.append((_FIELD_BREAK, False, False))
                    out.append((p, False, True))
                return i + 2
            v = self._special(nx)
            self._nounset(nx, v)
            out.append((v or "", in_dq, not in_dq))
            return i + 2
        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", w[i + 1:])
        if not m:
            out.append(("$", in_dq, False))
            return i + 1
        name = m.group(0)
        v = self.getvar(name)
        self._nounset(name, v)
        out.append((v or "", in_dq, not in_dq))
        return i + 1 + len(name)

    def _at(self, out: list[tuple[Any, bool, bool]], quoted: bool) -> None:
        for k, p in enumerate(self.positional):
            if k:
                out.append((_FIELD_BREAK, False, False))
            out.append((p, True, False))
        if not self.positional and quoted:
            out.append((_FIELD_BREAK, False, False))

    def _nounset(self, name: str, value: str | None) -> None:
        if value is None and "u" in self.opts and name not in "@*#?-$!0":
            raise _ExpandError(f"{name}: parameter not set")

    async def _param(self, body: str, io: IO) -> Any:
        if body.startswith("#") and len(body) > 1:
            return str(len(self._special(body[1:]) or ""))
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?$!#@*-])", body)
        if not m:
            raise _ExpandError("syntax error: bad substitution")
        name = m.group(0)
        rest = body[len(name):]
        if name == "@" and not rest:
            return _FIELD_BREAK if self.positional else ""
        v = self._special(name)
        if not rest:
            self._nounset(name, v)
            return v or ""
        op_m = re.match(r":?[-=+?]|##?|%%?|//?", rest)
        if not op_m:
            raise _ExpandError("syntax error: bad substitution")
        op = op_m.group(0)
        arg = rest[len(op):]
        colon = op.startswith(":")
        base = op.lstrip(":")
        unset = v is None or (colon and v == "")
        if base == "-":
            return await self.expand_str(arg, io) if unset else v
        if base == "=":
            if unset:
                v = await self.expand_str(arg, io)
                self.setvar(name, v)
            return v
        if base == "+":
            return "" if unset else await self.expand_str(arg, io)
        if base == "?":
            if unset:
                msg = await self.expand_str(arg, io) if arg else "parameter not set"
                raise _ExpandError(f"{name}: {msg}")
            return v
        v = v or ""
        if base in ("#", "##", "%", "%%"):
            pat = await self._pattern(arg, io)
            rng = range(len(v) + 1)
            if base in ("#", "##"):
                cands = list(rng) if base == "#" else list(reversed(rng))
                for k in cands:
                    if fnmatch.fnmatchcase(v[:k], pat):
                        return v[k:]
            else:
                cands = list(reversed(rng)) if base == "%" else list(rng)
                for k in cands:
                    if fnmatch.fnmatchcase(v[k:], pat):
                        return v[:k]
            return v
        # ${x/pat/rep} ${x//pat/rep} (bash, busybox ash)
        pat, _, rep = arg.partition("/")
        pat = await self._pattern(pat, io)
        rep = await self.expand_str(rep, io)
        rx = _fn_regex(pat)
        return re.sub(rx, lambda _m: rep, v, count=0 if base == "//" else 1)

    async def _subst(self, script: str, io: IO) -> str:
        sub = self.clone()
        sink = Sink()
        try:
            tree = parse(script)
            self.status = await sub.run_seq(tree, IO("", sink, io.err))
        except _Exit as e:
            self.status = e.code
        except ShellSyntaxError as e:
            io.error(f"sh: {e}\n")
            self.status = 2
        except (_Return, _Break):
            pass
        return sink.getvalue().rstrip("\n")


class _ExpandError(Exception):
    pass


class _Break_(str):
    pass


_FIELD_BREAK: Any = _Break_("\x00")


def _applet_path(name: str) -> bool:
    return posixpath.dirname(name) in ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin",
                                       "/usr/local/sbin")


def _dq_end(w: str, i: int) -> int:
    n = len(w)
    while i < n:
        c = w[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i
        elif c == "$" and i + 1 < n and w[i + 1] in "({":
            i = _skip(w, i)
        elif c == "`":
            j = w.find("`", i + 1)
            i = n if j < 0 else j + 1
        else:
            i += 1
    return n


def _skip(w: str, i: int) -> int:
    from knet.runtime.shparse import _skip_dollar

    try:
        return _skip_dollar(w, i)
    except ShellSyntaxError:
        return len(w)


def _ifs_split(text: str, ifs: str) -> list[str]:
    if not ifs:
        return [text]
    ws = "".join(c for c in ifs if c in " \t\n")
    other = "".join(c for c in ifs if c not in " \t\n")
    text = text.strip(ws) if ws else text
    if not text:
        return [""]
    if other:
        parts = re.split(f"[{re.escape(ws)}]*[{re.escape(other)}][{re.escape(ws)}]*|[{re.escape(ws)}]+"
                         if ws else f"[{re.escape(other)}]", text)
    else:
        parts = re.split(f"[{re.escape(ws)}]+", text)
    return parts


def _escape_glob(text: str) -> str:
    return re.sub(r"([*?\[\\])", r"\\\1", text)


def _unescape_glob(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _fn_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _fn_regex(pat: str) -> str:
    return fnmatch.translate(pat)[4:-3]


# --- arithmetic (POSIX §2.6.4, C precedence, integers) --------------------------------------

_ARITH_TOKEN = re.compile(r"\s*(0[xX][0-9a-fA-F]+|\d+|[A-Za-z_][A-Za-z0-9_]*|<<=|>>=|\*\*|&&|\|\||"
                          r"[<>=!]=|<<|>>|[-+*/%&|^]=|\+\+|--|[-+*/%()<>!~&|^?:=,])")
_BINARY = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", ">", "<=", ">="),
           ("<<", ">>"), ("+", "-"), ("*", "/", "%")]


def arith(expr: str, sh: Shell) -> int:
    toks: list[str] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = _ARITH_TOKEN.match(expr, pos)
        if not m:
            raise ValueError(expr[pos:])
        toks.append(m.group(1))
        pos = m.end()
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    p = [0]

    def peek() -> str:
        return toks[p[0]] if p[0] < len(toks) else ""

    def take() -> str:
        t = peek()
        p[0] += 1
        return t

    def value(name: str) -> int:
        v = sh.getvar(name) or "0"
        try:
            return int(v, 0)
        except ValueError:
            return arith(v, sh) if v.strip() else 0

    def assign() -> int:
        t = peek()
        if re.fullmatch(r"[A-Za-z_]\w*", t) and p[0] + 1 < len(toks) and \
                toks[p[0] + 1] in ("=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "|=", "^="):
            p[0] += 1
            op = take()
            rhs = assign()
            v = rhs if op == "=" else _binop(op[:-1], value(t), rhs)
            sh.setvar(t, str(v))
            return v
        return ternary()

    def ternary() -> int:
        c = binary(0)
        if peek() == "?":
            take()
            a = assign()
            if take() != ":":
                raise ValueError("expecting ':'")
            b = assign()
            return a if c else b
        return c

    def binary(level: int) -> int:
        if level == len(_BINARY):
            return unary()
        left = binary(level + 1)
        while peek() in _BINARY[level]:
            op = take()
            right = binary(level + 1)
            left = _binop(op, left, right)
        return left

    def unary() -> int:
        t = peek()
        if t in ("-", "+", "!", "~"):
            take()
            v = unary()
            return {"-": -v, "+": v, "!": int(not v), "~": ~v}[t]
        if t in ("++", "--"):
            take()
            name = take()
            v = value(name) + (1 if t == "++" else -1)
            sh.setvar(name, str(v))
            return v
        return primary()

    def primary() -> int:
        t = take()
        if t == "(":
            v = assign()
            if take() != ")":
                raise ValueError("missing ')'")
            return v
        if not t:
            raise ValueError("unexpected end")
        if t[0].isdigit():
            return int(t, 0) if not (t.startswith("0") and t[1:].isdigit()) else int(t, 8)
        if re.fullmatch(r"[A-Za-z_]\w*", t):
            if peek() in ("++", "--"):
                op = take()
                v = value(t)
                sh.setvar(t, str(v + (1 if op == "++" else -1)))
                return v
            return value(t)
        raise ValueError(t)

    if not toks:
        return 0
    v = assign()
    while peek() == ",":
        take()
        v = assign()
    if p[0] != len(toks):
        raise ValueError(peek())
    return v


def _binop(op: str, a: int, b: int) -> int:
    if op in ("/", "%"):
        if b == 0:
            raise ZeroDivisionError("divide by zero")
        q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
        return q if op == "/" else a - q * b
    return {"+": a + b, "-": a - b, "*": a * b, "<<": a << b, ">>": a >> b, "&": a & b,
            "|": a | b, "^": a ^ b, "==": int(a == b), "!=": int(a != b), "<": int(a < b),
            ">": int(a > b), "<=": int(a <= b), ">=": int(a >= b), "&&": int(bool(a and b)),
            "||": int(bool(a or b))}[op]


# --- builtins -------------------------------------------------------------------------------

async def _b_colon(sh: Shell, argv: list[str], io: IO) -> int:
    return 0


async def _b_false(sh: Shell, argv: list[str], io: IO) -> int:
    return 1


async def _b_exit(sh: Shell, argv: list[str], io: IO) -> int:
    code = sh.status
    if len(argv) > 1:
        try:
            code = int(argv[1]) & 0xFF
        except ValueError:
            io.error(f"sh: exit: Illegal number: {argv[1]}\n")
            code = 2
    raise _Exit(code)


async def _b_return(sh: Shell, argv: list[str], io: IO) -> int:
    raise _Return(int(argv[1]) if len(argv) > 1 and argv[1].lstrip("-").isdigit() else sh.status)


async def _b_break(sh: Shell, argv: list[str], io: IO) -> int:
    n = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 1
    raise _Break(n, argv[0] == "continue")


async def _b_export(sh: Shell, argv: list[str], io: IO) -> int:
    args = [a for a in argv[1:] if a != "-p"]
    if not args:
        for k in sorted(sh.exported):
            if k in sh.env:
                io.print(f"export {k}={_squote(sh.env[k])}\n")
        return 0
    for a in args:
        name, eq, value = a.partition("=")
        if eq:
            sh.env[name] = value
        elif name in sh.vars:
            sh.env[name] = sh.vars.pop(name)
        sh.exported.add(name)
        if name in sh.vars:
            sh.env[name] = sh.vars.pop(name)
    return 0


async def _b_readonly(sh: Shell, argv: list[str], io: IO) -> int:
    for a in argv[1:]:
        name, eq, value = a.partition("=")
        if eq:
            sh.setvar(name, value)
    return 0


async def _b_local(sh: Shell, argv: list[str], io: IO) -> int:
    return await _b_readonly(sh, argv, io)


async def _b_unset(sh: Shell, argv: list[str], io: IO) -> int:
    for a in argv[1:]:
        if a in ("-v",):
            continue
        if a == "-f":
            continue
        sh.unset(a)
        sh.funcs.pop(a, None) if "-f" in argv else None
    return 0


async def _b_set(sh: Shell, argv: list[str], io: IO) -> int:
    args = argv[1:]
    if not args:
        for k, v in sorted({**sh.vars, **sh.env}.items()):
            io.print(f"{k}={_squote(v)}\n")
        return 0
    while args and args[0][:1] in "-+" and args[0] not in ("-", "--"):
        flag = args.pop(0)
        on = flag[0] == "-"
        if flag[1:] == "o":
            name = args.pop(0) if args else ""
            sh._setopt({"errexit": "e", "nounset": "u", "xtrace": "x"}.get(name, ""), on)
            continue
        for ch in flag[1:]:
            sh._setopt(ch, on)
    if args and args[0] in ("-", "--"):
        args.pop(0)
        sh.positional = args
    elif args:
        sh.positional = args
    return 0


async def _b_shift(sh: Shell, argv: list[str], io: IO) -> int:
    n = int(argv[1]) if len(argv) > 1 else 1
    if n > len(sh.positional):
        return 1
    sh.positional = sh.positional[n:]
    return 0


async def _b_cd(sh: Shell, argv: list[str], io: IO) -> int:
    target = argv[1] if len(argv) > 1 else (sh.getvar("HOME") or "/")
    if target == "-":
        target = sh.getvar("OLDPWD") or sh.cwd
    path = sh.path(target)
    if not sh.fs.isdir(path):
        io.error(f"sh: cd: can't cd to {target}: No such file or directory\n")
        return 2
    sh.env["OLDPWD"] = sh.cwd
    sh.cwd = path
    sh.env["PWD"] = path
    return 0


async def _b_pwd(sh: Shell, argv: list[str], io: IO) -> int:
    io.print(sh.cwd + "\n")
    return 0


async def _b_eval(sh: Shell, argv: list[str], io: IO) -> int:
    try:
        return await sh.run_seq(parse(" ".join(argv[1:])), io)
    except ShellSyntaxError as e:
        io.error(f"sh: {e}\n")
        return 2


async def _b_source(sh: Shell, argv: list[str], io: IO) -> int:
    if len(argv) < 2:
        return 0
    data = sh.fs.read(sh.path(argv[1]))
    if data is None:
        io.error(f"sh: {argv[0]}: line 1: can't open '{argv[1]}': No such file or directory\n")
        raise _Exit(2)
    return await sh.run_seq(parse(data.decode(errors="replace")), io)


async def _b_exec(sh: Shell, argv: list[str], io: IO) -> int:
    if len(argv) == 1:
        return 0
    code = await sh._command(argv[1:], io)
    raise _Exit(code)


async def _b_trap(sh: Shell, argv: list[str], io: IO) -> int:
    args = argv[1:]
    if not args:
        for sig, action in sh.traps.items():
            io.print(f"trap -- {_squote(action)} {sig}\n")
        return 0
    if len(args) == 1:
        action, sigs = "-", args
    else:
        action, sigs = args[0], args[1:]
    for s in sigs:
        name = s.upper().removeprefix("SIG")
        if name.isdigit():
            name = next((k for k, v in SIGNALS.items() if v == int(name)), name)
        if action == "-":
            sh.traps.pop(name, None)
        else:
            sh.traps[name] = action
    return 0


async def _b_wait(sh: Shell, argv: list[str], io: IO) -> int:
    want = [int(a) for a in argv[1:] if a.isdigit()]
    jobs = [j for j in sh.jobs if not want or j.pid in want]
    status = 0
    for j in jobs:
        if sh.stopping is not None and sh.pid1 and sh.traps.get("TERM"):
            stop = asyncio.ensure_future(sh.stopping.wait())
            done, _ = await asyncio.wait({j.task, stop}, return_when=asyncio.FIRST_COMPLETED)
            if j.task not in done:
                stop.cancel()
                if not sh._term_handled:
                    return 128 + 15  # interrupted by a trapped signal
            else:
                stop.cancel()
        try:
            status = await asyncio.shield(j.task)
        except asyncio.CancelledError:
            if not j.task.cancelled():
                raise
            status = 143
        sh.jobs.remove(j)
    return status


async def _b_read(sh: Shell, argv: list[str], io: IO) -> int:
    names = [a for a in argv[1:] if not a.startswith("-")]
    raw = "-r" in argv
    lines = io.stdin.split("\n") if io.stdin else []
    if not lines or (len(lines) == 1 and not lines[0]):
        for n in names:
            sh.setvar(n, "")
        return 1
    line = lines[0]
    io.stdin = "\n".join(lines[1:])
    if not raw:
        line = line.replace("\\", "")
    parts = line.split(None, max(len(names) - 1, 0)) if names else [line]
    for k, n in enumerate(names or ["REPLY"]):
        sh.setvar(n, parts[k] if k < len(parts) else "")
    return 0


async def _b_type(sh: Shell, argv: list[str], io: IO) -> int:
    code = 0
    for a in argv[1:]:
        if a == "-v":
            continue
        if a in _BUILTINS:
            io.print(f"{a} is a shell builtin\n" if argv[0] == "type" else f"{a}\n")
        elif a in sh.funcs:
            io.print(f"{a} is a function\n" if argv[0] == "type" else f"{a}\n")
        elif a in APPLETS or a in SHELLS:
            io.print(f"{a} is /bin/{a}\n" if argv[0] == "type" else f"/bin/{a}\n")
        else:
            if argv[0] == "type":
                io.print(f"{a}: not found\n")
            code = 127 if argv[0] == "type" else 1
    return code


async def _b_command(sh: Shell, argv: list[str], io: IO) -> int:
    if len(argv) > 1 and argv[1] == "-v":
        return await _b_type(sh, ["command", *argv[1:]], io)
    return await sh._command(argv[1:], io) if len(argv) > 1 else 0


async def _b_true(sh: Shell, argv: list[str], io: IO) -> int:
    return 0


def _squote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


_BUILTINS: dict[str, Applet] = {
    ":": _b_colon, "true": _b_true, "false": _b_false, "exit": _b_exit, "return": _b_return,
    "break": _b_break, "continue": _b_break, "export": _b_export, "readonly": _b_readonly,
    "local": _b_local, "unset": _b_unset, "set": _b_set, "shift": _b_shift, "cd": _b_cd,
    "pwd": _b_pwd, "eval": _b_eval, ".": _b_source, "source": _b_source, "exec": _b_exec,
    "trap": _b_trap, "wait": _b_wait, "read": _b_read, "type": _b_type, "command": _b_command,
}


def is_shell_command(argv: Sequence[str]) -> bool:
    """True when the container's command is something knet's shell runs (a shell, a builtin
    or an applet such as ``sleep``, ``wget``, ``nslookup``)."""
    if not argv:
        return False
    prog = posixpath.basename(argv[0])
    return prog in SHELLS or prog in _BUILTINS or prog in APPLETS


# applets register themselves on import
from knet.runtime import coreutils as _coreutils  # noqa: E402,F401
from knet.runtime import nettools as _nettools  # noqa: E402,F401

BUILTINS = frozenset(_BUILTINS) | frozenset(APPLETS)

__all__ = ["Shell", "IO", "Sink", "VirtualFS", "APPLETS", "applet", "is_shell_command", "arith",
           "SHELLS", "BUILTINS"]
