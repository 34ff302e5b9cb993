"""Issue 12 items 7, 8, 12 and issue 13 item 11 (dumps): user input never ends in a traceback;
restore dumps are read as iptables-restore reads them; legacy IPs as the API server does."""

from __future__ import annotations

from pathlib import Path

import pytest

from knet.cli import main
from knet.errors import RulesError
from knet.manifests import read_text
from knet.netfilter import parse_rules

ROOT = Path(__file__).resolve().parent.parent
DEMO = str(ROOT / "topologies" / "demo.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# --- 12.7: ":INPUT - [0:0]" -----------------------------------------------------------------

KUBE_PROXY_STYLE = """*filter
:INPUT - [0:0]
:FORWARD - [0:0]
:OUTPUT DROP [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -j KUBE-SERVICES
-A FORWARD -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
COMMIT
"""


def test_restore_accepts_dash_policy_on_builtin_chains_and_keeps_the_policy() -> None:
    rs = parse_rules(KUBE_PROXY_STYLE)
    t = rs["filter"]
    assert (t.chains["INPUT"].policy, t.chains["FORWARD"].policy, t.chains["OUTPUT"].policy) == (
        "ACCEPT", "ACCEPT", "DROP")
    # a later ":OUTPUT -" keeps DROP, as iptables-restore keeps the current policy
    rs2 = parse_rules(KUBE_PROXY_STYLE + "*filter\n:OUTPUT - [0:0]\nCOMMIT\n")
    assert rs2["filter"].chains["OUTPUT"].policy == "DROP"
    with pytest.raises(RulesError, match="line 2: bad policy 'MAYBE'"):
        parse_rules("*filter\n:INPUT MAYBE [0:0]\nCOMMIT\n")


def test_trace_rules_with_dash_policies(capsys, tmp_path) -> None:
    f = tmp_path / "node.rules"
    f.write_text(KUBE_PROXY_STYLE)
    rc, out, err = run(capsys, "trace", "--rules", str(f), "--from", "10.0.0.1",
                       "--to", "10.96.0.10:80")
    assert rc == 0 and "REJECT" in out, err


# --- 13.11: loops and ladders are located errors, also for --all ----------------------------

def ladder(n: int, loop: bool = False) -> str:
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f":C{i} - [0:0]" for i in range(n)]
    lines.append("-A INPUT -j C0")
    lines += [f"-A C{i} -j C{i + 1}" for i in range(n - 1)]
    if loop:
        lines.append(f"-A C{n - 1} -j C0")
    return "\n".join(lines + ["COMMIT"]) + "\n"


def test_jump_graph_checked_at_commit_like_the_kernel() -> None:
    parse_rules(ladder(64))
    with pytest.raises(RulesError, match=r"^line 70: chain INPUT: jumps nest 65 deep"):
        parse_rules(ladder(65))
    with pytest.raises(RulesError, match=r"^line 11: chain loop C0 → C1 → C2 → C0"):
        parse_rules(ladder(3, loop=True))
    with pytest.raises(RulesError, match="jumps nest"):  # iterative: no RecursionError
        parse_rules(ladder(3000))


@pytest.mark.parametrize("text", [ladder(3, loop=True), ladder(200)])
@pytest.mark.parametrize("all_", [[], ["--all"]])
def test_trace_rules_loop_or_ladder_is_a_located_error(capsys, tmp_path, text, all_) -> None:
    f = tmp_path / "bad.rules"
    f.write_text(text)
    rc, out, err = run(capsys, "trace", "--rules", str(f), *all_, "--from", "10.0.0.1",
                       "--to", "10.0.0.2:80")
    assert rc == 1 and out == ""
    assert one_line_error(err).startswith(f"error: {f}:")


# --- 12.12: no tracebacks ----------------------------------------------------------------------

def test_dig_unknown_type_and_illegal_names_are_usage_errors(capsys) -> None:
    rc, _, err = run(capsys, "dig", "-f", DEMO, "web", "FOO")
    assert rc == 2 and one_line_error(err) == (
        "error: unknown record type 'FOO' (a type such as A, AAAA, SRV, PTR, TXT, ANY, or TYPEn "
        "with n ≤ 65535)")
    for name, why in (("a..b", "empty label"), ("a" * 64, "label too long"),
                      ("a." * 130, "ran out of space")):
        rc, _, err = run(capsys, "dig", "-f", DEMO, name)
        assert rc == 2 and one_line_error(err).endswith(f"is not a legal name ({why})")
    rc, out, _ = run(capsys, "dig", "-f", DEMO, "kubernetes.default.svc.cluster.local", "TYPE1")
    assert rc == 0 and "10.96.0.1" in out


def test_trace_rules_binary_file_is_located(capsys, tmp_path) -> None:
    f = tmp_path / "dump.bin"
    f.write_bytes(b"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s \xff\xfe -j DROP\n")
    rc, out, err = run(capsys, "trace", "--rules", str(f), "--from", "10.0.0.1",
                       "--to", "10.0.0.2:80")
    assert rc == 1 and out == ""
    assert one_line_error(err) == (
        f"error: {f}:3:13: not UTF-8 text (byte 0xff); is this a text dump?")


def test_unexpected_errors_are_one_line_at_the_cli_boundary(capsys, monkeypatch) -> None:
    # any exception escaping a command (here a RecursionError from absurd input) is one line
    import knet.cli.commands as commands

    def boom(*a, **k):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(commands, "load_cluster", boom)
    rc, _, err = run(capsys, "get", "pods", "-f", DEMO)
    assert rc == 1 and one_line_error(err) == "error: input nested too deeply"
    monkeypatch.setenv("KNET_DEBUG", "1")
    with pytest.raises(RecursionError):
        main(["get", "pods", "-f", DEMO])


# --- 12.8: legacy IPv4 with leading zeros -----------------------------------------------------

LEGACY = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.041
  externalIPs: [192.168.010.005]
  type: LoadBalancer
  loadBalancerSourceRanges: [198.51.100.000/24]
  selector: {app: web}
  ports: [{port: 80}]
"""


def test_leading_zero_ips_accepted_with_the_api_servers_warning_and_read_as_decimal() -> None:
    inp = read_text(LEGACY, "svc.yaml")
    svc = next(o for o in inp.objects if o.kind == "Service")
    # kube-proxy's TestBadIPs: ParseIPSloppy reads the octets as decimal, never octal
    assert (svc.spec.cluster_ip, svc.spec.cluster_ips) == ("10.96.0.41", ("10.96.0.41",))
    assert svc.spec.external_ips == ("192.168.10.5",)
    assert svc.spec.load_balancer_source_ranges == ("198.51.100.0/24",)
    assert inp.warnings == [
        'svc.yaml:5:14: Service default/web: spec.clusterIPs[0]: IPv4 address "10.96.0.041" '
        'should not have leading zeros, ParseAddr("10.96.0.041"): IPv4 field has octet with '
        'leading zero',
        'svc.yaml:6:17: Service default/web: spec.externalIPs[0]: IPv4 address "192.168.010.005" '
        'should not have leading zeros, ParseAddr("192.168.010.005"): IPv4 field has octet with '
        'leading zero',
        'svc.yaml:8:30: Service default/web: spec.loadBalancerSourceRanges[0]: IPv4 prefix '
        '"198.51.100.000/24" should not have leading zeros, netip.ParsePrefix('
        '"198.51.100.000/24"): ParseAddr("198.51.100.000"): IPv4 field has octet with leading zero',
    ]


def test_leading_zero_cluster_ip_in_rules_and_still_invalid_beyond_255(capsys, tmp_path) -> None:
    f = tmp_path / "svc.yaml"
    f.write_text(LEGACY)
    rc, out, err = run(capsys, "rules", "-f", str(f), "--node", "knet-worker")
    assert rc == 0 and "-d 10.96.0.41 --dport 80" in out and "010" not in out
    assert "warning: " in err and "should not have leading zeros" in err
    f.write_text(LEGACY.replace("10.96.0.041", "10.96.0.0256"))
    rc, _, err = run(capsys, "validate", "-f", str(f))
    assert rc == 1 and 'Invalid value: "10.96.0.0256": must be a valid IP address' in err
