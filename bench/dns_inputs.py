"""Inputs of bench/dns.sh.

    python bench/dns_inputs.py topology OUTDIR [--services 1000]
        OUTDIR/topology.yaml: N ClusterIP Services (namespace ``bench``) selecting ten
        one-replica Deployments; OUTDIR/queries.txt: ``svc-N.bench.svc.cluster.local A`` lines
    python bench/dns_inputs.py zone CONTROL_URL ZONEFILE
        the same names as a ``cluster.local`` zone for knotd, built from the running
        ``knet up``'s Services (its control endpoint), so both servers give the same answers
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

BACKENDS = 10


def topology(n: int) -> str:
    docs = ["apiVersion: knet.dev/v1alpha1\nkind: Topology\nseed: 1\n",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n"]
    for b in range(BACKENDS):
        docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: backend-{b}, namespace: bench}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: backend-{b}}}}}
  template:
    metadata: {{labels: {{app: backend-{b}}}}}
    spec:
      containers:
        - {{name: echo, image: "knet/echo:1", ports: [{{name: http, containerPort: 8080}}]}}
""")
    for i in range(n):
        docs.append(f"""apiVersion: v1
kind: Service
metadata: {{name: svc-{i}, namespace: bench}}
spec:
  selector: {{app: backend-{i % BACKENDS}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
""")
    return "---\n".join(docs)


def zone(control: str) -> str:
    with urllib.request.urlopen(f"{control}/v1/get/services?all-namespaces=1&output=json",
                                timeout=30) as r:
        items = json.loads(r.read())["items"]
    lines = ["$ORIGIN cluster.local.", "$TTL 30",
             "@ 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30",
             "@ 30 IN NS ns.dns.cluster.local.", "ns.dns 30 IN A 10.96.0.10"]
    for it in items:
        ip = it["spec"].get("clusterIP", "")
        if ip and ip != "None" and ":" not in ip:
            lines.append(f"{it['metadata']['name']}.{it['metadata']['namespace']}.svc 30 IN A {ip}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("topology")
    t.add_argument("outdir")
    t.add_argument("--services", type=int, default=1000)
    z = sub.add_parser("zone")
    z.add_argument("control")
    z.add_argument("zonefile")
    a = ap.parse_args()
    if a.cmd == "topology":
        out = Path(a.outdir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "topology.yaml").write_text(topology(a.services))
        (out / "queries.txt").write_text(
            "".join(f"svc-{i}.bench.svc.cluster.local A\n" for i in range(a.services)))
    else:
        Path(a.zonefile).write_text(zone(a.control.rstrip("/")))


if __name__ == "__main__":
    main()
