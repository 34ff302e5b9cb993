"""Gateway API decision throughput: decisions per second with 10 / 1,000 / 10,000 HTTPRoutes
attached to one listener (each route: its own hostname, three rules), the request host spread
over all of them. The per-listener tables are bucketed by hostname and sorted once, so the
cost per decision should stay flat (the goal: within 2x from 10 to 10,000 routes).

    .venv/bin/python bench/gateway.py [--seconds 2]

The wrk comparison through `knet up --gateway` against nginx is bench/gateway.sh.
"""

from __future__ import annotations

import argparse
import random
import time

from knet.gateway.decision import GatewayRequest, decide
from knet.gateway.model import Gateway, HTTPRoute
from knet.gateway.routes import compile_tables
from knet.model.core import Service, ServicePort, ServiceSpec
from knet.model.discovery import Endpoint, EndpointConditions, EndpointPort, EndpointSlice
from knet.model.meta import ObjectMeta


def world(n: int) -> tuple[list, list, list]:
    gw = Gateway(ObjectMeta(name="gw", namespace="bench"), spec={
        "gatewayClassName": "knet",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                       "allowedRoutes": {"namespaces": {"from": "Same"}}}]})
    routes = []
    for i in range(n):
        routes.append(HTTPRoute(ObjectMeta(name=f"r{i}", namespace="bench",
                                           creation_timestamp="2026-01-01T00:00:00Z"), spec={
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                            "name": "gw"}],
            "hostnames": [f"h{i}.bench.test"],
            "rules": [
                {"matches": [{"path": {"type": "Exact", "value": "/login"}}],
                 "backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80,
                                  "weight": 1}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                              "headers": [{"type": "Exact", "name": "x-v", "value": "2"}]}],
                 "backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80,
                                  "weight": 1}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80,
                                  "weight": 1}]},
            ]}))
    svc = Service(ObjectMeta(name="web", namespace="bench"),
                  ServiceSpec(ports=(ServicePort(80, name=""),), selector={"app": "web"}))
    sl = EndpointSlice(ObjectMeta(name="web-1", namespace="bench",
                                  labels={"kubernetes.io/service-name": "web"}),
                       address_type="IPv4",
                       endpoints=(Endpoint(("10.244.1.5",), EndpointConditions(ready=True)),),
                       ports=(EndpointPort(port=8080, name="", protocol="TCP"),))
    return [gw, *routes], [svc], [sl]


def run(n: int, seconds: float) -> tuple[float, float]:
    objs, svcs, slices = world(n)
    t0 = time.perf_counter()
    tables = compile_tables(objs, svcs, slices, [], addresses={"bench/gw": ["10.0.0.1"]})
    build = time.perf_counter() - t0
    rng = random.Random(1)
    reqs = [GatewayRequest("GET", p, f"h{rng.randrange(n)}.bench.test", h)
            for p, h in (("/api/items?x=1", (("X-V", "2"),)), ("/login", ()), ("/static/a", ()))
            for _ in range(300)]
    rng.shuffle(reqs)
    done = 0
    end = time.perf_counter() + seconds
    pick = random.Random(0)
    while time.perf_counter() < end:
        for r in reqs:
            d = decide(tables, "bench/gw", r, pick)
            assert d.status == 200
        done += len(reqs)
    return done / seconds, build


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    rates = {}
    for n in (10, 1000, 10000):
        rate, build = run(n, args.seconds)
        rates[n] = rate
        print(f"{n:>6} routes: {rate:>10,.0f} decisions/s  (tables compiled in {build * 1000:.0f} ms)")
    print(f"ratio 10 → 10,000 routes: {rates[10] / rates[10000]:.2f}x (goal ≤ 2x)")


if __name__ == "__main__":
    main()
