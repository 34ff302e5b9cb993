"""YAML text → located Python values (a PyYAML SafeLoader that remembers where things are).

Invariants: every mapping is an ``LMap`` (a dict) that knows the 1-based line/column of each
key and value; every sequence is an ``LList`` that knows where each item is; for plain
(unquoted) scalars the original text is kept (``raw``) so that YAML 1.1 surprises (``on`` →
true, ``010`` → 8, ``1:30`` → 90, ``y``/``n`` which Go's yaml.v2 — used by kubectl — reads as
booleans) can be reported where the API wants a string. Duplicate mapping keys are Problems,
not silent overwrites (kubectl rejects them: "mapping key already defined"). Timestamps stay
strings (kubectl/yaml.v2 decodes them as strings into untyped values). Nothing here raises: a
syntax error becomes a Problem at the parser's position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from knet.errors import Problem

Loc = tuple[int, int]  # 1-based (line, col)


class LMap(dict):
    """A mapping from YAML with locations: ``loc`` (of the mapping), ``key_locs``, ``val_locs``,
    ``raw`` (plain-scalar text of values)."""

    __slots__ = ("loc", "key_locs", "val_locs", "raw")

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.loc: Loc = (0, 0)
        self.key_locs: dict[Any, Loc] = {}
        self.val_locs: dict[Any, Loc] = {}
        self.raw: dict[Any, str] = {}


class LList(list):
    """A sequence from YAML with ``loc`` and per-item ``locs``/``raw``."""

    __slots__ = ("loc", "locs", "raw")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.loc: Loc = (0, 0)
        self.locs: list[Loc] = []
        self.raw: list[str | None] = []


def _loc(node: yaml.Node) -> Loc:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _raw(node: yaml.Node) -> str | None:
    if isinstance(node, ScalarNode) and node.style is None:
        return node.value
    return None


class _Resolver(yaml.resolver.Resolver):
    pass


# Same implicit resolvers as SafeLoader's, minus timestamps (kept as strings, as kubectl does).
_Resolver.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}


class LocLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,
                yaml.composer.Composer, yaml.constructor.SafeConstructor, _Resolver):
    def __init__(self, stream: str, problems: list[Problem], filename: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        self.problems = problems
        self.filename = filename

    def construct_lmap(self, node: MappingNode) -> LMap:
        own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        self.flatten_mapping(node)
        out = LMap()
        merged: set[str] = set()  # keys that came from `<<:` merges: later entries override
        out.loc = _loc(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                if isinstance(key, (bool, int, float)) or key is None:
                    # Keys are strings in the API (yaml.v2 turns `80:` into "80" for map[string]).
                    key = _key_text(key_node, key)
                else:
                    self.problems.append(Problem(
                        "mapping key must be a string", self.filename, *_loc(key_node)))
                    continue
            if key in out and key in merged:
                merged.discard(key)
            elif key in out:
                first = out.key_locs[key]
                self.problems.append(Problem(
                    f'duplicate key "{key}" (first defined at line {first[0]})',
                    self.filename, *_loc(key_node)))
                continue
            if id(key_node) not in own:
                merged.add(key)
            out[key] = self.construct_object(value_node, deep=True)
            out.key_locs[key] = _loc(key_node)
            out.val_locs[key] = _loc(value_node)
            raw = _raw(value_node)
            if raw is not None:
                out.raw[key] = raw
        return out

    def construct_llist(self, node: SequenceNode) -> LList:
        out = LList()
        out.loc = _loc(node)
        for child in node.value:
            out.append(self.construct_object(child, deep=True))
            out.locs.append(_loc(child))
            out.raw.append(_raw(child))
        return out


def _key_text(node: yaml.Node, value: Any) -> str:
    if isinstance(node, ScalarNode):
        return node.value
    return str(value)


# types-PyYAML bounds constructors to its own Loader classes; LocLoader is assembled from the mixins
LocLoader.add_constructor("tag:yaml.org,2002:map", LocLoader.construct_lmap)  # type: ignore[type-var]
LocLoader.add_constructor("tag:yaml.org,2002:omap", LocLoader.construct_lmap)  # type: ignore[type-var]
LocLoader.add_constructor("tag:yaml.org,2002:seq", LocLoader.construct_llist)  # type: ignore[type-var]


@dataclass(slots=True)
class Document:
    """One YAML document of a file: its top-level value and where it starts."""

    value: Any
    file: str
    line: int
    col: int


@dataclass(slots=True)
class Loaded:
    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def load_documents(text: str, filename: str) -> Loaded:
    """All documents of ``text``; syntax errors and duplicate keys become Problems."""
    out = Loaded()
    loader = LocLoader(text, out.problems, filename)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            value = loader.construct_document(node)
            if value is None:
                continue
            out.documents.append(Document(value, filename, *_loc(node)))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = e.problem or "invalid YAML"
        if e.context:
            message = f"{message} ({e.context}"
            if e.context_mark is not None and e.context_mark is not mark:
                message += f" at line {e.context_mark.line + 1}"
            message += ")"
        out.problems.append(Problem(f"YAML syntax error: {message}", filename, line, col))
    except yaml.YAMLError as e:  # reader errors (bad characters) and the like
        out.problems.append(Problem(f"YAML error: {e}", filename, 0, 0))
    finally:
        loader.dispose()
    return out
