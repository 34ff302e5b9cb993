"""Suite-wide isolation: no test sees a ``knet up`` the user (or another checkout) is running.

``knet get``/``trace``/… without ``-f`` talk to the ``knet up`` recorded under
``$XDG_RUNTIME_DIR/knet`` (else ``/tmp/knet-$UID``); every test gets its own empty one.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_runtime_dir(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("xdg", numbered=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    return path
