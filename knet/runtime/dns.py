"""Pod-side DNS over the fabric: knet.dns's stub resolver driven by real UDP/TCP packets.

Invariants:
- resolv.conf is kubelet's (``knet.dns.stub.resolv_conf_for_pod``: dnsPolicy, dnsConfig,
  ``ndots:5``, the kube-dns ClusterIP); the search-path walk is glibc's
  (``knet.dns.client.resolve``). Queries leave the pod's network namespace as UDP datagrams
  to the nameserver (TCP on truncation or ``use-vc``), cross the node's tables (DNAT to a
  CoreDNS pod) and come back un-NATed; nothing reads cluster state on the client side.
- glibc retry: ``attempts`` rounds (default 2) over the nameservers, ``timeout`` seconds each
  (default 5) on the loop's clock.
- Replies are cached per their TTL (minimum RR TTL; negative answers per the SOA TTL, RFC
  2308), keyed by the question, on the loop's clock: the "DNS cached" resolver a long-lived
  client process would have (``cache=False`` for glibc's uncached behaviour).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from dnslib import DNSRecord

from knet.dns.client import Resolution, resolve
from knet.dns.stub import ResolvConf, etc_hosts_for_pod, parse_hosts, resolv_conf_for_pod
from knet.model.core import Pod


def pod_resolv_conf(pod: Pod, dns_ip: str | None, domain: str) -> ResolvConf:
    return resolv_conf_for_pod(pod, cluster_dns=[dns_ip] if dns_ip else [],
                               cluster_domain=domain)


class _Waiter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class PodDns:
    """A pod's resolver: ``await dns.resolve(name, family)`` → addresses."""

    def __init__(self, netns: Any, conf: ResolvConf, hosts_text: str = "", *,
                 cache: bool = True) -> None:
        self.netns = netns
        self.conf = conf
        self.hosts = parse_hosts(hosts_text) if hosts_text else []
        self.cache_enabled = cache
        self._cache: dict[bytes, tuple[float, bytes]] = {}
        self.last: Resolution | None = None

    @classmethod
    def for_pod(cls, netns: Any, pod: Pod, dns_ip: str | None, domain: str, *,
                cache: bool = True) -> PodDns:
        return cls(netns, pod_resolv_conf(pod, dns_ip, domain),
                   etc_hosts_for_pod(pod, domain), cache=cache)

    def _option(self, name: str, default: float) -> float:
        v = self.conf.option(name)
        try:
            return float(v) if v else default
        except ValueError:
            return default

    async def send(self, data: bytes, tcp: bool) -> bytes | None:
        loop = asyncio.get_running_loop()
        key = bytes([tcp]) + data[2:]
        if self.cache_enabled:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > loop.time():
                return data[:2] + hit[1][2:]
        timeout = self._option("timeout", 5.0)
        attempts = max(1, int(self._option("attempts", 2)))
        for _ in range(attempts):
            for server in self.conf.nameservers:
                try:
                    reply = await asyncio.wait_for(
                        self._tcp(server, data) if tcp else self._udp(server, data), timeout)
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    continue
                if reply is not None:
                    if self.cache_enabled:
                        self._remember(key, reply, loop.time())
                    return reply
        return None

    def _remember(self, key: bytes, reply: bytes, now: float) -> None:
        try:
            rec = DNSRecord.parse(reply)
        except Exception:  # noqa: BLE001 - unparsable replies are not cached
            return
        ttls = [rr.ttl for rr in rec.rr] or [rr.ttl for rr in rec.auth]
        if ttls and min(ttls) > 0 and rec.header.rcode in (0, 3):
            self._cache[key] = (now + min(ttls), reply)

    async def _udp(self, server: str, data: bytes) -> bytes:
        transport, proto = await self.netns.create_datagram_endpoint(
            _Waiter, remote_addr=(server, 53))
        try:
            transport.sendto(data)
            return await proto.reply
        finally:
            transport.close()

    async def _tcp(self, server: str, data: bytes) -> bytes:
        reader, writer = await self.netns.open_connection(server, 53)
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            (n,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(n)
        finally:
            writer.close()

    async def resolution(self, name: str, family: int = 0) -> Resolution:
        fam = {2: 4, 10: 6}.get(family, family if family in (4, 6) else 0)
        res = await resolve(name, fam, self.conf, self.send, hosts=self.hosts)
        self.last = res
        return res

    async def resolve(self, name: str, family: int = 0) -> list[str]:
        return list((await self.resolution(name, family)).addresses)


__all__ = ["PodDns", "ResolvConf", "pod_resolv_conf"]
