"""Logged serving: each answered GetFeatures response, sampled, written to rotating JSON-lines files off the
request path, so training data and monitoring can come from the values a model was actually served.

The request path only offers a line to a bounded queue (`put_nowait`): when the queue is full the line
is dropped and counted, so logging never blocks or slows a request by waiting. One writer thread takes
lines off the queue and appends them to `<dir>/ds=<UTC day>/<pid>-<n>.jsonl`, starting a new file when
the day changes or the file reaches `rotate_bytes`, and flushes to the OS at least every
`flush_seconds`. `close()` (the service's shutdown) drains the queue and closes the file, so a clean stop
loses nothing; a crash loses at most what was queued or written in the last flush interval.

A line is `{"served_at", "service", "request", "response"}`, where `response` is the exact JSON body the
caller received (reused as bytes, not encoded again) and `request` the typed request fields.
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import orjson

from serving.metrics import Counter

_STOP = object()


class ResponseLog:
    """A bounded queue of served responses and the thread writing them to rotating files."""

    def __init__(self, directory: Path, sample_rate: float = 1.0, max_queued: int = 10_000,
                 flush_seconds: float = 1.0, rotate_bytes: int = 64 << 20,
                 draw: Callable[[], float] = random.random):
        self.directory = Path(directory)
        self.sample_rate = sample_rate
        self.flush_seconds = flush_seconds
        self.rotate_bytes = rotate_bytes
        self._draw = draw
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._write_lines, name="response-log", daemon=True)
        self._files = 0
        self.logged = Counter("fp_serving_logged_total", "Responses written to the response log.")
        self.dropped = Counter("fp_serving_log_dropped_total",
                               "Responses not logged because the log's queue was full.")

    def start(self) -> ResponseLog:
        """Start the writer thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def offer(self, service: str | None, request: dict, body: bytes, served_at: datetime) -> bool:
        """Queue one response (if sampled) without waiting; False when it was dropped because the queue is full."""
        if self.sample_rate < 1.0 and self._draw() >= self.sample_rate:
            return True
        head = orjson.dumps({"served_at": served_at, "service": service, "request": request})
        try:
            self._queue.put_nowait((served_at, head[:-1] + b',"response":' + body + b"}\n"))
        except queue.Full:
            self.dropped.inc()
            return False
        return True

    def close(self) -> None:
        """Write every queued line, close the file and stop the writer (waits as long as that takes)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _open(self, day: str):
        folder = self.directory / f"ds={day}"
        folder.mkdir(parents=True, exist_ok=True)
        self._files += 1
        return open(folder / f"{os.getpid()}-{self._files:05d}.jsonl", "ab")

    def _write_lines(self) -> None:
        """The writer thread: append lines, rotate by day and size, flush every flush_seconds."""
        current, day, size, flushed = None, None, 0, time.monotonic()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self.flush_seconds)
                except queue.Empty:
                    if current is not None:
                        current.flush()
                    continue
                if item is _STOP:
                    return
                served_at, line = item
                line_day = served_at.astimezone(timezone.utc).date().isoformat()
                if current is None or line_day != day or size >= self.rotate_bytes:
                    if current is not None:
                        current.close()
                    current, day, size = self._open(line_day), line_day, 0
                current.write(line)
                size += len(line)
                self.logged.inc()
                if time.monotonic() - flushed >= self.flush_seconds:
                    current.flush()
                    flushed = time.monotonic()
        finally:
            if current is not None:
                current.close()
