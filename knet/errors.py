"""One exception tree for knet; no third-party exception escapes a public API.

    KnetError
    ├── ManifestError      bad input: every Problem of the input, located; nothing applied
    ├── NotFound           a named object (pod, node, service) does not exist
    ├── RulesError         rules text that cannot be parsed (iptables-save/restore input)
    ├── NetworkError       virtual-network failures surfaced to callers
    │   ├── ConnectionRefusedError-compatible errors are raised as the builtin types
    ├── UsageError         a command or API used wrongly (bad flag combination, bad address)
    └── NotOnRealCluster   a handle method only the emulator can honour (virtual time, faults,
                           capture) called on the kubeconfig backend; the pytest plugin skips

Network *outcomes* (DROP, REJECT, NXDOMAIN, 404) are values, never exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass


class KnetError(Exception):
    """Root of every error knet raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One located problem in the input: ``file:line:col: Kind ns/name: field.path: message``."""

    message: str
    file: str = "<input>"
    line: int = 0
    col: int = 0
    kind: str = ""
    name: str = ""
    field: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        parts = [where]
        if self.kind or self.name:
            parts.append(f"{self.kind} {self.name}".strip())
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class ManifestError(KnetError):
    """The input is invalid; ``problems`` lists every problem found. Nothing was applied."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class NotFound(KnetError):
    pass


class RulesError(KnetError):
    pass


class NetworkError(KnetError):
    pass


class UsageError(KnetError):
    pass


class NotOnRealCluster(KnetError):
    """What only the emulator can do (virtual time, a capture of every hop, partitions, link
    faults), asked of a real cluster (``knet.real``): the pytest plugin reports a skip."""
