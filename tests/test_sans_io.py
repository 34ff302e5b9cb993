"""The sans-IO core must not import asyncio, sockets, wall-clock time or global random.

Checked statically over the source (an import of a forbidden module anywhere in a core module
fails), so a stray import can't hide behind a lazy code path.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KNET = Path(__file__).resolve().parents[1] / "knet"
CORE_PACKAGES = ["model", "manifests", "control", "proxy", "netfilter", "policy"]
# Pure modules inside packages that also hold adapters.
CORE_MODULES = ["errors.py", "dns/answer.py", "dns/records.py", "dns/stub.py",
                "dns/corefile.py", "dns/view.py", "ingress/routes.py",
                "ingress/decision.py", "ingress/annotations.py", "ingress/routecache.py",
                "path.py"]
FORBIDDEN = {"asyncio", "socket", "selectors", "ssl", "aiohttp", "threading", "subprocess", "time"}


def core_files() -> list[Path]:
    files: list[Path] = []
    for pkg in CORE_PACKAGES:
        files += sorted((KNET / pkg).rglob("*.py"))
    files += [KNET / m for m in CORE_MODULES if (KNET / m).exists()]
    return files


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def global_random_uses(path: Path) -> list[int]:
    """Calls like random.random()/random.choice(): module-level RNG, not an injected Random."""
    tree = ast.parse(path.read_text())
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "random" and node.attr not in ("Random",)):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(KNET)))
def test_core_module_is_sans_io(path: Path) -> None:
    bad = [(line, mod) for line, mod in imports(path) if mod.split(".")[0] in FORBIDDEN]
    assert not bad, f"{path}: forbidden imports in the sans-IO core: {bad}"
    assert not global_random_uses(path), f"{path}: uses the global random module"


def test_core_is_not_empty() -> None:
    assert len(core_files()) >= 5
