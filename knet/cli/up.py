"""``knet up``: run the cluster in real time and expose it to real tools on loopback."""

from __future__ import annotations
