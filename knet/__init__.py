"""knet: Kubernetes networking and service routing, emulated in one Python process.

``knet.load(paths, seed=…)`` returns the converged, pure cluster state (no event loop);
``async with knet.run(paths, seed=…) as cluster:`` runs it: pods as asyncio code on a virtual
network whose every packet crosses the nodes' kube-proxy tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Iterable

from knet.errors import KnetError, ManifestError, NotFound, Problem, UsageError

if TYPE_CHECKING:
    from knet.control import Cluster

__version__ = "0.1.0"


def load(paths: str | Iterable[str], seed: int | None = None, **kw: Any) -> Cluster:
    """Read manifests and converge the control plane (pure; no event loop)."""
    from knet.control import load as _load

    return _load(paths, seed=seed, **kw)


def run(paths: str | Iterable[str], seed: int | None = None, **kw: Any) -> Any:
    """``async with knet.run(paths, seed=…) as cluster:`` — the running emulation."""
    from knet.runtime import run as _run

    return _run(paths, seed=seed, **kw)


__all__ = ["KnetError", "ManifestError", "NotFound", "Problem", "UsageError", "load", "run",
           "__version__"]
