"""Resource quantities (k8s.io/apimachinery/pkg/api/resource) as the scheduler compares them.

Invariant: cpu is handled in millicores and every other resource in plain units (bytes,
counts), both as ints, like ``resource.Quantity.MilliValue()`` / ``Value()`` (rounded up).
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from functools import lru_cache

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
            "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}


@lru_cache(maxsize=4096)
def parse_quantity(text: str | int | float) -> Decimal:
    """``"500m"`` → 0.5, ``"1Gi"`` → 1073741824, ``"1e3"`` → 1000."""
    s = str(text).strip()
    if not s:
        raise ValueError("empty quantity")
    for suffix, mult in _BINARY.items():
        if s.endswith(suffix):
            return _number(s[: -len(suffix)]) * mult
    if s[-1] in "numkMGTPE":
        return _number(s[:-1]) * _DECIMAL[s[-1]]
    return _number(s)


def _number(s: str) -> Decimal:
    try:
        return Decimal(s)
    except InvalidOperation:
        raise ValueError(f"invalid quantity {s!r}") from None


def milli(text: str | int | float) -> int:
    return math.ceil(parse_quantity(text) * 1000)


def units(text: str | int | float) -> int:
    return math.ceil(parse_quantity(text))


def amount(resource: str, text: str | int | float) -> int:
    """cpu in millicores, everything else in units."""
    return milli(text) if resource == "cpu" else units(text)
