"""``read``: paths/stdin → every document → config + validated, defaulted objects.

Invariants: all-or-nothing — if any Problem is found anywhere (syntax, type, validation,
cross-object), ``ManifestError`` lists them all, ordered by input position, and nothing is
returned. Configuration kinds are read first (Services are validated against the cluster's
families, CIDRs and node-port range), then objects in input order; ``creation_index`` is
that order (after kind's nodes, which the cluster has before anything is applied).
"""

from __future__ import annotations

import os
from dataclasses import replace
from dataclasses import dataclass, field
from typing import Any, TextIO
from collections.abc import Sequence

from knet.errors import ManifestError, Problem
from knet.manifests import crosscheck, skipped
from knet.manifests.config import build_config, is_config_kind
from knet.manifests.controllers import ALSO_SERVED
from knet.manifests.endpoints import Endpoints, mirror, mirroring_skip_reason, parse_endpoints
from knet.manifests.fields import Ctx, F
from knet.manifests.images import unknown_image_warnings
from knet.manifests.loader import Document, load_documents
from knet.gateway.model import SERVED_VERSIONS
from knet.manifests.objects import KINDS, PARSERS, Scope, parse_meta
from knet.model.config import ClusterConfig
from knet.model.core import Service
from knet.model.meta import Source

YAML_SUFFIXES = (".yaml", ".yml")
_REMOVED = {  # kinds people still find in old charts: served no more in v1.32
    ("extensions/v1beta1", "Ingress"), ("networking.k8s.io/v1beta1", "Ingress"),
    ("networking.k8s.io/v1beta1", "IngressClass"), ("extensions/v1beta1", "Deployment"),
    ("apps/v1beta1", "Deployment"), ("apps/v1beta2", "Deployment"),
    ("extensions/v1beta1", "DaemonSet"), ("apps/v1beta2", "DaemonSet"),
    ("apps/v1beta1", "StatefulSet"), ("apps/v1beta2", "StatefulSet"),
    ("extensions/v1beta1", "ReplicaSet"), ("apps/v1beta2", "ReplicaSet"),
    ("discovery.k8s.io/v1beta1", "EndpointSlice"),
}


@dataclass(slots=True)
class Input:
    """What the input describes: objects (kind nodes first, then input order), the cluster
    configuration, and warnings (skipped kinds, ignored settings) for stderr."""

    objects: list[Any]
    config: ClusterConfig
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Doc:
    api_version: str
    kind: str
    cursor: F
    source: Source


def _files(paths: Sequence[str], stdin: TextIO | None,
           problems: list[Problem]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path in paths:
        if path == "-":
            if stdin is None:
                problems.append(Problem("no standard input to read", "<stdin>"))
                continue
            out.append(("<stdin>", stdin.read()))
        elif os.path.isdir(path) and os.path.isfile(os.path.join(path, "Chart.yaml")):
            problems.append(Problem(
                "a Helm chart directory (Chart.yaml), not manifests: render it first: "
                f"helm template NAME {path} | knet … -f -", path))
        elif os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith(YAML_SUFFIXES))
            for n in names:
                full = os.path.join(path, n)
                if os.path.isfile(full):
                    out.append((full, _read(full, problems)))
        else:
            out.append((path, _read(path, problems)))
    return out


def _read(path: str, problems: list[Problem]) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        problems.append(Problem("no such file or directory", path))
    except (OSError, UnicodeDecodeError) as e:
        problems.append(Problem(f"cannot read: {e}", path))
    return ""


def _flatten(doc: Document, value: Any, loc: tuple[int, int], problems: list[Problem],
             out: list[_Doc], default_kind: str = "", default_version: str = "") -> None:
    ctx = Ctx(doc.file)
    cursor = F(value, "", loc, ctx)
    if not isinstance(value, dict):
        problems.append(Problem(f"expected a Kubernetes object (a mapping), got "
                                f"{type(value).__name__}", doc.file, *loc))
        return
    api_version = cursor.str("apiVersion") or default_version
    kind = cursor.str("kind") or default_kind
    problems.extend(ctx.problems)
    ctx.problems.clear()
    if not kind:
        problems.append(Problem("Object 'Kind' is missing", doc.file, *loc))
        return
    if not api_version:
        problems.append(Problem("Object 'apiVersion' is missing", doc.file, *loc, kind))
        return
    if "items" in value and kind.endswith("List"):
        items = cursor.child("items")
        item_kind = kind[:-4] if kind != "List" else ""
        for item in items.items_of_list() if items is not None else []:
            _flatten(doc, item.value, item.loc, problems, out, item_kind,
                     api_version if item_kind else "")
        return
    ctx.kind = kind
    out.append(_Doc(api_version, kind, cursor, Source(doc.file, *loc)))


def read_texts(texts: Sequence[tuple[str, str]], *,
               problems: list[Problem] | None = None) -> Input:
    problems = list(problems or [])
    docs: list[_Doc] = []
    for filename, text in texts:
        loaded = load_documents(text, filename)
        problems += loaded.problems
        for doc in loaded.documents:
            _flatten(doc, doc.value, (doc.line, doc.col), problems, docs)
    warnings: list[str] = []

    # 1. configuration kinds
    config_docs = [(d.api_version, d.kind, d.cursor) for d in docs
                   if is_config_kind(d.api_version, d.kind)]
    result = build_config(config_docs)
    config = result.config
    warnings += result.warnings

    # 2. objects, in input order
    scope = Scope(config)
    objects: list[Any] = list(result.nodes)
    entries: list[tuple[Any, F]] = []
    endpoints: list[tuple[Endpoints, F]] = []
    index = len(objects)
    skipped_kinds: list[str] = []
    for d in docs:
        if is_config_kind(d.api_version, d.kind):
            continue
        spec = KINDS.get(d.kind)
        if spec is None or (d.api_version, d.kind) in _REMOVED and spec[0] != d.api_version:
            name = _name_of(d.cursor)
            if (d.api_version, d.kind) in _REMOVED:
                problems.append(Problem(
                    f'no matches for kind "{d.kind}" in version "{d.api_version}" (use '
                    f'{spec[0] if spec else "a served version"})', d.source.file,
                    d.source.line, d.source.col, d.kind, name, "apiVersion"))
            else:
                skipped_kinds.append(d.kind)
                warnings.append(f"{d.source}: skipped {d.api_version} {d.kind}"
                                f"{' ' + name if name else ''}: knet does not model this kind "
                                f"({skipped.consequence(d.kind)})")
            continue
        if spec[0] != d.api_version and (d.api_version, d.kind) not in ALSO_SERVED \
                and (d.api_version, d.kind) not in SERVED_VERSIONS:
            problems.append(Problem(
                f'no matches for kind "{d.kind}" in version "{d.api_version}" (use '
                f'{spec[0]})', d.source.file, d.source.line, d.source.col, d.kind,
                _name_of(d.cursor), "apiVersion"))
            continue
        meta = parse_meta(d.cursor, d.kind, scope, index, d.source)
        index += 1
        if d.kind == "Endpoints":
            endpoints.append((parse_endpoints(d.cursor, meta, scope), d.cursor))
        else:
            obj = PARSERS[d.kind](d.cursor, meta, scope)
            if obj is not None:
                objects.append(obj)
                entries.append((obj, d.cursor))

    warnings += unknown_image_warnings(objects)  # docs/apps.md: images outside the catalog

    # 3. Endpoints → EndpointSlices (mirroring controller)
    services = {o.metadata.key: o for o in objects if isinstance(o, Service)}
    for ep, _cursor in endpoints:
        reason = mirroring_skip_reason(ep, services)
        if reason is None:
            for sl in mirror(ep, scope.generated_name, ep.metadata.creation_index):
                uid = scope.uid(sl.kind, sl.metadata.namespace, sl.metadata.name)
                objects.append(replace(sl, metadata=replace(sl.metadata, uid=uid)))
        elif reason:
            warnings.append(f"{ep.metadata.source}: {reason}")

    # 4. checks across objects
    crosscheck.duplicates(entries + [(e, c) for e, c in endpoints])
    svc_entries = [(o, c) for o, c in entries if isinstance(o, Service)]
    crosscheck.cluster_ips(svc_entries, config)
    crosscheck.node_ports(svc_entries, config)
    crosscheck.pod_budget(entries, sum(1 for o in objects if getattr(o, "kind", "") == "Node"))
    for d in docs:
        problems += d.cursor.ctx.problems
        warnings += d.cursor.ctx.warnings
    if problems:
        raise ManifestError(_ordered(problems, [f for f, _ in texts]))
    line = skipped.summary(skipped_kinds)
    if line is not None:
        warnings.append(line)
    return Input(objects=objects, config=config, warnings=warnings)


def _name_of(cursor: F) -> str:
    meta = cursor.child("metadata")
    if meta is None or not isinstance(meta.value, dict):
        return ""
    name = meta.value.get("name")
    ns = meta.value.get("namespace")
    return f"{ns}/{name}" if ns and name else str(name or "")


def _ordered(problems: list[Problem], files: list[str]) -> list[Problem]:
    order = {f: i for i, f in enumerate(files)}
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (order.get(p.file, len(order)), p.line, p.col))


def read(paths: Sequence[str], stdin: TextIO | None = None) -> Input:
    """Read YAML files, directories (``*.yaml``/``*.yml``, sorted) and ``-`` (stdin)."""
    problems: list[Problem] = []
    texts = _files(paths, stdin, problems)
    return read_texts(texts, problems=problems)


def raw_documents(paths: Sequence[str], stdin: TextIO | None = None) -> list[dict[str, Any]]:
    """The input's documents as plain dicts, as ``kubectl apply -f`` would send them (YAML
    1.1 like kubectl's decoder; ``kind: List`` flattened; empty documents dropped). Used to
    apply a topology to a real cluster verbatim, after ``read`` has validated it."""
    import yaml

    problems: list[Problem] = []
    out: list[dict[str, Any]] = []
    for _name, text in _files(paths, stdin, problems):
        for doc in yaml.safe_load_all(text):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
                out.extend(d for d in doc["items"] if isinstance(d, dict))
            else:
                out.append(doc)
    if problems:
        raise ManifestError(problems)
    return out


def read_text(text: str, filename: str = "<stdin>") -> Input:
    return read_texts([(filename, text)])
