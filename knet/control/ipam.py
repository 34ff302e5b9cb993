"""Address and port allocation, each allocator a faithful copy of the real one's strategy.

- Node IPs: kind puts node containers on Docker's "kind" network, 172.18.0.2, .3, … in node
  order (the gateway is .1); IPv6 fc00:f853:ccd:e793::2, … Addresses given in a Node
  manifest are kept and never handed out again.
- Node pod CIDRs (kube-controller-manager node-ipam, range allocator): the N-th node in order
  gets the N-th ``/node_cidr_mask`` subnet of each pod subnet (10.244.N.0/24, v6 /64), unless
  its manifest names podCIDR(s); taken subnets are skipped.
- Pod IPs (kindnet's CNI config uses the host-local IPAM plugin): per node and family, the
  gateway ``.1`` is reserved, allocation starts at ``.2`` and continues after the last address
  handed out (host-local's ``lastReservedIP``), wrapping round; the last address is excluded.
- ClusterIPs (pkg/registry/core/service/ipallocator, bitmap with
  ``randomScanStrategyWithOffset``): offsets start at the network address + 1; the lower band
  of ``clamp(size/16, 16, 256)`` addresses is kept for static IPs (``kubernetes`` takes the
  first, ``kube-dns`` the tenth); dynamic IPs are random in the upper band (seeded), then the
  lower band when the upper one is full.
- NodePorts (pkg/registry/core/service/portallocator): the same strategy over the node port
  range with a static band of ``clamp(size/32, 16, 128)`` ports.
- LoadBalancer IPs (MetalLB): first free address of the first pool that has one (pools in
  order, ``autoAssign: false`` pools only on request); without pools knet emulates kind's
  documented MetalLB setup, 172.18.255.200-172.18.255.250 (and ``…:ffff:200``-``…:ffff:250`` for
  IPv6 on the node subnet).
"""

from __future__ import annotations

import random
from ipaddress import (
    IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network,
)
from collections.abc import Iterable, Iterator, Sequence

from knet.model.config import AddressPool

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


class OffsetAllocator:
    """A bitmap allocator of ``size`` offsets with a static lower band (random scan)."""

    def __init__(self, size: int, static_band: int, rng: random.Random) -> None:
        self.size = size
        self.offset = static_band if size > static_band else 0
        self.rng = rng
        self.used: set[int] = set()

    def reserve(self, off: int) -> bool:
        if not 0 <= off < self.size or off in self.used:
            return False
        self.used.add(off)
        return True

    def release(self, off: int) -> None:
        self.used.discard(off)

    def allocate(self) -> int | None:
        if len(self.used) >= self.size:
            return None
        upper = self.size - self.offset
        start = self.rng.randrange(upper)
        for i in range(upper):
            at = self.offset + (start + i) % upper
            if at not in self.used:
                self.used.add(at)
                return at
        if self.offset:
            start = self.rng.randrange(self.offset)
            for i in range(self.offset):
                at = (start + i) % self.offset
                if at not in self.used:
                    self.used.add(at)
                    return at
        return None


class ClusterIPAllocator:
    """Service ClusterIPs of one family out of one service CIDR."""

    def __init__(self, cidr: IPNetwork, rng: random.Random) -> None:
        self.cidr = cidr
        self.base = int(cidr.network_address) + 1
        # IPv4 loses network and broadcast addresses; IPv6 only the network address (the
        # bitmap allocator's RangeSize - 1 for v6 as well, capped at 2^16 in practice).
        size = cidr.num_addresses - (2 if cidr.version == 4 else 1)
        size = min(size, 1 << 20) if cidr.version == 6 else size
        self.bitmap = OffsetAllocator(size, _clamp(size // 16, 16, 256), rng)

    def contains(self, ip: IPAddress) -> bool:
        return ip.version == self.cidr.version and 0 <= int(ip) - self.base < self.bitmap.size

    def reserve(self, ip: IPAddress) -> bool:
        return self.contains(ip) and self.bitmap.reserve(int(ip) - self.base)

    def release(self, ip: IPAddress) -> None:
        if self.contains(ip):
            self.bitmap.release(int(ip) - self.base)

    def allocate(self) -> IPAddress | None:
        off = self.bitmap.allocate()
        return None if off is None else ip_address(self.base + off)

    def nth(self, n: int) -> IPAddress:
        """The n-th address (1-based): nth(1) is the ``kubernetes`` Service's IP."""
        return ip_address(self.base + n - 1)


class NodePortAllocator:
    def __init__(self, lo: int, hi: int, rng: random.Random) -> None:
        self.lo = lo
        size = hi - lo + 1
        self.bitmap = OffsetAllocator(size, _clamp(size // 32, 16, 128), rng)

    def reserve(self, port: int) -> bool:
        return self.bitmap.reserve(port - self.lo)

    def release(self, port: int) -> None:
        self.bitmap.release(port - self.lo)

    def allocate(self) -> int | None:
        off = self.bitmap.allocate()
        return None if off is None else self.lo + off


class HostLocal:
    """host-local IPAM over one pod CIDR: .1 is the gateway, sequential from .2, wrapping."""

    def __init__(self, cidr: IPNetwork) -> None:
        self.cidr = cidr
        self.first = int(cidr.network_address) + 2
        self.last = int(cidr.broadcast_address) - 1
        self.last_reserved = self.first - 1
        self.used: set[int] = set()

    def reserve(self, ip: IPAddress) -> bool:
        v = int(ip)
        if v in self.used:
            return False
        self.used.add(v)
        return True

    def release(self, ip: IPAddress) -> None:
        self.used.discard(int(ip))

    def allocate(self) -> IPAddress | None:
        span = self.last - self.first + 1
        if span <= 0:
            return None
        start = self.last_reserved + 1
        for i in range(min(span, len(self.used) + 1)):
            v = self.first + (start - self.first + i) % span
            if v not in self.used:
                self.used.add(v)
                self.last_reserved = v
                return ip_address(v)
        return None


def _pool_addresses(spec: str) -> Iterator[IPAddress]:
    spec = spec.strip()
    if "-" in spec:
        a, b = (ip_address(x.strip()) for x in spec.split("-", 1))
        for v in range(int(a), int(b) + 1):
            yield ip_address(v)
    else:
        net = ip_network(spec, strict=False)
        for v in range(int(net.network_address), int(net.broadcast_address) + 1):
            yield ip_address(v)


def default_address_pools(node_subnets: Sequence[IPNetwork]) -> tuple[AddressPool, ...]:
    ranges = []
    for net in node_subnets:
        top = int(net.broadcast_address)
        # 172.18.255.0 for IPv4
        hi = ip_address(top & ~0xFF) if net.version == 4 else ip_address(int(net.network_address) + 0xFFFF0000)
        ranges.append(f"{ip_address(int(hi) + 200)}-{ip_address(int(hi) + 250)}")
    return (AddressPool(name="knet-default", addresses=tuple(ranges)),)


class LoadBalancerIPAllocator:
    def __init__(self, pools: Iterable[AddressPool]) -> None:
        self.pools = tuple(pools)
        self.used: set[IPAddress] = set()

    def pool_of(self, ip: IPAddress) -> AddressPool | None:
        for pool in self.pools:
            for spec in pool.addresses:
                if _spec_contains(spec, ip):
                    return pool
        return None

    def reserve(self, ip: IPAddress) -> bool:
        if ip in self.used:
            return False
        self.used.add(ip)
        return True

    def release(self, ip: IPAddress) -> None:
        self.used.discard(ip)

    def allocate(self, family: int, pool_name: str = "") -> IPAddress | None:
        for pool in self.pools:
            if pool_name and pool.name != pool_name:
                continue
            if not pool_name and not pool.auto_assign:
                continue
            for spec in pool.addresses:
                if _spec_family(spec) != family:
                    continue
                for ip in _pool_addresses(spec):
                    if ip not in self.used:
                        self.used.add(ip)
                        return ip
        return None


def _spec_family(spec: str) -> int:
    return 6 if ":" in spec else 4


def _spec_contains(spec: str, ip: IPAddress) -> bool:
    spec = spec.strip()
    if _spec_family(spec) != ip.version:
        return False
    if "-" in spec:
        a, b = (ip_address(x.strip()) for x in spec.split("-", 1))
        return int(a) <= int(ip) <= int(b)
    return ip in ip_network(spec, strict=False)


def node_subnet_cidrs(pod_subnet: IPNetwork, mask: int) -> Iterator[IPNetwork]:
    return pod_subnet.subnets(new_prefix=mask)


def nth_subnet(pod_subnet: IPNetwork, mask: int, n: int) -> IPNetwork | None:
    shift = mask - pod_subnet.prefixlen
    if shift < 0 or n >= (1 << shift):
        return None
    size = 1 << (pod_subnet.max_prefixlen - mask)
    return ip_network((int(pod_subnet.network_address) + n * size, mask))
