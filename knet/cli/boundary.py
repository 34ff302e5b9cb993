"""The CLI boundary: user input in, one located line out when something is wrong.

Invariants:
- every file a command reads other than manifests (``--rules`` dumps, …) goes through
  ``read_text_file``: unreadable or non-UTF-8 input is a ``KnetError`` naming
  ``file:line:col`` and the offending byte, never a ``UnicodeDecodeError``;
- ``main`` translates knet's own errors (``knet.cli.main``) and hands anything else to
  ``report_unexpected``: one ``error:`` line on stderr and exit 1, never a Python traceback
  (``KNET_DEBUG=1`` re-raises, for the people fixing knet).
"""

from __future__ import annotations

import os

import click

from knet.errors import KnetError

DEBUG_ENV = "KNET_DEBUG"


def read_text_file(path: str) -> str:
    """The text of ``path`` (UTF-8); a located KnetError when it cannot be read as text."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise KnetError(f"{path}: no such file or directory") from None
    except IsADirectoryError:
        raise KnetError(f"{path}: is a directory") from None
    except OSError as e:
        raise KnetError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise KnetError(f"{path}:{line}:{col}: not UTF-8 text (byte 0x{data[e.start]:02x}); "
                        "is this a text dump?") from None


def report_unexpected(e: BaseException) -> int:
    """Last line of defence in ``main``: one line, exit 1 (``KNET_DEBUG=1`` re-raises)."""
    if os.environ.get(DEBUG_ENV):
        raise e
    if isinstance(e, RecursionError):
        msg = "input nested too deeply"
    elif isinstance(e, MemoryError):
        msg = "out of memory"
    elif isinstance(e, UnicodeError):
        msg = f"input is not valid text: {e}"
    elif isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        msg = f"{where}{e.strerror or e}"
    else:
        msg = (f"internal error: {type(e).__name__}: {e} (this is a bug in knet; "
               f"{DEBUG_ENV}=1 shows the traceback)")
    click.echo(f"error: {msg}", err=True)
    return 1


__all__ = ["DEBUG_ENV", "read_text_file", "report_unexpected"]
