"""The emulated control plane: store + events, IPAM, scheduler, controllers, EndpointSlices.

``load(paths, seed=None) -> Cluster`` reads manifests (knet.manifests) and returns the
converged, pure cluster state every later layer reads.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Iterable

from knet.control.cluster import Cluster
from knet.control.events import Event, ObjectAdded, ObjectDeleted, ObjectUpdated
from knet.control.store import Store


def load(paths: str | Iterable[str], seed: int | None = None, **kw: Any) -> Cluster:
    from knet.manifests import read

    if isinstance(paths, str):
        paths = [paths]
    return Cluster.from_input(read(list(paths)), seed=seed, **kw)


__all__ = ["Cluster", "Event", "ObjectAdded", "ObjectDeleted", "ObjectUpdated", "Store", "load"]
