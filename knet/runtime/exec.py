"""``kubectl exec`` for knet: run a command in a running container, get its streams and code.

Invariants: ``exec_in(pod, argv, stdin=…)`` is a plain function over (pod handle, argv, stdin) →
``ExecResult`` (stdout, stderr, exit code); the process is a new shell in the container (not
PID 1: SIGTERM to the pod does not reach it), sharing the container's filesystem, environment
and network namespace. A program knet cannot run fails like containerd's exec does: exit code
126 and the OCI runtime message (``kubectl`` prints it and "command terminated with exit code").
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from knet.runtime.shell import IO, SHELLS, Shell, Sink, is_shell_command


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str = ""
    stderr: str = ""

    def __int__(self) -> int:
        return self.exit_code

    def __index__(self) -> int:
        return self.exit_code

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            return self.exit_code == other
        if isinstance(other, ExecResult):
            return (self.exit_code, self.stdout, self.stderr) == (other.exit_code, other.stdout,
                                                                  other.stderr)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.exit_code)


def container_shell(pod: Any, container: str | None = None) -> Shell:
    """A new shell process in the container of ``pod`` (a PodHandle)."""
    runner = pod._runner(container)
    ctx = runner.ctx
    env = dict(ctx.env) if ctx is not None else {}
    model = pod.model
    return Shell(runner.fs, model.spec.hostname or model.name, env=env, net=pod,
                 clock=pod.rt.now)


async def exec_in(pod: Any, argv: list[str], container: str | None = None, *, stdin: str = "",
                  out: Callable[[str], None] | None = None,
                  err: Callable[[str], None] | None = None) -> ExecResult:
    """Run ``argv`` in the container; ``out``/``err`` also receive output as it is written."""
    sh = container_shell(pod, container)
    o, e = Sink(), Sink()
    if out is not None:
        o = _Tee(out)
    if err is not None:
        e = _Tee(err)
    if not argv:
        return ExecResult(126, "", "OCI runtime exec failed: exec failed: unable to start "
                                   "container process: exec: no command: unknown\n")
    prog = posixpath.basename(argv[0])
    if not is_shell_command(argv) and prog not in SHELLS:
        return ExecResult(126, "", f'OCI runtime exec failed: exec failed: unable to start '
                                   f'container process: exec: "{argv[0]}": executable file not '
                                   f'found in $PATH: unknown\n')
    code = await sh.run_argv(argv, IO(stdin, o, e))
    return ExecResult(code, o.getvalue(), e.getvalue())


class _Tee(Sink):
    def __init__(self, fn: Callable[[str], None]) -> None:
        super().__init__()
        self.fn = fn

    def write(self, text: str) -> None:
        super().write(text)
        if text:
            self.fn(text)


class InteractiveShell:
    """``kubectl exec -it POD -- sh``: one shell whose state lasts across lines."""

    def __init__(self, pod: Any, container: str | None = None) -> None:
        self.sh = container_shell(pod, container)
        self.closed = False

    @property
    def prompt(self) -> str:
        cwd = self.sh.cwd
        home = self.sh.getvar("HOME") or "/root"
        shown = "~" + cwd[len(home):] if cwd == home or cwd.startswith(home + "/") else cwd
        return f"{shown} # "

    async def run(self, line: str) -> ExecResult:
        from knet.runtime.shell import _Exit

        o, e = Sink(), Sink()
        try:
            code = await self.sh.run_script_keep(line, IO("", o, e))
        except _Exit as x:
            self.closed = True
            code = x.code
        return ExecResult(code, o.getvalue(), e.getvalue())


__all__ = ["ExecResult", "exec_in", "container_shell", "InteractiveShell"]
