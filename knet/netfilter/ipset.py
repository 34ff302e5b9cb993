"""ipsets for ``-m set --match-set NAME dir,dir…`` (IPVS mode glue), supplied by the caller.

Invariants: an IPSet is a value (name, type, frozen entries); membership is one hash lookup.
Entry strings are ipset's own (reference §4.2): hash:ip ``10.96.7.20``; hash:ip,port
``10.96.7.20,tcp:80``; hash:ip,port,ip ``10.244.1.5,tcp:8080,10.244.1.5``; hash:ip,port,net
``192.0.2.80,tcp:443,198.51.100.0/24``; hash:net ``10.0.0.0/8``; bitmap:port ``30080``.
The direction flags pick the packet field for each dimension (``src``/``dst``), as xt_set does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network

from knet.errors import RulesError
from knet.netfilter.packet import Packet

TYPES = ("hash:ip", "hash:ip,port", "hash:ip,port,ip", "hash:ip,port,net", "hash:net",
         "bitmap:port")


@dataclass(frozen=True, slots=True)
class IPSet:
    name: str
    type: str
    entries: tuple[str, ...] = ()
    _keys: frozenset = field(default=frozenset(), compare=False, repr=False)
    _nets: tuple = field(default=(), compare=False, repr=False)  # (ip,proto,port, net) for ,net

    @classmethod
    def of(cls, name: str, type: str, entries: Iterable[str]) -> IPSet:
        if type not in TYPES:
            raise RulesError(f"ipset {name}: unsupported type {type!r}")
        ents = tuple(entries)
        keys: set[tuple[object, ...]] = set()
        nets: list[tuple[object, ...]] = []
        for e in ents:
            try:
                parts = e.split(",")
                if type == "bitmap:port":
                    keys.add((int(e),))
                elif type == "hash:ip":
                    keys.add((ip_address(e),))
                elif type == "hash:net":
                    nets.append((ip_network(e, strict=False),))
                else:
                    ip = ip_address(parts[0])
                    proto, _, port = parts[1].partition(":")
                    if type == "hash:ip,port":
                        keys.add((ip, proto.lower(), int(port)))
                    elif type == "hash:ip,port,ip":
                        keys.add((ip, proto.lower(), int(port), ip_address(parts[2])))
                    else:
                        nets.append((ip, proto.lower(), int(port),
                                     ip_network(parts[2], strict=False)))
            except (ValueError, IndexError) as err:
                raise RulesError(f"ipset {name}: bad {type} entry {e!r}") from err
        return cls(name, type, ents, frozenset(keys), tuple(nets))

    def test(self, pkt: Packet, flags: tuple[str, ...]) -> bool:
        def ip(i: int):  # noqa: ANN202
            return pkt.src if flags[min(i, len(flags) - 1)] == "src" else pkt.dst

        def port(i: int) -> int:
            return pkt.sport if flags[min(i, len(flags) - 1)] == "src" else pkt.dport

        t = self.type
        if t == "bitmap:port":
            return (port(0),) in self._keys
        if t == "hash:ip":
            return (ip(0),) in self._keys
        if t == "hash:net":
            a = ip(0)
            return any(a in n[0] for n in self._nets)
        proto = str(pkt.proto)
        if t == "hash:ip,port":
            return (ip(0), proto, port(1)) in self._keys
        if t == "hash:ip,port,ip":
            return (ip(0), proto, port(1), ip(2)) in self._keys
        a, p, c = ip(0), port(1), ip(2)
        return any(a == n[0] and proto == n[1] and p == n[2] and c in n[3] for n in self._nets)
