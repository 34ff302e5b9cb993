"""docs/workloads.md and the controller tutorials run: every Python snippet prints the
``text`` block that follows it (from the repository root, on knet's virtual clock)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "docs" / n for n in ("workloads.md", "tutorial-hpa.md", "tutorial-rollout.md")]
SNIPPET = re.compile(r"^```python\n(.*?)^```\n(?:\n```text\n(.*?)^```)?", re.S | re.M)


def snippets() -> list[tuple[str, str, str]]:
    return [(p.name, code, text) for p in PAGES for code, text in SNIPPET.findall(p.read_text())]


def test_pages_have_snippets() -> None:
    assert {name for name, _, _ in snippets()} == {p.name for p in PAGES}


@pytest.mark.parametrize("page,code,expected", snippets())
def test_snippet_prints_what_the_page_shows(page: str, code: str, expected: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, page, "exec"), {"__name__": "__doc__"})
    if expected:
        assert out.getvalue() == expected
