"""The user documentation runs: every console block of docs/cli.md, docs/tutorial.md and
docs/traces.md is replayed and must print exactly what the page shows, and every Python snippet
of the tutorial runs (and prints the ``text`` block that follows it, when there is one).

A console block (```console, or ```shell-session in traces.md, whose console block belongs to
tests/test_trace_docs.py) is ``$ knet …`` followed by what the terminal shows: stderr, then
stdout. A block may end with ``$ echo $?`` and the exit code; without it the code must be 0.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import aiohttp.client_reqrep
import pytest

from knet.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = {name: ROOT / "docs" / name for name in ("cli.md", "tutorial.md", "traces.md",
                                                 "policy.md", "storage.md", "exec.md",
                                                 "gateway.md")}
FENCE = re.compile(r"^```(console|shell-session)\n(.*?)^```", re.S | re.M)
SNIPPET = re.compile(r"^```python\n(.*?)^```\n(?:\n```text\n(.*?)^```)?", re.S | re.M)

# The echo app answers with the request headers, and aiohttp's defaults name its own version:
# pin them to what the pages show, so that the replay does not depend on the installed aiohttp.
USER_AGENT = "Python/3.11 aiohttp/3.14.5"
ACCEPT_ENCODING = "gzip, deflate"


def console_blocks() -> list[tuple[str, str, str, int]]:
    """(doc, command, expected output, expected exit code) for every knet console block."""
    out = []
    for doc, path in DOCS.items():
        for lang, block in FENCE.findall(path.read_text()):
            first, _, rest = block.partition("\n")
            if doc == "traces.md" and lang == "console":
                continue  # tshark outputs, replayed by tests/test_trace_docs.py
            assert first.startswith("$ knet "), f"{doc}: console block must start with $ knet"
            code = 0
            m = re.search(r"^\$ echo \$\?\n(\d+)\n\Z", rest, re.M)
            if m:
                code, rest = int(m.group(1)), rest[:m.start()]
            assert "\n$ " not in "\n" + rest, f"{doc}: one knet command per console block"
            out.append((doc, first[2:], rest, code))
    return out


BLOCKS = console_blocks()


def test_every_page_has_console_blocks() -> None:
    docs = {doc for doc, *_ in BLOCKS}
    assert docs == set(DOCS)
    assert len(BLOCKS) >= 40


@pytest.mark.parametrize("doc,cmd,expected,code", BLOCKS,
                         ids=[f"{d}: {c}" for d, c, _, _ in BLOCKS])
def test_console_block_is_real_output(doc: str, cmd: str, expected: str, code: int,
                                      capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(aiohttp.client_reqrep, "SERVER_SOFTWARE", USER_AGENT)
    monkeypatch.setitem(aiohttp.client_reqrep.ClientRequest.DEFAULT_HEADERS, "Accept-Encoding",
                        ACCEPT_ENCODING)
    rc = main(shlex.split(cmd)[1:])
    out, err = capsys.readouterr()
    assert err + out == expected
    assert rc == code


def snippets() -> list[tuple[str, str | None]]:
    return SNIPPET.findall(DOCS["tutorial.md"].read_text())


@pytest.mark.parametrize("code,expected", snippets())
def test_tutorial_python_snippet_runs(code: str, expected: str | None,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, str(DOCS["tutorial.md"]), "exec"), {"__name__": "__doc__"})
    if expected:
        assert buf.getvalue() == expected


def test_tutorial_has_python_snippets() -> None:
    assert snippets()
