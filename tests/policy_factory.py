"""The upstream netpol e2e model (namespaces x/y/z, pods a/b/c, ports 80/81) with policies."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from knet.control import Cluster
from knet.manifests import read, read_text
from knet.manifests.read import Input
from knet.policy.reach import Reachability, reachability

ROOT = Path(__file__).resolve().parent.parent
MODEL = str(ROOT / "topologies" / "netpol-model.yaml")
PODS = [f"{ns}/{p}" for ns in "xyz" for p in "abc"]


@functools.cache
def _model() -> Input:
    return read([MODEL])


def cluster(policies: str = "", mode: str | None = None) -> Cluster:
    base = _model()
    objs = list(base.objects)
    if policies.strip():
        objs += read_text(policies, "policies.yaml").objects
    config = base.config
    if mode is not None:
        from dataclasses import replace

        config = replace(config, kube_proxy=replace(config.kube_proxy, mode=mode))
    return Cluster.from_input(Input(objs, config))


def table(policies: str = "", *, port: int = 80, protocol: str = "TCP", via: str = "service",
          mode: str | None = None, **kw: Any) -> Reachability:
    return reachability(cluster(policies, mode), pods=PODS, ports=[port],
                        protocols=[protocol], via=via, **kw)


def expect(*rows: str) -> str:
    """A table from its rows (``"x/a ~ . X …"``), header added."""
    return "\n".join(["- " + " ".join(PODS), *rows]) + "\n"


def all_allowed() -> str:
    return expect(*(" ".join([f, *("~" if f == t else "." for t in PODS)]) for f in PODS))


def grid(allowed: Any) -> str:
    """A table from ``allowed(from, to) -> bool``."""
    return expect(*(" ".join([f, *("~" if f == t else ("." if allowed(f, t) else "X")
                                   for t in PODS)]) for f in PODS))
