"""The pod side of DNS, pure: kubelet's resolv.conf and /etc/hosts, glibc's search algorithm.

Invariants: no IO. ``resolv_conf_for_pod`` follows kubelet ``pkg/kubelet/network/dns/dns.go``
(GetPodDNS, getPodDNSType, generateSearchesForDNSClusterFirst, appendDNSConfig,
formDNSSearchFitsLimits: ≤ 32 search domains, ≤ 2048 characters, none longer than 253; ≤ 3
nameservers). ``res_search`` is glibc ``resolv/res_query.c`` ``__res_context_search`` as a
generator: it yields the next fully qualified name to query and is sent the outcome, so the
same algorithm drives the synchronous ``search`` (over the pure answer function) and the async
client. NXDOMAIN, NODATA and SERVFAIL move to the next search domain; other errors stop the
search (the name as-is is still tried last).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence

from knet.model.core import Pod

MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_CHARS = 2048
MAX_SEARCH_DOMAIN_LEN = 253
RES_MAXNDOTS = 15


class Status(enum.StrEnum):
    """Outcome of one query as res_search sees it."""

    SUCCESS = "SUCCESS"     # NOERROR with answers
    NODATA = "NODATA"       # NOERROR, empty answer (h_errno NO_DATA)
    NXDOMAIN = "NXDOMAIN"   # HOST_NOT_FOUND
    SERVFAIL = "SERVFAIL"   # TRY_AGAIN with rcode SERVFAIL
    TIMEOUT = "TIMEOUT"     # TRY_AGAIN without an answer
    OTHER = "OTHER"         # FORMERR, NOTIMP, REFUSED: NO_RECOVERY


def status_of(rcode: int, ancount: int) -> Status:
    if rcode == 0:
        return Status.SUCCESS if ancount > 0 else Status.NODATA
    return {3: Status.NXDOMAIN, 2: Status.SERVFAIL}.get(rcode, Status.OTHER)


@dataclass(frozen=True, slots=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def option(self, name: str) -> str | None:
        """Value of ``name[:value]`` (the last one wins, as in glibc); "" for a bare option."""
        found = None
        for o in self.options:
            k, _, v = o.partition(":")
            if k == name:
                found = v
        return found

    @property
    def ndots(self) -> int:
        v = self.option("ndots")
        try:
            return min(max(int(v), 0), RES_MAXNDOTS) if v else 1
        except ValueError:
            return 1

    @property
    def use_tcp(self) -> bool:
        return self.option("use-vc") is not None or self.option("usevc") is not None

    @property
    def edns0(self) -> bool:
        return self.option("edns0") is not None

    @property
    def no_tld_query(self) -> bool:
        return self.option("no-tld-query") is not None

    def render(self) -> str:
        """resolv.conf text as the container runtime writes it (containerd's order)."""
        out = []
        if self.searches:
            out.append("search " + " ".join(self.searches))
        for ns in self.nameservers:
            out.append(f"nameserver {ns}")
        if self.options:
            out.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in out)

    @classmethod
    def parse(cls, text: str) -> ResolvConf:
        ns: list[str] = []
        search: list[str] = []
        opts: list[str] = []
        for line in text.splitlines():
            parts = line.split("#", 1)[0].split(";", 1)[0].split()
            if not parts:
                continue
            if parts[0] == "nameserver" and len(parts) > 1:
                ns.append(parts[1])
            elif parts[0] in ("search", "domain"):
                search = parts[1:]  # the last search/domain line wins (glibc)
            elif parts[0] == "options":
                opts.extend(parts[1:])
        return cls(tuple(ns), tuple(search), tuple(opts))


def _omit_duplicates(xs: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for x in xs:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def _merge_options(existing: Sequence[str], extra: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    # mergeDNSOptions; Go map order is random, knet keeps first-seen order (deterministic).
    opts: dict[str, str] = {}
    for o in existing:
        k, _, v = o.partition(":")
        opts[k] = v
    for m in extra:
        val = m.get("value")
        opts[str(m.get("name", ""))] = "" if val is None else str(val)
    return tuple(k + (":" + v if v else "") for k, v in opts.items())


def _fit_searches(searches: list[str]) -> list[str]:
    """formDNSSearchFitsLimits."""
    s = searches[:MAX_SEARCH_PATHS]
    s = [d for d in s if len(d) <= MAX_SEARCH_DOMAIN_LEN]
    total = len(" ".join(s))
    if total > MAX_SEARCH_CHARS:
        cut_len = cut_num = 0
        for d in reversed(s):
            cut_len += len(d) + 1
            cut_num += 1
            if total - cut_len <= MAX_SEARCH_CHARS:
                break
        s = s[: len(s) - cut_num]
    return s


def resolv_conf_for_pod(pod: Pod, *, cluster_dns: Sequence[str], cluster_domain: str = "cluster.local",
                        node: ResolvConf = ResolvConf()) -> ResolvConf:
    """kubelet GetPodDNS for ``pod``. ``node`` is the node's resolv.conf (kubelet --resolv-conf)."""
    policy = pod.spec.dns_policy or "ClusterFirst"
    if policy == "None":
        kind = "none"
    elif policy == "ClusterFirstWithHostNet":
        kind = "cluster"
    elif policy == "ClusterFirst":
        kind = "host" if pod.spec.host_network else "cluster"
    else:  # Default
        kind = "host"
    if kind == "cluster" and not cluster_dns:
        kind = "host"  # "kubelet does not have ClusterDNS IP configured": falls back to Default
    if kind == "none":
        servers: list[str] = []
        searches: list[str] = []
        options: tuple[str, ...] = ()
    elif kind == "host":
        servers, searches, options = list(node.nameservers), list(node.searches), node.options
    else:
        servers = list(cluster_dns)
        searches = list(node.searches)
        if cluster_domain:
            searches = _omit_duplicates([f"{pod.namespace}.svc.{cluster_domain}",
                                         f"svc.{cluster_domain}", cluster_domain, *searches])
        options = ("ndots:5",)
    cfg = pod.spec.dns_config
    if cfg:
        servers = _omit_duplicates([*servers, *(str(s) for s in cfg.get("nameservers") or ())])
        searches = _omit_duplicates([*searches, *(str(s) for s in cfg.get("searches") or ())])
        options = _merge_options(options, cfg.get("options") or ())
    return ResolvConf(tuple(servers[:MAX_NAMESERVERS]), tuple(_fit_searches(searches)), tuple(options))


# --- /etc/hosts -----------------------------------------------------------------------------------

def etc_hosts_for_pod(pod: Pod, cluster_domain: str = "cluster.local") -> str:
    """kubelet managedHostsFileContent (pkg/kubelet/kubelet_pods.go)."""
    lines = ["# Kubernetes-managed hosts file.",
             "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet",
             "fe00::0\tip6-mcastprefix",
             "fe00::1\tip6-allnodes",
             "fe00::2\tip6-allrouters"]
    if not pod.spec.host_network:
        hostname = pod.spec.hostname or pod.name[:63].rstrip("-.")
        domain = f"{pod.spec.subdomain}.{pod.namespace}.svc.{cluster_domain}" if pod.spec.subdomain else ""
        for ip in pod.status.pod_ips:
            lines.append(f"{ip}\t{hostname}.{domain}\t{hostname}" if domain else f"{ip}\t{hostname}")
    if pod.spec.host_aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        for alias in pod.spec.host_aliases:
            names = "\t".join(str(h) for h in alias.get("hostnames") or ())
            lines.append(f"{alias.get('ip', '')}\t{names}")
    return "\n".join(lines) + "\n"


def parse_hosts(text: str) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2:
            out.append((parts[0], tuple(parts[1:])))
    return out


def hosts_lookup(entries: Sequence[tuple[str, tuple[str, ...]]], name: str, family: int = 0) -> list[str]:
    """nss 'files' lookup: case-insensitive, every matching line, in file order."""
    import ipaddress

    want = name.rstrip(".").lower() if name != "." else name
    out: list[str] = []
    for ip, names in entries:
        if want not in (n.lower() for n in names):
            continue
        try:
            v = ipaddress.ip_address(ip.split("%")[0]).version
        except ValueError:
            continue
        if family in (0, v) and ip not in out:
            out.append(ip)
    return out


# --- glibc res_search ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SearchResult:
    status: Status           # SUCCESS, or the error glibc reports (§9 of the reference)
    name: str | None         # the fully qualified name that answered
    tried: tuple[tuple[str, Status], ...]


def _join(name: str, domain: str) -> str:
    base = name.rstrip(".")
    return f"{base}.{domain.rstrip('.')}." if domain else f"{base}."


def res_search(name: str, resolv: ResolvConf) -> Generator[str, Status, SearchResult]:
    """Yields each fully qualified name to query; send() it the Status of that query."""
    tried: list[tuple[str, Status]] = []

    def done(st: Status, n: str | None) -> SearchResult:
        return SearchResult(st, n, tuple(tried))

    dots = name.count(".")
    trailing = name.endswith(".")
    saved: Status | None = None
    tried_as_is = searched = root_on_list = got_nodata = got_servfail = False
    last = Status.NXDOMAIN
    if dots >= resolv.ndots or trailing:
        q = _join(name, "")
        st = yield q
        tried.append((q, st))
        last = st
        if st == Status.SUCCESS or trailing:
            return done(st, q if st == Status.SUCCESS else None)
        saved, tried_as_is = st, True
    if dots == 0 or not trailing:
        for domain in resolv.searches:
            searched = True
            d = domain[1:] if domain.startswith(".") else domain
            if d == "":
                root_on_list = True
            q = _join(name, d)
            st = yield q
            tried.append((q, st))
            last = st
            if st == Status.SUCCESS:
                return done(st, q)
            if st == Status.NODATA:
                got_nodata = True
            elif st == Status.NXDOMAIN:
                pass
            elif st == Status.SERVFAIL:
                got_servfail = True
            else:
                break
    if (dots or not searched or not resolv.no_tld_query) and not (tried_as_is or root_on_list):
        q = _join(name, "")
        st = yield q
        tried.append((q, st))
        last = st
        if st == Status.SUCCESS:
            return done(st, q)
    if saved is not None:
        return done(saved, None)
    if got_nodata:
        return done(Status.NODATA, None)
    if got_servfail:
        return done(Status.SERVFAIL, None)
    return done(last, None)


def candidates(name: str, resolv: ResolvConf) -> list[str]:
    """Every name res_search would query, in order, if each query failed with NXDOMAIN."""
    gen = res_search(name, resolv)
    out: list[str] = []
    try:
        q = next(gen)
        while True:
            out.append(q)
            q = gen.send(Status.NXDOMAIN)
    except StopIteration:
        pass
    return out


def search(name: str, resolv: ResolvConf, query: Callable[[str], Status]) -> SearchResult:
    """Drive res_search synchronously with ``query(fqdn) -> Status``."""
    gen = res_search(name, resolv)
    try:
        q = next(gen)
        while True:
            q = gen.send(query(q))
    except StopIteration as stop:
        return stop.value
