"""Issue 13 item 11: mutated manifests and iptables dumps never crash knet (Hypothesis, bounded).

Each fuzzer mutates real inputs (the topologies, a kube-proxy dump knet wrote) and asserts that
the outcome is a value or knet's own located error: no other exception, no hang. Each runs a
bounded number of examples (a few seconds); failures found before these fuzzers existed are
pinned as explicit examples.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from knet.cli import main
from knet.control import Cluster
from knet.errors import KnetError
from knet.manifests import read_text
from knet.netfilter import Netfilter, parse_rules
from knet.netfilter.packet import Packet, Proto

ROOT = Path(__file__).resolve().parents[1]
TOPOLOGIES = {p.name: p.read_text() for p in sorted((ROOT / "topologies").glob("*.yaml"))}
SLOW = 5.0  # seconds: anything slower counts as a hang
FUZZ = settings(deadline=None, max_examples=60, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TOKENS = ["\x00", "\x07", "\x1b", "\ufeff", "é", "!!omap ", "!!set ", "!!binary ", "!!int ",
          "!!float ", "!!python/object:os.system ", "!foo ", "&a ", "*a", "<<: *a\n", "[", "{",
          "]", "}", "- ", "? ", ": ", "\t", "'", '"', "\n  ", "\n", "%YAML 1.1\n", "---\n",
          "...\n", "~", "null", "2147483648", "-1", "1e400", "0x1F", "010", "yes", "1:30", "\\",
          "#", "|\n", ">-\n", "[" * 1100, "{a: " * 150]


def load(text: str) -> None:
    """What every command does with -f: read, validate, converge."""
    t = time.monotonic()
    try:
        Cluster.from_input(read_text(text, "fuzz.yaml"), seed=1)
    except KnetError:
        pass
    assert time.monotonic() - t < SLOW


@FUZZ
@given(st.sampled_from(sorted(TOPOLOGIES)),
       st.lists(st.tuples(st.integers(0, 2), st.floats(0, 1), st.sampled_from(TOKENS),
                          st.integers(1, 80)), min_size=1, max_size=4))
@example("demo.yaml", [(0, 0.5, "\x00", 1)])             # ReaderError outside the try
@example("demo.yaml", [(0, 0.3, "[" * 1100, 1)])          # RecursionError
@example("demo.yaml", [(0, 0.4, "!!omap ", 1)])           # TypeError
def test_text_mutations_of_topologies(name: str, edits: list[tuple[int, float, str, int]]) -> None:
    text = TOPOLOGIES[name]
    for op, where, token, span in edits:
        i = int(where * len(text))
        if op == 0:
            text = text[:i] + token + text[i:]
        elif op == 1:
            text = text[:i] + text[i + span:]
        else:
            text = text[:i] + text[i:i + span] * 3 + text[i + span:]
    load(text)


VALUES = [0, -1, 1, 2147483648, 2147483647, 3.5, "x", "", "None", None, True, [], {}, [1, "a"],
          {"a": 1}, {"name": "x"}, "a" * 300, "-", "0", "Exact", "TCP", "10.0.0.1", "::1",
          "1.2.3.4/33", "TC", "1.2.3"]
DOCS = {name: [d for d in yaml.safe_load_all(text) if d] for name, text in TOPOLOGIES.items()}


def _paths(o: Any, p: tuple = ()) -> list[tuple]:
    out = [p]
    if isinstance(o, dict):
        for k, v in o.items():
            out += _paths(v, p + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            out += _paths(v, p + (i,))
    return out


@FUZZ
@given(st.sampled_from(sorted(DOCS)), st.randoms(use_true_random=False),
       st.lists(st.tuples(st.booleans(), st.sampled_from(VALUES)), min_size=1, max_size=3))
def test_structure_mutations_of_topologies(name: str, rnd: Any, edits: list) -> None:
    docs = copy.deepcopy(DOCS[name])
    for delete, value in edits:
        doc = rnd.choice(docs)
        paths = [p for p in _paths(doc) if p]
        p = rnd.choice(paths)
        parent = doc
        for k in p[:-1]:
            parent = parent[k]
        if delete and isinstance(parent, dict):
            del parent[p[-1]]
        else:
            parent[p[-1]] = copy.deepcopy(value)
    load(yaml.safe_dump_all(docs))


def test_non_map_node_capacity_is_a_located_problem() -> None:
    text = ("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  capacity: 5\n"
            "  allocatable: {pods: [1], cpu: TC}\n")
    with pytest.raises(KnetError) as e:
        read_text(text, "n.yaml")
    assert str(e.value).splitlines() == [
        "n.yaml:5:13: Node n1: status.capacity: expected a mapping, got integer",
        "n.yaml:6:23: Node n1: status.allocatable[pods]: expected a quantity (string or number), "
        "got list",
        "n.yaml:6:33: Node n1: status.allocatable[cpu]: Invalid value: \"TC\": quantities must "
        "match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
    ]


# --- iptables dumps ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["rules", "-f", str(ROOT / "topologies" / "demo.yaml"),
                     "--node", "knet-worker"]) == 0
    return out.getvalue().encode()


RULE_TOKENS = [b"\xff", b"\x00", b"-j KUBE-SERVICES", b"-g KUBE-SVC-X", b"--dport 99999",
               b"-s 10.0.0.0/33", b'"', b"COMMIT", b"*nat", b":FOO - [0:0]", b"-A FOO -j FOO",
               b"-m statistic --mode random --probability 2", b"--to-destination 1.2.3.4:0",
               b"-p 300", b" ", b"[1:2]", b"-I KUBE-SERVICES 99", b"-D KUBE-SERVICES 1", b"-X",
               b"-F", b"-P INPUT DROP", b"-N KUBE-SERVICES", b":INPUT - [0:0]"]


def trace_dump(data: bytes) -> None:
    """knet trace --rules: parse (located RulesError or a RuleSet), then trace and enumerate."""
    t = time.monotonic()
    try:
        rs = parse_rules(data.decode("utf-8"))
    except UnicodeDecodeError:
        return  # the CLI reports it located (tests/test_cli_input_errors.py)
    except KnetError:
        return
    nf = Netfilter(rs, None, local_addresses=[])
    pkt = Packet(*map(__import__("ipaddress").ip_address, ("10.244.1.5", "10.96.0.10")),
                 Proto("udp"), 40000, 53, "", iif="eth0")
    nf.forward(pkt, "eth0", 0.0)
    assert nf.enumerate_outcomes(pkt, "prerouting", affinity=True).items
    assert time.monotonic() - t < SLOW


@FUZZ
@given(st.randoms(use_true_random=False),
       st.lists(st.tuples(st.integers(0, 5), st.sampled_from(RULE_TOKENS)),
                min_size=1, max_size=4))
def test_mutated_iptables_dumps(dump: bytes, rnd: Any, edits: list) -> None:
    lines = dump.split(b"\n")
    for op, token in edits:
        i = rnd.randrange(len(lines))
        if op == 0:
            lines.insert(i, token)
        elif op == 1:
            j = rnd.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:j] + token + lines[i][j:]
        elif op == 2:
            del lines[i]
        elif op == 3:
            lines.insert(i, lines[rnd.randrange(len(lines))])
        elif op == 4 and lines[i]:
            b = bytearray(lines[i])
            b[rnd.randrange(len(b))] = rnd.randrange(256)
            lines[i] = bytes(b)
        else:  # a jump between two existing chains: loops and ladders
            chains = [ln.split()[1] for ln in lines if ln.startswith(b"-A ") and len(ln.split()) > 1]
            if chains:
                lines.insert(len(lines) - 1, b"-A " + rnd.choice(chains) + b" -j " + rnd.choice(chains))
    trace_dump(b"\n".join(lines))


def test_counters_without_a_command_is_a_located_error() -> None:
    with pytest.raises(KnetError, match=r"^line 2: counters without a command"):
        parse_rules("*filter\n[1:2]\nCOMMIT\n")
