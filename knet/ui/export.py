"""Self-contained pages and pictures: ``knet trace --url … --html FILE`` (one request's story,
with its CSS, script and data inlined: it opens from disk with no server) and ``knet map``
(the service map through Graphviz).

Pure: strings in, strings (or bytes from Graphviz) out; the CLI writes the files.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any


def _static(name: str) -> str:
    return resources.files("knet.ui").joinpath("static").joinpath(name).read_text("utf-8")


def story_html(title: str, flows: list[dict[str, Any]], answer: str) -> str:
    """A page drawing ``flows`` (``knet.ui.view.story`` dicts) hop by hop."""
    data = json.dumps({"title": title, "flows": flows}).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_static("app.css")}
body {{ padding: 1em; }}</style></head>
<body><p class="answer">{html.escape(answer)}</p><div id="story"></div>
<script>{_static("story.js")}</script>
<script>const knetStory = {data};
knetDrawStory(document.getElementById("story"), knetStory.flows, knetStory.title);</script>
</body></html>
"""


def map_dot(m: dict[str, Any]) -> str:
    """The service map (``knet.ui.view.service_map``) as Graphviz dot: one cluster per node."""
    q = json.dumps
    lines = ["digraph knet {", '  graph [rankdir=LR, fontname="Helvetica", fontsize=11];',
             '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];']
    for i, n in enumerate(m["nodes"]):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={q(n['name'])}; style=rounded; color=\"#9aaccc\";")
        for p in m["pods"]:
            if p["node"] == n["name"]:
                color = "#3aa55d" if p["ready"] else ("#e0a526" if p["phase"] == "Pending" else "#bbbbbb")
                label = f"{p['namespace']}/{p['name']}\n{p['ip']}"
                lines.append(f"    {q(p['id'])} [label={q(label)}, shape=box, style=\"rounded,filled\", "
                             f"fillcolor={q(color)}];")
        lines.append("  }")
    for p in m["pods"]:
        if not p["node"]:
            lines.append(f"  {q(p['id'])} [label={q(p['namespace'] + '/' + p['name'])}, shape=box, "
                         "style=dashed];")
    for s in m["services"]:
        label = f"{s['namespace']}/{s['name']}\n{s['type']} {s['clusterIP']}"
        lines.append(f"  {q(s['id'])} [label={q(label)}, shape=diamond, style=filled, "
                     "fillcolor=\"#cfdcf5\"];")
    for r in m["routes"]:
        lines.append(f"  {q(r['id'])} [label={q(r['kind'] + ' ' + r['namespace'] + '/' + r['name'])}, "
                     "shape=hexagon];")
    known = {x["id"] for k in ("nodes", "pods", "services", "routes") for x in m[k]}
    for e in m["edges"]:
        for end in (e["source"], e["target"]):
            if end not in known:
                known.add(end)
                lines.append(f"  {q(end)} [label={q(end.removeprefix('ip:'))}, shape=ellipse];")
        attrs = {"selects": 'color="#8899aa"', "routes": 'style=dashed, color="#8a4fd0"',
                 "traffic": f'color="#f08c2e", penwidth=2, label={q(str(e.get("count", "")))}'}
        lines.append(f"  {q(e['source'])} -> {q(e['target'])} [{attrs.get(e['kind'], '')}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_map(m: dict[str, Any], fmt: str) -> bytes:
    """``fmt`` dot, svg or png (svg/png through Graphviz's ``dot``)."""
    dot = map_dot(m)
    if fmt == "dot":
        return dot.encode()
    import graphviz

    from knet.errors import UsageError

    try:
        return graphviz.Source(dot).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise UsageError("drawing svg/png needs Graphviz's dot program (apt-get install graphviz); "
                         "-o dot prints the source") from None


__all__ = ["map_dot", "render_map", "story_html"]
