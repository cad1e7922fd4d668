"""Declared windowed features: one definition in feature.yaml, rendered into batch.sql and stream/.

A group with an `aggregations:` block declares each feature as an operation over a column of one source
in a window of whole days (`aggregate: {operation: count_distinct, input: post_id, window: 7d}`). The
platform renders from it the files a reviewer reads: batch.sql (HiveQL for one partition) and stream/
source.sql + transform.sql (the typed events the window operator of streaming/windows.py aggregates).
`featctl render GROUP` writes them; loading the registry refuses files that no longer match feature.yaml.

The window semantic, in one place: batch partition D holds the window ending at D+1 00:00 UTC (the days
D-w+1 .. D); the stream holds, at time t, the window ending at t whose oldest bucket of `tail` is the one
right after t's bucket minus w. Both share the bucket boundaries, so at the end of every day they are equal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from assets.dtypes import FLINK_TYPES
from assets.operations import OPERATIONS
from assets.specs import Feature, FeatureGroup, Source, format_duration

WATERMARK_DELAY_SECONDS = 5
DAY_US = 86_400_000_000


def stream_value_time(as_of_us):
    """The event time a stream's value is stamped with, in µs (an int or a numpy array of them): its as-of
    time, 1 µs later on a day boundary. Batch partition D owns D+1 00:00 (the values before midnight), so a
    stream value that counts an event at exactly midnight must not tie with it, whichever kind of group."""
    return as_of_us + (as_of_us % DAY_US == 0)


EVENT_TIME = "event_time"  # the event-time column of a hand-written windowed transform.sql


@dataclass(frozen=True)
class WindowedFeature:
    """One aggregate as the stream's window operator computes it (times in microseconds): a declared
    feature, or a named aggregate of a hand-written windowed stream (dtype None until the job reads its
    input's type from transform.sql: WindowPlan.typed)."""

    name: str
    operation: str
    input: int | None   # index into WindowPlan.inputs
    window_us: int
    dtype: str | None
    keep: bool = False  # keeps its last value once the window holds no input for it

    @property
    def distinct(self) -> bool:
        """COUNT DISTINCT: the window operator keeps each item's latest tile for it."""
        return OPERATIONS[self.operation].distinct

    def add(self, partial, value, time_us: int):
        """A tile's partial with one more input (its operation's rule, assets/operations.py)."""
        return OPERATIONS[self.operation].add(partial, value, time_us)

    def finalize(self, partials: list):
        """The value over a window from its tiles' partials (its operation's rule)."""
        return OPERATIONS[self.operation].finalize(partials)


@dataclass(frozen=True)
class WindowPlan:
    """What the window operator of a declared group needs: picklable, rendered into run.py."""

    key: str
    inputs: tuple[str, ...]  # the source's event time first, then the other columns the features read
    features: tuple[WindowedFeature, ...]
    tail_us: int
    allowed_lateness_ms: int

    @classmethod
    def for_group(cls, group: FeatureGroup, source: Source | None, key: str) -> WindowPlan:
        """The plan of `group`'s aggregates keyed by the entity key column `key`: its declared features
        over `source`, or (source None) the named aggregates of its hand-written stream."""
        if group.aggregations.rendered:
            inputs = input_columns(group, source)
            named = [(f.name, f.aggregate, f.dtype, False) for f in group.features]
        else:
            aggregates = group.aggregations.aggregates
            inputs = tuple(dict.fromkeys([EVENT_TIME, *(a.input for a in aggregates if a.input)]))
            named = [(a.name, a, None, a.keep) for a in aggregates]
        lateness = group.aggregations.allowed_lateness or max(aggregate.window for _, aggregate, _, _ in named)
        return cls(key=key, inputs=inputs, tail_us=_us(group.aggregations.tail),
                   allowed_lateness_ms=_us(lateness) // 1000,
                   features=tuple(WindowedFeature(name, aggregate.operation,
                                                  inputs.index(aggregate.input) if aggregate.input else None,
                                                  _us(aggregate.window), dtype, keep)
                                  for name, aggregate, dtype, keep in named))

    def typed(self, input_dtypes: dict[str, str]) -> WindowPlan:
        """The plan with every aggregate's dtype, from the dtypes of its input columns (counts are int64)."""
        return replace(self, features=tuple(
            f if f.dtype is not None else
            replace(f, dtype=OPERATIONS[f.operation].value_dtype(None if f.input is None else
                                                                   input_dtypes[self.inputs[f.input]]))
            for f in self.features))

    @cached_property
    def windows_us(self) -> tuple[int, ...]:
        """The distinct window lengths, shortest first (read for every tile an event touches: computed once)."""
        return tuple(sorted({f.window_us for f in self.features}))

    def bucket(self, time_us: int) -> int:
        """The start of the tail bucket holding `time_us`."""
        return time_us - time_us % self.tail_us


def _us(delta) -> int:
    return int(delta.total_seconds()) * 1_000_000


def input_columns(group: FeatureGroup, source: Source) -> tuple[str, ...]:
    """The source columns the window operator reads: the event time, then the features' inputs in
    first-use order."""
    return tuple(dict.fromkeys([source.event_time, *(f.aggregate.input for f in group.features if f.aggregate.input)]))


def _header(what: str) -> str:
    return f"-- Rendered from feature.yaml `aggregations:` by `featctl render`; do not edit.\n-- {what}\n"


def _described(feature: Feature) -> str:
    aggregate = feature.aggregate
    return (f"{feature.name}: {OPERATIONS[aggregate.operation].described.format(x=aggregate.input or '*')} "
            f"over {aggregate.window.days}d")


def _batch_expression(feature: Feature, source: Source, longest: int) -> str:
    """The feature's HiveQL over the group's longest window of days: its operation (assets/operations.py) over
    the input, which is NULL on the days outside the feature's own window when that is shorter."""
    aggregate = feature.aggregate
    operation = OPERATIONS[aggregate.operation]
    days = aggregate.window.days
    if aggregate.input is None and days == longest:
        return operation.all_rows
    value = operation.batch_input.format(x=f"`{aggregate.input}`", t=f"`{source.event_time}`") if aggregate.input else "1"
    if days < longest:
        inside = ("ds = '{{ ds }}'" if days == 1
                  else f"ds >= date_format(date_sub('{{{{ ds }}}}', {days - 1}), 'yyyy-MM-dd')")
        value = f"CASE WHEN {inside} THEN {value} END"
    return operation.batch.format(value)


def render_batch_sql(group: FeatureGroup, source: Source, key: str) -> str:
    """batch.sql of a declared group: one row per entity with events in the longest window ending `ds`."""
    longest = max(f.aggregate.window.days for f in group.features)
    column = source.entity_keys[group.entity]
    lines = [f"  `{column}`" + (f" AS `{key}`" if column != key else "")]
    lines += [f"  {_batch_expression(f, source, longest)} AS `{f.name}`" for f in group.features]
    return (_header(f"Each feature over its window of days ending with {{{{ ds }}}} "
                           f"(partition ds holds the window ending at ds+1 00:00 UTC).")
            + "SELECT\n" + ",\n".join(lines) + f"\nFROM {source.table}\n"
            + f"WHERE ds BETWEEN date_format(date_sub('{{{{ ds }}}}', {longest - 1}), 'yyyy-MM-dd') AND '{{{{ ds }}}}'\n"
            + f"GROUP BY `{column}`\n")


def render_source_sql(source: Source) -> str:
    """stream/source.sql of a declared group (and the typed input of the source's ingest, streaming/ingest.py):
    the source contract's columns, typed, with the watermark."""
    lines = [f"  `{c.name}` {FLINK_TYPES[c.dtype]}" for c in source.columns]
    lines += [f"  rowtime AS CAST(`{source.event_time}` AS TIMESTAMP(3))",
              f"  WATERMARK FOR rowtime AS rowtime - INTERVAL '{WATERMARK_DELAY_SECONDS}' SECOND"]
    return (_header(f"The {source.name} contract as typed rows; the watermark trails the newest event "
                           f"time by {WATERMARK_DELAY_SECONDS} s.")
            + f"CREATE TABLE {source.name} (\n" + ",\n".join(lines) + "\n) WITH ({{ connector }})\n")


def render_transform_sql(group: FeatureGroup, source: Source, key: str) -> str:
    """stream/transform.sql of a declared group: one row per event into the window operator."""
    column = source.entity_keys[group.entity]
    tail = group.aggregations.tail
    described = "\n".join(f"--   {_described(f)}" for f in group.features)
    what = (f"One row per event into the platform's window operator (streaming/windows.py). Per {key} it keeps\n"
            f"-- partial aggregates in {format_duration(tail)} tiles and emits every feature on each "
            f"event and whenever a tile\n-- leaves a window, as of the newest event time:\n{described}")
    selected = [f"`{column}`" + (f" AS `{key}`" if column != key else ""), "rowtime",
                *(f"`{c}`" for c in input_columns(group, source))]
    return _header(what) + "SELECT " + ", ".join(selected) + f"\nFROM {source.name}\n"


def rendered_files(group: FeatureGroup, source: Source, key: str) -> dict[str, str]:
    """Every file rendered for a declared group, by its path inside the group folder."""
    return {"batch.sql": render_batch_sql(group, source, key),
            "stream/source.sql": render_source_sql(source),
            "stream/transform.sql": render_transform_sql(group, source, key)}
