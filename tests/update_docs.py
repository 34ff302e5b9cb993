"""Regenerate the outputs replayed by tests/test_docs.py and tests/test_readme.py: every
console block keeps its first line (``$ knet ...``) and gets the real output below it.

    .venv/bin/python tests/update_docs.py README.md docs/cli.md docs/tutorial.md docs/traces.md

Review the diff like any golden file: an output change is a behaviour change.
"""
import contextlib
import io
import re
import shlex
import sys
import os
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
os.chdir(ROOT)
sys.path.insert(0, str(ROOT))
import aiohttp.client_reqrep  # noqa: E402 - after the sys.path set-up above
aiohttp.client_reqrep.SERVER_SOFTWARE = "Python/3.11 aiohttp/3.14.5"
aiohttp.client_reqrep.ClientRequest.DEFAULT_HEADERS["Accept-Encoding"] = "gzip, deflate"
from knet.cli import main  # noqa: E402
FENCE = re.compile(r"^```(console|shell-session)\n(.*?)^```", re.S | re.M)
for path in sys.argv[1:]:
    text = Path(path).read_text()
    def sub(m):
        lang, block = m.group(1), m.group(2)
        first = block.partition("\n")[0]
        if not first.startswith("$ knet "):
            return m.group(0)
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(shlex.split(first)[2:])
        except Exception as e:
            print(f"FAILED {first}: {e!r}", file=sys.stderr)
            return m.group(0)
        body = err.getvalue() + out.getvalue()
        if body and not body.endswith("\n"):
            print(f"WARNING no trailing newline: {first}", file=sys.stderr)
        if rc:
            body += f"$ echo $?\n{rc}\n"
        return f"```{lang}\n{first}\n{body}```"
    new = FENCE.sub(sub, text)
    Path(path).write_text(new)
