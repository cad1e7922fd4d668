"""Prometheus metrics of the feature service, in the text exposition format (version 0.0.4).

prometheus_client is not part of the pinned environment and the service needs two kinds of metric, so
this is a small counter and histogram. Updates happen on a worker's one event-loop thread, so they need no
lock. A service of several worker processes (`featctl serve --workers N`) shares them through
`SharedMetrics`, prometheus_client's multiprocess scheme in small: one snapshot file per process, summed
when scraped.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path

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

    def empty(self) -> Counter:
        """A counter of the same name and labels with nothing counted."""
        return Counter(self.name, self.help_text, self.labelnames)

    def snapshot(self) -> list:
        """The counts as JSON-ready [labels, value] pairs."""
        return [[list(labels), value] for labels, value in self.values.items()]

    def add(self, snapshot: list) -> None:
        """Add another process's snapshot of this counter."""
        for labels, value in snapshot:
            self.inc(*labels, amount=value)

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

    def empty(self) -> Histogram:
        """A histogram of the same name, labels and buckets with nothing observed."""
        return Histogram(self.name, self.help_text, self.labelnames, self.buckets)

    def snapshot(self) -> list:
        """The series as JSON-ready [labels, bucket counts, sum] triples."""
        return [[list(labels), counts, total] for labels, (counts, total) in self.series.items()]

    def add(self, snapshot: list) -> None:
        """Add another process's snapshot of this histogram (same buckets)."""
        for labels, counts, total in snapshot:
            series = self.series.setdefault(tuple(labels), [[0] * (len(self.buckets) + 1), 0.0])
            series[0] = [mine + theirs for mine, theirs in zip(series[0], counts)]
            series[1] += total

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


class Gauge:
    """One value that is set, not counted (e.g. how many worker processes answer)."""

    def __init__(self, name: str, help_text: str, value: float):
        self.name, self.help_text, self.value = name, help_text, value

    def exposition(self) -> list[str]:
        return [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} gauge", f"{self.name} {self.value:g}"]


class SharedMetrics:
    """The metrics of every worker process of one service: each process replaces its own snapshot file in
    `directory` (`publish`), and whichever worker is scraped answers with the sum over all files (`merged`),
    so /metrics counts the requests every worker answered, another worker's at most one publish behind.
    The files of workers that exited stay counted, as a Prometheus counter must never go down."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def publish(self, metrics: Sequence[Counter | Histogram]) -> None:
        """Replace this process's snapshot of `metrics` (atomically: a reader sees the old or the new one)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{os.getpid()}.tmp"
        temporary.write_text(json.dumps({metric.name: metric.snapshot() for metric in metrics}))
        temporary.rename(self.directory / f"{os.getpid()}.json")

    def merged(self, metrics: Sequence[Counter | Histogram]) -> list[Counter | Histogram | Gauge]:
        """`metrics` summed over every process's snapshot, and the number of processes as a gauge."""
        totals = {metric.name: metric.empty() for metric in metrics}
        files = sorted(self.directory.glob("*.json"))
        for file in files:
            for name, snapshot in json.loads(file.read_text()).items():
                if name in totals:
                    totals[name].add(snapshot)
        return [*totals.values(), Gauge("fp_serving_worker_processes", "Worker processes whose metrics are summed here.",
                                        len(files))]


def exposition(metrics: Sequence[Counter | Histogram | Gauge]) -> bytes:
    """The body of GET /metrics."""
    return ("\n".join(line for metric in metrics for line in metric.exposition()) + "\n").encode()
