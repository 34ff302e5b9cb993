"""kube-proxy's change trackers: Services and EndpointSlices as one proxier (node, family) sees them.

Invariants (``pkg/proxy/servicechangetracker.go``, ``endpointschangetracker.go``,
``endpointslicecache.go``):
- ``on_service_change``/``on_slice_change`` only record; ``checkout()`` applies everything
  recorded since the last checkout and returns the Services whose service ports or endpoints
  changed (kube-proxy's ``UpdatedServices``).
- A Service update whose service ports (for this family) are unchanged is not a change
  (kube-proxy drops it with ``reflect.DeepEqual``); a slice update whose kube-proxy view
  (``newEndpointSliceInfo``) is unchanged is not a change either.
- Slices of the other address family (or FQDN) are never seen by this proxier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from knet.model.core import Node, Service
from knet.model.discovery import EndpointSlice
from knet.proxy.endpoints import EndpointInfo, endpoints_for_service, slice_info
from knet.proxy.serviceport import ServicePortInfo, ServicePortName, service_ports


@dataclass(frozen=True, slots=True)
class ServiceState:
    """The applied view of one Service: its service ports and their endpoints."""

    ports: tuple[ServicePortInfo, ...]
    endpoints: dict[ServicePortName, tuple[EndpointInfo, ...]]


class ChangeTracker:
    """Services and EndpointSlices for one (node, family), consumed by a proxier's sync."""

    def __init__(self, family: int, node_name: str) -> None:
        self.family = family
        self.node_name = node_name
        self._address_type = "IPv6" if family == 6 else "IPv4"
        self.services: dict[str, Service] = {}
        self.slices: dict[str, dict[str, EndpointSlice]] = {}  # service key -> name -> slice
        self._pending_services: set[str] = set()
        self._pending_endpoints: set[str] = set()
        self.applied: dict[str, ServiceState] = {}

    # -- recording ------------------------------------------------------------------------
    def on_service_change(self, prev: Service | None, cur: Service | None) -> bool:
        """OnServiceAdd/Update/Delete. Returns whether a change is pending."""
        obj = cur if cur is not None else prev
        if obj is None:
            return self.pending
        key = obj.key
        if cur is None:
            self.services.pop(key, None)
        else:
            self.services[key] = cur
        self._pending_services.add(key)
        return self.pending

    def on_slice_change(self, prev: EndpointSlice | None, cur: EndpointSlice | None) -> bool:
        """OnEndpointSliceAdd/Update/Delete. Returns whether a change is pending."""
        for old, new in ((prev, None), (None, cur)) if (
                prev is not None and cur is not None
                and self._svc_key(prev) != self._svc_key(cur)) else ((prev, cur),):
            self._record_slice(old, new)
        return self.pending

    def _svc_key(self, es: EndpointSlice) -> str:
        return f"{es.namespace}/{es.service_name}" if es.service_name else ""

    def _record_slice(self, prev: EndpointSlice | None, cur: EndpointSlice | None) -> None:
        obj = cur if cur is not None else prev
        if obj is None or obj.address_type != self._address_type:
            return
        key = self._svc_key(obj)
        if not key:
            return
        group = self.slices.setdefault(key, {})
        old = group.get(obj.metadata.name)
        if cur is None:
            if old is None:
                return
            del group[obj.metadata.name]
            if not group:
                del self.slices[key]
        else:
            group[obj.metadata.name] = cur
            if old is not None and slice_info(old) == slice_info(cur):
                return  # esInfoChanged() == false
        self._pending_endpoints.add(key)

    def set_node_name(self, node_name: str) -> None:
        """Locality depends on the node name: every Service's endpoints are recomputed."""
        if node_name != self.node_name:
            self.node_name = node_name
            self._pending_endpoints.update(self.slices)
            self._pending_endpoints.update(self.applied)

    @property
    def pending(self) -> bool:
        return bool(self._pending_services or self._pending_endpoints)

    # -- consuming ------------------------------------------------------------------------
    def checkout(self) -> set[str]:
        """Apply every recorded change; return the keys of Services whose service ports or
        endpoints changed."""
        updated: set[str] = set()
        keys = self._pending_services | self._pending_endpoints
        for key in keys:
            old = self.applied.get(key)
            if key in self._pending_services:
                svc = self.services.get(key)
                ports = service_ports(svc, self.family) if svc is not None else ()
                if old is None or ports != old.ports:
                    updated.add(key)
            else:
                ports = old.ports if old is not None else ()
            if key in self._pending_endpoints or old is None:
                eps = endpoints_for_service(key, self.slices.get(key, {}).values(), self.family,
                                            self.node_name)
                if key in self._pending_endpoints:
                    updated.add(key)
            else:
                eps = old.endpoints
            if ports or eps:
                self.applied[key] = ServiceState(ports, eps)
            else:
                self.applied.pop(key, None)
        self._pending_services.clear()
        self._pending_endpoints.clear()
        return updated


class RecordingProxier:
    """Change handlers of a proxier whose every sync is a full rebuild (IPVS mode; knet's
    nftables mode): they record the latest Services, EndpointSlices and own Node, and mark the
    proxier dirty; ``sync`` rebuilds from what they recorded."""

    if not TYPE_CHECKING:  # a slotted mixin; the subclasses' slots hold the attributes below
        __slots__ = ()
    node: Node
    services: dict[str, Service]
    slices: dict[tuple[str, str], EndpointSlice]
    dirty: bool

    def on_service_change(self, prev: Service | None, cur: Service | None) -> None:
        obj = cur or prev
        assert obj is not None
        if cur is None:
            self.services.pop(obj.key, None)
        else:
            self.services[cur.key] = cur
        self.dirty = True

    def on_slice_change(self, prev: EndpointSlice | None, cur: EndpointSlice | None) -> None:
        obj = cur or prev
        assert obj is not None
        key = (obj.metadata.namespace, obj.metadata.name)
        if cur is None:
            self.slices.pop(key, None)
        else:
            self.slices[key] = cur
        self.dirty = True

    def on_node_change(self, prev: Node | None, cur: Node | None) -> None:
        if cur is not None and cur.name == self.node.name:
            self.node = cur
            self.dirty = True

    @property
    def needs_sync(self) -> bool:
        return self.dirty
