"""Real iptables accepts knet's restore text and prints exactly knet's save view (root only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from knet.netfilter.rules import Rule, RuleSet, parse_rules, render_restore, render_save
from realtool import backend, restore_and_save, unavailable

DATA = Path(__file__).parent / "data" / "netfilter"

pytestmark = pytest.mark.root


def _tables(text: str) -> dict[str, list[str]]:
    """Per table, the lines without '#' comments and with counters zeroed (legacy and nft
    print tables in different orders)."""
    out: dict[str, list[str]] = {}
    cur: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("*"):
            cur = out.setdefault(line, [])
        if line.startswith(":") and line.endswith("]"):
            line = line[:line.rindex("[")] + "[0:0]"
        cur.append(line)
    return out


def _need(family: int = 4) -> None:
    reason = unavailable(family)
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("name", ["worked-example.restore", "options.restore"])
def test_real_iptables_save_equals_render_save(name: str) -> None:
    _need()
    rs = parse_rules((DATA / name).read_text())
    real = restore_and_save(render_restore(rs, include_builtin=True))
    assert _tables(real) == _tables(render_save(rs)), backend()


def test_real_iptables_accepts_kube_proxy_restore_text_as_written() -> None:
    _need()
    text = (DATA / "worked-example.restore").read_text()
    real = restore_and_save(text)
    assert _tables(real) == _tables(render_save(parse_rules(text)))


def test_real_ip6tables_save_equals_render_save() -> None:
    _need(6)
    rs = RuleSet(6)
    nat = rs.table("nat")
    for c in ("KUBE-SERVICES", "KUBE-SVC-X", "KUBE-SEP-X", "KUBE-MARK-MASQ"):
        nat.declare(c)
    nat.extend([
        Rule("KUBE-SERVICES", ("-m", "addrtype", "--dst-type", "LOCAL", "!", "-d", "::1/128",
                               "-j", "KUBE-MARK-MASQ")),
        Rule("KUBE-SERVICES", ("-m", "comment", "--comment", '"ns/s:p cluster IP"', "-m", "tcp",
                               "-p", "tcp", "-d", "fd00:96::a", "--dport", "80", "-j",
                               "KUBE-SVC-X")),
        Rule("KUBE-SVC-X", ("-m", "comment", "--comment", '"ns/s:p cluster IP"', "-m", "tcp",
                            "-p", "tcp", "-d", "fd00:96::a", "--dport", "80", "!", "-s",
                            "fd00:10::/64", "-j", "KUBE-MARK-MASQ")),
        Rule("KUBE-SVC-X", ("-m", "recent", "--name", "KUBE-SEP-X", "--rcheck", "--seconds",
                            "10800", "--reap", "-j", "KUBE-SEP-X")),
        Rule("KUBE-SEP-X", ("-m", "comment", "--comment", "ns/s:p", "-m", "recent", "--name",
                            "KUBE-SEP-X", "--set", "-m", "tcp", "-p", "tcp", "-j", "DNAT",
                            "--to-destination", "[fd00:10::5]:8080")),
        Rule("KUBE-MARK-MASQ", ("-j", "MARK", "--or-mark", "0x00004000")),
    ])
    flt = rs.table("filter")
    flt.declare("KUBE-SERVICES")
    flt.append(Rule("KUBE-SERVICES", ("-m", "tcp", "-p", "tcp", "-d", "fd00:96::b", "--dport",
                                      "80", "-j", "REJECT")))
    real = restore_and_save(render_restore(rs), family=6)
    assert _tables(real) == _tables(render_save(rs)), backend(6)
