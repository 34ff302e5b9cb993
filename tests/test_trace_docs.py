"""docs/traces.md: its Python snippet runs, and its story/JSON/tshark outputs are real."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from knet.fabric import virtual_time
from knet.fabric.aio import client_session
from tests import trace_scenario

DOC = Path(__file__).parent.parent / "docs" / "traces.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


async def _run_snippet(tmp: Path) -> dict[str, object]:
    [code] = _blocks("python")
    fabric = trace_scenario.build_fabric()
    runner = await trace_scenario.serve_web(fabric)
    await trace_scenario.serve_dns(fabric)
    env: dict[str, object] = {name: getattr(trace_scenario, name) for name in
                              ("resolve_pod", "service_of", "dns_query")}
    env.update(fabric=fabric, client_session=client_session, print=lambda *a: None)
    src = "async def _doc():\n" + textwrap.indent(
        code.replace('"trace.pcapng"', repr(str(tmp / "trace.pcapng"))), "    ") + \
        "\n    return cap\n"
    exec(compile(src, str(DOC), "exec"), env)
    cap = await env["_doc"]()  # type: ignore[operator]
    await runner.cleanup()
    return {"cap": cap, "pcap": tmp / "trace.pcapng"}


@virtual_time
async def test_doc_snippet_story_and_json_are_real(tmp_path: Path) -> None:
    out = await _run_snippet(tmp_path)
    cap = out["cap"]
    story = cap.story()  # type: ignore[attr-defined]
    blocks = _blocks("text")
    assert len(blocks) == 2
    for block in blocks:
        assert block.strip() in story
    [doc_json] = _blocks("json")
    syn = next(r for r in cap.hubble() if r["flow"]["l4"].get("TCP", {}).get(  # type: ignore
        "flags") == {"SYN": True} and r["flow"]["verdict"] == "FORWARDED")
    assert json.loads(doc_json) == syn


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@virtual_time
async def test_doc_tshark_outputs_are_real(tmp_path: Path) -> None:
    out = await _run_snippet(tmp_path)
    [console] = _blocks("console")
    for cmd, expected in re.findall(r"\$ (tshark [^\n]*)\n(.*?)(?=\$ |\Z)", console, re.S):
        args = cmd.split("#")[0].split()
        args = [str(out["pcap"]) if a == "trace.pcapng" else a for a in args]
        res = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
        if expected.strip():
            assert res.stdout.strip() == expected.strip(), cmd
        else:
            assert "GET /hello HTTP/1.1" in res.stdout
