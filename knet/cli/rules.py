"""``knet rules``: a node's kube-proxy state in the mode's native text, or as JSON."""

from __future__ import annotations

from typing import Any

from knet.errors import UsageError


def render_rules(cluster: Any, node_name: str, mode: str, table: str | None,
                 family: int | None, fmt: str, output: str) -> Any:
    from knet.proxy import modes

    node = cluster.node(node_name)
    fams = [family] if family else list(cluster.config.families)
    for f in fams:
        if f not in cluster.config.families:
            raise UsageError(f"the cluster has no IPv{f} family (families: "
                             f"{', '.join(f'IPv{x}' for x in cluster.config.families)})")
    return modes.render(cluster, node, mode, fams, table, fmt, output)
