"""The pod shell (busybox ash semantics) over a virtual filesystem: a corpus of the scripts
tutorials and charts put in ``command``/``args`` and probes, with their exact output."""

from __future__ import annotations

import asyncio

import pytest

from knet.fabric import virtual_time
from knet.runtime.shell import IO, Shell, Sink
from knet.runtime.shparse import ShellSyntaxError, parse
from knet.runtime.vfs import VirtualFS


async def sh(script: str, stdin: str = "", fs: VirtualFS | None = None,
             env: dict[str, str] | None = None) -> tuple[int, str, str]:
    s = Shell(fs or VirtualFS(), "pod-0", env=env or {}, clock=lambda: 1_700_000_000.0)
    o, e = Sink(), Sink()
    code = await s.run_argv(["sh", "-c", script], IO(stdin, o, e))
    return code, o.getvalue(), e.getvalue()


CORPUS = [
    # (script, exit code, stdout)
    ("echo hello world", 0, "hello world\n"),
    ("echo -n a; echo b", 0, "ab\n"),
    ("x=1; y=$x$x; echo \"$y\" '$y'", 0, "11 $y\n"),
    ("echo ${UNSET:-default} ${UNSET-x} ${EMPTY:+set}", 0, "default x\n"),
    ("FOO=bar; echo ${#FOO} ${FOO%r} ${FOO#b}", 0, "3 ba ar\n"),
    ("f=/etc/config/app.yaml; echo ${f##*/} ${f%/*} ${f%.*}", 0, "app.yaml /etc/config /etc/config/app\n"),
    ("echo $((1 + 2 * 3)) $(( (1+2)*3 )) $((10 / 3)) $((10 % 3)) $((2 > 1))", 0, "7 9 3 1 1\n"),
    ("i=0; while [ $i -lt 3 ]; do echo $i; i=$((i+1)); done", 0, "0\n1\n2\n"),
    ("for n in a b c; do printf '%s-' $n; done; echo", 0, "a-b-c-\n"),
    ("true && echo yes || echo no; false && echo yes || echo no", 0, "yes\nno\n"),
    ("false; echo $?; ! false; echo $?", 0, "1\n0\n"),
    ("if [ -f /etc/passwd ]; then echo file; else echo none; fi", 0, "file\n"),
    ("if test -d /nope; then echo d; elif [ -d /tmp ]; then echo tmp; fi", 0, "tmp\n"),
    ("case $HOSTNAME in pod-*) echo ordinal ${HOSTNAME##*-};; *) echo other;; esac", 0,
     "ordinal 0\n"),
    ("greet() { echo \"hi $1\"; return 3; }; greet you; echo $?", 0, "hi you\n3\n"),
    ("echo $(echo inner) `echo back`", 0, "inner back\n"),
    ("printf '%s=%d\\n' a 1 b 2", 0, "a=1\nb=2\n"),
    ("printf '%05.1f|%-4s|%x\\n' 3.14159 ab 255", 0, "003.1|ab  |ff\n"),
    ("echo one > /tmp/f; echo two >> /tmp/f; cat /tmp/f | wc -l", 0, "2\n"),
    ("echo 'a b' | while read x y; do echo \"$y $x\"; done", 0, "b a\n"),
    ("cat <<EOF\nhost=$HOSTNAME\nEOF", 0, "host=pod-0\n"),
    ("cat <<'EOF'\n$HOSTNAME\nEOF", 0, "$HOSTNAME\n"),
    ("mkdir -p /data/a/b && touch /data/a/b/c && ls /data/a/b", 0, "c\n"),
    ("exit 3", 3, ""),
    ("set -e; false; echo unreachable", 1, ""),
    ("set -e; false || true; echo reached", 0, "reached\n"),
    ("nosuchcmd", 127, ""),
    ("echo abc | sed 's/b/X/'", 0, "aXc\n"),
    ("printf 'x\\ny\\nz\\n' | sed -n '2p'", 0, "y\n"),
    ("printf 'a\\nb\\nc\\n' | grep -v b", 0, "a\nc\n"),
    ("printf 'a\\nb\\n' | grep -q c", 1, ""),
    ("printf '1\\n2\\n3\\n4\\n' | head -n 2; printf '1\\n2\\n3\\n' | tail -1", 0, "1\n2\n3\n"),
    ("echo a b c | wc -w", 0, "3\n"),
    ("x='a  b'; set -- $x; echo $#; set -- \"$x\"; echo $#", 0, "2\n1\n"),
    ("touch /tmp/a.txt /tmp/b.txt; echo /tmp/*.txt", 0, "/tmp/a.txt /tmp/b.txt\n"),
    ("echo hi >&2", 0, ""),
    ("cp /etc/hostname /tmp/h 2>/dev/null || echo missing", 0, "missing\n"),
    ("echo x > /tmp/x; mv /tmp/x /tmp/y; [ -e /tmp/x ] || cat /tmp/y", 0, "x\n"),
    ("date +%s", 0, "1700000000\n"),
    ("env | grep ^HOSTNAME=", 0, "HOSTNAME=pod-0\n"),
    ("export A=1; sh -c 'echo $A'", 0, "1\n"),
    ("(cd /tmp; pwd); pwd", 0, "/tmp\n/\n"),
    ("for i in $(seq 1 3); do [ $i -eq 2 ] && continue; echo $i; done", 0, "1\n3\n"),
    ("echo '  spaced  ' | tr -d ' '", 0, "spaced\n"),
    ("echo aGVsbG8= | base64 -d", 0, "hello"),
    ("rm /tmp/none", 1, ""),
    ("[ \"$(cat /etc/passwd | head -1 | cut -d: -f1)\" = root ] && echo root", 0, "root\n"),
]


@pytest.mark.parametrize(("script", "code", "out"), CORPUS, ids=[c[0][:40] for c in CORPUS])
@virtual_time
async def test_corpus(script: str, code: int, out: str) -> None:
    got_code, got_out, _ = await sh(script)
    assert (got_code, got_out) == (code, out)


@virtual_time
async def test_errors_are_busybox_texts() -> None:
    assert (await sh("nosuchcmd"))[2] == "sh: nosuchcmd: not found\n"
    assert (await sh("cat /nope"))[2] == "cat: can't open '/nope': No such file or directory\n"
    assert (await sh("echo x > /no/dir/f"))[2] == "sh: can't create /no/dir/f: nonexistent directory\n"
    assert (await sh("rm /tmp/none"))[2] == "rm: can't remove '/tmp/none': No such file or directory\n"
    code, _, err = await sh("if then")
    assert code == 2 and err.startswith("sh: syntax error")


@virtual_time
async def test_sleep_is_virtual_and_loops_run_on() -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert (await sh("sleep 2; sleep 1m; sleep 0.5"))[0] == 0
    assert loop.time() - t0 == pytest.approx(62.5)
    fs = VirtualFS()
    task = asyncio.ensure_future(sh("while true; do date +%s >> /tmp/beat; sleep 1; done", fs=fs))
    await asyncio.sleep(30.5)
    assert not task.done()  # a forever loop stays running (no CrashLoopBackOff)
    assert len((fs.read("/tmp/beat") or b"").splitlines()) == 31
    task.cancel()


@virtual_time
async def test_background_jobs_wait_and_trap_on_sigterm() -> None:
    assert (await sh("sleep 5 & sleep 1 & wait; echo done"))[1] == "done\n"
    stopping = asyncio.Event()
    o = Sink()
    s = Shell(VirtualFS(), "p", stopping=stopping, pid1=True)
    task = asyncio.ensure_future(s.run_argv(
        ["sh", "-c", "trap 'echo bye; exit 0' TERM; sleep 3600 & wait"], IO("", o, Sink())))
    await asyncio.sleep(10)
    stopping.set()
    await asyncio.sleep(0.1)
    assert task.done() and task.result() == 0 and o.getvalue() == "bye\n"
    # without a trap, PID 1 ignores SIGTERM (the grace period then ends in SIGKILL)
    stopping2 = asyncio.Event()
    s2 = Shell(VirtualFS(), "p", stopping=stopping2, pid1=True)
    t2 = asyncio.ensure_future(s2.run_argv(["sh", "-c", "while true; do sleep 1; done"]))
    stopping2.set()
    await asyncio.sleep(5)
    assert not t2.done()
    t2.cancel()


def test_parser_rejects_broken_scripts() -> None:
    for bad in ("if true; then", "for x in; do", "echo 'unterminated", "case x in", "a && ", "}"):
        with pytest.raises(ShellSyntaxError):
            parse(bad)
