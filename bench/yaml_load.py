"""How fast manifests load: YAML text → located values (``load_documents``) and the whole
``read_text`` (parse + validate + default), for N Services written as kubectl writes them.

    python bench/yaml_load.py [--services 3000] [--rounds 3]

Prints the best of ``rounds`` for each stage (seconds) and documents/second.

Measured on the shared 2-core machine (3,000 Services, 1.1 MB, best of 3), before and after
the loader moved from PyYAML's pure-Python parser to libyaml's ``CParser`` (issue 14):

    load_documents   8.23 s  →  1.55 s   (5.3×)
    read_text        7.75 s  →  2.60 s   (3.0×; validation and defaulting are the rest)
"""

from __future__ import annotations

import argparse
import time

from knet.manifests import read_text
from knet.manifests.loader import load_documents


def services(n: int) -> str:
    docs = []
    for i in range(n):
        docs.append(f"""apiVersion: v1
kind: Service
metadata:
  name: svc-{i}
  namespace: default
  labels:
    app: web-{i % 50}
    tier: "backend"
  annotations:
    example.com/owner: team-{i % 7}
spec:
  type: ClusterIP
  selector:
    app: web-{i % 50}
  ports:
  - name: http
    port: 80
    targetPort: 8080
    protocol: TCP
  - name: metrics
    port: 9090
    targetPort: metrics
""")
    return "---\n".join(docs)


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    text = services(a.services)
    t_yaml = best(lambda: load_documents(text, "bench.yaml"), a.rounds)
    t_read = best(lambda: read_text(text, "bench.yaml"), a.rounds)
    print(f"{a.services} Services, {len(text) / 1e6:.1f} MB of YAML")
    print(f"load_documents: {t_yaml:.3f} s  ({a.services / t_yaml:,.0f} documents/s)")
    print(f"read_text:      {t_read:.3f} s  ({a.services / t_read:,.0f} documents/s)")


if __name__ == "__main__":
    main()
