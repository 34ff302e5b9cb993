"""docs/kubectl.md runs: every console block is one ``kubectl`` command, replayed in order
against one ``knet up`` (the page's topology and seed) with the real kubectl; the output must
match the page once ages (``12s``, ``3m4s``) are masked and runs of spaces collapsed (column
widths follow the ages). ``KNET_UPDATE_DOCS=1`` rewrites the page's outputs instead."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.test_up_e2e import Up

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "kubectl.md"
FENCE = re.compile(r"^```console\n(.*?)^```", re.S | re.M)
AGE = re.compile(r"(?<![\w.-])\d+(?:y\d*d?|d\d*h?|h\d*m?|m\d*s?|s)(?![\w.-])")

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None,
                                reason="kubectl is not installed (.ci/run installs it)")


def blocks() -> list[tuple[str, str, int]]:
    out = []
    for block in FENCE.findall(PAGE.read_text()):
        first, _, rest = block.partition("\n")
        assert first.startswith("$ kubectl "), f"kubectl.md: block must start with $ kubectl: {first}"
        code = 0
        m = re.search(r"^\$ echo \$\?\n(\d+)\n\Z", rest, re.M)
        if m:
            code, rest = int(m.group(1)), rest[:m.start()]
        out.append((first[2:], rest, code))
    return out


def norm(text: str) -> str:
    return "\n".join(re.sub(r" {2,}", "  ", AGE.sub("AGE", line)).rstrip()
                     for line in text.rstrip("\n").splitlines())


def test_kubectl_tutorial_replays(tmp_path: Path) -> None:
    text = PAGE.read_text()
    m = re.search(r"knet up -f (\S+) --seed (\d+)", text)
    assert m, "the page names its topology and seed"
    up = Up(["-f", m.group(1), "--seed", m.group(2), "--no-control"], tmp_path)
    try:
        up.wait_up()
        kc = next(x for x in up.out if x.startswith("export KUBECONFIG=")).split("=", 1)[1]
        env = {**os.environ, "KUBECONFIG": kc, "HOME": str(tmp_path / "home")}
        results: list[tuple[str, str, int]] = []
        for cmd, want, code in blocks():
            p = subprocess.run(shlex.split(cmd), capture_output=True, text=True, env=env,
                               timeout=60, cwd=ROOT)
            got = p.stderr + p.stdout
            results.append((cmd, got, p.returncode))
            if os.environ.get("KNET_UPDATE_DOCS") != "1":
                assert (norm(got), p.returncode) == (norm(want), code), f"$ {cmd}"
        if os.environ.get("KNET_UPDATE_DOCS") == "1":
            _rewrite(results)
    finally:
        assert up.stop() == 0


def _rewrite(results: list[tuple[str, str, int]]) -> None:
    text = PAGE.read_text()
    it = iter(results)

    def repl(_: Any) -> str:
        cmd, got, code = next(it)
        tail = f"$ echo $?\n{code}\n" if code else ""
        return f"```console\n$ {cmd}\n{got}{tail}```"

    PAGE.write_text(FENCE.sub(repl, text))
