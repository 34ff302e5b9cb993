"""Invariants of the Gateway API precedence (Hypothesis, bounded)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knet.gateway.decision import GatewayRequest, decide
from knet.gateway.model import Gateway, HTTPRoute
from knet.gateway.routes import compile_tables
from knet.model.meta import ObjectMeta

SEGMENTS = ["a", "b", "ab", "c"]
paths = st.lists(st.sampled_from(SEGMENTS), min_size=0, max_size=3).map(lambda s: "/" + "/".join(s))
match = st.fixed_dictionaries({
    "path": st.tuples(st.sampled_from(["Exact", "PathPrefix"]), paths).map(
        lambda t: {"type": t[0], "value": t[1]}),
}, optional={"method": st.sampled_from(["GET", "POST"]),
             "headers": st.just([{"type": "Exact", "name": "x-v", "value": "1"}])})
rules = st.lists(st.fixed_dictionaries({"matches": st.lists(match, min_size=1, max_size=3)}),
                 min_size=1, max_size=3)
requests = st.lists(st.tuples(paths, st.sampled_from(["GET", "POST"]), st.booleans()),
                    min_size=1, max_size=8)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def gw(hostname: str = "") -> Gateway:
    ls = {"name": "l", "port": 80, "protocol": "HTTP",
          "allowedRoutes": {"namespaces": {"from": "Same"}}}
    if hostname:
        ls["hostname"] = hostname
    return Gateway(ObjectMeta(name="gw", namespace="d"),
                   spec={"gatewayClassName": "knet", "listeners": [ls]})


def route(name: str, rs: list, created: str, hostnames: list[str] | None = None) -> HTTPRoute:
    spec: dict = {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                  "name": "gw"}],
                  "rules": [dict(r, backendRefs=[]) for r in rs]}
    if hostnames:
        spec["hostnames"] = hostnames
    return HTTPRoute(ObjectMeta(name=name, namespace="d", creation_timestamp=created), spec=spec)


def winner(objs, path, method, header, host="h.test"):
    t = compile_tables(objs, [], [], [], addresses={"d/gw": ["10.0.0.1"]})
    hdrs = (("X-V", "1"),) if header else ()
    d = decide(t, "d/gw", GatewayRequest(method, path, host, hdrs), random.Random(0))
    return (d.route, d.rule) if d.route else None


@SETTINGS
@given(rules, rules, requests, st.sampled_from(["a.test", "*.test"]), st.booleans())
def test_hostname_less_route_ties_with_the_listener_hostname(r1, r2, reqs, listener_host, older):
    """Criterion 1 uses the effective hostname: a route without hostnames under a listener
    with hostname H ranks exactly like the same route naming H (age, then name decide)."""
    host = "x.a.test" if listener_host.startswith("*") else "a.test"
    base = [gw(listener_host)]
    t1, t2 = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    a_plain = route("a", r1, t1 if older else t2)
    a_named = route("a", r1, t1 if older else t2, [listener_host])
    b = route("b", r2, t2 if older else t1, [listener_host])
    for path, method, header in reqs:
        assert winner([*base, a_plain, b], path, method, header, host) == \
            winner([*base, a_named, b], path, method, header, host)


@SETTINGS
@given(st.lists(rules, min_size=1, max_size=3), requests, st.data())
def test_adding_a_lower_precedence_rule_never_changes_a_matched_request(route_rules, reqs, data):
    objs: list = [gw()]
    for i, rs in enumerate(route_rules):
        objs.append(route(f"r{i}", rs, f"2026-01-0{i + 1}T00:00:00Z"))
    before = {(p, m, h): winner(objs, p, m, h) for p, m, h in reqs}
    # a rule copying existing matches, appended to the newest, last-named route: it ties on
    # criteria 2-6 with what it copies and loses on age, name and rule order
    copied = data.draw(st.lists(st.sampled_from([m for rs in route_rules for r in rs
                                                  for m in r["matches"]]), min_size=1,
                                max_size=3))
    last = objs[-1]
    grown = route(last.metadata.name, [*last.spec["rules"], {"matches": copied}],
                  last.metadata.creation_timestamp)
    after_objs = [*objs[:-1], grown]
    for (p, m, h), w in before.items():
        if w is not None:
            assert winner(after_objs, p, m, h) == w
