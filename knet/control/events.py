"""Change events of the emulated API server, in the past tense.

Invariants: an event carries the object exactly as stored (frozen values), plus the store's
resourceVersion after the change; ``ObjectUpdated`` carries both ``previous`` and ``current``
so that consumers (kube-proxy change trackers, the DNS cache, the runtime) can diff, the way
kube-proxy's ``OnServiceUpdate(old, new)`` handlers do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ObjectAdded:
    current: Any
    resource_version: int

    @property
    def kind(self) -> str:
        return self.current.kind

    @property
    def previous(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ObjectUpdated:
    previous: Any
    current: Any
    resource_version: int

    @property
    def kind(self) -> str:
        return self.current.kind


@dataclass(frozen=True, slots=True)
class ObjectDeleted:
    previous: Any
    resource_version: int

    @property
    def kind(self) -> str:
        return self.previous.kind

    @property
    def current(self) -> None:
        return None


Event = ObjectAdded | ObjectUpdated | ObjectDeleted
