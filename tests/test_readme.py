"""Every snippet in README.md runs: console blocks are replayed and must print exactly what the
README shows; the Python snippet runs as a test under the knet pytest plugin."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from knet.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CONSOLE = re.findall(r"```console\n(.*?)```", README, re.S)


def commands() -> list[tuple[str, str]]:
    out = []
    for block in CONSOLE:
        cmd, _, expected = block.partition("\n")
        assert cmd.startswith("$ knet "), cmd
        out.append((cmd[2:], expected))
    return out


@pytest.mark.parametrize("cmd,expected", commands(), ids=[c for c, _ in commands()])
def test_console_block_is_real_output(cmd: str, expected: str, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    rc = main(shlex.split(cmd)[1:])
    out = capsys.readouterr().out
    assert rc == 0
    assert out == expected


def test_python_snippet_runs_under_the_plugin(tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", README, re.S)
    assert code, "README has a Python snippet"
    test = tmp_path / "test_readme_snippet.py"
    test.write_text(code[0])
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(tmp_path), str(test)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout
