"""Text and JSON forms of rule tables shared by ``knet rules`` and the mode dataplanes."""

from __future__ import annotations

from typing import Any

from knet.netfilter import RuleSet


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
