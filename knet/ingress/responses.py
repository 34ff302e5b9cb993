"""Locally generated responses, byte-for-byte like nginx's special pages.

Source: nginx ``src/http/ngx_http_special_response.c`` with ``server_tokens off`` (the
ingress-nginx default): the tail shows ``nginx`` without a version.
"""

from __future__ import annotations

import datetime

REASONS: dict[int, str] = {
    200: "OK", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Not Allowed",
    408: "Request Time-out", 413: "Request Entity Too Large", 414: "Request-URI Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}

SERVER = "nginx"


def page(status: int) -> bytes:
    """nginx's HTML error/redirect page for ``status`` (empty for 204)."""
    if status == 204:
        return b""
    title = f"{status} {REASONS.get(status, 'Error')}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>{SERVER}</center>\r\n"
            f"</body>\r\n</html>\r\n").encode()


def reason(status: int) -> str:
    return REASONS.get(status, "Unknown")


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(ts: float) -> str:
    """RFC 9110 IMF-fixdate of a Unix time (``email.utils.formatdate(ts, usegmt=True)``,
    without the email package, which imports socket)."""
    t = datetime.datetime.fromtimestamp(int(ts), datetime.UTC)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT")
