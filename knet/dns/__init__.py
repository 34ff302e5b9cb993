"""Cluster DNS: a CoreDNS-compatible resolver (pure answers + asyncio adapters) and the pod stub resolver.

    DnsView(services=…, endpoint_slices=…, pods=…, namespaces=…, config_maps=…, cluster=…)
    answer(view, query_bytes, client, tcp=False) -> reply bytes | None
    view.apply_change(kind, prev, cur, now=…)       # precise answer-cache invalidation
    knet.dns.stub: resolv_conf_for_pod, etc_hosts_for_pod, candidates, res_search, search
    knet.dns.client.resolve(name, family, resolv, send)   # async driver (UDP, TCP on TC)
    knet.dns.server: DnsDatagramProtocol, DnsStreamProtocol, serve_loopback
    knet.dns.dig: render, to_json, dig
"""

from knet.dns.answer import answer, make_query
from knet.dns.corefile import Corefile, kubeadm_corefile, parse_corefile
from knet.dns.view import DnsView

__all__ = ["DnsView", "answer", "make_query", "Corefile", "kubeadm_corefile", "parse_corefile"]
