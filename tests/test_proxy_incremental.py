"""Partial syncs (KEP-3453, kube-proxy.md §2.10) and the incremental == full-rebuild invariant."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from knet.model.core import Service
from knet.model.discovery import EndpointSlice
from knet.netfilter.rules import RuleSet, render_restore, render_save
from knet.proxy.iptables import HostOptions, Proxier, build_ruleset
from proxy_factories import CLUSTER, PROXY, ep, node, port, service, slice_, worked_example

HOST = HostOptions(nfacct=False)


def snapshot(rs: RuleSet) -> dict[str, dict[str, list[str]]]:
    return {t.name: {c.name: [r.text for r in c.rules] for c in t.chains.values()}
            for t in rs.tables.values()}


def apply_text(state: dict[str, dict[str, list[str]]], text: str) -> None:
    """iptables-restore --noflush, on a {table: {chain: [rule lines]}} model."""
    table: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("*"):
            table = state.setdefault(line[1:], {})
        elif line.startswith(":"):
            table[line[1:].split()[0]] = []
        elif line.startswith("-A "):
            table[line.split()[1]].append(line)
        elif line.startswith("-X "):
            del table[line.split()[1]]


def fresh(services: list[Service], slices: list[EndpointSlice]) -> Proxier:
    n, _, _ = worked_example()
    px = Proxier(n, PROXY, CLUSTER, host=HOST)
    for s in services:
        px.on_service_change(None, s)
    for s in slices:
        px.on_slice_change(None, s)
    return px


def test_first_sync_is_full_and_matches_build() -> None:
    n, svcs, sl = worked_example()
    px = fresh(svcs, sl)
    r = px.sync(0.0)
    assert r.full and r.changed_chains is None
    assert r.restore_text == (__import__("pathlib").Path(__file__).parent / "data" / "proxy"
                              / "worked_example.restore").read_text()
    assert render_save(r.ruleset) == render_save(build_ruleset(n, svcs, sl, PROXY, CLUSTER,
                                                               host=HOST))


def test_partial_sync_writes_fixed_chains_and_changed_service_only() -> None:
    n, svcs, sl = worked_example()
    px = fresh(svcs, sl)
    px.sync(0.0)
    before = snapshot(px.ruleset)
    new_cart = slice_("cart", ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b"),
                      ports=(("http", 8080, "TCP"),))
    px.on_slice_change(sl[0], new_cart)
    r = px.sync(1.0)
    assert not r.full and r.updated_services == {"shop/cart"}
    text = r.restore_text
    # the changed service's chains are written, the others' are not
    assert ":KUBE-SVC-I5LIAMPLWKMBJ54B - [0:0]" in text
    assert ":KUBE-SVC-Q3GZAQWEYVX6RMSR" not in text and ":KUBE-SEP-THQMUZBGAGLPMZ2W" not in text
    # but every service's KUBE-SERVICES / KUBE-NODEPORTS rules are (fixed chains)
    assert '"shop/web cluster IP"' in text and "--dport 31443" in text
    # the endpoint that went away: chain line + -X, before the final nodeports rule
    lines = text.splitlines()
    assert ":KUBE-SEP-4O5AICOKW2EZK2IV - [0:0]" in lines
    assert lines.index("-X KUBE-SEP-4O5AICOKW2EZK2IV") == len(lines) - 3  # then the last rule
    assert r.stale_chains == ("KUBE-SEP-4O5AICOKW2EZK2IV",)
    assert ("nat", "KUBE-SEP-4O5AICOKW2EZK2IV") in r.changed_chains
    assert ("nat", "KUBE-SVC-E3PXEPMWAWIUT6ZV") not in r.changed_chains
    # the restore text, applied to the previous tables, gives the new tables
    apply_text(before, text)
    assert before == snapshot(px.ruleset)
    assert render_save(px.ruleset) == render_save(
        build_ruleset(n, svcs, [new_cart, *sl[1:]], PROXY, CLUSTER, host=HOST))


def test_no_op_updates_do_not_mark_services() -> None:
    n, svcs, sl = worked_example()
    px = fresh(svcs, sl)
    px.sync(0.0)
    relabeled = replace(svcs[0], metadata=replace(svcs[0].metadata, labels={"x": "y"}))
    px.on_service_change(svcs[0], relabeled)
    px.on_slice_change(sl[0], replace(sl[0], metadata=replace(sl[0].metadata,
                                                              resource_version="9")))
    r = px.sync(5.0)
    assert not r.full and r.updated_services == frozenset()
    assert ":KUBE-SVC-" not in r.restore_text  # only the fixed chains
    assert ":KUBE-SERVICES - [0:0]" in r.restore_text


def test_node_label_change_forces_full_sync_and_topology() -> None:
    n, svcs, sl = worked_example()
    px = fresh(svcs, sl)
    px.sync(0.0)
    px.on_node_change(n, replace(n, metadata=replace(n.metadata,
                                                     labels={"topology.kubernetes.io/zone": "z"})))
    assert px.needs_sync
    r = px.sync(2.0)
    assert r.full


def test_service_delete_removes_all_its_chains() -> None:
    n, svcs, sl = worked_example()
    px = fresh(svcs, sl)
    px.sync(0.0)
    px.on_service_change(svcs[2], None)
    r = px.sync(1.0)
    assert set(r.stale_chains) == {"KUBE-EXT-Q3GZAQWEYVX6RMSR", "KUBE-FW-Q3GZAQWEYVX6RMSR",
                                   "KUBE-SVC-Q3GZAQWEYVX6RMSR", "KUBE-SVL-Q3GZAQWEYVX6RMSR",
                                   "KUBE-SEP-OTDNGSM64TCC4LV3", "KUBE-SEP-UQDSYP2V7E7KYUFK"}
    assert "storefront" not in render_restore(r.ruleset)
    assert render_save(r.ruleset) == render_save(
        build_ruleset(n, [s for i, s in enumerate(svcs) if i != 2], sl, PROXY, CLUSTER,
                      host=HOST))


def test_min_sync_period_and_burst() -> None:
    px = fresh(*worked_example()[1:])
    assert px.next_sync_time(0.0) == 0.0
    px.sync(0.0)
    assert px.next_sync_time(0.0) == 3600.0  # nothing pending: periodic resync only
    s = service("x", "10.96.50.1", port(80))
    px.on_service_change(None, s)
    assert px.next_sync_time(0.1) == 0.1  # burst of 2
    px.sync(0.1)
    px.on_service_change(s, None)
    t = px.next_sync_time(0.2)
    assert 0.2 < t <= 1.1  # must wait for a token (minSyncPeriod 1 s)
    px.sync(t)
    assert px.sync(3600.2).full  # FullSyncPeriod


# --- property: incremental == full rebuild ------------------------------------------------

SVC_NAMES = ["a", "b", "c", "d"]


@st.composite
def service_st(draw: st.DrawFn, name: str) -> Service:
    kind = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]))
    idx = SVC_NAMES.index(name)
    ports = [port(80, "http", node_port=30080 + idx if kind != "ClusterIP" else 0)]
    if draw(st.booleans()):
        ports.append(port(53, "dns", proto="UDP",
                          node_port=30180 + idx if kind != "ClusterIP" else 0))
    return service(
        name, f"10.96.1.{idx + 1}", *ports, type=kind,
        etp=draw(st.sampled_from(["Cluster", "Local"])) if kind != "ClusterIP" else "",
        itp=draw(st.sampled_from(["Cluster", "Local"])),
        hc=32000 + idx if kind != "ClusterIP" else 0,
        lb_ips=(f"192.0.2.{idx + 1}",) if kind == "LoadBalancer" else (),
        ranges=draw(st.sampled_from([(), ("198.51.100.0/24",), ("192.168.10.0/24",)]))
        if kind == "LoadBalancer" else (),
        external_ips=draw(st.sampled_from([(), (f"203.0.113.{idx + 1}",)])),
        affinity=draw(st.booleans()))


@st.composite
def slice_st(draw: st.DrawFn, name: str) -> EndpointSlice:
    n = draw(st.integers(0, 4))
    eps = []
    for i in draw(st.lists(st.integers(1, 6), min_size=n, max_size=n, unique=True)):
        state = draw(st.sampled_from(["ready", "ready", "term", "dead"]))
        cond = {"ready": {}, "term": dict(ready=False, serving=True, terminating=True),
                "dead": dict(ready=False, serving=False, terminating=True)}[state]
        eps.append(ep(f"10.244.{i % 2 + 1}.{i + 10 * SVC_NAMES.index(name)}",
                      "node-a" if i % 2 else "node-b", **cond))
    ports = [("http", 8080, "TCP"), ("dns", 53, "UDP")]
    return slice_(name, *eps, ports=tuple(ports[: draw(st.integers(1, 2))]))


@st.composite
def op_st(draw: st.DrawFn) -> tuple[str, str, object]:
    name = draw(st.sampled_from(SVC_NAMES))
    what = draw(st.sampled_from(["svc", "slice", "del-svc", "del-slice", "sync"]))
    if what == "svc":
        return what, name, draw(service_st(name))
    if what == "slice":
        return what, name, draw(slice_st(name))
    return what, name, None


@settings(max_examples=60, deadline=None)
@given(st.lists(op_st(), min_size=1, max_size=25))
def test_incremental_equals_full_rebuild(ops: list[tuple[str, str, object]]) -> None:
    n = node()
    px = Proxier(n, PROXY, CLUSTER, host=HostOptions())
    services: dict[str, Service] = {}
    slices: dict[str, EndpointSlice] = {}
    now = 0.0
    for what, name, obj in [*ops, ("sync", "", None)]:
        if what == "svc":
            px.on_service_change(services.get(name), obj)  # type: ignore[arg-type]
            services[name] = obj  # type: ignore[assignment]
        elif what == "slice":
            px.on_slice_change(slices.get(name), obj)  # type: ignore[arg-type]
            slices[name] = obj  # type: ignore[assignment]
        elif what == "del-svc" and name in services:
            px.on_service_change(services.pop(name), None)
        elif what == "del-slice" and name in slices:
            px.on_slice_change(slices.pop(name), None)
        elif what == "sync":
            now = max(now + 0.01, px.next_sync_time(now))
            before = snapshot(px.ruleset)
            r = px.sync(now)
            after = snapshot(px.ruleset)
            if not r.full:  # a full sync also runs EnsureRule for the built-in jumps
                apply_text(before, r.restore_text)
                assert before == after, "restore text does not reproduce the new tables"
            expect = build_ruleset(n, list(services.values()), list(slices.values()), PROXY,
                                   CLUSTER, host=HostOptions())
            assert render_save(px.ruleset) == render_save(expect)
            # only live service chains remain (stale ones were deleted)
            assert {c for c in px.ruleset["nat"].chains if c.startswith("KUBE-S")} == \
                {c for c in expect["nat"].chains if c.startswith("KUBE-S")}


def test_large_cluster_defers_stale_cleanup_to_sync_period() -> None:
    eps = [ep(f"10.244.{i // 200}.{i % 200 + 1}", "node-b") for i in range(1001)]
    big = service("big", "10.96.14.1", port(80, "http"))
    s1 = slice_("big", *eps, ports=(("http", 80, "TCP"),))
    px = fresh([big], [s1])
    r0 = px.sync(0.0)
    assert r0.large_cluster and "--comment shop/big:http" not in r0.restore_text
    s2 = slice_("big", *eps[1:], ep("10.244.9.9", "node-b"), ports=(("http", 80, "TCP"),))
    px.on_slice_change(s1, s2)
    r1 = px.sync(1.0)  # within syncPeriod (30 s) of the last cleanup: no -X
    assert r1.stale_chains == () and "-X " not in r1.restore_text
    gone = [c for c in px.ruleset["nat"].chains if c.startswith("KUBE-SEP-")]
    assert len(gone) == 1002  # the stale SEP chain is still in the kernel
    px.on_slice_change(s2, s2)  # a sync later than syncPeriod cleans it up
    px.request_full_sync()
    r2 = px.sync(40.0)
    assert len(r2.stale_chains) == 1 and f"-X {r2.stale_chains[0]}" in r2.restore_text
