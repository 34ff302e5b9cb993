"""The ``knet`` command line: data on stdout, diagnostics on stderr; exit 0 ok, 1 problems
found, 2 usage error. ``main(argv)`` is callable from tests.

Commands are plain ``click.command``s listed in their module's ``COMMANDS``; ``register()``
adds those of ``COMMAND_MODULES`` to the ``cli`` group (``main`` does it; importing a module
registers nothing). Shared options live in knet.cli.options. Imports of heavy layers happen
inside the commands so that ``knet --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from knet.errors import KnetError, ManifestError, UsageError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "--version", package_name="knet", prog_name="knet",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """knet: Kubernetes networking and service routing, emulated."""


# A new command module: add it here, list its commands in its COMMANDS.
COMMAND_MODULES = ("knet.cli.commands", "knet.cli.up", "knet.cli.demo", "knet.cli.ui",
                   "knet.cli.reach", "knet.cli.exec", "knet.cli.diff", "knet.cli.convert")


def register() -> click.Group:
    """Add every command of ``COMMAND_MODULES`` to ``cli`` (idempotent)."""
    for name in COMMAND_MODULES:
        for command in getattr(importlib.import_module(name), "COMMANDS", ()):
            cli.add_command(command)
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["up"]:  # SIGINT/SIGTERM stop knet up cleanly from its first moment
        from knet.expose.session import catch_signals_early

        restore = catch_signals_early()
        try:
            return _main(args)
        finally:
            restore()
    return _main(args)


def _main(args: list[str]) -> int:
    register()

    try:
        rv = cli.main(args=args, prog_name="knet", standalone_mode=False)
    except click.UsageError as e:
        e.show()
        return 2
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return 2
    except UsageError as e:
        click.echo(f"error: {e}", err=True)
        return 2
    except ManifestError as e:
        for p in e.problems:
            click.echo(str(p), err=True)
        n = len(e.problems)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found; nothing applied", err=True)
        return 1
    except KnetError as e:
        click.echo(f"error: {e}", err=True)
        return 1
    except BrokenPipeError:
        return 0
    except Exception as e:  # anything else: one line, no traceback (knet.cli.boundary)
        from knet.cli.boundary import report_unexpected

        return report_unexpected(e)
    return rv if isinstance(rv, int) else 0
