"""A ``knet up`` subprocess for end-to-end tests: its output lines, the address table, a clean
stop (SIGINT, then kill after 30 s). Each runs with its own ``XDG_RUNTIME_DIR``."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KNET = str(Path(sys.executable).with_name("knet"))


class KnetUp:
    def __init__(self, args: list[str], env_dir: Path) -> None:
        env = {**os.environ, "XDG_RUNTIME_DIR": str(env_dir)}
        self.proc = subprocess.Popen([KNET, "up", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"knet up exited: {self.out}") from None
                continue
            self.out.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no {prefix!r} line: {self.out}")

    def address(self, name: str) -> str:
        line = next(x for x in self.out if x.split()[:1] == [name])
        return line.split()[1]

    def kubeconfig(self, timeout: float = 60.0) -> str:
        return self.wait_for("export KUBECONFIG=", timeout).split("=", 1)[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            self._reader.join(timeout=5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
