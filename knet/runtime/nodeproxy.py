"""kube-proxy on one node, behind a mode-neutral interface the runtime drives.

Invariants:
- Change handlers only record (kube-proxy's change trackers); ``sync(now)`` consumes them and
  returns the node's tables per IP family; the datapath executes exactly those tables.
- Timing is the bounded-frequency runner's: ``next_sync_time(now)`` honours minSyncPeriod
  (1 s default, burst 2) on the clock the runtime passes in (virtual or real).
- Modes plug in through ``NodeProxy``; ``make_node_proxy`` picks one from
  ``KubeProxyConfig.mode``. iptables mode uses ``knet.proxy.iptables.Proxier`` (incremental,
  KEP-3453 partial syncs) when present, else a full rebuild per sync.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from knet.model.config import ClusterConfig, KubeProxyConfig
from knet.model.core import Node, Service
from knet.model.discovery import EndpointSlice
from knet.netfilter import RuleSet, render_restore

FULL_SYNC_PERIOD = 3600.0
BURST_SYNCS = 2


@runtime_checkable
class NodeProxy(Protocol):
    """What the runtime needs from a kube-proxy mode."""

    mode: str
    syncs: int

    def on_service_change(self, prev: Service | None, cur: Service | None) -> None: ...

    def on_slice_change(self, prev: EndpointSlice | None, cur: EndpointSlice | None) -> None: ...

    def on_node_change(self, prev: Node | None, cur: Node | None) -> None: ...

    @property
    def needs_sync(self) -> bool: ...

    def next_sync_time(self, now: float) -> float: ...

    def sync(self, now: float) -> dict[int, RuleSet]: ...

    def rulesets(self) -> dict[int, RuleSet]: ...

    def restore_text(self, family: int = 4) -> str: ...


class IptablesNodeProxy:
    """iptables mode: one ``Proxier`` per IP family of the cluster."""

    mode = "iptables"

    def __init__(self, node: Node, proxy_config: KubeProxyConfig,
                 cluster_config: ClusterConfig | None, families: tuple[int, ...]) -> None:
        self.syncs = 0
        self.last_sync: float | None = None
        from knet.proxy import iptables

        proxier = getattr(iptables, "Proxier", None)
        if proxier is not None:
            self._impl: dict[int, object] = {
                f: proxier(node, proxy_config, cluster_config, f) for f in families}
        else:  # pragma: no cover - until knet.proxy's Proxier lands
            self._impl = {f: _FullBuild(node, proxy_config, cluster_config, f) for f in families}
        self._last_restore: dict[int, str] = {}

    def on_service_change(self, prev: Service | None, cur: Service | None) -> None:
        for p in self._impl.values():
            p.on_service_change(prev, cur)  # type: ignore[attr-defined]

    def on_slice_change(self, prev: EndpointSlice | None, cur: EndpointSlice | None) -> None:
        for p in self._impl.values():
            p.on_slice_change(prev, cur)  # type: ignore[attr-defined]

    def on_node_change(self, prev: Node | None, cur: Node | None) -> None:
        for p in self._impl.values():
            p.on_node_change(prev, cur)  # type: ignore[attr-defined]

    @property
    def needs_sync(self) -> bool:
        return any(p.needs_sync for p in self._impl.values())  # type: ignore[attr-defined]

    def next_sync_time(self, now: float) -> float:
        return min(p.next_sync_time(now) for p in self._impl.values())  # type: ignore[attr-defined]

    def sync(self, now: float) -> dict[int, RuleSet]:
        out: dict[int, RuleSet] = {}
        for fam, p in self._impl.items():
            res = p.sync(now)  # type: ignore[attr-defined]
            out[fam] = res.ruleset
            try:
                self._last_restore[fam] = res.restore_text
            except Exception:  # noqa: BLE001 - text is informative only
                pass
        self.syncs += 1
        self.last_sync = now
        return out

    def rulesets(self) -> dict[int, RuleSet]:
        return {f: p.ruleset for f, p in self._impl.items()}  # type: ignore[attr-defined]

    def restore_text(self, family: int = 4) -> str:
        """The live tables in iptables-restore form (what ``knet rules`` prints)."""
        rs = self.rulesets().get(family)
        return render_restore(rs) if rs is not None else ""

    def last_restore_input(self, family: int = 4) -> str:
        """What the last sync sent to iptables-restore (partial syncs are partial)."""
        return self._last_restore.get(family, "")


class _FullBuildResult:
    def __init__(self, ruleset: RuleSet, text: str) -> None:
        self.ruleset = ruleset
        self.restore_text = text


class _FullBuild:
    """Fallback: record the latest objects; every sync is a full build."""

    def __init__(self, node: Node, proxy_config: KubeProxyConfig,
                 cluster_config: ClusterConfig | None, family: int) -> None:
        self.node, self.proxy_config, self.cluster_config = node, proxy_config, cluster_config
        self.family = family
        self.services: dict[str, Service] = {}
        self.slices: dict[tuple[str, str], EndpointSlice] = {}
        self.ruleset = RuleSet(family)
        self._dirty = True
        self._tokens = float(BURST_SYNCS)
        self._tokens_at = 0.0
        self._last: float | None = None

    def on_service_change(self, prev: Service | None, cur: Service | None) -> None:
        obj = cur or prev
        if cur is None:
            self.services.pop(obj.key, None)  # type: ignore[union-attr]
        else:
            self.services[cur.key] = cur
        self._dirty = True

    def on_slice_change(self, prev: EndpointSlice | None, cur: EndpointSlice | None) -> None:
        obj = cur or prev
        key = (obj.metadata.namespace, obj.metadata.name)  # type: ignore[union-attr]
        if cur is None:
            self.slices.pop(key, None)
        else:
            self.slices[key] = cur
        self._dirty = True

    def on_node_change(self, prev: Node | None, cur: Node | None) -> None:
        if cur is not None and cur.name == self.node.name:
            self.node = cur
            self._dirty = True

    @property
    def needs_sync(self) -> bool:
        return self._dirty

    def _tokens_now(self, now: float) -> float:
        period = self.proxy_config.min_sync_period
        if period <= 0:
            return float(BURST_SYNCS)
        return min(float(BURST_SYNCS), self._tokens + (now - self._tokens_at) / period)

    def next_sync_time(self, now: float) -> float:
        if not self._dirty:
            return (self._last if self._last is not None else now) + FULL_SYNC_PERIOD
        t = self._tokens_now(now)
        return now if t >= 1.0 else now + (1.0 - t) * self.proxy_config.min_sync_period

    def sync(self, now: float) -> _FullBuildResult:
        from knet.proxy.iptables import build

        self._tokens = max(0.0, self._tokens_now(now) - 1.0)
        self._tokens_at = now
        rs, ri = build(self.node, list(self.services.values()), list(self.slices.values()),
                       self.proxy_config, self.cluster_config, self.family)
        self.ruleset = rs
        self._dirty = False
        self._last = now
        return _FullBuildResult(rs, ri.text)


def make_node_proxy(node: Node, cluster_config: ClusterConfig,
                    families: tuple[int, ...]) -> NodeProxy:
    mode = cluster_config.kube_proxy.mode or "iptables"
    if mode != "iptables":
        # IPVS / nftables modes plug in here when knet.proxy provides them; until then the
        # node runs iptables mode (docs/apps.md notes it).
        mode = "iptables"
    return IptablesNodeProxy(node, cluster_config.kube_proxy, cluster_config, families)
