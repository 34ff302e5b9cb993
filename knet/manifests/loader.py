"""YAML text → located Python values (a PyYAML SafeLoader that remembers where things are).

Invariants: every mapping is an ``LMap`` (a dict) that knows the 1-based line/column of each
key and value; every sequence is an ``LList`` that knows where each item is; for plain
(unquoted) scalars the original text is kept (``raw``) so that YAML 1.1 surprises (``on`` →
true, ``010`` → 8, ``1:30`` → 90, ``y``/``n`` which Go's yaml.v2 — used by kubectl — reads as
booleans) can be reported where the API wants a string. Duplicate mapping keys are Problems,
not silent overwrites (kubectl rejects them: "mapping key already defined"). Timestamps stay
strings (kubectl/yaml.v2 decodes them as strings into untyped values). Nothing here raises: a
syntax error becomes a Problem at the parser's position.

Parsing goes through libyaml's C parser (``yaml.CParser``, shipped in PyYAML's wheels; the
pure-Python parser only when libyaml is missing); values are built by ``_Builder`` from the
composed nodes, whose marks give every location. Before anything is built, each document is
checked as kubectl's YAML decoder (go-yaml v2) would and against knet's own bounds:
- alias expansion: go-yaml's "document contains excessive aliasing" ratio rule, plus a hard cap
  of ``MAX_EXPANDED_NODES`` nodes after expansion (an alias bomb is refused in milliseconds);
- nesting deeper than ``MAX_DEPTH`` levels (after alias expansion) is refused (libyaml stops
  at 1000, go-yaml at 10000; Kubernetes objects nest about 20 deep);
- a document over ``MAX_DOCUMENT_BYTES`` (the API server's 3 MiB request body limit);
- only the YAML core schema's tags (``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``,
  ``!!map``, ``!!seq``, ``!!binary`` as UTF-8 text, ``!!timestamp`` kept as text); an explicit
  tag whose value does not fit it is a located Problem, never a TypeError.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from knet.errors import Problem

Loc = tuple[int, int]  # 1-based (line, col)

_T = "tag:yaml.org,2002:"
T_MAP, T_SEQ, T_STR, T_MERGE = _T + "map", _T + "seq", _T + "str", _T + "merge"
T_INT, T_FLOAT, T_BOOL, T_NULL = _T + "int", _T + "float", _T + "bool", _T + "null"
T_BINARY, T_TIMESTAMP = _T + "binary", _T + "timestamp"


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
    if isinstance(node, ScalarNode) and not node.style:  # plain: None (Python), "" (libyaml)
        return node.value
    return None


class _Resolver(yaml.resolver.Resolver):
    """SafeLoader's implicit resolvers (minus timestamps); no path resolvers, so the descend /
    ascend bookkeeping PyYAML does for every node is skipped (libyaml calls it per node)."""

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode and implicit[0]:
            for tag, regexp in self.yaml_implicit_resolvers.get(value[:1], ()):
                if regexp.match(value):
                    return tag
            return T_STR
        if kind is ScalarNode:
            return T_STR
        return T_SEQ if kind is SequenceNode else T_MAP


# Same implicit resolvers as SafeLoader's, minus timestamps (kept as strings, as kubectl does).
_Resolver.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}


MAX_DEPTH = 100
MAX_EXPANDED_NODES = 1_000_000
MAX_DOCUMENT_BYTES = 3 * 1024 * 1024


if yaml.__with_libyaml__:
    from yaml._yaml import CParser as _Parser

    class _Composer(_Parser, _Resolver):
        def __init__(self, stream: str) -> None:
            _Parser.__init__(self, stream)
            _Resolver.__init__(self)
else:  # pragma: no cover - PyYAML built without libyaml
    class _Composer(yaml.reader.Reader, yaml.scanner.Scanner,  # type: ignore[no-redef]
                    yaml.parser.Parser, yaml.composer.Composer, _Resolver):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            _Resolver.__init__(self)


class _Refused(Exception):
    """A document the checks refuse: message and the node it is located at."""

    def __init__(self, message: str, node: yaml.Node) -> None:
        super().__init__(message)
        self.node = node


def _allowed_aliases(decoded: int) -> float:
    """go-yaml v2 ``allowedAliasRatio`` (decode.go)."""
    low, high = 400_000, 4_000_000
    if decoded <= low:
        return 0.99
    if decoded >= high:
        return 0.10
    return 0.99 - 0.89 * (decoded - low) / (high - low)


def check_aliases(node: yaml.Node) -> None:
    """Raise ``_Refused`` when aliases make the document too big or too deep, or recursive.

    One iterative pass over the node graph (each distinct node once): expanded size, nodes
    decoded inside alias expansions (go-yaml's ``aliasCount``), expanded depth. Only needed
    when the text has an anchor (``&``); the builder checks depth and tags itself.
    """
    size: dict[int, int] = {}     # nodes decoded when this node is decoded
    aliased: dict[int, int] = {}  # of those, how many under an alias (node decoded at depth 0)
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(node, 0)]
    on_path.add(id(node))
    while stack:
        n, i = stack[-1]
        kids = _children(n)
        if i < len(kids):
            stack[-1] = (n, i + 1)
            c = kids[i]
            if id(c) in on_path:
                raise _Refused("anchor value contains itself", c)
            if id(c) not in size:
                on_path.add(id(c))
                stack.append((c, 0))
            continue
        stack.pop()
        on_path.discard(id(n))
        total, under, deepest = 1, 0, 0
        seen: set[int] = set()
        for c in kids:
            k = id(c)
            # a node met again below this one is an alias (go-yaml decodes it again in full)
            alias = k in seen or _is_alias(c, n)
            seen.add(k)
            total += size[k] + (1 if alias else 0)
            under += size[k] if alias else aliased[k]
            deepest = max(deepest, depth[k])
        size[id(n)], aliased[id(n)], depth[id(n)] = total, under, deepest + 1
        if deepest + 1 > MAX_DEPTH:
            raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", n)
        if total > MAX_EXPANDED_NODES or (
                under > 100 and total > 1000 and under / total > _allowed_aliases(total)):
            raise _Refused("document contains excessive aliasing", n)


def _children(n: yaml.Node) -> list[yaml.Node]:
    if isinstance(n, MappingNode):
        return [x for kv in n.value for x in kv]
    if isinstance(n, SequenceNode):
        return list(n.value)
    return []


def _is_alias(child: yaml.Node, parent: yaml.Node) -> bool:
    """An occurrence of ``child`` that is an alias: the node was defined (started) before its
    parent in the text, so this reference cannot be the anchor's definition."""
    return (child.start_mark.index < parent.start_mark.index
            or child.start_mark.index > parent.end_mark.index)


def _short(tag: str) -> str:
    return "!!" + tag[len(_T):] if tag.startswith(_T) else tag


class _Builder(yaml.constructor.SafeConstructor):
    """Checked nodes → LMap / LList / scalars (recursion bounded by ``MAX_DEPTH``); an alias
    yields the same Python object as its anchor, as PyYAML's constructors do."""

    def __init__(self, problems: list[Problem], filename: str) -> None:
        super().__init__()
        self.problems = problems
        self.filename = filename
        self.built: dict[int, Any] = {}

    def build(self, node: yaml.Node, depth: int = 1) -> Any:
        k = id(node)
        if k in self.built:
            return self.built[k]
        if depth > MAX_DEPTH:
            raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", node)
        if isinstance(node, ScalarNode):
            v: Any = node.value if node.tag == T_STR else self.build_scalar(node)
        elif node.tag == T_MAP:
            v = self.build_lmap(node, depth)  # type: ignore[arg-type]
        elif node.tag == T_SEQ:
            v = self.build_llist(node, depth)  # type: ignore[arg-type]
        else:
            raise _Refused(f"unsupported YAML tag {_short(node.tag)}", node)
        self.built[k] = v
        return v

    def build_scalar(self, node: ScalarNode) -> Any:
        tag = node.tag
        try:
            if tag in (T_TIMESTAMP, "!", T_MERGE):
                return node.value
            if tag == T_BINARY:
                return base64.b64decode(node.value.encode("ascii")).decode("utf-8")
            if tag == T_INT:
                return self.construct_yaml_int(node)
            if tag == T_FLOAT:
                return self.construct_yaml_float(node)
            if tag == T_BOOL:
                return self.construct_yaml_bool(node)
            if tag == T_NULL:
                return None
        except (ValueError, KeyError, TypeError, UnicodeError, OverflowError):
            raise _Refused(f"cannot decode {_short(tag)} `{node.value[:40]}`", node) from None
        raise _Refused(f"unsupported YAML tag {_short(tag)}", node)

    def build_lmap(self, node: MappingNode, depth: int) -> LMap:
        own = {id(k) for k, _ in node.value if k.tag != T_MERGE}
        self.flatten_mapping(node)
        out = LMap()
        self.built[id(node)] = out
        merged: set[str] = set()  # keys that came from `<<:` merges: later entries override
        out.loc = _loc(node)
        for key_node, value_node in node.value:
            key = self.build(key_node, depth + 1)
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
            out[key] = self.build(value_node, depth + 1)
            out.key_locs[key] = _loc(key_node)
            out.val_locs[key] = _loc(value_node)
            raw = _raw(value_node)
            if raw is not None:
                out.raw[key] = raw
        return out

    def build_llist(self, node: SequenceNode, depth: int) -> LList:
        out = LList()
        self.built[id(node)] = out
        out.loc = _loc(node)
        for child in node.value:
            out.append(self.build(child, depth + 1))
            out.locs.append(_loc(child))
            out.raw.append(_raw(child))
        return out


def _key_text(node: yaml.Node, value: Any) -> str:
    if isinstance(node, ScalarNode):
        return node.value
    return str(value)


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
    """All documents of ``text``; syntax errors, refused documents and duplicate keys become
    Problems (nothing is built from a refused document)."""
    out = Loaded()
    loader: Any = None
    anchors = "&" in text  # no anchor, no alias: skip the alias pass
    try:
        loader = _Composer(text)
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            try:
                if node.end_mark.index - node.start_mark.index > MAX_DOCUMENT_BYTES:
                    raise _Refused(f"Request entity too large: limit is {MAX_DOCUMENT_BYTES}",
                                   node)
                if anchors:
                    check_aliases(node)
                value = _Builder(out.problems, filename).build(node)
            except _Refused as e:
                out.problems.append(Problem(str(e), filename, *_loc(e.node)))
                continue
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
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (NUL, …)
        # libyaml counts the position in UTF-8 bytes, the pure-Python reader in characters
        index = e.position
        if yaml.__with_libyaml__:
            index = len(text.encode("utf-8", "surrogatepass")[:index].decode("utf-8", "ignore"))
        line, col = _position(text, index)
        c = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        out.problems.append(Problem(f"YAML syntax error: character U+{c:04X} is not allowed "
                                    f"({e.reason})", filename, line, col))
    except UnicodeError as e:  # text that is not encodable (lone surrogates from stdin)
        line, col = _position(text, getattr(e, "start", 0))
        out.problems.append(Problem("YAML syntax error: not valid Unicode text", filename,
                                    line, col))
    except yaml.YAMLError as e:  # libyaml's own wording for reader errors and the like
        out.problems.append(Problem(f"YAML error: {_one_line(str(e))}", filename, 0, 0))
    finally:
        if loader is not None:
            loader.dispose()
    return out


def _position(text: str, index: int) -> Loc:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _one_line(s: str) -> str:
    return " ".join(s.split())
