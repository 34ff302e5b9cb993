"""``knet exec [-i] [-t] [-c CONTAINER] NS/POD -- COMMAND…``: ``kubectl exec`` for knet.

With ``-f`` the emulation boots in-process on virtual time and the command runs once every
pod is up (what a test or a docs page replays); without it the command runs in the running
``knet up`` through its control endpoint (``POST /v1/exec``). ``-it`` with ``sh`` is an
interactive session (one shell whose state lasts across lines). Output and exit code are the
command's; a non-zero exit also prints kubectl's ``command terminated with exit code N``.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from knet.cli.options import files_option, seed_option, server_for, server_option
from knet.errors import UsageError


def _split(target: str) -> str:
    if "/" in target:
        return target
    return f"default/{target}"


async def _local(files: tuple[str, ...], seed: int | None, key: str, argv: list[str],
                 container: str | None, stdin: str, interactive: bool) -> Any:
    import knet

    from knet.errors import KnetError

    async with knet.run(list(files), seed=seed, wait=False) as c:
        try:  # every pod Ready when they can be (a pod that never is only costs virtual time)
            await c.wait_ready(timeout=300)
        except KnetError:
            pass
        if not _running(c, key):
            raise UsageError(f"cannot exec into pod {key}: it is not running "
                             f"({c.state.pod(key).status.phase})")
        pod = c.pod(key)
        if interactive:
            return await _repl(pod, container)
        return await pod.exec(argv, container, stdin=stdin)


def _running(c: Any, key: str) -> bool:
    p = c.state.store.get("Pod", *key.split("/", 1))
    if p is None:
        raise UsageError(f'pods "{key.split("/", 1)[1]}" not found')
    return p.status.phase == "Running" and any(
        cs.state == "running" for cs in p.status.container_statuses)


async def _repl(pod: Any, container: str | None) -> Any:
    import asyncio

    from knet.runtime.exec import ExecResult

    session = pod.shell(container)
    loop = asyncio.get_running_loop()
    code = 0
    while not session.closed:
        sys.stdout.write(session.prompt)
        sys.stdout.flush()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        r = await session.run(line)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        code = r.exit_code
    return ExecResult(code if session.closed else 0)


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("-i", "--stdin", "stdin_flag", is_flag=True, help="Pass stdin to the command.")
@click.option("-t", "--tty", is_flag=True, help="Interactive terminal (with -i and a shell).")
@click.option("-c", "--container", default=None, help="Container name (default: the first).")
@click.option("-n", "--namespace", default=None, help="Namespace of POD (default: default).")
@click.argument("target")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@files_option
@seed_option
@server_option
def exec_(stdin_flag: bool, tty: bool, container: str | None, namespace: str | None,
          target: str, command: tuple[str, ...], files: tuple[str, ...], seed: int | None,
          server: str | None) -> int:
    """Run COMMAND in a container of POD (kubectl exec): its output, its exit code."""
    from knet.fabric.clock import run_virtual

    key = f"{namespace}/{target}" if namespace and "/" not in target else _split(target)
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("you must specify at least one command for the container")
    interactive = stdin_flag and tty and sys.stdin.isatty() is not False and \
        argv[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash") and len(argv) == 1
    stdin = sys.stdin.read() if stdin_flag and not interactive else ""
    url = server_for(server, files)
    if url is not None:
        from knet.expose.control import request

        if interactive:
            raise UsageError("knet exec -it needs a local run (-f); through knet up, pass a "
                             "command (or pipe a script with -i)")
        res = request(f"{url}/v1/exec", "POST", {"pod": key, "container": container,
                                                 "command": argv, "stdin": stdin})
        out, err, code = res.get("stdout", ""), res.get("stderr", ""), int(res.get("exitCode", 1))
    else:
        if not files:
            raise UsageError("no input: give -f PATH (or --server for a running knet up)")
        r = run_virtual(_local(files, seed, key, argv, container, stdin, interactive))
        out, err, code = r.stdout, r.stderr, r.exit_code
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.stderr.write(err)
    if code:
        sys.stderr.write(f"command terminated with exit code {code}\n")
    return code


COMMANDS = [exec_]
