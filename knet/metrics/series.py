"""Light metric series for the emulated components: counters, gauges and histograms keyed by
label values, kept as plain dicts and turned into ``prometheus_client`` families only when
scraped.

Invariants:
- Recording is a dict update (a counter) or a bisect plus two list updates (a histogram):
  components record on their hot paths (every DNS query, every proxied request) and pay no
  lock, no object per sample and no ``prometheus_client`` call.
- Families are rendered exactly as Prometheus' client libraries render them (``_total``
  counters, cumulative ``_bucket`` series with ``le``, ``_sum`` and ``_count``): the scrape
  goes through ``prometheus_client``'s own exposition code.
- No IO, no clock: durations and timestamps arrive as numbers.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # prometheus_client costs ~60 ms to import: only a scrape loads it
    from prometheus_client.metrics_core import Metric

Labels = tuple[str, ...]


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """``prometheus.ExponentialBuckets`` (client_golang)."""
    return tuple(start * factor ** i for i in range(count))


def linear_buckets(start: float, width: float, count: int) -> tuple[float, ...]:
    """``prometheus.LinearBuckets`` (client_golang)."""
    return tuple(start + width * i for i in range(count))


NO_TOTAL: set[str] = set()  # counters exported without the _total suffix


def expose(text: bytes) -> bytes:
    """prometheus_client names every counter's HELP/TYPE lines ``<name>_total``; for the
    counters of ``NO_TOTAL`` put back the bare name their samples carry, as client_golang
    writes them."""
    for name in NO_TOTAL:
        raw = name.encode()
        text = text.replace(b"# HELP " + raw + b"_total ", b"# HELP " + raw + b" ")
        text = text.replace(b"# TYPE " + raw + b"_total counter", b"# TYPE " + raw + b" counter")
    return text


DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Counter:
    """A counter family: ``inc(labels, n)``; rendered with the ``_total`` suffix unless
    ``total=False`` (client_golang lets a counter go without it: ingress-nginx's
    ``nginx_ingress_controller_requests`` does)."""

    __slots__ = ("name", "help", "labels", "values", "total")

    def __init__(self, name: str, help: str, labels: Sequence[str] = (), *,
                 total: bool = True) -> None:
        self.name = name.removesuffix("_total") if total else name
        self.help = help
        self.labels = tuple(labels)
        self.values: dict[Labels, float] = {}
        self.total = total
        if not total:
            NO_TOTAL.add(name)

    def inc(self, labels: Labels = (), n: float = 1.0) -> None:
        v = self.values
        v[labels] = v.get(labels, 0.0) + n

    def get(self, labels: Labels = ()) -> float:
        return self.values.get(labels, 0.0)

    def family(self) -> Metric:
        from prometheus_client.core import CounterMetricFamily
        from prometheus_client.metrics_core import Metric

        if not self.total:  # samples keep the bare name (see ``expose`` for the TYPE line)
            m = Metric(self.name, self.help, "counter")
            for k, v in sorted(self.values.items()):
                m.add_sample(self.name, dict(zip(self.labels, k)), v)
            return m
        f = CounterMetricFamily(self.name, self.help, labels=self.labels)
        for k, v in sorted(self.values.items()):
            f.add_metric(list(k), v)
        return f


class Gauge:
    """A gauge family: ``set(labels, v)``."""

    __slots__ = ("name", "help", "labels", "values")

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labels = tuple(labels)
        self.values: dict[Labels, float] = {}

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value

    def get(self, labels: Labels = ()) -> float:
        return self.values.get(labels, 0.0)

    def family(self) -> Metric:
        from prometheus_client.core import GaugeMetricFamily

        f = GaugeMetricFamily(self.name, self.help, labels=self.labels)
        for k, v in sorted(self.values.items()):
            f.add_metric(list(k), v)
        return f


class Histogram:
    """A histogram family with fixed upper bounds (``+Inf`` implied)."""

    __slots__ = ("name", "help", "labels", "bounds", "series", "_les")

    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self.name = name
        self.help = help
        self.labels = tuple(labels)
        self.bounds = tuple(float(b) for b in buckets)
        self._les = tuple(_le(b) for b in self.bounds)
        # per label values: [per-bucket counts (non-cumulative, last = +Inf), sum]
        self.series: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        s = self.series.get(labels)
        if s is None:
            s = self.series[labels] = ([0] * (len(self.bounds) + 1), [0.0])
        s[0][bisect_left(self.bounds, value)] += 1
        s[1][0] += value

    def count(self, labels: Labels = ()) -> int:
        s = self.series.get(labels)
        return sum(s[0]) if s else 0

    def family(self) -> Metric:
        from prometheus_client.core import HistogramMetricFamily

        f = HistogramMetricFamily(self.name, self.help, labels=self.labels)
        for k, (counts, total) in sorted(self.series.items()):
            cum = 0
            buckets: list[tuple[str, float]] = []
            for le, n in zip(self._les + ("+Inf",), counts):
                cum += n
                buckets.append((le, float(cum)))
            f.add_metric(list(k), buckets, total[0])
        return f


def _le(bound: float) -> str:
    """The ``le`` label as client_golang renders it (``strconv.FormatFloat(b, 'g', -1, 64)``:
    ``1`` rather than ``1.0``), so series match what the real component exports."""
    text = repr(bound)
    return text[:-2] if text.endswith(".0") else text


Series = Counter | Gauge | Histogram


__all__ = ["DEFAULT_BUCKETS", "NO_TOTAL", "Counter", "Gauge", "Histogram", "Series", "expose",
           "exponential_buckets", "linear_buckets"]
