"""``knet reach``: the table, JSON, --expect (exit 1 with the differing cells), --diff and
--explain, through the CLI entry point."""

from __future__ import annotations

import json

from knet.cli import main
from policy_factory import MODEL, ROOT

POL = ROOT / "topologies" / "policies"
F = ["-f", MODEL, "-f", str(POL / "deny-ingress-x.yaml")]


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_keys_and_matrix(capsys) -> None:
    rc, out, _ = run(capsys, "reach", *F, "--pods", "x/a", "--pods", "y/a", "--port", "80",
                     "--port", "81", "--protocol", "udp", "--via", "pod", "-o", "json")
    assert rc == 0
    data = json.loads(out)
    assert [(p["port"], p["protocol"], p["via"]) for p in data["probes"]] == [
        (80, "UDP", "pod"), (81, "UDP", "pod")]
    assert data["probes"][0]["pods"] == ["x/a", "y/a"]
    assert data["probes"][0]["matrix"] == {"x/a": {"y/a": True}, "y/a": {"x/a": False}}


def test_expect_exits_1_and_lists_the_cells(capsys, tmp_path) -> None:
    want = tmp_path / "want.txt"
    want.write_text("-   x/a y/a\nx/a ~   .\ny/a .   ~\n")
    rc, out, err = run(capsys, "reach", *F, "--pods", "x/a", "--pods", "y/a",
                       "--expect", str(want))
    assert rc == 1
    assert out == "TCP/80 via service\n-\tx/a\ty/a\nx/a\t~\t.\ny/a\tX\t~\n"
    assert err == (f"1 cell(s) differ from {want}:\n"
                   "  TCP/80 via service: y/a → x/a: expected ., got X\n")
    want.write_text("-   x/a y/a\nx/a ~   .\ny/a X   ~\n")
    assert run(capsys, "reach", *F, "--pods", "x/a", "--pods", "y/a",
               "--expect", str(want))[0] == 0


def test_diff_names_every_changed_cell_and_why(capsys) -> None:
    rc, out, _ = run(capsys, "reach", *F, "--pods", "x/a", "--pods", "y/b", "--pods", "z/b",
                     "--diff", str(POL / "allow-from-y.yaml"))
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "TCP/80 via service: y/b → x/a: X → ."
    assert "allowed by NetworkPolicy x/allow-a-from-y ingress rule 1, peer 1" in out
    assert "z/b → x/a" not in out


def test_explain_tells_the_story_of_one_cell(capsys) -> None:
    rc, out, _ = run(capsys, "reach", *F, "--explain", "z/b", "x/a", "--port", "80",
                     "--protocol", "TCP")
    assert rc == 0
    assert out.startswith("z/b → x/a TCP/80 via service: blocked\n")
    assert "no rule allowed it (isolated by NetworkPolicy x/deny-ingress)" in out


def test_bad_protocol_is_a_usage_error(capsys) -> None:
    rc, _, err = run(capsys, "reach", *F, "--protocol", "ICMP")
    assert rc == 2 and "--protocol must be one of TCP, UDP, SCTP" in err


def test_same_priority_cluster_policies_are_ordered_by_age_then_name_and_warned(
        capsys, tmp_path) -> None:
    f = tmp_path / "tie.yaml"
    f.write_text("""
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: b-accept}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress: [{name: accept, action: Accept, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: a-deny}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress: [{name: deny, action: Deny, from: [{namespaces: {}}]}]
""")
    rc, out, err = run(capsys, "reach", "-f", MODEL, "-f", str(f), "--pods", "x/a",
                       "--pods", "y/a")
    assert rc == 0
    assert err == ("warning: ClusterNetworkPolicy b-accept and ClusterNetworkPolicy a-deny "
                   "share Admin priority 5: knet evaluates the older first (then by name)\n")
    assert "y/a\t.\t~" in out  # b-accept is older (input order): its Accept wins
