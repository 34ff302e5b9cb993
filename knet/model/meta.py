"""Object metadata shared by every kind, and label selectors.

Invariants: model values are frozen; mappings inside them are never mutated after
construction (treat ``labels``/``annotations`` as read-only). ``source`` locates the object in
the user's input (file:line:col) so any later error can point at it; objects made by knet's
controllers have ``source=None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping


@dataclass(frozen=True, slots=True)
class Source:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class OwnerReference:
    kind: str
    name: str
    uid: str = ""
    controller: bool = True
    api_version: str = ""


@dataclass(frozen=True, slots=True, eq=True)
class ObjectMeta:
    name: str
    namespace: str = ""  # "" for cluster-scoped kinds
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    uid: str = ""
    generate_name: str = ""
    # Order of creation: creationTimestamp when given, else input order (file order).
    creation_timestamp: str = ""
    creation_index: int = 0
    deletion_timestamp: str = ""
    deletion_grace_period_seconds: int | None = None
    owner_references: tuple[OwnerReference, ...] = ()
    resource_version: str = ""
    source: Source | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """``ns/name`` for namespaced objects, ``name`` for cluster-scoped ones."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def controller_ref(self) -> OwnerReference | None:
        for ref in self.owner_references:
            if ref.controller:
                return ref
        return None


class Named:
    """``name``, ``namespace`` and ``key`` (``ns/name``) of an object with ``metadata``."""

    __slots__ = ()
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def key(self) -> str:
        return self.metadata.key


@dataclass(frozen=True, slots=True)
class LabelSelectorRequirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        # apimachinery labels.Requirement.Matches
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        return False


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """metav1.LabelSelector: matchLabels AND matchExpressions. An empty selector matches all."""

    match_labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for k, v in self.match_labels.items():
            if labels.get(k) != v:
                return False
        return all(r.matches(labels) for r in self.match_expressions)

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Service-style equality selector (``spec.selector``): every pair must be present."""
    return all(labels.get(k) == v for k, v in selector.items())
