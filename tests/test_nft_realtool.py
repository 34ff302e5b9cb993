"""Real tools accept what knet generates: ``nft -c -f`` for nftables-mode transactions, and
``ipset restore`` + ``iptables-restore`` for IPVS mode's sets and glue. Runs in a scratch
network namespace (always deleted); no packet is sent. Root only."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from knet.proxy import modes

from modes_factory import rich, with_proxy

pytestmark = pytest.mark.root


def _why_not(tool: str) -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "iproute2 'ip' not installed"
    if shutil.which(tool) is None:
        return f"{tool} not installed"
    return None


class Netns:
    def __init__(self, kind: str) -> None:
        self.name = f"knet-{kind}-{os.getpid()}"

    def __enter__(self) -> Netns:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def run(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], input=stdin, text=True,
                              capture_output=True, timeout=60)


CASES = {
    "rich": (rich(), [4]),
    "dual": (rich(dual=True), [4, 6]),
    "all-addresses+masquerade-all": (with_proxy(rich(), node_port_addresses=("0.0.0.0/0",),
                                                masquerade_all=True), [4]),
    "no-detector+mh": (with_proxy(rich(), detect_local_mode="BridgeInterface",
                                  ipvs_scheduler="mh"), [4]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_nft_accepts_transaction(case):
    why = _why_not("nft")
    if why:
        pytest.skip(why)
    c, fams = CASES[case]
    for node in c.nodes():
        text = modes.render(c, node, "nftables", fams, None, "restore", "text")
        with tempfile.NamedTemporaryFile("w", suffix=".nft") as f:
            f.write(text)
            f.flush()
            with Netns("nft") as ns:
                r = ns.run("nft", "-c", "-f", f.name)
                assert r.returncode == 0, r.stderr
                r = ns.run("nft", "-f", f.name)  # and load it twice: a resync is valid too
                assert r.returncode == 0, r.stderr
                r = ns.run("nft", "-f", f.name)
                assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_ipset_and_iptables_restore_accept_ipvs_state(case):
    why = _why_not("ipset") or _why_not("iptables-restore")
    if why:
        pytest.skip(why)
    from knet.proxy.ipvs import build_state

    c, fams = CASES[case]
    node = c.node("node-a")
    for fam in fams:
        st = build_state(node, c.services(), c.endpoint_slices(), c.config.kube_proxy,
                         c.config, fam)
        with Netns("ipvs") as ns:
            r = ns.run("ipset", "restore", stdin=st.ipset_restore())
            assert r.returncode == 0, r.stderr
            listed = ns.run("ipset", "list", "-n").stdout.split()
            assert sorted(listed) == sorted(s.name for s in st.ipsets)
            tool = "ip6tables-restore" if fam == 6 else "iptables-restore"
            text = st.restore_text
            r = ns.run(tool, "--noflush", stdin=text)
            if r.returncode != 0 and "ipvs" in r.stderr:
                # the xt_ipvs match needs the ip_vs module, absent on this kernel: check
                # the rest of the glue and say so
                text = "\n".join(ln for ln in text.splitlines() if "-m ipvs" not in ln) + "\n"
                r = ns.run(tool, "--noflush", stdin=text)
            assert r.returncode == 0, r.stderr
