"""A tiny POSIX-shell subset for container commands and exec probes, over a virtual filesystem.

Invariants:
- Commands never touch the real machine: files live in the container's ``VirtualFS``; time
  passes through ``asyncio.sleep`` (virtual under the VirtualTimeLoop).
- Supported: ``sh|bash|ash -c SCRIPT`` with ``;``, ``&&``, ``||`` and newlines; built-ins
  ``sleep N|infinity``, ``true``, ``false``, ``exit N``, ``touch``, ``rm [-f|-rf]``,
  ``echo … [> FILE|>> FILE]``, ``cat FILE…``, ``test -f|-e FILE`` / ``[ -f FILE ]``,
  ``mkdir``, ``date``, ``hostname``. Any other command is a no-op that exits 0 (knet cannot
  run arbitrary binaries; docs/apps.md says so).
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable, Sequence

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh"})
BUILTINS = frozenset({"sleep", "true", "false", "exit", "touch", "rm", "echo", "cat", "test",
                      "[", "mkdir", "date", "hostname", ":"})


class VirtualFS:
    """A container's writable layer: path → bytes. Fresh for every container start."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def write(self, path: str, data: bytes | str = b"", append: bool = False) -> None:
        b = data.encode() if isinstance(data, str) else data
        self.files[path] = (self.files.get(path, b"") + b) if append else b

    def read(self, path: str) -> bytes | None:
        return self.files.get(path)

    def exists(self, path: str) -> bool:
        return path in self.files or any(p.startswith(path.rstrip("/") + "/") for p in self.files)

    def remove(self, path: str, recursive: bool = False) -> bool:
        found = self.files.pop(path, None) is not None
        if recursive:
            prefix = path.rstrip("/") + "/"
            for p in [p for p in self.files if p.startswith(prefix)]:
                del self.files[p]
                found = True
        return found

    def __repr__(self) -> str:
        return f"<VirtualFS {sorted(self.files)}>"


def is_shell_command(argv: Sequence[str]) -> bool:
    """True when knet's shell subset can run ``argv`` (the container's command + args)."""
    if not argv:
        return False
    prog = argv[0].rsplit("/", 1)[-1]
    return prog in SHELLS or prog in BUILTINS


class Shell:
    def __init__(self, fs: VirtualFS, hostname: str = "", out: Callable[[str], None] | None = None
                 ) -> None:
        self.fs = fs
        self.hostname = hostname
        self.out = out or (lambda s: None)

    async def run_argv(self, argv: Sequence[str]) -> int:
        if not argv:
            return 0
        prog = argv[0].rsplit("/", 1)[-1]
        if prog in SHELLS:
            args = list(argv[1:])
            if "-c" in args:
                i = args.index("-c")
                script = args[i + 1] if i + 1 < len(args) else ""
                return await self.run_script(script)
            return 0  # a shell without a script and without a tty exits at once
        code = await self._builtin(list(argv))
        return self._exit_code if code == _EXIT else code

    async def run_script(self, script: str) -> int:
        lex = shlex.shlex(script.replace("\n", " ; "), posix=True, punctuation_chars=";&|>")
        lex.whitespace_split = True
        tokens = list(lex)
        status = 0
        cmd: list[str] = []
        skip = False
        for tok in tokens + [";"]:
            if tok in (";", "&&", "||", "&"):
                if cmd and not skip:
                    status = await self._builtin(cmd)
                    if status == _EXIT:
                        return self._exit_code
                cmd = []
                if tok == "&&":
                    skip = status != 0
                elif tok == "||":
                    skip = status == 0
                else:
                    skip = False
                continue
            cmd.append(tok)
        return status

    _exit_code = 0

    async def _builtin(self, argv: list[str]) -> int:
        # redirections
        target, append = None, False
        if ">" in argv or ">>" in argv:
            op = ">>" if ">>" in argv else ">"
            i = argv.index(op)
            target = argv[i + 1] if i + 1 < len(argv) else None
            append = op == ">>"
            argv = argv[:i] + argv[i + 2:]
        prog = argv[0].rsplit("/", 1)[-1] if argv else ":"
        args = argv[1:]
        output = ""
        code = 0
        if prog in SHELLS:
            return await self.run_argv(argv)
        if prog == "exec" and args:
            return await self._builtin(args)
        if prog == "sleep":
            t = args[0] if args else "0"
            if t in ("infinity", "inf"):
                await asyncio.Event().wait()
            secs = _duration(t)
            await asyncio.sleep(secs)
        elif prog in ("true", ":"):
            code = 0
        elif prog == "false":
            code = 1
        elif prog == "exit":
            self._exit_code = int(args[0]) if args and args[0].lstrip("-").isdigit() else 0
            return _EXIT
        elif prog == "touch":
            for p in args:
                if not self.fs.exists(p):
                    self.fs.write(p, b"")
        elif prog == "rm":
            flags = [a for a in args if a.startswith("-")]
            force = any("f" in f for f in flags)
            rec = any("r" in f or "R" in f for f in flags)
            for p in (a for a in args if not a.startswith("-")):
                if not self.fs.remove(p, rec) and not force:
                    code = 1
        elif prog == "echo":
            nl = "-n" not in args
            output = " ".join(a for a in args if a != "-n") + ("\n" if nl else "")
        elif prog == "cat":
            for p in args:
                data = self.fs.read(p)
                if data is None:
                    code = 1
                else:
                    output += data.decode(errors="replace")
        elif prog in ("test", "["):
            a = [x for x in args if x != "]"]
            neg = bool(a) and a[0] == "!"
            if neg:
                a = a[1:]
            if len(a) == 2 and a[0] in ("-f", "-e", "-d", "-s"):
                ok = self.fs.exists(a[1])
                if a[0] == "-s":
                    ok = bool(self.fs.read(a[1]))
                code = 0 if ok else 1
            elif len(a) == 1:
                code = 0 if a[0] else 1
            else:
                code = 0
            if neg:
                code = 1 - code
        elif prog == "hostname":
            output = self.hostname + "\n"
        else:
            code = 0  # mkdir, date, and commands knet cannot run
        if output:
            if target is not None:
                self.fs.write(target, output, append)
            else:
                self.out(output)
        elif target is not None and not append:
            self.fs.write(target, b"")
        return code


_EXIT = -(10 ** 9)


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        return 0.0
