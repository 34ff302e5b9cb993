"""Process-wide collector state belongs to entry points: library calls (a full rule build, a
one-shot CLI command) never freeze the heap; ``knet.heap.settle`` does, when asked."""

from __future__ import annotations

import gc
from pathlib import Path

from knet import heap
from knet.cli import main

DEMO = str(Path(__file__).resolve().parents[1] / "topologies" / "demo.yaml")


def test_builds_and_one_shot_commands_do_not_freeze(capsys) -> None:
    before = gc.get_freeze_count()
    was = gc.isenabled()
    assert main(["rules", "-f", DEMO, "--node", "knet-worker"]) == 0
    assert "*nat" in capsys.readouterr().out  # the node's full rule set was built
    assert gc.get_freeze_count() == before and gc.isenabled() == was


def test_settle_collects_then_freezes() -> None:
    before = gc.get_freeze_count()
    garbage = [[]]
    garbage[0].append(garbage)  # a cycle: collected by settle, not frozen
    del garbage
    heap.settle()
    try:
        assert gc.get_freeze_count() > before
        assert gc.collect() == 0  # nothing left to find: the survivors are frozen
    finally:
        heap.unsettle()
    assert gc.get_freeze_count() == 0
