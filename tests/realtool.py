"""Run rules through the real iptables in a scratch network namespace (root only).

``restore_and_save(text, family)`` loads restore text with ``iptables-restore`` inside a fresh
netns ``knet-test-<pid>-<n>`` and returns what ``iptables-save`` prints there. The netns is
always deleted. No packet is ever sent. ``unavailable()`` says why this cannot run (or None).
Which backend ran (``iptables-nft`` or ``iptables-legacy``) is in ``backend()``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess

_counter = itertools.count()


def _tool(family: int, kind: str) -> str | None:
    base = "ip6tables" if family == 6 else "iptables"
    for variant in (f"{base}-nft-{kind}", f"{base}-legacy-{kind}", f"{base}-{kind}"):
        if shutil.which(variant):
            return variant
    return None


def backend(family: int = 4) -> str:
    tool = _tool(family, "restore") or ""
    return tool.removesuffix("-restore")


def unavailable(family: int = 4) -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (network namespaces and iptables)"
    if shutil.which("ip") is None:
        return "iproute2 'ip' not installed"
    if _tool(family, "restore") is None or _tool(family, "save") is None:
        return "iptables-restore/iptables-save not installed (apt-get install iptables)"
    name = f"knet-test-{os.getpid()}-probe"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"'ip netns add' failed: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def restore_and_save(text: str, family: int = 4) -> str:
    """Load ``text`` with iptables-restore in a scratch netns; return iptables-save output."""
    restore, save = _tool(family, "restore"), _tool(family, "save")
    assert restore and save
    ns = f"knet-test-{os.getpid()}-{next(_counter)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        r = subprocess.run(["ip", "netns", "exec", ns, restore], input=text, text=True,
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"{restore} failed: {r.stderr.strip()}")
        s = subprocess.run(["ip", "netns", "exec", ns, save], text=True, capture_output=True,
                           timeout=60, check=True)
        return s.stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
