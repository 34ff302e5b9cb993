"""The one place knet generates code: small constructors and copiers specialised to a
dataclass's fields (a Packet rebuilt with new addresses, a frozen model value evolved, a
conntrack tuple made). Generated once per class at import or first use, they skip
``dataclasses.replace``'s per-call introspection, which matters on the packet hot path and
at 150,000 pods.

Only identifiers are interpolated (checked): field and parameter names of knet's own
dataclasses, never data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def define(name: str, params: Iterable[str], body: Iterable[str],
           env: Mapping[str, object] | None = None) -> Callable[..., Any]:
    """``def name(params): body`` compiled with ``env`` as its globals; returns the function.

    ``params`` are identifiers, optionally with a default written as ``name=<expr>`` where
    the expression is a name in ``env`` or a literal; ``body`` holds statement lines, without
    indentation. Every identifier the caller interpolated must be one: a bad one raises
    ValueError with the generated source.
    """
    params = list(params)
    lines = list(body)
    for p in [name, *(q.split("=", 1)[0] for q in params)]:
        if not p.isidentifier():
            raise ValueError(f"not an identifier: {p!r}")
    src = f"def {name}({', '.join(params)}):\n" + "".join(f"    {line}\n" for line in lines)
    ns: dict[str, Any] = dict(env or {})
    try:
        code = compile(src, f"<knet.codegen {name}>", "exec")
    except SyntaxError as e:
        raise ValueError(f"generated code does not compile: {e}\n{src}") from None
    exec(code, ns)  # noqa: S102 - identifiers of knet's own dataclasses only (checked above)
    fn = ns[name]
    fn.__knet_source__ = src
    return fn
