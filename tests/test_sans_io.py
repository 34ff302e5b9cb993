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
CORE_MODULES = ["errors.py", "dns/answer.py", "dns/stub.py", "dns/corefile.py", "dns/view.py",
                "dns/wire.py", "ingress/routes.py", "ingress/decision.py", "ingress/annotations.py",
                "ingress/routecache.py", "ingress/responses.py", "path.py",
                "gateway/model.py", "gateway/schema.py", "gateway/objects.py", "gateway/routes.py",
                "gateway/decision.py", "gateway/status.py", "gateway/controller.py",
                "gateway/convert.py", "gateway/l7.py"]
FORBIDDEN = {"asyncio", "socket", "selectors", "ssl", "aiohttp", "threading", "subprocess", "time"}


def core_files() -> list[Path]:
    files: list[Path] = []
    for pkg in CORE_PACKAGES:
        files += sorted((KNET / pkg).rglob("*.py"))
    files += [KNET / m for m in CORE_MODULES]
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


# --- the import closure ------------------------------------------------------------------------

# What a core entry point may not pull in, however indirectly (its whole import closure).
IO_MODULES = ("asyncio", "socket", "ssl")
# Third-party codecs the core builds on, imported first in a probe: what they load themselves
# is theirs (dnslib imports socket for inet_pton/inet_ntop), the rest of the closure is ours.
PRELOAD = {"knet.dns": ("dnslib",)}


def core_entry_points() -> list[str]:
    """The core packages (each with every module in it) and the pure modules elsewhere, those
    of one package probed together (``a,b``)."""
    mods = [f"knet.{p}" for p in CORE_PACKAGES]
    groups: dict[str, list[str]] = {}
    for m in CORE_MODULES:
        parts = Path(m).with_suffix("").parts
        groups.setdefault(parts[0] if len(parts) > 1 else m, []).append("knet." + ".".join(parts))
    return mods + [",".join(g) for g in groups.values()]


# One interpreter; each entry point is imported in a fork of it that has loaded nothing of
# knet (nor asyncio, socket, ssl): a fresh import closure per entry point for the price of a
# fork. A package is imported with every module under it.
_PROBE = r"""
import os, pkgutil, sys
import dataclasses, enum, ipaddress, json, re, typing  # shared by every probe (no IO in them)
import multidict, yaml
assert not [m for m in IO_MODULES if m in sys.modules], sorted(sys.modules)
for mod in sys.argv[1:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            for pre, libs in PRELOAD.items():
                if mod.startswith(pre):
                    for lib in libs:
                        __import__(lib)
            before = {m for m in IO_MODULES if m in sys.modules}
            for name in mod.split(","):
                top = __import__(name, fromlist=["_"])
                if hasattr(top, "__path__"):
                    for info in pkgutil.walk_packages(top.__path__, name + "."):
                        __import__(info.name)
            loaded = [m for m in IO_MODULES if m in sys.modules and m not in before]
            msg = " ".join(loaded) if loaded else "-"
        except BaseException as e:
            msg = "ERROR " + repr(e)
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    print(mod, out.decode(), sep="\t")
"""


def test_core_import_closures_load_no_io() -> None:
    import subprocess
    import sys

    mods = core_entry_points()
    script = f"IO_MODULES = {IO_MODULES!r}\nPRELOAD = {PRELOAD!r}\n" + _PROBE
    r = subprocess.run([sys.executable, "-c", script, *mods], capture_output=True, text=True,
                       timeout=120, cwd=KNET.parent)
    assert r.returncode == 0, r.stderr
    result = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    assert set(result) == set(mods)
    bad = {m: v for m, v in result.items() if v != "-"}
    assert not bad, f"core entry points whose imports load {IO_MODULES}: {bad}"


def test_comparing_modes_stays_in_the_core() -> None:
    """``knet compare-modes`` builds every mode's datapath for every flow: no fabric, no IO."""
    import subprocess
    import sys

    topo = KNET.parent / "topologies" / "demo.yaml"
    script = f"""
import sys
from knet.control import Cluster
from knet.manifests import read
from knet.proxy import modes
report = modes.compare(Cluster.from_input(read([{str(topo)!r}])))
assert report.flows
print(" ".join(m for m in {IO_MODULES!r} + ("knet.fabric",) if m in sys.modules) or "-")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                       cwd=KNET.parent)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "-"
