"""``cluster.capture(...)``: a ``knet.trace.Capture`` that knows the running cluster.

While any capture runs, every node's datapath keeps the matched rules (``explain``), so stories
and pcapng comments name the deciding rule; with no capture the hot path keeps nothing. Pods and
Services are named from the control plane's state at query time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from knet.errors import KnetError, UsageError

from knet.trace import Capture
from knet.trace.record import PodInfo


class RuntimeCapture(Capture):
    def __init__(self, rt: Any, filter: Any = None, **filters: Any) -> None:
        super().__init__(rt.fabric, filter, resolve_pod=self._pod, service_of=self._service,
                         **filters)
        self._rt = rt
        self.l7: list[dict[str, Any]] = []  # Gateway decisions (knet.gateway.l7)

    def start(self) -> RuntimeCapture:
        from knet.gateway import l7

        super().start()
        l7.register(self._rt, self)
        self._rt._explaining += 1
        for dp in self._rt.datapaths.values():
            dp.explain = True
        return self

    def stop(self) -> None:
        if self.running:
            from knet.gateway import l7

            super().stop()
            l7.unregister(self._rt, self)
            self._rt._explaining -= 1
            if self._rt._explaining == 0:
                for dp in self._rt.datapaths.values():
                    dp.explain = False

    def hubble(self) -> list[dict[str, object]]:
        """Hubble flow records: the packets', then the Gateways' L7 records."""
        from knet.gateway.l7 import hubble_records

        return [*super().hubble(), *hubble_records(self.l7, self.epoch)]

    def to_jsonl(self) -> str:
        """Hubble-shaped flow records, one JSON object per line (L7 records last)."""
        import json

        from knet.gateway.l7 import hubble_records

        extra = "".join(json.dumps(r, separators=(",", ":")) + "\n"
                        for r in hubble_records(self.l7, self.epoch))
        return super().to_jsonl() + extra

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


async def traced_request(cluster: Any, src: str, url: str | None = None,
                         dns_name: str | None = None, *, timeout: float = 10.0,
                         verbose: bool = False) -> tuple[dict[str, Any], Any]:
    """One HTTP request (``url``) or name resolution (``dns_name``) from pod ``src`` under a
    capture. Returns the JSON-able result (with the story) and the capture."""
    if (url is None) == (dns_name is None):
        raise UsageError("give exactly one of --url or --dns")
    pod = cluster.pod(src)
    result: dict[str, Any] = {"from": src}
    cap = cluster.capture()
    async with cap:
        try:
            async with asyncio.timeout(timeout):
                if url is not None:
                    resp = await pod.http.get(url, allow_redirects=False)
                    body = await resp.read()
                    result["http"] = {"status": resp.status, "headers": dict(resp.headers),
                                      "body": body.decode("utf-8", "replace")}
                else:
                    result["dns"] = {"name": dns_name, "addresses": await pod.resolve(dns_name)}
        except (OSError, TimeoutError, KnetError) as e:
            result["error"] = f"{type(e).__name__}: {e}"
        await asyncio.sleep(0)
    result["story"] = cap.story(verbose=verbose)
    if cap.l7:  # Gateway decisions along the way (listener → route → rule → filters → backend)
        from knet.gateway.l7 import story_lines

        result["story"] = result["story"].rstrip("\n") + "\n" + "\n".join(
            story_lines(cap.l7)) + "\n"
        result["l7"] = list(cap.l7)
    result["flows"] = len(cap.flows())
    return result, cap
