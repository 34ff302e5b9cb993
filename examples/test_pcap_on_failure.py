"""Packet captures: `--knet-pcap-dir` and `knet_capture`.

Run the suite with `pytest --knet-pcap-dir=pcaps` (or `knet_pcap_dir = pcaps` in the ini
file) and every knet cluster records its traffic; when a test fails, its packets are written
to `pcaps/<test id>.pcapng` (one interface per capture point, each packet's hop story as its
comment) and the failure report names the file. Open it with Wireshark or `tshark -r`.

Here, a passing test takes a capture explicitly with the `knet_capture` fixture.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.knet(topology="topologies/echo.yaml")


async def test_write_a_capture_explicitly(knet_cluster, knet_capture, tmp_path):
    client = knet_cluster.pod("default/client")
    async with client.http.get("http://echo/hello") as r:
        backend = (await r.json())["pod"]

    # The story of the connection: DNAT from the ClusterIP to the chosen pod.
    tcp = [f for f in knet_capture.flows() if f"default/{backend}" in knet_capture.explain(f)]
    assert tcp and "DNAT 10." in knet_capture.explain(tcp[0])

    written = knet_capture.write_pcapng(tmp_path / "echo.pcapng")
    assert written >= 6  # DNS query/answer and the TCP handshake, request, response, close
    assert (tmp_path / "echo.pcapng").read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # pcapng SHB
