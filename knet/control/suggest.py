"""Messages for objects that do not exist: say how keys are written and suggest the closest.

``Pod client not found`` leaves people guessing; knet says that namespaced keys are
``namespace/name`` and names the object they most likely meant (the same name in another
namespace first, then the closest key by ``difflib``), as kubectl's "did you mean" hints do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def not_found(kind: str, namespace: str, name: str, keys: Iterable[tuple[str, str]]) -> str:
    """``Pod client not found (keys are namespace/name); did you mean default/client?``"""
    where = f"{namespace}/{name}" if namespace else name
    existing = [f"{ns}/{n}" if ns else n for ns, n in keys]
    namespaced = any("/" in k for k in existing)
    msg = f"{kind} {where} not found"
    if namespaced and not namespace:
        msg += " (keys are namespace/name)"
    same_name = sorted(k for k in existing if k.rpartition("/")[2] == name and k != where)
    guess = same_name[:1] or difflib.get_close_matches(where, existing, n=1, cutoff=0.6)
    if guess:
        msg += f"; did you mean {guess[0]}?"
    return msg


__all__ = ["not_found"]
