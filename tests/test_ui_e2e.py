"""The page and the metrics of a running ``knet up``, with real clients: headless Chromium
(Playwright driving Debian's /usr/bin/chromium) and a real Prometheus server scraping
``--metrics``. One cluster serves the whole module; everything listens on loopback.

A failing page test keeps its screenshot (the path is in the failure message); with
``KNET_UPDATE_SCREENSHOTS=1`` the screenshots also refresh docs/ui/*.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from knetup import KnetUp as Up

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "topologies" / "demo.yaml")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    u = Up(["-f", DEMO, "--ui", "127.0.0.1:0", "--metrics", "127.0.0.1:0"],
           tmp_path_factory.mktemp("ui-xdg"))
    try:
        u.wait_for("METRICS")
        yield u
    finally:
        u.stop()


def http(url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
         ) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    if data is not None and "Content-Type" not in (headers or {}):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, json.loads(raw) if r.headers.get_content_type() == "application/json" \
                else raw.decode()
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return e.code, raw.decode()


def test_metrics_answer_only_as_their_address(up: Up) -> None:
    base = "http://" + up.address("METRICS")
    port = base.rsplit(":", 1)[1]
    code, text = http(base + "/metrics")
    assert code == 200 and "kubeproxy_sync_proxy_rules_duration_seconds_bucket" in text
    assert http(base + "/metrics", headers={"Host": f"rebound.example:{port}"})[0] == 421


def test_page_api_refuses_other_hosts_and_cross_origin_writes(up: Up) -> None:
    base = "http://" + up.address("UI")
    port = base.rsplit(":", 1)[1]
    assert http(base + "/api/cluster")[0] == 200
    assert http(base + "/api/cluster", headers={"Host": f"evil.example:{port}"})[0] == 421
    code, body = http(base + "/api/request", {"from": "default/client", "url": "http://web/"},
                      headers={"Origin": "http://evil.example", "Content-Type": "application/json"})
    assert code == 403 and "cross-origin" in body["error"]
    code, _ = http(base + "/api/request", {"from": "default/client", "url": "http://web/"},
                   headers={"Content-Type": "text/plain"})
    assert code == 415
    code, body = http(base + "/api/request", {"from": "default/client", "url": "file:///etc/passwd"})
    assert code == 400
    code, body = http(base + "/api/request", {"from": "default/nobody", "url": "http://web/"})
    assert code == 404
    assert http(base + "/api/flows/999999")[0] == 404
    # a request through the ingress controller: the story carries its L7 decision
    ctl = next(p for p in http(base + "/api/map")[1]["pods"] if p["namespace"] == "ingress-nginx")
    code, body = http(base + "/api/request", {"from": "default/client",
                                              "url": f"http://{ctl['ip']}/"})
    assert code == 200 and body["http"]["status"] == 404
    assert body["l7"] and "ingress-nginx" in body["l7"][0] and "404" in body["l7"][0]
    assert http(base + "/static/../server.py")[0] == 404


@contextlib.contextmanager
def browser_page(tmp_path: Path, name: str) -> Iterator[Any]:
    pw = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("headless Chromium is needed (apt-get install chromium)")
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            yield page
            assert not errors, errors
        except BaseException:
            shot = tmp_path / f"{name}-failure.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failure: {shot}")
            raise
        finally:
            browser.close()


def shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("KNET_UPDATE_SCREENSHOTS"):
        (ROOT / "docs" / "ui").mkdir(exist_ok=True)
        shutil.copy(path, ROOT / "docs" / "ui" / f"{name}.png")


def test_page_shows_a_request_hop_by_hop(up: Up, tmp_path: Path) -> None:
    url = "http://" + up.address("UI") + "/"
    with browser_page(tmp_path, "story") as page:
        page.goto(url)
        page.wait_for_function("document.body.dataset.mapReady === '1'", timeout=20000)
        pods = page.evaluate("state.cy.nodes('[kind = \"Pod\"]').length")
        assert pods == len(http(url + "api/cluster")[1]["pods"])
        # a request made from the page: its story names the Service chain and the endpoint
        page.click("button[data-view=story]")
        page.select_option("#request-from", "default/client")
        page.fill("#request-target", "http://web/shop")
        page.click("#request-form button")
        page.wait_for_selector("#story .hop", timeout=20000)
        assert "HTTP 200" in page.inner_text("#story h2")
        rules = page.inner_text("#story")
        assert "KUBE-SVC-" in rules and "KUBE-SEP-" in rules and "DNAT" in rules
        shot(page, tmp_path, "story")
        # the same request shows up in the live flow list; its story opens from there
        page.click("button[data-view=flows]")
        page.fill("#flow-filter input[name=text]", "/shop")
        row = page.wait_for_selector("#flows tbody tr:has-text('GET web/shop')", timeout=20000)
        assert "FORWARDED" in row.inner_text() and "default/client" in row.inner_text()
        shot(page, tmp_path, "flows")
        row.click()
        page.wait_for_selector("#story .hop", timeout=20000)
        assert "KUBE-SEP-" in page.inner_text("#story")
        # the rules view: on the client's node, the deciding rules have hit counters
        client_node = next(p["node"] for p in http(url + "api/map")[1]["pods"]
                           if p["id"] == "pod:default/client")
        page.click("button[data-view=rules]")
        page.select_option("#rules-node", client_node)
        page.check("#rules-form input[name=hit]")
        page.wait_for_selector("#rules tbody tr", timeout=20000)
        hits = page.inner_text("#rules tbody")
        assert "KUBE-SEP-" in hits or "KUBE-SVC-" in hits
        shot(page, tmp_path, "rules")
        # back on the map, the request is an edge from the client to the Service
        page.click("button[data-view=map]")
        page.wait_for_function(
            "state.cy.edges('[kind = \"traffic\"]').some(e => e.source().id() === 'pod:default/client')",
            timeout=20000)
        shot(page, tmp_path, "map")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("prometheus") is None,
                    reason="a Prometheus server is needed (apt-get install prometheus)")
def test_prometheus_scrapes_the_components(up: Up, tmp_path: Path) -> None:
    target = up.address("METRICS")
    node = "knet-worker"
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: knet\n    static_configs: [{{targets: ['{target}']}}]\n"
        f"  - job_name: kube-proxy\n    metrics_path: /metrics/kube-proxy/{node}\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n")
    port = _free_port()
    log = tmp_path / "prometheus.log"
    with log.open("w") as sink:
        prom = subprocess.Popen(["prometheus", f"--config.file={cfg}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=sink, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1/query?query="

    def query(q: str) -> list[dict[str, Any]]:
        code, body = http(api + urllib.parse.quote(q))
        assert code == 200, body
        return body["data"]["result"]

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ups = query("up")
                if len(ups) == 2 and all(r["value"][1] == "1" for r in ups):
                    break
            except (urllib.error.URLError, ConnectionError, AssertionError):
                pass
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        # the combined endpoint: one series per node, as many as the cluster has
        last = query('kubeproxy_sync_proxy_rules_last_timestamp_seconds{job="knet"}')
        assert sorted(r["metric"]["node"] for r in last) == \
            ["knet-control-plane", "knet-worker", "knet-worker2"]
        assert all(r["metric"]["job"] == "knet" for r in last)
        rules = query('kubeproxy_sync_proxy_rules_iptables_total{job="knet",table="nat"}')
        assert len(rules) == 3 and all(float(r["value"][1]) > 0 for r in rules)
        # the per-instance endpoint: kube-proxy's own series, labelled by the scrape job only
        own = query('kubeproxy_sync_proxy_rules_duration_seconds_count{job="kube-proxy"}')
        assert len(own) == 1 and "node" not in own[0]["metric"] and float(own[0]["value"][1]) >= 1
        pods = query('sum(kubelet_running_pods{job="knet"})')
        assert float(pods[0]["value"][1]) >= 21
        assert float(query('knet_fabric_packets_total{outcome="delivered"}')[0]["value"][1]) > 0
    finally:
        prom.send_signal(signal.SIGTERM)
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
