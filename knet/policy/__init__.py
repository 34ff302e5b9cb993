"""Network policy: NetworkPolicy and the cluster-scoped policies compiled per cluster into
indexed rules (``index``), the datapath hook that judges every new connection after DNAT
(``hook``), and reachability tables (``reach``). Pure, synchronous code."""

from knet.policy.index import Decision, DirectionVerdict, PolicyIndex

__all__ = ["Decision", "DirectionVerdict", "PolicyIndex"]
