"""Flow filters modelled on ``hubble observe`` (cilium/hubble cmd/observe flags).

Invariants:
- Like Hubble: values within one field are ORed, fields are ANDed. ``pod`` is
  ``[namespace/]name-prefix`` (namespace defaults to ``default``), ``ip`` accepts an address
  or a CIDR, ``node`` accepts shell-style globs (Hubble's ``--node-name`` patterns).
- A packet matches if any header version it had on its way (before or after each NAT) does:
  ``port=8080`` finds a connection to a ClusterIP:80 whose backend listens on 8080.
- ``verdict="dropped"`` also matches rejected packets (a REJECT drops the packet and answers
  with an error, Hubble reports both as DROPPED); ``verdict="rejected"`` matches only rejects.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from ipaddress import ip_network

from knet.errors import UsageError
from knet.trace.record import Names, PodInfo, TracedPacket, TraceVerdict

Values = tuple[str, ...]

_PROTOCOLS = {"tcp": "tcp", "udp": "udp", "sctp": "sctp", "icmp": "icmp", "icmpv4": "icmp",
              "icmpv6": "icmp"}


def _tuple(v: object) -> Values:
    if v is None:
        return ()
    if isinstance(v, (str, int)):
        return (str(v),)
    if isinstance(v, Iterable):
        return tuple(str(x) for x in v)
    raise UsageError(f"capture filter value {v!r}: expected a string, a number or a list of them")


@dataclass(frozen=True, slots=True)
class Filter:
    pod: Values = ()
    from_pod: Values = ()
    to_pod: Values = ()
    namespace: Values = ()
    node: Values = ()
    ip: Values = ()
    from_ip: Values = ()
    to_ip: Values = ()
    port: Values = ()
    from_port: Values = ()
    to_port: Values = ()
    protocol: Values = ()
    verdict: Values = ()
    service: Values = ()
    label: Values = ()

    @classmethod
    def of(cls, spec: Filter | Mapping[str, object] | None = None, **kwargs: object) -> Filter:
        """Build from a Filter, a mapping and/or keyword arguments (str or list of str)."""
        values: dict[str, object] = {}
        if isinstance(spec, Filter):
            values.update({f.name: getattr(spec, f.name) for f in fields(cls)})
        elif spec is not None:
            values.update(spec)
        values.update(kwargs)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown capture filter(s): {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        out = {k: _tuple(v) for k, v in values.items()}
        for p in out.get("protocol", ()):
            if p.lower() not in _PROTOCOLS:
                raise UsageError(f"unknown protocol {p!r} (tcp, udp, sctp, icmp)")
        for v in out.get("verdict", ()):
            if v.lower() not in ("forwarded", "dropped", "rejected"):
                raise UsageError(f"unknown verdict {v!r} (forwarded, dropped, rejected)")
        for ip in (*out.get("ip", ()), *out.get("from_ip", ()), *out.get("to_ip", ())):
            try:
                ip_network(ip, strict=False)
            except ValueError:
                raise UsageError(f"not an IP address or CIDR: {ip!r}") from None
        for p in (*out.get("port", ()), *out.get("from_port", ()), *out.get("to_port", ())):
            if not p.isdigit() or not 0 <= int(p) <= 65535:
                raise UsageError(f"not a port number: {p!r}")
        return cls(**out)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))

    def matches(self, tp: TracedPacket, names: Names) -> bool:
        if self.empty:
            return True
        versions = tp.versions
        srcs = [(p.src, p.sport) for p in versions]
        dsts = [(p.dst, p.dport) for p in versions]
        if self.protocol and str(tp.packet.proto) not in {_PROTOCOLS[p.lower()]
                                                           for p in self.protocol}:
            return False
        if self.verdict and not any(_verdict_ok(v, tp.verdict) for v in self.verdict):
            return False
        if self.ip and not _any_ip(self.ip, [a for a, _ in srcs + dsts]):
            return False
        if self.from_ip and not _any_ip(self.from_ip, [a for a, _ in srcs]):
            return False
        if self.to_ip and not _any_ip(self.to_ip, [a for a, _ in dsts]):
            return False
        if self.port and not {int(p) for p in self.port} & {p for _, p in srcs + dsts}:
            return False
        if self.from_port and not {int(p) for p in self.from_port} & {p for _, p in srcs}:
            return False
        if self.to_port and not {int(p) for p in self.to_port} & {p for _, p in dsts}:
            return False
        src_pods = _pods(names, srcs)
        dst_pods = _pods(names, dsts)
        if self.pod and not _any_pod(self.pod, src_pods + dst_pods):
            return False
        if self.from_pod and not _any_pod(self.from_pod, src_pods):
            return False
        if self.to_pod and not _any_pod(self.to_pod, dst_pods):
            return False
        if self.namespace and not {i.namespace for i in src_pods + dst_pods} & set(self.namespace):
            return False
        if self.label and not any(_labels_ok(sel, i) for sel in self.label
                                  for i in src_pods + dst_pods):
            return False
        if self.node and not any(fnmatch.fnmatchcase(n, pat) for pat in self.node
                                 for n in tp.nodes):
            return False
        if self.service:
            svc = tp.flow.service if tp.flow is not None else ""
            if not svc or not any(_service_ok(s, svc) for s in self.service):
                return False
        return True


def _verdict_ok(want: str, got: TraceVerdict) -> bool:
    want = want.lower()
    if want == "dropped":
        return got in (TraceVerdict.DROPPED, TraceVerdict.REJECTED)
    return want == str(got)


def _any_ip(specs: Values, addrs: Iterable[object]) -> bool:
    nets = [ip_network(s, strict=False) for s in specs]
    return any(a.version == n.version and a in n for a in addrs for n in nets)  # type: ignore


def _pods(names: Names, eps: Sequence[tuple[object, int]]) -> list[PodInfo]:
    out: list[PodInfo] = []
    for a, _ in eps:
        info = names.pod(a)  # type: ignore[arg-type]
        if info is not None and info not in out:
            out.append(info)
    return out


def _any_pod(specs: Values, pods: list[PodInfo]) -> bool:
    for spec in specs:
        ns, _, prefix = spec.rpartition("/")
        ns = ns or "default"
        if any(i.namespace == ns and i.name.startswith(prefix) for i in pods):
            return True
    return False


def _labels_ok(selector: str, info: PodInfo) -> bool:
    for term in selector.split(","):
        k, eq, v = term.strip().partition("=")
        if not eq:
            if k not in info.labels:
                return False
        elif info.labels.get(k) != v:
            return False
    return True


def _service_ok(spec: str, svc: str) -> bool:
    ns, _, name = spec.rpartition("/")
    ns = ns or "default"
    if ":" in name:
        return svc == f"{ns}/{name}"
    return svc.split(":", 1)[0] == f"{ns}/{name}"


__all__ = ["Filter"]
