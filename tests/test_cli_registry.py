"""CLI structure: command modules register nothing on import; ``knet.cli.register`` adds the
commands they list; shared options come from knet.cli.options, which imports no knet.cli."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CLI = Path(__file__).resolve().parents[1] / "knet" / "cli"


def test_importing_command_modules_registers_nothing() -> None:
    script = """
import importlib
import knet.cli as k
for name in k.COMMAND_MODULES:
    importlib.import_module(name)
assert not k.cli.commands, sorted(k.cli.commands)
k.register()
print(" ".join(sorted(k.cli.commands)))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    names = set(r.stdout.split())
    assert {"validate", "get", "rules", "trace", "up", "demo", "reach", "compare-modes"} <= names


def test_options_module_imports_nothing_of_the_cli() -> None:
    tree = ast.parse((CLI / "options.py").read_text())
    mods = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    mods += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in mods if m and m.startswith("knet.cli")]


def test_nothing_below_the_cli_imports_it() -> None:
    knet = CLI.parent
    offenders = []
    for path in knet.rglob("*.py"):
        if CLI in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mod = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [mod or ""]
            if any(n == "knet.cli" or n.startswith("knet.cli.") for n in names):
                offenders.append(f"{path.relative_to(knet)}:{node.lineno}")
    assert not offenders, offenders
