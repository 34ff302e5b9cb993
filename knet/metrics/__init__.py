"""Prometheus metrics of the emulated components (kube-proxy, CoreDNS, kubelet)
and of knet itself: recorded cheaply by the runtime, rendered by ``prometheus_client`` when
scraped (``knet up --metrics``)."""

from knet.metrics.components import ClusterMetrics

__all__ = ["ClusterMetrics"]
