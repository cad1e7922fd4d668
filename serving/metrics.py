"""Prometheus metrics of the feature service, in the text exposition format (version 0.0.4).

prometheus_client is not part of the pinned environment and the service needs two kinds of metric, so
this is a small counter and histogram. Updates happen on the service's one event-loop thread, so they
need no lock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    pairs = [f'{name}="{_escape(str(value))}"' for name, value in zip(names, values)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


class Counter:
    """A monotonically increasing count per label set."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()):
        self.name, self.help_text, self.labelnames = name, help_text, tuple(labelnames)
        self.values: dict[tuple, float] = {} if labelnames else {(): 0.0}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add `amount` to the count of this label set."""
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def exposition(self) -> list[str]:
        """The metric's lines in the text format."""
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(self.labelnames, labels)} {value:g}" for labels, value in self.values.items()]
        return lines


class Histogram:
    """Observations counted into cumulative `le` buckets per label set, with their sum and count."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS):
        self.name, self.help_text, self.labelnames = name, help_text, tuple(labelnames)
        self.buckets = tuple(buckets)
        self.series: dict[tuple, list] = {}  # labels -> [per-bucket counts (+Inf last), sum]

    def observe(self, value: float, *labels: str) -> None:
        """Count one observation of `value` (seconds, for latencies)."""
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [[0] * (len(self.buckets) + 1), 0.0]
        series[0][bisect_left(self.buckets, value)] += 1
        series[1] += value

    def exposition(self) -> list[str]:
        """The metric's lines in the text format: cumulative buckets, then _sum and _count."""
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        for labels, (counts, total) in self.series.items():
            cumulative = 0
            for bound, count in zip((*self.buckets, "+Inf"), counts):
                cumulative += count
                le = 'le="+Inf"' if bound == "+Inf" else f'le="{bound:g}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, labels, le)} {cumulative}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, labels)} {total:.9g}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, labels)} {cumulative}")
        return lines


def exposition(metrics: Sequence[Counter | Histogram]) -> bytes:
    """The body of GET /metrics."""
    return ("\n".join(line for metric in metrics for line in metric.exposition()) + "\n").encode()
