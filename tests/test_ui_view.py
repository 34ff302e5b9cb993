"""The page's data, computed on the real core: the service map, the live flow feed (flows with
their L7 facts, stories naming the deciding rules, rule hit counts, traffic edges), the flow
filter, and the static exports (``knet map``, ``knet trace --html``)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import aiohttp
import pytest

import knet
from knet.cli import main
from knet.ui.export import map_dot, story_html
from knet.ui.feed import FlowFeed
from knet.ui.view import matches, service_map

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "topologies" / "demo.yaml")


def test_service_map_selects_exactly_the_pods_of_each_service() -> None:
    cluster = knet.load([DEMO])
    m = service_map(cluster)
    pods = {p["id"]: p for p in m["pods"]}
    assert len(pods) == len(cluster.pods())
    selected: dict[str, set[str]] = {}
    for e in m["edges"]:
        if e["kind"] == "selects":
            selected.setdefault(e["source"], set()).add(e["target"])
    for svc in cluster.services():
        sel = dict(svc.spec.selector or {})
        want = {f"pod:{p.namespace}/{p.name}" for p in cluster.pods(svc.namespace)
                if sel and all(p.metadata.labels.get(k) == v for k, v in sel.items())}
        assert selected.get(f"svc:{svc.namespace}/{svc.name}", set()) == want
    # every pod sits in its node's group; the Ingress routes to its two Services
    assert {p["node"] for p in pods.values()} <= {n["name"] for n in m["nodes"]}
    routes = {(e["source"], e["target"]) for e in m["edges"] if e["kind"] == "routes"}
    assert routes == {("ing:default/fanout", "svc:default/app-a"),
                      ("ing:default/fanout", "svc:default/app-b")}


@pytest.mark.knet(topology=DEMO)
async def test_feed_flows_carry_l7_facts_and_stories_name_the_rules(knet_cluster) -> None:
    feed = FlowFeed(knet_cluster).start()
    try:
        client = knet_cluster.pod("default/client")
        resp = await client.http.get("http://web/shop?item=7")
        assert resp.status == 200
        await resp.read()
        new = feed.pump()
    finally:
        await feed.aclose()
    http = [f for f in new if f.get("l7", {}).get("path") == "/shop?item=7"]
    assert len(http) == 1
    f = http[0]
    assert f["l7"] == {"type": "http", "method": "GET", "path": "/shop?item=7", "host": "web",
                       "status": 200}
    assert f["source"]["pod"] == "default/client" and f["service"].startswith("default/web")
    assert f["destination"]["pod"].startswith("default/web-") and f["verdict"] == "FORWARDED"
    dns = [d for d in new if d.get("l7", {}).get("type") == "dns"]
    assert any(d["l7"]["query"] == "web.default.svc.cluster.local." and d["l7"]["rcode"] == "NOERROR"
               and d["l7"]["answers"] for d in dns)
    # the story of the HTTP flow names the Service chain and the DNAT to the chosen endpoint
    st = feed.story(f["id"])
    assert st is not None and st["summary"] == f
    first = st["packets"][0]
    text = "\n".join(line for h in first["hops"] for line in h["lines"])
    assert re.search(r"KUBE-SVC-\w+ rule \d+", text) and "KUBE-SEP-" in text
    assert f"DNAT {f['original_destination']} → {f['destination']['ip']}:" in text
    # rule hit counters: the SEP rule that decided has hits on the client's node
    node = first["hops"][0]["node"]
    assert any("KUBE-SEP-" in rule and "DNAT" in rule and n >= 1
               for rule, n in feed.hits[node].items())
    # the traffic edge client → Service
    assert feed.traffic[("pod:default/client", "svc:default/web")] == 1
    m = service_map(knet_cluster.state, feed.traffic)
    assert {"source": "pod:default/client", "target": "svc:default/web", "kind": "traffic",
            "count": 1} in m["edges"]


@pytest.mark.knet(topology=DEMO)
async def test_feed_shows_a_rejected_connection_as_dropped(knet_cluster) -> None:
    knet_cluster.scale("web", 0)
    await knet_cluster.advance(60)
    feed = FlowFeed(knet_cluster).start()
    try:
        client = knet_cluster.pod("default/client")
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.http.get("http://web/")
        new = feed.pump()
    finally:
        await feed.aclose()
    rejected = [f for f in new if f["protocol"] == "TCP" and f["service"].startswith("default/web")]
    assert rejected and rejected[0]["verdict"] == "DROPPED"
    assert rejected[0]["knet_verdict"] == "rejected"
    assert matches(rejected[0], {"verdict": "DROPPED", "namespace": "default"})
    assert not matches(rejected[0], {"verdict": "FORWARDED"})
    story = feed.story(rejected[0]["id"])
    text = "\n".join(line for p in story["packets"] for h in p["hops"] for line in h["lines"])
    assert "has no endpoints" in text and "REJECT" in text


def test_flow_filter_fields() -> None:
    f = {"source": {"namespace": "shop", "pod": "shop/client"},
         "destination": {"namespace": "db", "pod": "db/pg-0"}, "service": "db/pg:5432",
         "verdict": "FORWARDED", "knet_verdict": "forwarded", "protocol": "TCP",
         "l7": {"type": "http", "method": "POST", "path": "/orders", "status": 201}}
    assert matches(f, {"namespace": "db", "pod": "client", "service": "db/pg", "text": "orders"})
    assert matches(f, {"protocol": "tcp", "text": "201"})
    assert not matches(f, {"namespace": "kube-system"})
    assert not matches(f, {"protocol": "UDP"})
    assert not matches(f, {"text": "DELETE"})


def test_map_dot_groups_pods_by_node() -> None:
    m = service_map(knet.load([DEMO]))
    dot = map_dot(m)
    for n in m["nodes"]:
        assert f'label="{n["name"]}"' in dot
    assert dot.count("subgraph cluster_") == len(m["nodes"])
    assert '"svc:default/web" -> "pod:default/web-' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is needed (apt-get install graphviz)")
def test_knet_map_svg(tmp_path: Path) -> None:
    out = tmp_path / "map.svg"
    assert main(["map", "-f", DEMO, "-o", "svg", "--out", str(out)]) == 0
    svg = out.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "default/web" in svg


def test_story_html_is_self_contained(tmp_path: Path) -> None:
    out = tmp_path / "story.html"
    rc = main(["trace", "-f", DEMO, "--from", "default/client", "--url", "http://web/",
               "--html", str(out)])
    assert rc == 0
    page = out.read_text()
    assert "http://" not in page.replace("http://web/", "").replace("http://www.w3.org", "")
    data = json.loads(re.search(r"const knetStory = (\{.*?\});\n", page, re.S).group(1))
    hops = [h for fl in data["flows"] for p in fl["packets"] for h in p["hops"]]
    assert any("KUBE-SEP-" in line for h in hops for line in h["lines"])
    assert "knetDrawStory" in page and "</script>" in page
    assert story_html("t", [], "x").count("<script>") == 2


def test_service_map_draws_policies_and_the_pods_they_isolate() -> None:
    cluster = knet.load([str(ROOT / "topologies" / "netpol-model.yaml"),
                         str(ROOT / "topologies" / "policies" / "deny-ingress-x.yaml")])
    m = service_map(cluster)
    pols = [r for r in m["routes"] if r["kind"] == "NetworkPolicy"]
    assert len(pols) == 1 and pols[0]["namespace"] == "x"
    isolated = {e["target"] for e in m["edges"] if e["kind"] == "isolates"}
    assert isolated == {f"pod:x/{p.name}" for p in cluster.pods("x")}


def test_events_are_the_controllers_core_events(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("""apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [sh, -c, "true"]}]
""")
    from knet.ui.view import events

    evs = events(knet.load([DEMO, str(job)]))
    created = [e for e in evs if e["reason"] == "SuccessfulCreate" and e["object"] == "job/once"]
    assert created and created[0]["type"] == "Normal" and created[0]["message"].startswith(
        "Created pod: once-")
    assert [e["time"] for e in evs] == sorted(e["time"] for e in evs)


@pytest.mark.knet(topology=DEMO)
async def test_a_request_story_names_the_ingress_decision(knet_cluster) -> None:
    from knet.runtime.capture import traced_request
    from knet.ui.view import l7_lines

    controller = knet_cluster.pods(namespace="ingress-nginx")[0]
    result, cap = await traced_request(knet_cluster, "default/client",
                                       url=f"http://{controller.ip}/")
    assert result["http"]["status"] == 404  # no Ingress takes a bare IP: the default backend
    lines = l7_lines(cap)
    assert lines == [f"L7 http GET {controller.ip}/: ingress-nginx "
                     f"(ingress-nginx/{controller.key.split('/')[1]}) → no Ingress (default "
                     "backend): 404"]
    assert any("L7 http GET" in line for line in result["story"].splitlines())
    records = cap.hubble()
    l7 = [r for r in records if r["flow"].get("Type") == "L7"]
    assert l7 and l7[0]["flow"]["l7"]["http"]["code"] == 404
