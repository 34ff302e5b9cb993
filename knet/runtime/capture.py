"""``cluster.capture(...)``: a ``knet.trace.Capture`` that knows the running cluster.

While any capture runs, every node's datapath keeps the matched rules (``explain``), so stories
and pcapng comments name the deciding rule; with no capture the hot path keeps nothing. Pods and
Services are named from the control plane's state at query time.
"""

from __future__ import annotations

from typing import Any

from knet.trace import Capture
from knet.trace.record import PodInfo


class RuntimeCapture(Capture):
    def __init__(self, rt: Any, filter: Any = None, **filters: Any) -> None:
        super().__init__(rt.fabric, filter, resolve_pod=self._pod, service_of=self._service,
                         **filters)
        self._rt = rt

    def start(self) -> RuntimeCapture:
        super().start()
        self._rt._explaining += 1
        for dp in self._rt.datapaths.values():
            dp.explain = True
        return self

    def stop(self) -> None:
        if self.running:
            super().stop()
            self._rt._explaining -= 1
            if self._rt._explaining == 0:
                for dp in self._rt.datapaths.values():
                    dp.explain = False

    def _pod(self, ip: Any) -> PodInfo | None:
        for p in self._rt.state.pods():
            if ip in p.status.pod_ips and not p.spec.host_network:
                return PodInfo(p.namespace, p.name, dict(p.metadata.labels), p.spec.node_name)
        return None

    def _service(self, ip: Any, port: int, proto: str) -> str | None:
        text = str(ip)
        for s in self._rt.state.services():
            addrs = set(s.spec.cluster_ips or (s.spec.cluster_ip,)) | set(s.spec.external_ips)
            addrs |= {i.ip for i in s.load_balancer_ingress if i.ip}
            if text not in addrs:
                continue
            for sp in s.spec.ports:
                if sp.port == port and str(sp.protocol).lower() == proto.lower():
                    return f"{s.key}:{sp.name}" if sp.name else s.key
        return None
