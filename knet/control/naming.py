"""Names the controllers generate, the way Kubernetes generates them.

- ``generateName`` suffixes: 5 characters of ``rand.String`` over the alphabet
  "bcdfghjklmnpqrstvwxz2456789" (k8s.io/apimachinery/pkg/util/rand), drawn from an injected
  ``random.Random``.
- ``pod-template-hash``: FNV-32a of the pod template, then ``rand.SafeEncodeString`` of the
  decimal string of the 32-bit sum (pkg/controller/controller_utils.go ``ComputeHash``).
  Kubernetes hashes the Go struct through ``DeepHashObject`` (spew); knet hashes a canonical
  JSON rendering of the template mapping instead, so values differ from a real cluster's but
  have the same form and the same stability (same template ⇒ same hash).
- UIDs: a UUID derived from (seed, kind, namespace, name, resourceVersion), so they do not
  depend on the order in which unrelated objects were created.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from typing import Any
from collections.abc import Mapping

ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(rng: random.Random, n: int = 5) -> str:
    return "".join(rng.choices(ALPHABET, k=n))


def safe_encode(s: str) -> str:
    return "".join(ALPHABET[b % len(ALPHABET)] for b in s.encode())


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    data = canonical(template)
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(fnv32a(data)))


def object_uid(seed: int, kind: str, namespace: str, name: str, version: int) -> str:
    digest = hashlib.sha1(f"{seed}\0{kind}\0{namespace}\0{name}\0{version}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))
