"""The page at 1,000 pods: time to first render, and frames per second while flows stream.

Starts ``knet up --ui`` on a generated cluster (12 workers, 10 Deployments × N/10 replicas
behind a NodePort Service each), opens the page in headless Chromium (Playwright on
/usr/bin/chromium), and measures
- first render: navigation start → the map drawn (``document.body.dataset.mapReady``), and the
  map's own layout+draw time (``window.knetRender.ms``);
- frames per second on the flow list and on the map while real HTTP clients on loopback send
  ``--rps`` requests per second to the NodePorts (each request is one flow).
The demo topology (21 pods) runs first as the baseline, in the same run.

    python bench/ui.py                    # demo vs 1,000 pods, 100 flows/s
    python bench/ui.py --pods 300 --rps 50 --seconds 3
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KNET = str(Path(sys.executable).with_name("knet"))


def topology(pods: int, workers: int = 12) -> str:
    docs = ["apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nnodes:\n  - role: control-plane\n"
            + "".join("  - role: worker\n" for _ in range(workers))]
    per = max(1, pods // 10)
    for i in range(10):
        docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: app{i}}}
spec:
  replicas: {per}
  selector: {{matchLabels: {{app: app{i}}}}}
  template:
    metadata: {{labels: {{app: app{i}}}}}
    spec:
      containers:
        - name: echo
          image: knet/echo:1
          ports: [{{name: http, containerPort: 8080}}]
          resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
""")
        docs.append(f"""apiVersion: v1
kind: Service
metadata: {{name: app{i}}}
spec:
  type: NodePort
  selector: {{app: app{i}}}
  ports: [{{port: 80, targetPort: http, nodePort: {30100 + i}}}]
""")
    return "---\n".join(docs)


class Up:
    def __init__(self, files: list[str], env_dir: str) -> None:
        self.proc = subprocess.Popen([KNET, "up", *sum((["-f", f] for f in files), []),
                                      "--ui", "127.0.0.1:0", "--no-api", "--boot-timeout", "3600"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "XDG_RUNTIME_DIR": env_dir}, cwd=ROOT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait(self, prefix: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise SystemExit(f"knet up exited: {self.out[-20:]}") from None
                continue
            self.out.append(line)
            if line.startswith(prefix):
                return
        raise SystemExit(f"timed out waiting for {prefix!r}: {self.out[-20:]}")

    def field(self, name: str) -> str:
        return next(x.split()[1] for x in self.out if x.split()[:1] == [name])

    def node_rows(self) -> list[list[str]]:
        """The rows of the NODE table (NODE INTERNAL-IP LOOPBACK NODEPORTS)."""
        rows, inside = [], False
        for x in self.out:
            parts = x.split()
            if parts[:3] == ["NODE", "INTERNAL-IP", "LOOPBACK"]:
                inside = True
                continue
            if inside and not parts:
                break
            if inside:
                rows.append(parts)
        return rows

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def load(targets: list[str], rps: float, seconds: float, stop: threading.Event,
         clients: int = 8) -> int:
    """``clients`` threads, each sending rps/clients requests per second (open loop)."""
    counts = [0] * clients

    def client(i: int) -> None:
        t0 = time.monotonic()
        rate = rps / clients
        while not stop.is_set() and time.monotonic() - t0 < seconds:
            url = targets[(counts[i] * clients + i) % len(targets)]
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    r.read()
            except OSError:
                pass
            counts[i] += 1
            wait = t0 + counts[i] / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


FPS = """(ms) => new Promise((done) => {
  let frames = 0; const t0 = performance.now();
  const tick = (t) => { frames++; if (t - t0 < ms) requestAnimationFrame(tick);
                        else done({fps: frames * 1000 / (t - t0), rows: state.rows}); };
  requestAnimationFrame(tick);
})"""


def measure(files: list[str], label: str, rps: float, seconds: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as xdg:
        up = Up(files, xdg)
        t_boot = time.monotonic()
        try:
            up.wait("up;", 1800)
            boot = time.monotonic() - t_boot
            url = f"http://{up.field('UI')}/"
            pods = len(json.loads(urllib.request.urlopen(url + "api/cluster").read())["pods"])
            rows = up.node_rows()
            targets = [f"http://{r[2]}:{p.split('/')[0]}/" for r in rows if len(r) >= 4
                       for p in r[3].split(",") if p.endswith("/TCP")]
            if not targets:
                raise SystemExit(f"no NodePorts on loopback in: {up.out}")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                            args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(url)
                page.wait_for_function("document.body.dataset.mapReady === '1'", timeout=120000)
                first = page.evaluate("performance.now()")
                draw = page.evaluate("window.knetRender")
                stop = threading.Event()
                sent: list[int] = []
                th = threading.Thread(target=lambda: sent.append(load(targets, rps, seconds + 4, stop)))
                t_load = time.monotonic()
                th.start()
                time.sleep(1.0)
                map_fps = page.evaluate(FPS, 1000 * seconds / 2)
                page.click("button[data-view=flows]")
                flows_fps = page.evaluate(FPS, 1000 * seconds / 2)
                stop.set()
                th.join()
                load_s = time.monotonic() - t_load
                browser.close()
        finally:
            up.stop()
    return {"case": label, "pods": pods, "boot_s": round(boot, 2),
            "first_render_ms": round(first), "map_draw_ms": round(draw["ms"]),
            "map_elements": draw["elements"], "fps_map_while_streaming": round(map_fps["fps"], 1),
            "fps_flows_while_streaming": round(flows_fps["fps"], 1),
            "flow_rows": flows_fps["rows"], "rps_target": rps,
            "rps_achieved": round((sent[0] if sent else 0) / load_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--rps", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()
    rows = [measure([str(ROOT / "topologies" / "demo.yaml")], "demo (baseline)", args.rps,
                    args.seconds)]
    with tempfile.TemporaryDirectory() as d:
        topo = Path(d) / "big.yaml"
        topo.write_text(topology(args.pods))
        rows.append(measure([str(topo)], f"{args.pods} pods", args.rps, args.seconds))
    keys = list(rows[0])
    width = max(len(k) for k in keys)
    print(f"{'':{width}}  " + "  ".join(f"{r['case']:>16}" for r in rows))
    for k in keys[1:]:
        print(f"{k:{width}}  " + "  ".join(f"{r[k]!s:>16}" for r in rows))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
