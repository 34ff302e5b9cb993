"""pcapng output: one interface per capture point, one Enhanced Packet Block per observation,
the observation's explanation as the packet comment.

Invariants:
- Blocks are written here (pcapng, IETF draft-ietf-opsawg-pcapng: SHB, one IDB per interface
  with ``if_name``/``if_description``/``if_tsresol``=9, EPBs with ``opt_comment``), because
  scapy's ``PcapNgWriter`` (2.6) adds an unnamed interface 0, writes IDBs lazily between
  packets, has no ``if_description`` and only microsecond timestamps. Frame bytes are built by
  scapy (Ether/IP/IPv6/TCP/UDP/ICMP/ICMPv6 with correct lengths and checksums).
- scapy is imported only when a file is written (never on the fabric's hot path).
- Ethernet addresses are synthetic and deterministic (locally administered, derived from the
  IP address), since the fabric is L3 only. TCP segments larger than an IP datagram can carry
  (the fabric does not split writes at an MSS) are written as consecutive segments.
- Timestamps are the (virtual) clock's seconds plus ``epoch``, in nanoseconds.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from knet.netfilter.packet import Packet, Proto

LINKTYPE_ETHERNET = 1
MAX_SEGMENT = 65000  # payload per IP datagram (16-bit length fields)


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Record:
    time: float
    iface: str
    packet: Packet
    comment: str = ""


def mac_for(addr: object) -> str:
    h = hashlib.sha1(str(addr).encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in h[:5])


def _l3(p: Packet, scapy: Any) -> Any:
    if p.src.version == 6:
        return scapy.IPv6(src=str(p.src), dst=str(p.dst), hlim=64)
    # Linux sets DF on TCP and on UDP without fragmentation (ip_dont_fragment, pmtudisc)
    return scapy.IP(src=str(p.src), dst=str(p.dst), ttl=64, id=0, flags="DF")


def _l4(p: Packet, payload: bytes, seq: int, scapy: Any) -> Any:
    if p.proto == Proto.TCP:
        tcp = scapy.TCP(sport=p.sport, dport=p.dport, seq=seq, ack=p.ack if "A" in p.flags else 0,
                        flags=p.flags or "", window=65535)
        return tcp / scapy.Raw(payload) if payload else tcp
    if p.proto == Proto.UDP:
        udp = scapy.UDP(sport=p.sport, dport=p.dport)
        return udp / scapy.Raw(payload) if payload else udp
    if p.proto == Proto.SCTP:
        return scapy.SCTP(sport=p.sport, dport=p.dport) / scapy.Raw(payload)
    return scapy.Raw(payload)


def _icmp(p: Packet, scapy: Any) -> Any:
    orig = p.orig
    quoted = b""
    if orig is not None:
        full = frame_layers(orig, scapy)[0]
        raw = bytes(full)
        # RFC 792: the offending IP header + 64 bits of its data; RFC 4443: as much as fits.
        quoted = raw[:(raw[0] & 0x0F) * 4 + 8] if orig.src.version == 4 else raw[:1232]
    if p.src.version == 6:
        if p.icmp_type == 1 or orig is not None:
            return scapy.ICMPv6DestUnreach(code=p.icmp_code) / scapy.Raw(quoted)
        return scapy.ICMPv6EchoRequest()
    return scapy.ICMP(type=p.icmp_type or 3, code=p.icmp_code) / scapy.Raw(quoted)


def frame_layers(p: Packet, scapy: Any) -> list[Any]:
    """IP-level scapy packets for one record (several when a TCP segment must be split)."""
    if p.proto == Proto.ICMP:
        return [_l3(p, scapy) / _icmp(p, scapy)]
    payload = p.payload
    if p.proto != Proto.TCP or len(payload) <= MAX_SEGMENT:
        return [_l3(p, scapy) / _l4(p, payload, p.seq, scapy)]
    out = []
    seq = p.seq
    chunks = [payload[i:i + MAX_SEGMENT] for i in range(0, len(payload), MAX_SEGMENT)]
    for n, chunk in enumerate(chunks):
        flags = p.flags if n == len(chunks) - 1 else p.flags.replace("F", "").replace("P", "")
        out.append(_l3(p, scapy) / _l4(p.replace(flags=flags), chunk, seq, scapy))
        seq = (seq + len(chunk)) % 2 ** 32
    return out


def frames(p: Packet) -> list[bytes]:
    """Ethernet frames for one packet record, built with scapy."""
    import scapy.all as scapy  # lazily: only when writing

    ether = scapy.Ether(src=mac_for(p.src), dst=mac_for(p.dst),
                        type=0x86DD if p.src.version == 6 else 0x0800)
    return [bytes(ether / layer) for layer in frame_layers(p, scapy)]


# --------------------------------------------------------------------------------------------
# Blocks

def _opt(code: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


_END = struct.pack("<HH", 0, 0)


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def shb(application: str = "knet") -> bytes:
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    body += _opt(4, application.encode()) + _END  # shb_userappl
    return _block(0x0A0D0D0A, body)


def idb(iface: Interface) -> bytes:
    body = struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 262144)
    body += _opt(2, iface.name.encode())  # if_name
    if iface.description:
        body += _opt(3, iface.description.encode())  # if_description
    body += _opt(9, bytes([9]))  # if_tsresol: 10^-9
    body += _END
    return _block(1, body)


def epb(if_id: int, ts_ns: int, data: bytes, comment: str = "") -> bytes:
    pad = (-len(data)) % 4
    body = struct.pack("<IIIII", if_id, (ts_ns >> 32) & 0xFFFFFFFF, ts_ns & 0xFFFFFFFF,
                       len(data), len(data)) + data + b"\0" * pad
    if comment:
        body += _opt(1, comment.encode()) + _END  # opt_comment
    return _block(6, body)


def write_pcapng(out: str | IO[bytes], records: Iterable[Record],
                 interfaces: Iterable[Interface] = (), *, epoch: float = 0.0) -> int:
    """Write a pcapng file; returns the number of packets written. Interfaces not listed in
    ``interfaces`` are declared (without description) in order of first use."""
    recs = list(records)
    ifaces: dict[str, Interface] = {}
    for i in interfaces:
        ifaces.setdefault(i.name, i)
    for r in recs:
        ifaces.setdefault(r.iface, Interface(r.iface))
    ids = {name: n for n, name in enumerate(ifaces)}
    chunks = [shb()] + [idb(i) for i in ifaces.values()]
    count = 0
    for r in recs:
        ts = int(round((epoch + r.time) * 1e9))
        for data in frames(r.packet):
            chunks.append(epb(ids[r.iface], ts, data, r.comment))
            count += 1
    blob = b"".join(chunks)
    if isinstance(out, str):
        with open(out, "wb") as fh:
            fh.write(blob)
    else:
        out.write(blob)
    return count


__all__ = ["Interface", "Record", "frames", "mac_for", "write_pcapng"]
