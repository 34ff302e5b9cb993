"""The Python heap, for entry points only (the CLI, bench scripts): library code never
changes process-wide collector state (``bulk_build`` pauses the collector for the length of a
build and restores it; it does not freeze).

``settle()`` after something big and long-lived was built (a booted cluster, a 10,000-Service
rule set): one full collection, then ``gc.freeze()`` moves every survivor into the permanent
generation, so later collections (every packet allocates) no longer rescan it. The collection
first matters: whatever is garbage at that moment would otherwise be kept forever.
"""

from __future__ import annotations

import gc


def settle() -> None:
    gc.collect()
    gc.freeze()


def unsettle() -> None:
    """Back to normal collection of everything (a bench between two measured runs)."""
    gc.unfreeze()
