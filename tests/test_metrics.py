"""Prometheus metrics of the emulated components, on the real core: names, labels, buckets and
values as the real kube-proxy, CoreDNS and kubelet export them, recorded by the traffic and
syncs the test causes."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from knet.metrics.collector import exposition
from knet.metrics.series import Counter, Histogram, exponential_buckets

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "topologies" / "demo.yaml")


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def pick(ss: dict, name: str, **labels: str) -> list[float]:
    return [v for (n, lab), v in ss.items()
            if n == name and all(dict(lab).get(k) == x for k, x in labels.items())]


def test_histogram_buckets_are_cumulative_with_go_style_le() -> None:
    h = Histogram("x_seconds", "help", ("node",), exponential_buckets(0.001, 2, 15))
    for v in (0.0005, 0.001, 0.003, 1.0, 100.0):
        h.observe(("a",), v)
    fam = h.family()
    got = {s.labels["le"]: s.value for s in fam.samples if s.name == "x_seconds_bucket"}
    assert got["0.001"] == 2          # 0.0005 and 0.001 (le is inclusive)
    assert got["0.004"] == 3
    assert got["1.024"] == 4 and got["16.384"] == 4 and got["+Inf"] == 5
    assert not [le for le in got if le.endswith(".0")]  # client_golang's formatting
    h2 = Histogram("y", "help", (), (0.25, 1, 5))
    h2.observe((), 1)
    assert [s.labels["le"] for s in h2.family().samples if s.name == "y_bucket"] == \
        ["0.25", "1", "5", "+Inf"]
    total = [s.value for s in fam.samples if s.name == "x_seconds_sum"]
    assert total == [pytest.approx(101.0045)]


def test_counter_family_renders_with_total_suffix() -> None:
    c = Counter("coredns_dns_requests_total", "help", ("type",))
    c.inc(("A",))
    c.inc(("A",), 2)
    names = {s.name: s.value for s in c.family().samples}
    assert names == {"coredns_dns_requests_total": 3.0}


@pytest.mark.knet(topology=DEMO)
async def test_components_export_what_the_traffic_and_syncs_did(knet_cluster) -> None:
    client = knet_cluster.pod("default/client")
    for _ in range(3):
        r = await client.http.get("http://web/")
        await r.read()
    await knet_cluster.pod("default/client").resolve("no-such-service")
    knet_cluster.scale("web", 4)
    await knet_cluster.advance(30)
    ss = samples(exposition(knet_cluster))
    nodes = sorted(knet_cluster.proxies)
    # kube-proxy: one sync histogram per node, syncs counted, network programming observed
    for n in nodes:
        syncs = pick(ss, "kubeproxy_sync_proxy_rules_duration_seconds_count", node=n)
        assert syncs == [float(knet_cluster.proxies[n].syncs)]
        assert pick(ss, "kubeproxy_network_programming_duration_seconds_count", node=n)[0] >= 1
        rules = knet_cluster.proxies[n].rulesets()[4]
        assert pick(ss, "kubeproxy_sync_proxy_rules_iptables_total", node=n, table="nat") == \
            [float(rules.tables["nat"].rule_count())]
        assert pick(ss, "kubeproxy_sync_proxy_rules_endpoint_changes_total", node=n)[0] >= 1
        last = pick(ss, "kubeproxy_sync_proxy_rules_last_timestamp_seconds", node=n)[0]
        assert 0 < last <= knet_cluster.now()
    # CoreDNS: the pods that answered counted A and AAAA queries, NOERROR and NXDOMAIN answers
    a = sum(pick(ss, "coredns_dns_requests_total", type="A", proto="udp", zone=".",
                 server="dns://:53"))
    assert a >= 2  # web (its search-path walk) and no-such-service
    assert sum(pick(ss, "coredns_dns_responses_total", rcode="NXDOMAIN")) >= 1
    assert sum(pick(ss, "coredns_dns_responses_total", rcode="NOERROR")) >= 1
    assert sum(pick(ss, "coredns_dns_request_duration_seconds_count")) == \
        sum(pick(ss, "coredns_dns_requests_total"))
    hits = sum(pick(ss, "coredns_cache_hits_total"))
    misses = sum(pick(ss, "coredns_cache_misses_total"))
    assert hits + misses == sum(pick(ss, "coredns_dns_responses_total"))
    # kubelet: running pods per node add up to the cluster's Running pods
    running = sum(1 for p in knet_cluster.state.pods() if p.status.phase == "Running")
    assert sum(pick(ss, "kubelet_running_pods")) == running
    # knet's own: packets delivered, conntrack entries from the datapaths
    assert pick(ss, "knet_fabric_packets_total", outcome="delivered")[0] > 0
    assert sum(pick(ss, "knet_conntrack_entries")) == \
        sum(len(dp.conntrack) for dp in knet_cluster.datapaths.values())


@pytest.mark.knet(topology=DEMO)
async def test_one_instance_endpoint_drops_the_instance_label(knet_cluster) -> None:
    node = sorted(knet_cluster.proxies)[0]
    ss = samples(exposition(knet_cluster, "kube-proxy", node))
    assert ss and all(n.startswith("kubeproxy_") for n, _ in ss)
    assert all("node" not in dict(lab) for _, lab in ss)
    assert pick(ss, "kubeproxy_sync_proxy_rules_duration_seconds_count") == \
        [float(knet_cluster.proxies[node].syncs)]
    dns_pod = next(p.name for p in knet_cluster.state.pods("kube-system")
                   if p.metadata.labels.get("k8s-app") == "kube-dns")
    ss = samples(exposition(knet_cluster, "coredns", dns_pod))
    assert pick(ss, "coredns_build_info", version="1.11.3") == [1.0]


# prometheus_client's parser reads a bare-named counter's samples as <name>_total; the raw text
# (checked below) keeps the bare name, which is what a Prometheus server stores
REQUESTS = "nginx_ingress_controller_requests_total"


@pytest.mark.knet(topology=DEMO)
async def test_ingress_controller_counts_requests_by_ingress_service_and_status(knet_cluster) -> None:
    controller = knet_cluster.pods(namespace="ingress-nginx")[0]
    client = knet_cluster.pod("default/client")
    for host, n in (("a.example.com", 3), ("b.example.com", 1), ("nobody.example.com", 2)):
        for _ in range(n):
            r = await client.http.get(f"http://{controller.ip}/x", headers={"Host": host})
            await r.read()
    ss = samples(exposition(knet_cluster))
    base = {"controller_namespace": "ingress-nginx", "controller_class": "k8s.io/ingress-nginx",
            "controller_pod": controller.key.split("/")[1], "method": "GET"}
    assert pick(ss, REQUESTS, **base, host="a.example.com",
                ingress="fanout", namespace="default", path="/", service="app-a",
                status="200") == [3.0]
    assert pick(ss, REQUESTS, **base, host="b.example.com",
                service="app-b", status="200") == [1.0]
    # no Ingress took the unknown host: the default backend's 404, with empty names
    assert pick(ss, REQUESTS, **base,
                host="nobody.example.com", ingress="", service="", status="404") == [2.0]
    assert sum(pick(ss, "nginx_ingress_controller_request_duration_seconds_count")) == 6
    text = exposition(knet_cluster).decode()  # the bare counter name, as client_golang writes it
    assert "# TYPE nginx_ingress_controller_requests counter\n" in text
    assert "nginx_ingress_controller_requests_total" not in text


@pytest.mark.knet(topology=DEMO)
async def test_cadvisor_series_follow_the_work_model(knet_cluster) -> None:
    from knet.testing import load

    client = knet_cluster.pod("default/client")
    result = await load(client, "http://web/", rps=20, seconds=3)
    served = sum(result.by_pod.values())
    assert served == 60
    ss = samples(exposition(knet_cluster))
    work = knet_cluster.work
    web = [p for p in knet_cluster.pods({"app": "web"})]
    for p in web:
        w = work.pods[p.key]
        ns, name = p.key.split("/")
        labels = {"node": p.node, "namespace": ns, "pod": name, "container": "echo"}
        assert pick(ss, "container_cpu_usage_seconds_total", **labels) == [pytest.approx(w.cpu_seconds)]
        assert pick(ss, "container_memory_working_set_bytes", **labels) == [float(w.memory)]
    # every served request cost its pod CPU: the web pods' total covers 60 requests' worth
    total = sum(pick(ss, "container_cpu_usage_seconds_total", namespace="default",
                     pod=p.key.split("/")[1])[0] for p in web)
    assert total >= 60 * min(work.pods[p.key].cost for p in web)
