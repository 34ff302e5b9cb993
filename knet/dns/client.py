"""The async query driver of the pod stub resolver (getaddrinfo over glibc's res_search).

The only async code of knet.dns's client side: the caller supplies the transport as
``send(query_bytes, tcp) -> reply bytes | None`` (None = timeout), so the same driver runs over
the virtual fabric, a loopback socket, or the pure answer function in tests. Per candidate name
it sends A and/or AAAA (``family`` 4, 6, or 0 = both, like getaddrinfo AF_UNSPEC), over UDP
unless ``options use-vc``, retrying over TCP when the UDP reply has TC set. /etc/hosts entries
(kubelet's managed file with hostAliases) are consulted first (nsswitch ``hosts: files dns``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from collections.abc import Awaitable, Callable, Sequence

from dnslib import DNSRecord

from knet.dns.answer import make_query
from knet.dns.stub import ResolvConf, SearchResult, Status, hosts_lookup, res_search, status_of
from knet.dns.wire import RCODE_NAMES, T_A, T_AAAA, TC, qtype_name

Send = Callable[[bytes, bool], Awaitable["bytes | None"]]


@dataclass(frozen=True, slots=True)
class QueryLog:
    name: str
    type: str
    rcode: str      # NOERROR / NXDOMAIN / … or TIMEOUT
    tcp: bool
    answers: int


@dataclass(frozen=True, slots=True)
class Resolution:
    name: str
    addresses: tuple[str, ...]
    status: Status
    canonical: str | None          # the name that answered (after the search list)
    queries: tuple[QueryLog, ...]
    from_hosts: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.addresses)


_ids = itertools.count(1)


async def query_once(name: str, qtype: int, resolv: ResolvConf, send: Send,
                     log: list[QueryLog]) -> tuple[Status, list[str], int]:
    """One question: UDP (unless use-vc), TCP retry on TC. Returns status, addresses, rcode."""
    qid = next(_ids) & 0xFFFF
    data = make_query(name, qtype, id=qid, rd=True, edns=1232 if resolv.edns0 else None)
    tcp = resolv.use_tcp
    reply = await send(data, tcp)
    rec = _parse(reply, qid)
    if rec is not None and not tcp and rec.header.bitmap & TC:
        tcp = True
        reply = await send(data, True)
        rec = _parse(reply, qid)
    if rec is None:
        log.append(QueryLog(name, qtype_name(qtype), "TIMEOUT", tcp, 0))
        return Status.TIMEOUT, [], -1
    rcode = rec.header.rcode
    addrs = [str(rr.rdata) for rr in rec.rr if rr.rtype == qtype]
    log.append(QueryLog(name, qtype_name(qtype), RCODE_NAMES.get(rcode, str(rcode)), tcp, len(rec.rr)))
    return status_of(rcode, len(rec.rr)), addrs, rcode


def _parse(reply: bytes | None, qid: int) -> DNSRecord | None:
    if not reply:
        return None
    try:
        rec = DNSRecord.parse(reply)
    except Exception:
        return None
    return rec if rec.header.id == qid else None


async def resolve(name: str, family: int, resolv: ResolvConf, send: Send, *,
                  hosts: Sequence[tuple[str, tuple[str, ...]]] = ()) -> Resolution:
    """getaddrinfo(name) for a pod: /etc/hosts, then res_search over DNS."""
    local = hosts_lookup(hosts, name, family)
    if local:
        return Resolution(name, tuple(local), Status.SUCCESS, name, (), from_hosts=True)
    qtypes = {4: (T_A,), 6: (T_AAAA,)}.get(family, (T_A, T_AAAA))
    log: list[QueryLog] = []
    found: list[str] = []
    gen = res_search(name, resolv)
    try:
        fqdn = next(gen)
        while True:
            statuses: list[Status] = []
            addrs: list[str] = []
            for t in qtypes:
                st, a, _ = await query_once(fqdn, t, resolv, send, log)
                statuses.append(st)
                addrs.extend(a)
            # With A+AAAA, success if either has answers; else the A query's outcome.
            st = Status.SUCCESS if Status.SUCCESS in statuses else statuses[0]
            if st == Status.SUCCESS:
                found = addrs
            fqdn = gen.send(st)
    except StopIteration as stop:
        result: SearchResult = stop.value
    return Resolution(name, tuple(found) if result.status == Status.SUCCESS else (),
                      result.status, result.name, tuple(log))
