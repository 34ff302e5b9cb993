"""Corefile parsing: the ``kube-system/coredns`` ConfigMap's ``Corefile`` → typed plugin configs.

Invariants: parsing never raises on content knet does not understand: unknown plugins and
options become ``warnings`` (CoreDNS itself would refuse to start; knet keeps going and says so).
Structural errors (unbalanced braces, no server block) raise ``UsageError`` with the line.
Zones are normalised as CoreDNS does (``plugin.Host(...).NormalizeExact()``): lower case, fully
qualified, CIDRs turned into their reverse zones. Plugin *order* is CoreDNS's fixed
``plugin.cfg`` order, not Corefile order (see knet/dns/answer.py).
Sources: coredns/coredns ``plugin/kubernetes/setup.go``, ``plugin/hosts/setup.go``,
``plugin/rewrite/setup.go``, ``plugin/cache/setup.go``, ``plugin/forward/setup.go``,
kubernetes ``cmd/kubeadm/app/phases/addons/dns/manifests.go`` (the default Corefile).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass, field

from knet.errors import UsageError

# kubeadm's CoreDNS ConfigMap (cmd/kubeadm/app/phases/addons/dns/manifests.go, v1.32, with
# kubernetes/kubernetes PR #128359's cache exceptions). ``{dns_domain}`` is the cluster domain.
KUBEADM_COREFILE_TEMPLATE = """\
.:53 {{
    errors
    health {{
       lameduck 5s
    }}
    ready
    kubernetes {dns_domain} in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus :9153
    forward . /etc/resolv.conf {{
       max_concurrent 1000
    }}
    cache 30 {{
       disable success {dns_domain}
       disable denial {dns_domain}
    }}
    loop
    reload
    loadbalance
}}
"""


def kubeadm_corefile(dns_domain: str = "cluster.local") -> str:
    return KUBEADM_COREFILE_TEMPLATE.format(dns_domain=dns_domain)


class PodsMode(enum.StrEnum):
    DISABLED = "disabled"
    INSECURE = "insecure"
    VERIFIED = "verified"


# Plugins knet honours or knowingly ignores (no effect on answers in an emulator).
_NO_EFFECT = {"errors", "health", "ready", "prometheus", "log", "loop", "reload", "debug",
              "pprof", "whoami", "bind", "cancel", "timeouts", "trace", "metadata", "nsid",
              "import", "root", "tls", "dnstap", "any", "minimal", "local"}


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    zones: tuple[str, ...]
    ttl: int = 5
    pods: PodsMode = PodsMode.DISABLED
    # None: no fallthrough. (): fall through for every zone. Else only for these zones.
    fallthrough: tuple[str, ...] | None = None
    endpoint_pod_names: bool = False
    ignore_empty_service: bool = False
    noendpoints: bool = False
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HostsConfig:
    zones: tuple[str, ...]
    entries: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (ip, names), inline + file
    ttl: int = 3600
    fallthrough: tuple[str, ...] | None = None
    no_reverse: bool = False


class RewriteKind(enum.StrEnum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    SUBSTRING = "substring"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class RewriteRule:
    kind: RewriteKind
    source: str   # FROM, lower case (fully qualified for exact/suffix)
    target: str   # TO
    stop: bool = True
    # ``answer name FROM TO`` rules (regex → template); applied to answer owner names.
    answer_name: tuple[tuple[str, str], ...] = ()
    answer_value: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CacheConfig:
    zones: tuple[str, ...]
    success_max: int = 3600
    success_min: int = 5
    denial_max: int = 1800
    denial_min: int = 5
    servfail_ttl: int = 5
    disable_success: tuple[str, ...] = ()
    disable_denial: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ForwardConfig:
    zone: str
    to: tuple[str, ...] = ()
    excepted: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServerBlock:
    zones: tuple[str, ...]
    port: int = 53
    kubernetes: KubernetesConfig | None = None
    hosts: HostsConfig | None = None
    rewrites: tuple[RewriteRule, ...] = ()
    cache: CacheConfig | None = None
    forward: ForwardConfig | None = None
    loadbalance: bool = False
    plugins: tuple[str, ...] = ()  # every directive named, in Corefile order


@dataclass(frozen=True, slots=True)
class Corefile:
    blocks: tuple[ServerBlock, ...]
    warnings: tuple[str, ...] = ()
    text: str = field(default="", compare=False, repr=False)


# --- lexer (Caddyfile syntax) ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Tok:
    text: str
    line: int
    quoted: bool = False


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in " \t\r,":
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c == '"':
            start_line = line
            i += 1
            buf: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\':
                    i += 1
                if text[i] == "\n":
                    line += 1
                buf.append(text[i])
                i += 1
            if i >= n:
                raise UsageError(f"Corefile:{start_line}: unterminated quoted string")
            i += 1
            out.append(_Tok("".join(buf), start_line, True))
        else:
            j = i
            while j < n and text[j] not in " \t\r\n,":
                j += 1
            out.append(_Tok(text[i:j], line))
            i = j
    return out


@dataclass(slots=True)
class _Directive:
    name: str
    args: list[str]
    line: int
    block: list[_Directive]


def _lines(toks: list[_Tok], pos: int, depth: int) -> tuple[list[_Directive], int]:
    """Parse directives until the matching ``}`` (depth > 0) or end of input."""
    out: list[_Directive] = []
    while pos < len(toks):
        t = toks[pos]
        if t.text == "}" and not t.quoted:
            if depth == 0:
                raise UsageError(f"Corefile:{t.line}: unexpected '}}'")
            return out, pos + 1
        line = t.line
        words: list[str] = []
        block: list[_Directive] = []
        while pos < len(toks) and toks[pos].line == line:
            w = toks[pos]
            if w.text == "{" and not w.quoted:
                block, pos = _lines(toks, pos + 1, depth + 1)
                break
            if w.text == "}" and not w.quoted:
                break
            words.append(w.text)
            pos += 1
        if words:
            out.append(_Directive(words[0], words[1:], line, block))
    if depth > 0:
        raise UsageError("Corefile: missing '}'")
    return out, pos


# --- zones -----------------------------------------------------------------------------------------

def normalize_zone(text: str) -> list[str]:
    """plugin.Host(s).NormalizeExact(): strip scheme and port, CIDR → reverse zones, fqdn lower."""
    s = text.strip()
    for scheme in ("dns://", "tls://", "grpc://", "https://", "quic://"):
        if s.startswith(scheme):
            s = s[len(scheme):]
    if "/" in s:
        try:
            net = ipaddress.ip_network(s, strict=False)
        except ValueError:
            net = None
        if net is not None:
            return _reverse_zones(net)
    if s.startswith("[") and "]" in s:
        s = s[1:s.index("]")]
    elif s.count(":") == 1:
        s = s.split(":", 1)[0]
    if s in ("", "."):
        return ["."]
    s = s.lower()
    return [s if s.endswith(".") else s + "."]


def _reverse_zones(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    # Split to the next octet (v4) or nibble (v6) boundary, as plugin/normalize.go SplitHostPort.
    step = 8 if net.version == 4 else 4
    plen = -(-net.prefixlen // step) * step
    subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = (
        [net] if plen == net.prefixlen else list(net.subnets(new_prefix=plen)))
    out = []
    for sub in subnets:
        rev = sub.network_address.reverse_pointer.split(".")
        keep = plen // step
        arpa = rev[-2:]
        labels = rev[:-2][len(rev) - 2 - keep:]
        out.append(".".join(labels + arpa) + ".")
    return out


def _zones(args: list[str], default: tuple[str, ...]) -> tuple[str, ...]:
    if not args:
        return default
    out: list[str] = []
    for a in args:
        out.extend(normalize_zone(a))
    return tuple(out)


# --- plugins ---------------------------------------------------------------------------------------

def _parse_kubernetes(d: _Directive, block_zones: tuple[str, ...], warn: list[str]) -> KubernetesConfig:
    zones = _zones(d.args, block_zones)
    ttl, pods = 5, PodsMode.DISABLED
    fall: tuple[str, ...] | None = None
    epn = ignore_empty = noend = False
    namespaces: tuple[str, ...] = ()
    for o in d.block:
        if o.name == "ttl":
            try:
                ttl = int(o.args[0])
            except (IndexError, ValueError):
                warn.append(f"Corefile:{o.line}: kubernetes: ttl needs a number; using 5")
                ttl = 5
            if not 0 <= ttl <= 3600:
                warn.append(f"Corefile:{o.line}: kubernetes: ttl must be in range [0, 3600]")
                ttl = max(0, min(ttl, 3600))
        elif o.name == "pods":
            try:
                pods = PodsMode(o.args[0])
            except (IndexError, ValueError):
                warn.append(f"Corefile:{o.line}: kubernetes: pods must be disabled|insecure|verified")
        elif o.name == "fallthrough":
            fall = _zones(o.args, ())
        elif o.name == "endpoint_pod_names":
            epn = True
        elif o.name == "ignore" and o.args == ["empty_service"]:
            ignore_empty = True
        elif o.name == "noendpoints":
            noend = True
        elif o.name == "namespaces":
            namespaces = tuple(o.args)
        elif o.name in ("kubeconfig", "endpoint", "tls", "resyncperiod", "startup_timeout",
                        "apiserver_qps", "apiserver_burst", "apiserver_max_inflight"):
            pass  # API-client settings: no effect on answers
        else:
            warn.append(f"Corefile:{o.line}: kubernetes: option {o.name!r} is not supported by knet; ignored")
    return KubernetesConfig(zones=zones, ttl=ttl, pods=pods, fallthrough=fall,
                            endpoint_pod_names=epn, ignore_empty_service=ignore_empty,
                            noendpoints=noend, namespaces=namespaces)


def _parse_hosts(d: _Directive, block_zones: tuple[str, ...], warn: list[str]) -> HostsConfig:
    # hosts [FILE [ZONES...]] { [INLINE] ttl SECONDS no_reverse reload DURATION fallthrough [ZONES...] }
    args = list(d.args)
    zones = block_zones
    if args:
        path = args.pop(0)
        if path != "/etc/hosts":
            warn.append(f"Corefile:{d.line}: hosts: file {path} is not available in knet; only inline entries are used")
        zones = _zones(args, block_zones)
    entries: list[tuple[str, tuple[str, ...]]] = []
    ttl, no_rev = 3600, False
    fall: tuple[str, ...] | None = None
    for o in d.block:
        if o.name == "ttl":
            try:
                ttl = int(o.args[0])
            except (IndexError, ValueError):
                warn.append(f"Corefile:{o.line}: hosts: ttl needs a number")
        elif o.name == "no_reverse":
            no_rev = True
        elif o.name == "reload":
            pass
        elif o.name == "fallthrough":
            fall = _zones(o.args, ())
        else:
            try:
                ipaddress.ip_address(o.name.split("%")[0])
            except ValueError:
                warn.append(f"Corefile:{o.line}: hosts: unknown property {o.name!r}; ignored")
                continue
            names = tuple(n.lower() if n.endswith(".") else n.lower() + "." for n in o.args)
            if names:
                entries.append((o.name, names))
    return HostsConfig(zones=zones, entries=tuple(entries), ttl=ttl, fallthrough=fall,
                       no_reverse=no_rev)


def _fqdn(s: str) -> str:
    s = s.lower()
    return s if s.endswith(".") else s + "."


def _rewrite_rule(words: list[str], stop: bool, line: int, warn: list[str]) -> RewriteRule | None:
    if not words or words[0] != "name":
        what = words[0] if words else ""
        warn.append(f"Corefile:{line}: rewrite: field {what!r} is not supported by knet; ignored")
        return None
    rest = words[1:]
    kind = RewriteKind.EXACT
    if rest and rest[0] in RewriteKind.__members__.values():
        kind = RewriteKind(rest.pop(0))
    if len(rest) < 2:
        warn.append(f"Corefile:{line}: rewrite name: needs FROM and TO")
        return None
    src, dst = rest[0], rest[1]
    answers_name: list[tuple[str, str]] = []
    answers_value: list[tuple[str, str]] = []
    extra = rest[2:]
    while extra:
        if extra[0] == "answer" and len(extra) >= 2 and extra[1] == "auto":
            extra = extra[2:]
        elif extra[0] == "answer" and len(extra) >= 4 and extra[1] in ("name", "value"):
            (answers_name if extra[1] == "name" else answers_value).append((extra[2], extra[3]))
            extra = extra[4:]
        else:
            warn.append(f"Corefile:{line}: rewrite name: unexpected {' '.join(extra)!r}; ignored")
            break
    if kind in (RewriteKind.EXACT, RewriteKind.SUFFIX):
        src, dst = _fqdn(src), _fqdn(dst)
    elif kind != RewriteKind.REGEX:
        src, dst = src.lower(), dst.lower()
    if kind == RewriteKind.REGEX:
        try:
            re.compile(src)
        except re.error as e:
            warn.append(f"Corefile:{line}: rewrite name regex: {e}; ignored")
            return None
    return RewriteRule(kind=kind, source=src, target=dst, stop=stop,
                       answer_name=tuple(answers_name), answer_value=tuple(answers_value))


def _parse_rewrite(d: _Directive, warn: list[str]) -> list[RewriteRule]:
    args = list(d.args)
    stop = True
    if args and args[0] in ("continue", "stop"):
        stop = args.pop(0) == "stop"
    if d.block:
        # rewrite [continue|stop] { name ... \n answer name ... }
        rule_words: list[str] = []
        answers: list[str] = []
        for o in d.block:
            if o.name == "answer":
                answers.extend(["answer", *o.args])
            else:
                rule_words = [o.name, *o.args]
        r = _rewrite_rule(rule_words + answers, stop, d.line, warn)
        return [r] if r else []
    r = _rewrite_rule(args, stop, d.line, warn)
    return [r] if r else []


def _parse_cache(d: _Directive, block_zones: tuple[str, ...], warn: list[str]) -> CacheConfig:
    args = list(d.args)
    smax, dmax = 3600, 1800
    if args and args[0].isdigit():
        smax = dmax = int(args.pop(0))
    zones = _zones(args, block_zones)
    smin = dmin = 5
    servfail = 5
    dis_s: list[str] = []
    dis_d: list[str] = []
    for o in d.block:
        if o.name in ("success", "denial") and o.args:
            # success CAPACITY [TTL] [MINTTL]
            vals = [int(a) for a in o.args[1:3] if a.isdigit()]
            if o.name == "success":
                smax = vals[0] if vals else smax
                smin = vals[1] if len(vals) > 1 else smin
            else:
                dmax = vals[0] if vals else dmax
                dmin = vals[1] if len(vals) > 1 else dmin
        elif o.name == "disable" and o.args and o.args[0] in ("success", "denial"):
            zs = list(_zones(o.args[1:], zones))
            (dis_s if o.args[0] == "success" else dis_d).extend(zs)
        elif o.name == "servfail" and o.args:
            m = re.fullmatch(r"(\d+)s?", o.args[0])
            servfail = int(m.group(1)) if m else servfail
        elif o.name in ("prefetch", "serve_stale", "keepttl"):
            pass
        else:
            warn.append(f"Corefile:{o.line}: cache: option {o.name!r} is not supported by knet; ignored")
    return CacheConfig(zones=zones, success_max=smax, success_min=smin, denial_max=dmax,
                       denial_min=dmin, servfail_ttl=servfail, disable_success=tuple(dis_s),
                       disable_denial=tuple(dis_d))


def _parse_forward(d: _Directive, warn: list[str]) -> ForwardConfig:
    if not d.args:
        warn.append(f"Corefile:{d.line}: forward: needs FROM and TO")
        return ForwardConfig(zone=".")
    zone = normalize_zone(d.args[0])[0]
    excepted: list[str] = []
    for o in d.block:
        if o.name == "except":
            excepted.extend(_zones(o.args, ()))
    return ForwardConfig(zone=zone, to=tuple(d.args[1:]), excepted=tuple(excepted))


def _block_key(tok: str) -> tuple[list[str], int | None]:
    s = tok
    for scheme in ("dns://", "tls://", "grpc://", "https://", "quic://"):
        if s.startswith(scheme):
            s = s[len(scheme):]
    port: int | None = None
    if s.startswith(":"):  # ":53" = root zone
        s = "." + s
    m = re.fullmatch(r"(.*):(\d+)", s)
    if m and (":" not in m.group(1) or m.group(1).endswith("]")):
        s, port = m.group(1), int(m.group(2))
    return normalize_zone(s), port


def parse_corefile(text: str) -> Corefile:
    """Parse a Corefile. Raises UsageError only for structural problems."""
    toks = _tokens(text)
    warn: list[str] = []
    blocks: list[ServerBlock] = []
    pos = 0
    while pos < len(toks):
        keys: list[str] = []
        line = toks[pos].line
        while pos < len(toks) and not (toks[pos].text == "{" and not toks[pos].quoted):
            if toks[pos].line != line and keys:
                raise UsageError(f"Corefile:{toks[pos].line}: expected '{{' after server block keys")
            keys.append(toks[pos].text)
            pos += 1
        if pos >= len(toks):
            if keys:
                raise UsageError(f"Corefile:{line}: server block {' '.join(keys)} has no '{{'")
            break
        directives, pos = _lines(toks, pos + 1, 1)
        zones: list[str] = []
        port = 53
        for k in keys:
            z, p = _block_key(k)
            zones.extend(z)
            port = p if p is not None else port
        if not zones:
            raise UsageError(f"Corefile:{line}: server block without a zone")
        blocks.append(_server_block(tuple(zones), port, directives, warn))
    if not blocks:
        raise UsageError("Corefile: no server block")
    return Corefile(blocks=tuple(blocks), warnings=tuple(warn), text=text)


def _server_block(zones: tuple[str, ...], port: int, directives: list[_Directive],
                  warn: list[str]) -> ServerBlock:
    k8s = hosts = cache = fwd = None
    rewrites: list[RewriteRule] = []
    lb = False
    names: list[str] = []
    for d in directives:
        names.append(d.name)
        if d.name == "kubernetes":
            k8s = _parse_kubernetes(d, zones, warn)
        elif d.name == "hosts":
            hosts = _parse_hosts(d, zones, warn)
        elif d.name == "rewrite":
            rewrites.extend(_parse_rewrite(d, warn))
        elif d.name == "cache":
            cache = _parse_cache(d, zones, warn)
        elif d.name == "forward":
            fwd = _parse_forward(d, warn)
        elif d.name == "loadbalance":
            policy = d.args[0] if d.args else "round_robin"
            if policy != "round_robin":
                warn.append(f"Corefile:{d.line}: loadbalance {policy}: only round_robin is supported; using it")
            lb = True
        elif d.name in _NO_EFFECT:
            pass
        else:
            warn.append(f"Corefile:{d.line}: plugin {d.name!r} is not supported by knet; ignored")
    return ServerBlock(zones=zones, port=port, kubernetes=k8s, hosts=hosts,
                       rewrites=tuple(rewrites), cache=cache, forward=fwd, loadbalance=lb,
                       plugins=tuple(names))
