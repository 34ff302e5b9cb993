"""The package as users get it: ``pip install`` without extras into a fresh venv, then
``knet up`` on the demo topology. Catches a runtime import that only the ``test`` extra
happened to provide (``cryptography`` was one)."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pump(stream: object, q: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        q.put(line.rstrip("\n"))


@pytest.mark.slow
def test_installs_without_extras_and_brings_the_demo_up(tmp_path: Path) -> None:
    src = tmp_path / "knet-src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "knet", src / "knet", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    # no pip inside (faster): this interpreter's pip installs into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                          "install", "-q", "--no-compile", str(src)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]

    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen(
        [str(venv / "bin" / "knet"), "up", "-f", str(ROOT / "topologies" / "demo.yaml"),
         "--dns", "127.0.0.1:0", "--ingress", "127.0.0.1:0", "--ingress-tls", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    out: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any(s.startswith("up;") for s in out):
            assert time.monotonic() < deadline, f"knet up not up: {out}"
            try:
                out.append(lines.get(timeout=0.5))
            except queue.Empty:
                assert proc.poll() is None, f"knet up exited {proc.returncode}: {proc.stderr.read()}"  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        reader.join(timeout=5)
        for s in (proc.stdout, proc.stderr):
            if s is not None:
                s.close()
    assert rc == 0
    assert any(s.split()[:1] == ["INGRESS"] for s in out)  # the controller (TLS included) started
