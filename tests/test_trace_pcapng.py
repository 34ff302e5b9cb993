"""pcapng written by knet.trace: block structure (parsed here), and real tshark decoding of DNS,
HTTP, a followed TCP stream and the per-packet comments."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from knet.fabric import virtual_time
from knet.fabric.aio import client_session
from knet.trace import Capture
from knet.trace.pcapng import MAX_SEGMENT, frames
from knet.netfilter.packet import Packet, Proto
from tests.trace_scenario import (CLIENT, EMPTY_VIP, WEB_VIP, build_fabric, dns_query,
                                  resolve_pod, serve_dns, serve_web, service_of)

TSHARK = shutil.which("tshark")


async def _scenario(path: Path) -> Capture:
    fabric = build_fabric()
    runner = await serve_web(fabric)
    await serve_dns(fabric)
    async with Capture(fabric, resolve_pod=resolve_pod, service_of=service_of) as cap:
        await dns_query(fabric, "web.shop.svc.cluster.local")
        async with client_session(fabric.namespace("shop/client")) as s, \
                s.get(f"http://{WEB_VIP}/hello?x=1") as r:
            assert r.status == 200
            await r.read()
        with pytest.raises(ConnectionRefusedError):
            await fabric.namespace("shop/client").open_connection(EMPTY_VIP, 80)
    await runner.cleanup()
    cap.write_pcapng(path)
    return cap


def _blocks(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    i = 0
    while i < len(data):
        btype, blen = struct.unpack_from("<II", data, i)
        assert struct.unpack_from("<I", data, i + blen - 4)[0] == blen
        out.append((btype, data[i + 8:i + blen - 4]))
        i += blen
    return out


def _options(body: bytes) -> dict[int, list[bytes]]:
    opts: dict[int, list[bytes]] = {}
    i = 0
    while i + 4 <= len(body):
        code, n = struct.unpack_from("<HH", body, i)
        if code == 0:
            break
        opts.setdefault(code, []).append(body[i + 4:i + 4 + n])
        i += 4 + n + (-n) % 4
    return opts


@virtual_time
async def test_pcapng_blocks_interfaces_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "trace.pcapng"
    cap = await _scenario(path)
    blocks = _blocks(path.read_bytes())
    assert blocks[0][0] == 0x0A0D0D0A
    idbs = [b for t, b in blocks if t == 1]
    epbs = [b for t, b in blocks if t == 6]
    names = [_options(b[8:])[2][0].decode() for b in idbs]
    client_veth = f"node-a/{cap.fabric.namespace('shop/client').veth}"
    assert names[0] == client_veth and "node-a/eth0" in names
    assert len(names) == len(set(names))
    descr = _options(idbs[0][8:])[3][0].decode()
    assert "shop/client" in descr and CLIENT in descr
    assert all(_options(b[8:])[9] == [bytes([9])] for b in idbs)  # nanosecond timestamps
    assert len(epbs) == len(cap.records())
    comments = []
    for b in epbs:
        caplen = struct.unpack_from("<I", b, 12)[0]
        comments.append(_options(b[20 + caplen + (-caplen) % 4:])[1][0].decode())
    assert any("KUBE-SEP-" in c and f"DNAT {WEB_VIP}:80" in c for c in comments)
    assert any("un-DNAT" in c for c in comments)
    assert any("icmp-port-unreachable" in c for c in comments)


def test_frames_checksums_and_split_segments() -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from ipaddress import ip_address as A

    p = Packet(A("10.0.0.1"), A("10.0.0.2"), Proto.TCP, 1000, 80, "PA", 100, 7,
               b"x" * (MAX_SEGMENT + 10))
    raw = frames(p)
    assert len(raw) == 2
    pkts = [Ether(r) for r in raw]
    assert [len(q[TCP].payload) for q in pkts] == [MAX_SEGMENT, 10]
    assert [q[TCP].seq for q in pkts] == [100, 100 + MAX_SEGMENT]
    assert str(pkts[1][TCP].flags) == "PA" and str(pkts[0][TCP].flags) == "A"
    for q in pkts:  # scapy recomputes and compares the checksums
        ip_sum, tcp_sum = q[IP].chksum, q[TCP].chksum
        del q[IP].chksum, q[TCP].chksum
        again = Ether(bytes(q))
        assert (again[IP].chksum, again[TCP].chksum) == (ip_sum, tcp_sum)


def _tshark(*args: str) -> str:
    assert TSHARK is not None
    out = subprocess.run([TSHARK, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@virtual_time
async def test_tshark_decodes_dns_http_stream_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "trace.pcapng"
    await _scenario(path)
    f = str(path)
    http = _tshark("-r", f, "-Y", "http.request", "-T", "fields", "-e", "http.host",
                   "-e", "http.request.uri", "-e", "frame.interface_name")
    rows = [line.split("\t") for line in http.splitlines()]
    assert [WEB_VIP, "/hello?x=1"] in [r[:2] for r in rows]
    assert any(r[2].startswith("node-a/veth") for r in rows)
    follow = _tshark("-r", f, "-q", "-z", "follow,tcp,ascii,0")
    assert "GET /hello?x=1 HTTP/1.1" in follow and "HTTP/1.1 200 OK" in follow
    assert "hello from web-1" in follow
    dns = _tshark("-r", f, "-Y", "dns", "-T", "fields", "-e", "dns.qry.name")
    assert set(dns.split()) == {"web.shop.svc.cluster.local"}
    icmp = _tshark("-r", f, "-Y", "icmp.type == 3 && icmp.code == 3", "-T", "fields",
                   "-e", "ip.dst", "-e", "tcp.dstport")
    assert icmp.split() == [f"{CLIENT},{EMPTY_VIP}", "80"]  # quotes the rejected SYN
    # frame.comment since Wireshark 1.x-4.x builds; pkt_comment in older ones.
    text = ""
    for field in ("frame.comment", "pkt_comment"):
        out = subprocess.run([TSHARK, "-r", f, "-T", "fields", "-e", field],
                             capture_output=True, text=True, timeout=60)
        if out.returncode == 0 and "KUBE-" in out.stdout:
            text = out.stdout
            break
    assert '"shop/web:http cluster IP"' in text and "KUBE-SEP-" in text
    assert "delivered to shop/web-1" in text
    # One record per header version: no segment is seen twice (no false retransmissions).
    dup = _tshark("-r", f, "-Y", "tcp.analysis.retransmission || tcp.analysis.duplicate_ack"
                  " || tcp.analysis.out_of_order", "-T", "fields", "-e", "frame.number")
    assert dup.strip() == ""
