"""Kinds knet reads past without modelling them, and what that changes.

``SKIPPED`` is the one table: when a kind becomes modelled (it gets a parser in
``objects.KINDS``), delete its row here and in docs/deviations.md ("Kinds knet skips");
tests/test_manifests_skipped.py keeps the two in step. Kinds in neither table (custom
resources, …) are skipped too, as "not a kind knet knows".
"""

from __future__ import annotations

from collections import Counter

# kind → the consequence of skipping it, as one clause
SKIPPED: dict[str, str] = {
    "VerticalPodAutoscaler": "no resource recommendations: requests stay as written",
    "ServiceAccount": "pods get no token and no API access",
    "Role": "no authorization: nothing is denied",
    "ClusterRole": "no authorization: nothing is denied",
    "RoleBinding": "no authorization: nothing is denied",
    "ClusterRoleBinding": "no authorization: nothing is denied",
    "ResourceQuota": "not enforced",
    "LimitRange": "no default requests or limits are applied",
    "CustomResourceDefinition": "its custom resources are skipped too",
    "MutatingWebhookConfiguration": "no admission webhook runs",
    "ValidatingWebhookConfiguration": "no admission webhook runs",
}
UNKNOWN = "not a kind knet knows"
DOCS = "docs/deviations.md"


def consequence(kind: str) -> str:
    return SKIPPED.get(kind, UNKNOWN)


def summary(kinds: list[str]) -> str | None:
    """The one line that ends a load which skipped objects (None when nothing was skipped):
    ``skipped 7 objects of 4 kinds knet does not model: CronJob, Role (3), …; see …``."""
    if not kinds:
        return None
    counts = Counter(kinds)
    n, k = len(kinds), len(counts)
    listed = ", ".join(f"{kind} ({c})" if c > 1 else kind for kind, c in sorted(counts.items()))
    return (f"skipped {n} object{'s' if n != 1 else ''} of {k} kind{'s' if k != 1 else ''} "
            f"knet does not model: {listed}; see {DOCS}")


__all__ = ["SKIPPED", "UNKNOWN", "consequence", "summary"]
