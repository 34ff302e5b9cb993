"""kube-proxy on one node, behind a mode-neutral interface the runtime drives.

Invariants:
- Change handlers only record (kube-proxy's change trackers); ``sync(now)`` consumes them,
  and the node's engine (``engine``) executes the result from the next packet on. The node's
  kube-proxy and engine for its mode come from ``knet.proxy.modes.make_dataplane`` (the same
  builder ``knet rules``/``trace``/``compare-modes`` use): iptables, IPVS or nftables.
- Timing is the bounded-frequency runner's (kube-proxy.md §1.4) on the clock the runtime
  passes in (virtual or real): at most one sync per ``minSyncPeriod`` (1 s default, burst 2),
  and at least one per maximum interval even without changes: ``FULL_SYNC_PERIOD`` (1 h) in
  iptables and nftables modes, ``syncPeriod`` (30 s) in IPVS mode, where every sync is full.
- Pure: no asyncio here; the runtime's loop asks ``next_sync_time(now)`` and calls ``sync``.
"""

from __future__ import annotations

import random
from typing import Any, Protocol, runtime_checkable

from knet.model.config import ClusterConfig
from knet.model.core import Node, Service
from knet.model.discovery import EndpointSlice
from knet.proxy.modes import Dataplane, make_dataplane

FULL_SYNC_PERIOD = 3600.0  # iptables/nftables FullSyncPeriod (pkg/proxy/{iptables,nftables})
BURST_SYNCS = 2            # kube-proxy's bounded-frequency runner burst


@runtime_checkable
class NodeProxy(Protocol):
    """What the runtime needs from a kube-proxy mode."""

    mode: str
    syncs: int

    @property
    def engine(self) -> Any: ...

    def on_service_change(self, prev: Service | None, cur: Service | None) -> None: ...

    def on_slice_change(self, prev: EndpointSlice | None, cur: EndpointSlice | None) -> None: ...

    def on_node_change(self, prev: Node | None, cur: Node | None) -> None: ...

    @property
    def needs_sync(self) -> bool: ...

    def next_sync_time(self, now: float) -> float: ...

    def sync(self, now: float) -> dict[int, Any]: ...

    def rulesets(self) -> dict[int, Any]: ...

    def tables(self) -> dict[int, Any]: ...

    def restore_text(self, family: int = 4) -> str: ...

    def rules(self, family: int | None = None) -> str: ...


class SyncRunner:
    """``async.BoundedFrequencyRunner`` as kube-proxy configures it: a token bucket of
    ``burst`` tokens refilled at one per ``min_interval``, and a sync at least every
    ``max_interval``."""

    __slots__ = ("min_interval", "max_interval", "burst", "_tokens", "_tokens_at", "last")

    def __init__(self, min_interval: float, max_interval: float,
                 burst: int = BURST_SYNCS) -> None:
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.burst = burst
        self._tokens = float(burst)
        self._tokens_at = 0.0
        self.last: float | None = None

    def _tokens_now(self, now: float) -> float:
        if self.min_interval <= 0:
            return float(self.burst)
        return min(float(self.burst),
                   self._tokens + (now - self._tokens_at) / self.min_interval)

    def next_time(self, now: float, pending: bool) -> float:
        if not pending:
            return (self.last if self.last is not None else now) + self.max_interval
        t = self._tokens_now(now)
        return now if t >= 1.0 else now + (1.0 - t) * self.min_interval

    def ran(self, now: float) -> None:
        self._tokens = max(0.0, self._tokens_now(now) - 1.0)
        self._tokens_at = now
        self.last = now


class ModeNodeProxy:
    """kube-proxy on one node in its mode: the mode's ``Dataplane`` plus the sync timing."""

    max_interval = FULL_SYNC_PERIOD

    def __init__(self, dataplane: Dataplane) -> None:
        self.dataplane = dataplane
        self.mode = dataplane.mode
        self.syncs = 0
        self.last_sync: float | None = None
        pc = dataplane.proxy_config
        self.runner = SyncRunner(pc.min_sync_period, self._max_interval(pc))

    def _max_interval(self, proxy_config: Any) -> float:
        return FULL_SYNC_PERIOD

    @property
    def engine(self) -> Any:
        return self.dataplane.engine

    def on_service_change(self, prev: Service | None, cur: Service | None) -> None:
        self.dataplane.on_service_change(prev, cur)

    def on_slice_change(self, prev: EndpointSlice | None, cur: EndpointSlice | None) -> None:
        self.dataplane.on_slice_change(prev, cur)

    def on_node_change(self, prev: Node | None, cur: Node | None) -> None:
        self.dataplane.on_node_change(prev, cur)

    @property
    def needs_sync(self) -> bool:
        return self.dataplane.needs_sync

    def next_sync_time(self, now: float) -> float:
        return self.runner.next_time(now, self.needs_sync)

    def sync(self, now: float) -> dict[int, Any]:
        self.runner.ran(now)
        out = self.dataplane.sync(now)
        self.syncs += 1
        self.last_sync = now
        return out

    def rulesets(self) -> dict[int, Any]:
        """The iptables tables the node runs (IPVS mode: the glue; nftables mode: none)."""
        return self.dataplane.rulesets()

    def tables(self) -> dict[int, Any]:
        """The mode's live tables per family (``RuleSet``; ``NftTable`` in nftables mode)."""
        return self.dataplane.tables()

    def restore_text(self, family: int = 4) -> str:
        """The live iptables tables in iptables-restore form ("" in nftables mode)."""
        return self.dataplane.restore_text(family)

    def rules(self, family: int | None = None, *, table: str | None = None,
              fmt: str = "restore") -> str:
        """The node's state in the mode's native text, as ``knet rules`` prints it: restore
        input (iptables); kube-ipvs0 addresses + ``ipvsadm -Ln`` of the live table + ipsets +
        the iptables glue (IPVS); the nft transaction (nftables)."""
        return self.dataplane.text(None if family is None else (family,), table, fmt)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.dataplane.node.name} syncs={self.syncs}>"


class IptablesNodeProxy(ModeNodeProxy):
    """iptables mode: ``knet.proxy.iptables.Proxier`` per family (KEP-3453 partial syncs)."""

    def last_restore_input(self, family: int = 4) -> str:
        """What the last sync sent to iptables-restore (partial syncs are partial)."""
        return self.dataplane.last_restore_input(family)  # type: ignore[attr-defined]


class IPVSNodeProxy(ModeNodeProxy):
    """IPVS mode: every sync is full, and one runs at least every ``syncPeriod`` (30 s); the
    node's IPVS table lives across syncs (graceful termination, connection counters)."""

    def _max_interval(self, proxy_config: Any) -> float:
        return proxy_config.sync_period

    @property
    def ipvs(self) -> Any:
        """The node's live IPVS table (``knet.netfilter.ipvs.IPVS``)."""
        return self.dataplane.ipvs  # type: ignore[attr-defined]

    def ipvsadm(self, family: int | None = None) -> str:
        return self.dataplane.ipvsadm(family)  # type: ignore[attr-defined]


class NftablesNodeProxy(ModeNodeProxy):
    """nftables mode: each sync applies an ``nft -f`` transaction to the live table."""

    def last_transaction(self, family: int = 4) -> str:
        return self.dataplane.last_transaction(family)  # type: ignore[attr-defined]


_PROXIES: dict[str, type[ModeNodeProxy]] = {
    "iptables": IptablesNodeProxy, "ipvs": IPVSNodeProxy, "nftables": NftablesNodeProxy}


def make_node_proxy(node: Node, cluster_config: ClusterConfig, families: tuple[int, ...],
                    rng: random.Random | None = None) -> ModeNodeProxy:
    """kube-proxy for ``node`` in ``KubeProxyConfig.mode`` (iptables, ipvs, nftables)."""
    pc = cluster_config.kube_proxy
    mode = pc.mode or "iptables"
    dp = make_dataplane(mode, node, pc, cluster_config, families,
                        rng if rng is not None else random.Random(f"0:netfilter:{node.name}"))
    return _PROXIES[dp.mode](dp)


__all__ = ["FULL_SYNC_PERIOD", "IPVSNodeProxy", "IptablesNodeProxy", "ModeNodeProxy",
           "NftablesNodeProxy", "NodeProxy", "SyncRunner", "make_node_proxy"]
