"""Cluster configuration kinds → ``ClusterConfig`` (+ kind's nodes).

Honoured kinds (docs/topology.md lists every field): kind ``Cluster`` (kind.x-k8s.io/v1alpha4),
kubeadm ``ClusterConfiguration`` (kubeadm.k8s.io/v1beta3, v1beta4), ``KubeProxyConfiguration``
(kubeproxy.config.k8s.io/v1alpha1), ``ServiceCIDR`` (networking.k8s.io/v1, also v1beta1),
MetalLB ``IPAddressPool`` (metallb.io/v1beta1) and knet's ``Topology`` (knet.dev/v1alpha1).

Precedence mirrors how kind builds a cluster: kind's ``networking`` seeds the kubeadm and
kube-proxy configuration, and explicit kubeadm / KubeProxyConfiguration documents (standalone
or in kind's ``kubeadmConfigPatches``) override it. Defaults are kind's when a kind Cluster is
given (service subnet 10.96.0.0/16), kubeadm's otherwise (10.96.0.0/12).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

from knet.manifests import names
from knet.manifests.fields import F
from knet.manifests.loader import load_documents
from knet.manifests.nodes import CONTROL_PLANE, WORKER, kind_nodes
from knet.model.config import AddressPool, ClusterConfig, KubeProxyConfig
from knet.model.core import Node
from knet.model.meta import Source

IPNetwork = IPv4Network | IPv6Network

KIND_CLUSTER = ("kind.x-k8s.io/v1alpha4", "Cluster")
KUBEADM_VERSIONS = ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4")
KUBEPROXY = ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration")
SERVICE_CIDR_VERSIONS = ("networking.k8s.io/v1", "networking.k8s.io/v1beta1")
METALLB_POOL = ("metallb.io/v1beta1", "IPAddressPool")
TOPOLOGY = ("knet.dev/v1alpha1", "Topology")

# kind's defaults per ipFamily (pkg/apis/config/v1alpha4/default.go)
KIND_DEFAULTS = {
    "ipv4": ("10.244.0.0/16", "10.96.0.0/16"),
    "ipv6": ("fd00:10:244::/56", "fd00:10:96::/112"),
    "dual": ("10.244.0.0/16,fd00:10:244::/56", "10.96.0.0/16,fd00:10:96::/112"),
}
PROXY_MODES = ("iptables", "ipvs", "nftables")
DETECT_LOCAL_MODES = ("ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix")
IPVS_SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}


def is_config_kind(api_version: str, kind: str) -> bool:
    return ((api_version, kind) in (KIND_CLUSTER, KUBEPROXY, METALLB_POOL, TOPOLOGY)
            or (api_version in KUBEADM_VERSIONS and kind in (
                "ClusterConfiguration", "InitConfiguration", "JoinConfiguration"))
            or (api_version in SERVICE_CIDR_VERSIONS and kind == "ServiceCIDR"))


def parse_duration(text: str) -> float | None:
    """Go's time.ParseDuration (the subset config files use): "1s", "500ms", "1m30s", "0"."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        return None
    return sign * total


@dataclass(slots=True)
class ConfigResult:
    config: ClusterConfig
    nodes: list[Node] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _State:
    """Accumulates settings from the config documents, in the order of precedence."""

    name: str | None = None
    seed: int | None = None
    kind_family: str | None = None
    kind_pod: str | None = None
    kind_svc: str | None = None
    kind_proxy_mode: str | None = None
    kind_seen: bool = False
    kubeadm_pod: tuple[F, str] | None = None
    kubeadm_svc: tuple[F, str] | None = None
    dns_domain: str | None = None
    node_port_range: tuple[int, int] | None = None
    mask_v4: int | None = None
    mask_v6: int | None = None
    proxy: F | None = None
    service_cidrs: list[tuple[F, str]] = field(default_factory=list)
    pools: list[AddressPool] = field(default_factory=list)
    external_hosts: list[tuple[str, str]] = field(default_factory=list)
    kind_roles: list[str] = field(default_factory=list)
    kind_labels: list[dict[str, str]] = field(default_factory=list)
    kind_sources: list[Source] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seen: dict[str, F] = field(default_factory=dict)


def build_config(docs: list[tuple[str, str, F]]) -> ConfigResult:
    """``docs`` are (apiVersion, kind, document cursor) of the configuration documents."""
    st = _State()
    for api_version, kind, doc in docs:
        singleton = None if kind in ("ServiceCIDR", "IPAddressPool") else kind
        if singleton in ("InitConfiguration", "JoinConfiguration"):
            continue  # node-local kubeadm settings: nothing knet models
        if singleton is not None:
            if singleton in st.seen:
                doc.error(f"only one {kind} document is allowed (another at line "
                          f"{st.seen[singleton].loc[0]} of {st.seen[singleton].ctx.file})")
                continue
            st.seen[singleton] = doc
        if (api_version, kind) == KIND_CLUSTER:
            _kind_cluster(st, doc)
        elif kind == "ClusterConfiguration":
            _kubeadm(st, doc, api_version)
        elif kind == "KubeProxyConfiguration":
            st.proxy = doc
        elif kind == "ServiceCIDR":
            _service_cidr(st, doc)
        elif kind == "IPAddressPool":
            _pool(st, doc)
        elif kind == "Topology":
            _topology(st, doc)
    return _finish(st, docs)


# --- kind ---------------------------------------------------------------------------------

def _kind_cluster(st: _State, doc: F) -> None:
    st.kind_seen = True
    doc.known(["apiVersion", "kind", "name", "nodes", "networking", "featureGates",
               "runtimeConfig", "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902",
               "containerdConfigPatches", "containerdConfigPatchesJSON6902"])
    if doc.has("name"):
        st.name = doc.str("name")
        for msg in names.dns1123_label(st.name):
            doc.child("name").invalid(msg)  # type: ignore[union-attr]
    net = doc.map("networking")
    if net is not None:
        net.known(["ipFamily", "apiServerPort", "apiServerAddress", "podSubnet",
                   "serviceSubnet", "disableDefaultCNI", "kubeProxyMode", "dnsSearch"])
        fam = net.child("ipFamily")
        if fam is not None:
            v = fam.as_str()
            if v is not None and v not in KIND_DEFAULTS:
                fam.unsupported(list(KIND_DEFAULTS))
            elif v is not None:
                st.kind_family = v
        st.kind_pod = net.str("podSubnet") or None
        st.kind_svc = net.str("serviceSubnet") or None
        if net.bool("disableDefaultCNI"):
            st.warnings.append(
                f"{doc.ctx.file}:{net.loc[0]}: networking.disableDefaultCNI is ignored: knet "
                "always provides pod networking (as kindnet would)")
        mode = net.child("kubeProxyMode")
        if mode is not None:
            m = mode.as_str()
            if m == "none":
                st.warnings.append(f"{doc.ctx.file}:{mode.loc[0]}: kubeProxyMode none is not "
                                   "emulated; knet runs kube-proxy in iptables mode")
            elif m is not None and m not in PROXY_MODES:
                mode.unsupported([*PROXY_MODES, "none"])
            elif m is not None:
                st.kind_proxy_mode = m
    for node in doc.list("nodes"):
        if not node.is_mapping():
            continue
        node.known(["role", "image", "labels", "extraMounts", "extraPortMappings",
                    "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902"])
        role = node.str("role", CONTROL_PLANE)
        if role not in (CONTROL_PLANE, WORKER):
            node.child("role").unsupported([CONTROL_PLANE, WORKER])  # type: ignore[union-attr]
            role = WORKER
        st.kind_roles.append(role)
        st.kind_labels.append(_labels(node, "labels"))
        st.kind_sources.append(Source(doc.ctx.file, *node.loc))
    if doc.has("nodes") and not st.kind_roles:
        doc.child("nodes").error("Required value: at least one node")  # type: ignore[union-attr]
    for patch in doc.list("kubeadmConfigPatches"):
        _kind_patch(st, patch)


def _kind_patch(st: _State, patch: F) -> None:
    """A kubeadmConfigPatches entry is YAML text merged into kubeadm's config documents."""
    text = patch.as_str()
    if text is None:
        return
    loaded = load_documents(text, f"{patch.ctx.file}:{patch.loc[0]} ({patch.path})")
    for p in loaded.problems:
        patch.error(p.message)
    for d in loaded.documents:
        f = F(d.value, "", patch.loc, patch.ctx)
        if not isinstance(d.value, dict):
            continue
        kind = d.value.get("kind")
        if kind == "ClusterConfiguration":
            _kubeadm(st, f, str(d.value.get("apiVersion", "kubeadm.k8s.io/v1beta3")))
        elif kind == "KubeProxyConfiguration":
            st.proxy = f


def _labels(f: F, key: str) -> dict[str, str]:
    from knet.manifests.objects import parse_labels

    return parse_labels(f, key)


# --- kubeadm --------------------------------------------------------------------------------

def _extra_args(f: F | None, api_version: str) -> dict[str, tuple[F, str]]:
    """apiServer/controllerManager extraArgs: a map in v1beta3, [{name, value}] in v1beta4."""
    out: dict[str, tuple[F, str]] = {}
    if f is None:
        return out
    args = f.child("extraArgs")
    if args is None:
        return out
    if api_version.endswith("v1beta4"):
        if not isinstance(args.value, list):
            args.error("expected a list of {name, value} (kubeadm v1beta4 extraArgs)")
            return out
        for item in args.items_of_list():
            if item.is_mapping():
                name = item.str("name", required=True)
                value = item.str("value")
                if name:
                    out[name] = (item.child("value") or item, value)
        return out
    if isinstance(args.value, list):
        args.error("expected a mapping of flag → value (kubeadm v1beta3 extraArgs)")
        return out
    for k, v in args.entries():
        s = v.as_str()
        if s is not None:
            out[k] = (v, s)
    return out


def _kubeadm(st: _State, doc: F, api_version: str) -> None:
    net = doc.map("networking")
    if net is not None:
        if net.has("podSubnet"):
            st.kubeadm_pod = (net.child("podSubnet"), net.str("podSubnet"))  # type: ignore[assignment]
        if net.has("serviceSubnet"):
            st.kubeadm_svc = (net.child("serviceSubnet"), net.str("serviceSubnet"))  # type: ignore[assignment]
        if net.has("dnsDomain"):
            d = net.str("dnsDomain")
            for msg in names.dns1123_subdomain(d):
                net.child("dnsDomain").invalid(msg)  # type: ignore[union-attr]
            st.dns_domain = d
    api = _extra_args(doc.map("apiServer"), api_version)
    if "service-node-port-range" in api:
        f, text = api["service-node-port-range"]
        rng = _port_range(text)
        if rng is None:
            f.error(f"Invalid value: {text!r}: expected a port range like 30000-32767")
        else:
            st.node_port_range = rng
    if "service-cluster-ip-range" in api:
        st.kubeadm_svc = api["service-cluster-ip-range"]
    cm = _extra_args(doc.map("controllerManager"), api_version)
    for flag, attr in (("node-cidr-mask-size", "mask_v4"), ("node-cidr-mask-size-ipv4", "mask_v4"),
                       ("node-cidr-mask-size-ipv6", "mask_v6")):
        if flag in cm:
            f, text = cm[flag]
            if text.isdigit():
                setattr(st, attr, int(text))
            else:
                f.error(f"Invalid value: {text!r}: expected an integer mask size")
    if "cluster-cidr" in cm:
        st.kubeadm_pod = cm["cluster-cidr"]


def _port_range(text: str) -> tuple[int, int] | None:
    """k8s.io/apimachinery/pkg/util/net.ParsePortRange: "a-b" or "a+n"."""
    m = re.fullmatch(r"\s*(\d+)\s*([-+])\s*(\d+)\s*", text)
    if not m:
        return None
    lo, hi = int(m.group(1)), int(m.group(3))
    if m.group(2) == "+":
        hi = lo + hi
    if not (0 < lo <= hi <= 65535):
        return None
    return (lo, hi)


# --- ServiceCIDR / MetalLB / Topology -------------------------------------------------------

def _service_cidr(st: _State, doc: F) -> None:
    spec = doc.map("spec")
    if spec is None:
        doc.required("spec")
        return
    cidrs = spec.list("cidrs")
    if not cidrs:
        spec.required("cidrs")
    if len(cidrs) > 2:
        spec.child("cidrs").error("Too many: may only hold up to 2 values")  # type: ignore[union-attr]
    for c in cidrs:
        s = c.as_str()
        if s is not None:
            st.service_cidrs.append((c, s))


def _pool(st: _State, doc: F) -> None:
    meta = doc.map("metadata")
    name = meta.str("name", required=True) if meta else ""
    spec = doc.map("spec")
    if spec is None:
        doc.required("spec")
        return
    addrs = []
    for a in spec.list("addresses"):
        s = a.as_str()
        if s is None:
            continue
        if not _valid_pool_range(s):
            a.invalid("expected a CIDR (192.168.10.0/24) or a range (192.168.9.1-192.168.9.5)")
            continue
        addrs.append(s)
    if not spec.has("addresses"):
        spec.required("addresses")
    st.pools.append(AddressPool(name=name, addresses=tuple(addrs),
                                auto_assign=spec.bool("autoAssign", True)))


def _valid_pool_range(s: str) -> bool:
    try:
        if "-" in s:
            lo, hi = (ip_address(x.strip()) for x in s.split("-", 1))
            return lo.version == hi.version and lo <= hi  # type: ignore[operator]
        ip_network(s.strip(), strict=False)
        return "/" in s
    except ValueError:
        return False


def _topology(st: _State, doc: F) -> None:
    doc.known(["apiVersion", "kind", "metadata", "name", "seed", "externalHosts"])
    if doc.has("name"):
        st.name = doc.str("name")
        for msg in names.dns1123_label(st.name):
            doc.child("name").invalid(msg)  # type: ignore[union-attr]
    if doc.has("seed"):
        st.seed = doc.int("seed")
    hosts = doc.map("externalHosts")
    if hosts is not None:
        for host, f in hosts.entries():
            ip = f.as_str()
            if ip is None:
                continue
            for msg in names.dns1123_subdomain(host.rstrip(".").lower()):
                f.error(f"Invalid value: {host!r}: {msg}", at_key=True)
            for msg in names.ip(ip):
                f.invalid(msg)
            st.external_hosts.append((host.rstrip(".").lower(), ip))


# --- combining --------------------------------------------------------------------------------

def _cidrs(f: F | None, text: str, what: str) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        try:
            out.append(ip_network(part, strict=False))
        except ValueError:
            if f is not None:
                f.error(f"Invalid value: {part!r}: {what} must be a valid CIDR value, "
                        "(e.g. 10.9.8.0/24 or 2001:db8::/64)")
    if f is not None and len(out) == 2 and out[0].version == out[1].version:
        f.error(f"Invalid value: {text!r}: {what} may hold at most one CIDR of each IP family")
    return out


def _finish(st: _State, docs: list[tuple[str, str, F]]) -> ConfigResult:
    base = ClusterConfig()
    family = st.kind_family or "ipv4"
    pod: list[IPNetwork] = list(base.pod_subnets)
    svc: list[IPNetwork] = list(base.service_subnets)
    if st.kind_seen:
        dpod, dsvc = KIND_DEFAULTS[family]
        pod = _cidrs(None, st.kind_pod or dpod, "podSubnet")
        svc = _cidrs(None, st.kind_svc or dsvc, "serviceSubnet")
        if st.kind_pod:
            pod = _cidrs(_find(docs, "Cluster", "networking", "podSubnet"), st.kind_pod,
                         "podSubnet")
        if st.kind_svc:
            svc = _cidrs(_find(docs, "Cluster", "networking", "serviceSubnet"), st.kind_svc,
                         "serviceSubnet")
    if st.kubeadm_pod:
        pod = _cidrs(*st.kubeadm_pod, "podSubnet")
    if st.kubeadm_svc:
        svc = _cidrs(*st.kubeadm_svc, "serviceSubnet")
    for net in svc:  # kube-apiserver: --service-cluster-ip-range too large
        if (net.version == 4 and net.prefixlen < 12) or (net.version == 6 and net.prefixlen < 108):
            where = st.kubeadm_svc[0] if st.kubeadm_svc else _find(
                docs, "Cluster", "networking", "serviceSubnet")
            if where is not None:
                bits = 32 if net.version == 4 else 128
                need = 12 if net.version == 4 else 108
                where.error(f"Invalid value: {str(net)!r}: specified service CIDR is too "
                            f"large; for {bits}-bit addresses, the mask must be >= {need}")
    for f, text in st.service_cidrs:
        for net in _cidrs(f, text, "cidrs"):
            if net not in svc:
                svc.append(net)
    if not st.kind_family:
        fams = {n.version for n in svc[:2]}
        family = "dual" if fams == {4, 6} else ("ipv6" if fams == {6} else "ipv4")
    elif family == "dual" and {n.version for n in svc} != {4, 6}:
        subnet_f = _find(docs, "Cluster", "networking", "serviceSubnet")
        if subnet_f is not None:
            subnet_f.error("Invalid value: dual-stack clusters need one IPv4 and one IPv6 CIDR")

    kp = _kube_proxy(st)
    kw: dict[str, Any] = dict(
        ip_family=family,
        pod_subnets=tuple(pod) or base.pod_subnets,
        service_subnets=tuple(svc) or base.service_subnets,
        kube_proxy=kp,
        address_pools=tuple(st.pools),
        external_hosts=tuple(st.external_hosts),
        nodes_declared=bool(st.kind_seen),
    )
    if st.name:
        kw["name"] = st.name
    if st.seed is not None:
        kw["seed"] = st.seed
    if st.dns_domain:
        kw["dns_domain"] = st.dns_domain
    if st.node_port_range:
        kw["node_port_range"] = st.node_port_range
    if st.mask_v4 is not None:
        kw["node_cidr_mask_v4"] = st.mask_v4
    if st.mask_v6 is not None:
        kw["node_cidr_mask_v6"] = st.mask_v6
    config = replace(base, **kw)
    nodes: list[Node] = []
    if st.kind_seen:
        roles = st.kind_roles or [CONTROL_PLANE]
        nodes = kind_nodes(config.name, roles, st.kind_labels or None,
                           st.kind_sources or None)
    return ConfigResult(config, nodes, st.warnings)


def _find(docs: list[tuple[str, str, F]], kind: str, *path: str) -> F | None:
    for _, k, doc in docs:
        if k == kind:
            f: F | None = doc
            for p in path:
                f = f.child(p) if f is not None else None
            return f
    return None


def _kube_proxy(st: _State) -> KubeProxyConfig:
    kp = KubeProxyConfig()
    if st.kind_proxy_mode:
        kp = replace(kp, mode=st.kind_proxy_mode)
    doc = st.proxy
    if doc is None:
        return kp
    kw: dict[str, Any] = {}
    mode = doc.child("mode")
    if mode is not None:
        m = mode.as_str()
        if m and m not in PROXY_MODES:
            mode.unsupported(PROXY_MODES)
        elif m:
            kw["mode"] = m
        elif m == "":
            kw["mode"] = "iptables"  # "" is iptables on Linux
    mode_name = kw.get("mode", kp.mode)
    if doc.has("clusterCIDR"):
        kw["cluster_cidr"] = tuple(_cidrs(doc.child("clusterCIDR"), doc.str("clusterCIDR"),
                                          "clusterCIDR"))
    dlm = doc.child("detectLocalMode")
    if dlm is not None:
        v = dlm.as_str()
        if v and v not in DETECT_LOCAL_MODES:
            dlm.unsupported(DETECT_LOCAL_MODES)
        elif v:
            kw["detect_local_mode"] = v
    dl = doc.map("detectLocal")
    if dl is not None:
        kw["bridge_interface"] = dl.str("bridgeInterface")
        kw["interface_name_prefix"] = dl.str("interfaceNamePrefix")
    if doc.has("nodePortAddresses"):
        addrs = doc.str_list("nodePortAddresses")
        for item, a in zip(doc.list("nodePortAddresses"), addrs):
            if a != "primary" and names.cidr(a):
                item.invalid("must be a valid CIDR or \"primary\"")
        kw["node_port_addresses"] = addrs
    ipt = doc.map("iptables")
    nft = doc.map("nftables")
    ipvs = doc.map("ipvs")
    # masquerade settings: the running mode's section, falling back to iptables' (kube-proxy
    # reads iptables.masqueradeBit for ipvs too).
    for sect in [s for s in (ipt, nft if mode_name == "nftables" else None) if s is not None]:
        if sect.has("masqueradeBit"):
            bit = sect.int("masqueradeBit", 14)
            if not 0 <= bit <= 31:
                sect.child("masqueradeBit").invalid("must be within the range [0, 31]")  # type: ignore[union-attr]
            else:
                kw["masquerade_bit"] = bit
        if sect.has("masqueradeAll"):
            kw["masquerade_all"] = sect.bool("masqueradeAll")
    if ipt is not None and ipt.has("localhostNodePorts"):
        kw["localhost_nodeports"] = ipt.bool("localhostNodePorts", True)
    sync_sect = {"iptables": ipt, "ipvs": ipvs, "nftables": nft}.get(mode_name)
    for sync_f in (doc, sync_sect):
        if sync_f is None:
            continue
        for key, attr in (("minSyncPeriod", "min_sync_period"), ("syncPeriod", "sync_period")):
            d = _duration(sync_f, key)
            if d is not None:
                kw[attr] = d
    if ipvs is not None:
        sched = ipvs.child("scheduler")
        if sched is not None:
            s = sched.as_str()
            if s and s not in IPVS_SCHEDULERS:
                sched.unsupported(IPVS_SCHEDULERS)
            elif s is not None:
                kw["ipvs_scheduler"] = s
        kw["ipvs_strict_arp"] = ipvs.bool("strictARP")
        for key, attr in (("tcpTimeout", "ipvs_tcp_timeout"),
                          ("tcpFinTimeout", "ipvs_tcp_fin_timeout"),
                          ("udpTimeout", "ipvs_udp_timeout")):
            d = _duration(ipvs, key)
            if d is not None:
                kw[attr] = d
    return replace(kp, **kw)


def _duration(sect: F, key: str) -> float | None:
    f = sect.child(key)
    if f is None:
        return None
    s = f.as_str()
    if s is None:
        return None
    d = parse_duration(s)
    if d is None or d < 0:
        f.invalid("expected a duration like 1s, 500ms or 1m30s")
        return None
    return d
