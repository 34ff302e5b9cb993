"""RFC 9112 request framing, differentially against h11 (the oracle, used in tests only).

The property that matters for request smuggling: whenever knet's parser accepts a request head,
h11 accepts it too and both agree on how the body is framed (chunked, or its length). knet may
be stricter than h11 (nginx refuses duplicate Content-Length lines, bad Host values, codings
other than chunked), never laxer.
"""

from __future__ import annotations

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knet.ingress.http1 import _HEAD_END, RequestHead, parse_request_head

LIMITS = (8190, 8190, 100)

FRAMING_VALUES = {
    "Content-Length": ["0", "5", "05", "1\xb2", "\xb9", "-1", "5, 5", "5,6", " 7", "0x5", "+5",
                       "", "99999999999999999999", "1 2"],
    "Transfer-Encoding": ["chunked", "CHUNKED", "gzip", "chunked, gzip", "gzip, chunked",
                          "chunked,", ", chunked", "chunked, chunked", "identity", " chunked",
                          "chunked\t", ""],
    "Host": ["web.test", "", "..", "a..b", "Web.Test:8080", "[::1]:80", "x/y", "web.test."],
    "Connection": ["close", "keep-alive", "Upgrade"],
}

header = st.one_of(
    st.sampled_from(sorted(FRAMING_VALUES)).flatmap(
        lambda n: st.tuples(st.sampled_from([n, n.lower(), n.upper()]),
                            st.sampled_from(FRAMING_VALUES[n]))),
    st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,8}", fullmatch=True),
              st.from_regex(r"[ -~]{0,12}", fullmatch=True)),
)

request = st.tuples(
    st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE"]),
    st.from_regex(r"/[A-Za-z0-9/?=&._-]{0,16}", fullmatch=True),
    st.sampled_from(["1.1", "1.0"]),
    st.lists(header, max_size=5),
    st.sampled_from([b"\r\n", b"\n"]),
)


def head_of(raw: bytes) -> bytes:
    """What the proxy hands to the parser: the head up to (without) its empty line."""
    m = _HEAD_END.search(raw)
    assert m is not None
    return raw[:m.start()] + b"\r\n"


def oracle(raw: bytes) -> tuple[str, tuple[int, ...]] | None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    try:
        ev = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    assert isinstance(ev, h11.Request)
    return h11._connection._body_framing(ev.method, ev)  # type: ignore[attr-defined]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request)
def test_never_laxer_than_h11_and_same_framing(req) -> None:
    method, target, version, headers, eol = req
    lines = [f"{method} {target} HTTP/{version}".encode()]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in headers]
    raw = eol.join(lines) + eol + eol
    ours = parse_request_head(head_of(raw), *LIMITS)
    theirs = oracle(raw)
    if not isinstance(ours, RequestHead):
        assert 400 <= ours < 600
        return
    assert theirs is not None, f"knet accepted what h11 refuses: {raw!r}"
    kind, args = theirs
    if ours.chunked:
        assert kind == "chunked", raw
    elif ours.has_length:
        assert (kind, args) == ("content-length", (ours.length,)), raw
    else:
        assert kind in ("content-length", "http/1.0") and args in ((0,), ()), raw


def test_known_smuggling_vectors_are_refused() -> None:
    for raw in (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\xb2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    ):
        assert parse_request_head(head_of(raw), *LIMITS) == 400, raw
