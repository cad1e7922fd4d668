"""Record-level source contracts: each raw stream line becomes one typed event or gets one reason.

    check_line(source, line: bytes | str | dict, max_bytes, clock=None) -> (reason, values)

The contract decides before any typed parsing: the streaming job reads raw lines and this module alone
turns each one into either the typed values of the source's columns (reason None) or the reason it
breaks the contract (values None), so what is counted is never dead-lettered and the other way round.
Flink's lenient JSON coercion ("42" as 42, any string as a boolean) never judges. Whatever a line holds
(bytes that are not UTF-8, any JSON shape, any size) the answer is one of the two, never an exception.

The rules are the contract's, applied to JSON values:
  - a line is at most `max_bytes` long, UTF-8, one JSON object (standard JSON: no NaN or Infinity);
  - every contract column is present and non-null unless it is nullable (entity keys and the event
    time never are);
  - int32/int64 are JSON integers in range (not booleans, not numeric strings, not 42.0 or 42.5),
    float64 any finite JSON number, string a JSON string, bool true/false, date `YYYY-MM-DD`;
  - timestamp is a string in one of TIMESTAMP_FORMS: Flink's SQL text `YYYY-MM-DD HH:MM:SS[.fraction]`
    (UTC by contract) or ISO 8601 with `T`, optionally with `Z` or an offset `+HH:MM` (normalized to
    UTC); digits past microseconds are dropped, as Flink's TIMESTAMP(6) drops them;
  - fields the contract does not know are allowed: an added field is a compatible change, reported at
    the partition level by the batch checks, not a reason to drop an event;
  - with a `ClockGuard` (every stream job has one), the event time is at most `max_clock_skew_seconds` ahead
    of the checking process's clock: a producer with a wrong clock must not move a watermark, or the event
    time of any served value, into the future.
It is pure Python (about 150k lines/s on one core, see benchmarks/stream.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from assets.dtypes import INT_RANGES
from assets.specs import Source

TIMESTAMP_FORMS = ("2026-01-01 10:00:00.000000 (UTC)", "2026-01-01T10:00:00Z", "2026-01-01T12:00:00+02:00")
TIMESTAMP_TEXT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$")
DATE_TEXT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
                   type(None): "null"}
SHOWN_RECORD_BYTES = 1024  # how much of a line over the limit its dead-letter record keeps


class Violation(ValueError):
    """Why one value or line breaks the contract (the text is the dead-letter reason)."""


def _describe(value) -> str:
    """A JSON value as a reason shows it: its JSON type and its first 40 characters."""
    shown = json.dumps(value)
    name = JSON_TYPE_NAMES[type(value)]
    return name if shown == name else f"{name} {shown[:40]}{'...' if len(shown) > 40 else ''}"


def _integer(dtype: str) -> Callable[[object], int]:
    low, high = INT_RANGES[dtype]

    def parse(value) -> int:
        if type(value) is not int or not low <= value <= high:
            raise Violation(f"should be {dtype}, got {_describe(value)}")
        return value
    return parse


def _float(value) -> float:
    if type(value) not in (int, float):
        raise Violation(f"should be float64, got {_describe(value)}")
    try:
        return float(value)
    except OverflowError:
        raise Violation(f"should be float64, got an integer too large for one: {_describe(value)}") from None


def _typed(python_type: type, dtype: str) -> Callable[[object], object]:
    def parse(value):
        if type(value) is not python_type:
            raise Violation(f"should be {dtype}, got {_describe(value)}")
        return value
    return parse


def parse_timestamp(value) -> datetime:
    """A contract timestamp (one of TIMESTAMP_FORMS) as a naive UTC datetime, or Violation."""
    if type(value) is not str:
        raise Violation(f"should be timestamp, got {_describe(value)}")
    match = TIMESTAMP_TEXT.match(value)
    try:
        if match is None:
            raise ValueError
        year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
        micros = int((match.group(7) or "0")[:6].ljust(6, "0"))
        stamp = datetime(year, month, day, hour, minute, second, micros)
        offset = match.group(8)
        if offset and offset != "Z":
            sign = -1 if offset[0] == "-" else 1
            hours, minutes = int(offset[1:3]), int(offset[-2:])
            stamp = (stamp.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
                     .astimezone(timezone.utc).replace(tzinfo=None))
    except (ValueError, OverflowError):
        raise Violation(f"is not a timestamp like {' or '.join(TIMESTAMP_FORMS)}: {value[:60]!r}") from None
    return stamp


def _date(value) -> date:
    if type(value) is not str:
        raise Violation(f"should be date, got {_describe(value)}")
    match = DATE_TEXT.match(value)
    try:
        if match is None:
            raise ValueError
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise Violation(f"is not a date like 2026-01-01: {value[:60]!r}") from None


# JSON value -> the typed value a dtype's column holds (raises Violation with the reason).
PARSERS: dict[str, Callable[[object], object]] = {
    "int32": _integer("int32"), "int64": _integer("int64"), "float64": _float,
    "string": _typed(str, "string"), "bool": _typed(bool, "bool"), "timestamp": parse_timestamp, "date": _date,
}


def required_columns(source: Source) -> set[str]:
    """Columns an event must carry a value in: the non-nullable ones, its entity keys and its event time."""
    return {source.event_time, *source.entity_keys.values(), *(c.name for c in source.columns if not c.nullable)}


def _refuse_constant(name: str):
    raise Violation(f"not JSON: {name} is not a JSON number")


def _object(line: bytes | str, max_bytes: int) -> dict:
    if isinstance(line, bytes):
        if len(line) > max_bytes:
            raise Violation(f"line longer than {max_bytes} bytes (the limit, FP_STREAM_MAX_LINE_BYTES)")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Violation(f"not UTF-8: byte 0x{line[exc.start]:02x} at position {exc.start}") from None
    elif len(line) > max_bytes and len(line.encode("utf-8")) > max_bytes:
        raise Violation(f"line longer than {max_bytes} bytes (the limit, FP_STREAM_MAX_LINE_BYTES)")
    if not line.strip():
        raise Violation("empty line")
    try:
        record = json.loads(line, parse_constant=_refuse_constant)
    except RecursionError:
        raise Violation("not JSON: nested too deeply") from None
    except ValueError as exc:
        raise Violation(exc.args[0] if isinstance(exc, Violation) else f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise Violation(f"not a JSON object: {_describe(record)}")
    return record


@dataclass(frozen=True)
class ClockGuard:
    """How far ahead of the clock an event may be dated (settings.max_clock_skew_seconds)."""

    max_skew_seconds: int

    def violation(self, event_time: datetime, now: datetime | None = None) -> str | None:
        """Why `event_time` (naive UTC) cannot be counted at `now` (default: this process's clock), or None."""
        now = now or datetime.now(timezone.utc).replace(tzinfo=None)
        if event_time - now <= timedelta(seconds=self.max_skew_seconds):
            return None
        return (f"event time {event_time} is ahead of the job's clock {now:%Y-%m-%d %H:%M:%S} by more than "
                f"max_clock_skew_seconds ({self.max_skew_seconds} s): the producer's clock is wrong (fix it, then "
                "send the event again)")


def check_line(source: Source, line: bytes | str | dict, max_bytes: int,
               clock: ClockGuard | None = None) -> tuple[str | None, tuple | None]:
    """(None, typed values in contract column order) for a valid line, else (reason, None); `max_bytes` is
    the stream's line-size limit (settings.stream_max_line_bytes), `clock` refuses events dated ahead of it."""
    try:
        record = line if isinstance(line, dict) else _object(line, max_bytes)
        required = required_columns(source)
        values = []
        for column in source.columns:
            value = record.get(column.name)
            if value is None:
                if column.name in required:
                    return (f"missing field {column.name!r}" if column.name not in record
                            else f"null in non-nullable field {column.name!r}"), None
                values.append(None)
                continue
            try:
                values.append(PARSERS[column.dtype](value))
            except Violation as exc:
                return f"field {column.name!r} {exc}", None
        if clock is not None:
            ahead = clock.violation(values[source.event_time_index])
            if ahead:
                return ahead, None
        return None, tuple(values)
    except Violation as exc:
        return str(exc), None


def shown_record(line: bytes | str, max_bytes: int) -> str:
    """A raw line as its dead-letter record keeps it: text with undecodable bytes escaped (`\\xff`), and
    only its first 1 KiB when it is over the size limit, so the record shows what the producer sent."""
    raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        return raw[:SHOWN_RECORD_BYTES].decode("utf-8", "backslashreplace") + f"... (truncated, over {max_bytes} bytes)"
    return raw.decode("utf-8", "backslashreplace")
