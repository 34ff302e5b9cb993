"""The ingress core's HTTP-date is email.utils.formatdate(usegmt=True) without the email
package (which imports socket into the sans-IO core)."""

from __future__ import annotations

import random
from email.utils import formatdate

from knet.ingress.responses import http_date


def test_http_date_matches_formatdate() -> None:
    rng = random.Random(9)
    for ts in [0, 1.999, 951782400, 1e9 + 0.5] + [rng.uniform(0, 4e9) for _ in range(2000)]:
        assert http_date(ts) == formatdate(ts, usegmt=True), ts
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
