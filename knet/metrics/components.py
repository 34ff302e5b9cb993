"""The metrics each emulated component exports, under the names and labels the real component
uses (kube-proxy v1.32, CoreDNS 1.11, ingress-nginx 1.x, kubelet), plus knet's own.

Invariants:
- The components record events (``proxy_synced``, ``dns_answered``, ``request_served``, …);
  nothing here reads a clock: durations and times arrive as numbers from the adapters.
- Every series carries one extra label naming the instance Prometheus would scrape it from —
  ``node`` for kube-proxy and kubelet, ``pod`` for CoreDNS — because ``knet up --metrics``
  serves all of them on one endpoint; ``/metrics/<component>/<instance>`` serves one
  component's series without it, exactly as that component's own ``/metrics`` would.
- Gauges over live state (rule counts, conntrack entries, pods) are read at scrape time by
  the runtime's collector, not kept up to date on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from knet.metrics.series import (Counter, Gauge, Histogram, Series, exponential_buckets,
                                 linear_buckets)

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

# kube-proxy: pkg/proxy/metrics/metrics.go
SYNC_BUCKETS = exponential_buckets(0.001, 2, 15)
PROGRAMMING_BUCKETS = (linear_buckets(0.25, 0.25, 2) + linear_buckets(1, 1, 59)
                       + linear_buckets(60, 5, 12) + linear_buckets(120, 30, 7))
# CoreDNS: plugin/metrics/vars/vars.go
DNS_DURATION_BUCKETS = exponential_buckets(0.00025, 2, 16)
DNS_SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3)

DNS_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
             28: "AAAA", 33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG",
             47: "NSEC", 48: "DNSKEY", 50: "NSEC3", 51: "NSEC3PARAM", 65: "HTTPS", 255: "ANY",
             252: "AXFR", 251: "IXFR"}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
          5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}


INGRESS_LABELS = ("controller_namespace", "controller_class", "controller_pod", "canary",
                  "host", "ingress", "method", "namespace", "path", "service", "status")


@dataclass(frozen=True, slots=True)
class Part:
    """One series and the component (and instance label) it belongs to."""

    component: str  # "kube-proxy" | "coredns" | "ingress-nginx" | "kubelet" | "knet"
    instance_label: str | None
    series: Series


class ClusterMetrics:
    """Every component's series for one running cluster."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        kp, dns, ing, kl = "kube-proxy", "coredns", "ingress-nginx", "kubelet"
        node, pod = ("node",), ("pod",)
        # kube-proxy
        self.sync_duration = self._h(kp, "kubeproxy_sync_proxy_rules_duration_seconds",
                                     "SyncProxyRules latency in seconds", node, SYNC_BUCKETS)
        self.sync_full = self._h(kp, "kubeproxy_sync_full_proxy_rules_duration_seconds",
                                 "SyncProxyRules latency in seconds for full resyncs", node,
                                 SYNC_BUCKETS)
        self.sync_partial = self._h(kp, "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                                    "SyncProxyRules latency in seconds for partial resyncs",
                                    node, SYNC_BUCKETS)
        self.last_sync = self._g(kp, "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                                 "The last time proxy rules were successfully synced", node)
        self.last_queued = self._g(kp, "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                                   "The last time a sync of proxy rules was queued", node)
        self.programming = self._h(kp, "kubeproxy_network_programming_duration_seconds",
                                   "In Cluster Network Programming Latency in seconds", node,
                                   PROGRAMMING_BUCKETS)
        self.endpoint_changes = self._c(kp, "kubeproxy_sync_proxy_rules_endpoint_changes_total",
                                        "Cumulative proxy rules Endpoint changes", node)
        self.service_changes = self._c(kp, "kubeproxy_sync_proxy_rules_service_changes_total",
                                       "Cumulative proxy rules Service changes", node)
        self.endpoint_pending = self._g(kp, "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                                        "Pending proxy rules Endpoint changes", node)
        self.service_pending = self._g(kp, "kubeproxy_sync_proxy_rules_service_changes_pending",
                                       "Pending proxy rules Service changes", node)
        self.iptables_total = self._g(kp, "kubeproxy_sync_proxy_rules_iptables_total",
                                      "Total number of iptables rules owned by kube-proxy",
                                      node + ("table",))
        # CoreDNS (server="dns://:53", zone=".", view="")
        self.dns_requests = self._c(dns, "coredns_dns_requests_total",
                                    "Counter of DNS requests made per zone, protocol and family.",
                                    pod + ("server", "zone", "view", "proto", "family", "type"))
        self.dns_responses = self._c(dns, "coredns_dns_responses_total",
                                     "Counter of response status codes.",
                                     pod + ("server", "zone", "view", "rcode", "plugin"))
        self.dns_duration = self._h(dns, "coredns_dns_request_duration_seconds",
                                    "Histogram of the time (in seconds) each request took.",
                                    pod + ("server", "zone", "view", "type"),
                                    DNS_DURATION_BUCKETS)
        self.dns_request_size = self._h(dns, "coredns_dns_request_size_bytes",
                                        "Size of the EDNS0 UDP buffer in bytes (64K for TCP).",
                                        pod + ("server", "zone", "view", "proto"),
                                        DNS_SIZE_BUCKETS)
        self.dns_response_size = self._h(dns, "coredns_dns_response_size_bytes",
                                         "Size of the returned response in bytes.",
                                         pod + ("server", "zone", "view", "proto"),
                                         DNS_SIZE_BUCKETS)
        self.cache_hits = self._c(dns, "coredns_cache_hits_total",
                                  "The count of cache hits.",
                                  pod + ("server", "type", "zones", "view"))
        self.cache_misses = self._c(dns, "coredns_cache_misses_total",
                                    "The count of cache misses. Deprecated, derive misses from "
                                    "cache hits/requests counters.", pod + ("server", "zones", "view"))
        # ingress-nginx (internal/ingress/metric/collectors/socket.go)
        self.ingress_requests = Counter("nginx_ingress_controller_requests",
                                        "The total number of client requests", INGRESS_LABELS,
                                        total=False)
        self._add(ing, self.ingress_requests)
        self.ingress_duration = self._h(ing, "nginx_ingress_controller_request_duration_seconds",
                                        "The request processing time in milliseconds",
                                        INGRESS_LABELS)
        self.build_info = self._g(dns, "coredns_build_info", "A metric with a constant '1' value "
                                  "labeled by version, revision, and goversion from which CoreDNS "
                                  "was built.", pod + ("version", "revision", "goversion"))
        # kubelet's cAdvisor endpoint (from the runtime's work model, read at scrape time)
        cl = node + ("namespace", "pod", "container")
        self.container_cpu = self._c(kl, "container_cpu_usage_seconds_total",
                                     "Cumulative cpu time consumed in seconds.", cl)
        self.container_throttled = self._c(kl, "container_cpu_cfs_throttled_seconds_total",
                                           "Total time duration the container has been "
                                           "throttled.", cl)
        self.container_memory = self._g(kl, "container_memory_working_set_bytes",
                                        "Current working set in bytes.", cl)
        # kubelet
        self.running_pods = self._g(kl, "kubelet_running_pods",
                                    "Number of pods that have a running pod sandbox", node)
        self.running_containers = self._g(kl, "kubelet_running_containers",
                                          "Number of containers currently running",
                                          node + ("container_state",))
        # knet's own
        self.packets = self._c("knet", "knet_fabric_packets_total",
                               "Packets the fabric delivered to a pod or node, or dropped",
                               ("outcome",))
        self.conntrack = self._g("knet", "knet_conntrack_entries",
                                 "Live conntrack entries in a node's datapath", node)
        self.flows = self._c("knet", "knet_flows_total",
                             "Flows observed by the UI's recorder, by verdict", ("verdict",))

    # -- registration
    def _add(self, component: str, s: Series) -> Series:
        inst = s.labels[0] if s.labels and s.labels[0] in ("node", "pod") else None
        self.parts.append(Part(component, inst, s))
        return s

    def _c(self, comp: str, name: str, help: str, labels: tuple[str, ...]) -> Counter:
        c = Counter(name, help, labels)
        self._add(comp, c)
        return c

    def _g(self, comp: str, name: str, help: str, labels: tuple[str, ...]) -> Gauge:
        g = Gauge(name, help, labels)
        self._add(comp, g)
        return g

    def _h(self, comp: str, name: str, help: str, labels: tuple[str, ...],
           buckets: tuple[float, ...] | None = None) -> Histogram:
        h = Histogram(name, help, labels, *(() if buckets is None else (buckets,)))
        self._add(comp, h)
        return h

    # -- kube-proxy
    def proxy_queued(self, node: str, kind: str, epoch_now: float) -> None:
        """A Service or EndpointSlice change reached ``node``'s kube-proxy."""
        (self.endpoint_changes if kind == "EndpointSlice" else self.service_changes).inc((node,))
        pend = self.endpoint_pending if kind == "EndpointSlice" else self.service_pending
        pend.set((node,), pend.get((node,)) + 1)
        self.last_queued.set((node,), epoch_now)

    def proxy_synced(self, node: str, seconds: float, *, full: bool, epoch_now: float,
                     programming: list[float]) -> None:
        """One sync of ``node``'s rules took ``seconds``; ``programming`` lists, per change it
        consumed, the time from the change to now (the network programming latency)."""
        self.sync_duration.observe((node,), seconds)
        (self.sync_full if full else self.sync_partial).observe((node,), seconds)
        self.last_sync.set((node,), epoch_now)
        self.endpoint_pending.set((node,), 0)
        self.service_pending.set((node,), 0)
        for d in programming:
            self.programming.observe((node,), d)

    # -- CoreDNS
    def dns_answered(self, pod: str, proto: str, family: int, query: bytes, reply: bytes | None,
                     seconds: float, *, cached: bool = False) -> None:
        """One query answered by the CoreDNS pod ``pod`` (``reply`` None: dropped; ``cached``:
        the answer came from the cache)."""
        qtype = DNS_TYPES.get(_qtype(query), "other")
        server = ("dns://:53", ".", "")
        fam = "1" if family == 4 else "2"
        self.dns_requests.inc((pod, *server, proto, fam, qtype))
        self.dns_request_size.observe((pod, *server, proto), len(query))
        self.dns_duration.observe((pod, *server, qtype), seconds)
        if reply is not None and len(reply) >= 4:
            rcode = RCODES.get(reply[3] & 0x0F, str(reply[3] & 0x0F))
            self.dns_responses.inc((pod, *server, rcode, "kubernetes"))
            self.dns_response_size.observe((pod, *server, proto), len(reply))
            if cached:
                # the cache plugin: NXDOMAIN and NODATA answers are "denial" entries
                denial = rcode == "NXDOMAIN" or reply[6:8] == b"\0\0"
                self.cache_hits.inc((pod, "dns://:53", "denial" if denial else "success", ".", ""))
            else:
                self.cache_misses.inc((pod, "dns://:53", ".", ""))

    # -- ingress-nginx
    def request_served(self, labels: tuple[str, ...], seconds: float) -> None:
        """One request answered by the controller; ``labels`` in ``INGRESS_LABELS`` order."""
        self.ingress_requests.inc(labels)
        self.ingress_duration.observe(labels, seconds)

    # -- rendering
    def collect(self, component: str | None = None, instance: str | None = None
                ) -> Iterator[Metric]:
        """Every family (``component`` None), or one component's, optionally for one instance
        with the instance label dropped (what that component's own endpoint serves)."""
        for part in self.parts:
            if component is not None and part.component != component:
                continue
            fam = part.series.family()
            if instance is not None and part.instance_label is not None:
                fam = _only(fam, part.instance_label, instance)
            yield fam


def _only(fam: Metric, label: str, value: str) -> Metric:
    from prometheus_client.metrics_core import Metric

    out = Metric(fam.name, fam.documentation, fam.type, fam.unit)
    for s in fam.samples:
        if s.labels.get(label) == value:
            labels = {k: v for k, v in s.labels.items() if k != label}
            out.add_sample(s.name, labels, s.value, s.timestamp, s.exemplar)
    return out


def _qtype(query: bytes) -> int:
    """QTYPE of the first question (0 when the message is too short)."""
    i = 12
    n = len(query)
    while i < n:
        ln = query[i]
        if ln == 0:
            break
        if ln & 0xC0:
            i += 1
            break
        i += ln + 1
    i += 1
    return int.from_bytes(query[i:i + 2], "big") if i + 2 <= n else 0


__all__ = ["ClusterMetrics", "Part"]
