"""``knet rules``: a node's kube-proxy state in the mode's native text, or as JSON."""

from __future__ import annotations

from typing import Any

from knet.errors import UsageError
from knet.netfilter import RuleSet, render_save


def ruleset_json(rs: RuleSet) -> dict[str, Any]:
    return {"family": rs.family, "tables": {
        name: {"chains": [{"name": c.name, "policy": c.policy,
                           "rules": [r.text for r in c.rules]} for c in t.chains.values()]}
        for name, t in rs.tables.items()}}


def only_table(text: str, table: str | None) -> str:
    """Keep one ``*table … COMMIT`` section (with the comment lines just before it)."""
    if table is None:
        return text
    out: list[str] = []
    pending: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        if line.startswith("*"):
            inside = line[1:].strip() == table
            if inside:
                out += pending
            pending = []
        if inside:
            out.append(line)
            if line.strip() == "COMMIT":
                inside = False
        elif line.startswith("#"):
            pending.append(line)
        else:
            pending = []
    if inside is False and pending and out:
        out += pending  # iptables-save's "# Completed" line after COMMIT
    return "".join(out)


def render_rules(cluster: Any, node_name: str, mode: str, table: str | None,
                 family: int | None, fmt: str, output: str) -> Any:
    node = cluster.node(node_name)
    fams = [family] if family else list(cluster.config.families)
    for f in fams:
        if f not in cluster.config.families:
            raise UsageError(f"the cluster has no IPv{f} family (families: "
                             f"{', '.join('IPv%d' % x for x in cluster.config.families)})")
    if mode != "iptables":
        from knet.proxy import modes

        return modes.render(cluster, node, mode, fams, table, fmt, output)
    from knet.proxy.iptables import build

    texts, js = [], []
    for f in fams:
        rs, ri = build(node, cluster.services(), cluster.endpoint_slices(),
                       cluster.config.kube_proxy, cluster.config, f)
        if output == "json":
            js.append(ruleset_json(rs))
            continue
        text = ri.text if fmt == "restore" else render_save(rs)
        if len(fams) > 1:
            tool = "iptables" if f == 4 else "ip6tables"
            text = f"# {tool}-restore input (IPv{f})\n" + text if fmt == "restore" else text
        texts.append(only_table(text, table))
    if output == "json":
        return js[0] if len(js) == 1 else {"families": js}
    return "".join(texts)
