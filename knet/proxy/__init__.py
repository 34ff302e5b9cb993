"""kube-proxy per node: the shared service/endpoint model and the per-mode rule builders.

- ``serviceport``: ServicePortName, ServicePortInfo (per family), chain-name hashes.
- ``endpoints``: EndpointInfo per service port from EndpointSlices; categorize_endpoints.
- ``tracker``: ChangeTracker (record changes; checkout at sync time).
- ``iptables``: build_ruleset / build / restore_text (full sync), Proxier (partial syncs).
"""

from knet.proxy.endpoints import (Categorized, EndpointInfo, build_endpoints_map,
                                  categorize_endpoints, endpoints_for_service)
from knet.proxy.serviceport import (ServicePortInfo, ServicePortName, build_service_port_map,
                                    endpoint_chain_name, port_proto_hash, service_ports)
from knet.proxy.tracker import ChangeTracker

__all__ = ["Categorized", "ChangeTracker", "EndpointInfo", "ServicePortInfo",
           "ServicePortName", "build_endpoints_map", "build_service_port_map",
           "categorize_endpoints", "endpoint_chain_name", "endpoints_for_service",
           "port_proto_hash", "service_ports"]
