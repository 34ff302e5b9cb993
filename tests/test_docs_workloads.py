"""docs/workloads.md runs: every Python snippet prints the ``text`` block that follows it."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "workloads.md"
SNIPPET = re.compile(r"^```python\n(.*?)^```\n(?:\n```text\n(.*?)^```)?", re.S | re.M)


def snippets() -> list[tuple[str, str]]:
    return SNIPPET.findall(PAGE.read_text())


def test_page_has_snippets() -> None:
    assert len(snippets()) >= 1


@pytest.mark.parametrize("code,expected", snippets())
def test_snippet_prints_what_the_page_shows(code: str, expected: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(PAGE), "exec"), {"__name__": "__doc__"})
    if expected:
        assert out.getvalue() == expected
