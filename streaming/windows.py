"""The window operator of declared groups: sliding windows per entity that also fall when nobody acts.

Flink SQL's windows cannot serve a 7-day feature online: HOP emits nothing for an entity without events
in a slide (its old value would stay in Redis), OVER aggregates emit only on events, and future-dated
expiry rows would drag the watermark ahead. So the platform runs one keyed process function per declared
group. Per entity its state holds tiles (the partial aggregates of one `tail` bucket, each as its operation
keeps it: assets/operations.py; for COUNT DISTINCT, the items whose latest event falls in the tile) and, per COUNT DISTINCT
feature, each item's latest bucket (an aggregate marked `keep` also holds its last value, which it keeps
once its window is empty); every feature over every window is exact, merged from the tiles the
window covers, so an event costs one pass over at most window/tail tiles. It emits the entity's features

- on every event, as of the newest event time the entity has seen (out-of-order events are merged, so
  the result does not depend on arrival order), and
- on an event-time timer when a tile leaves a window, so a quiet entity's counts go down and reach the
  empty values (0, null) when its last event leaves the longest window; its state is then dropped.

A value's time is its `as_of` (microseconds), what the online guard and the streamed history compare
(the injection stamps one on a day boundary 1 µs later, as every stream's: assets.aggregations.stream_value_time).

Events may arrive out of event-time order (a producer's clock, a late event within the allowed lateness;
stream files are read in name order): they are merged into the tiles they belong to, and the departures
the watermark has already passed are applied at once (their timers, behind the watermark, would never
fire), so the final values do not depend on arrival order.

An event up to the group's allowed lateness behind the watermark (by default its longest window) is merged
into its tile, and the value as of the entity's newest event counts it; a later one, or one whose hour has left
every window the job holds for its entity (EntityWindows.holds), is dead-lettered with the reason,
except events the job knows are complete: older than the bootstrap cutoff (replayed from the event log)
or than the newest event of the files waiting when the job started (its backlog). Values the stream emitted
before a late event arrived (at earlier departures) are not emitted again; the batch, which reads the event
log the source's ingest keeps, counts it in every day it belongs to.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from assets.aggregations import WindowPlan

EPOCH = datetime(1970, 1, 1)
# The layout of an entity's stored state (EntityWindows.to_state). A new layout raises this and adds a reader
# of the old one to from_state, so a savepoint written before an upgrade restores into the job after it.
STATE_FORMAT = 1


def to_us(value: datetime) -> int:
    """A naive UTC datetime as integer microseconds since the epoch."""
    return (value - EPOCH) // timedelta(microseconds=1)


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


class EntityWindows:
    """One entity's tiles and distinct items, stored by the window operator as plain values (to_state)."""

    def __init__(self, plan: WindowPlan):
        self.as_of = -1
        self.tiles: dict[int, list[Any]] = {}  # bucket start (µs) -> one partial per feature
        # per COUNT DISTINCT feature: item -> the bucket of its latest event (the one tile that counts it)
        self.items: dict[int, dict[Any, int]] = {i: {} for i, f in enumerate(plan.features) if f.distinct}
        self.kept: dict[int, Any] = {}  # per `keep` aggregate: its last value over a window that held input

    def to_state(self) -> dict:
        """What the window operator stores for the entity: numbers, strings, dates, lists, tuples and dicts
        only, with the format version; no class of the platform's, so a savepoint stays readable whatever
        this class becomes. The dicts are the live ones (no copy per event)."""
        return {"format": STATE_FORMAT, "as_of": self.as_of, "tiles": self.tiles, "items": self.items,
                "kept": self.kept}

    @classmethod
    def from_state(cls, state) -> EntityWindows:
        """The windows an operator stored (to_state). Any other stored value (another format, or the object
        itself as jobs stored it before formats) is refused with the command that derives the state again."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"window state of format {found!r}, this platform reads format {STATE_FORMAT}: "
                             "featctl stream repair <group> derives the group's state again from the event log")
        windows = cls.__new__(cls)
        windows.as_of, windows.tiles, windows.items, windows.kept = (state["as_of"], state["tiles"], state["items"],
                                                                     state["kept"])
        return windows

    def add(self, plan: WindowPlan, time_us: int, inputs: tuple) -> int:
        """Merge one event (its event time and input values); returns its bucket start."""
        bucket = plan.bucket(time_us)
        tile = self.tiles.get(bucket)
        if tile is None:
            tile = self.tiles[bucket] = [None] * len(plan.features)
        for index, feature in enumerate(plan.features):
            value = None if feature.input is None else inputs[feature.input]
            if feature.input is not None and value is None:
                continue
            if feature.input is not None and feature.dtype == "timestamp":
                value = to_us(value)
            partial = tile[index]
            if not feature.distinct:
                tile[index] = feature.add(partial, value, time_us)
                continue
            # COUNT DISTINCT: a tile counts the items whose latest event is in it
            seen, previous = self.items[index], self.items[index].get(value)
            if previous is None or previous < bucket:
                if previous is not None:
                    self.tiles[previous][index] -= 1
                seen[value] = bucket
                tile[index] = (partial or 0) + 1
            elif partial is None:
                tile[index] = 0
        self.as_of = max(self.as_of, time_us)
        return bucket

    def values(self, plan: WindowPlan) -> list[Any]:
        """Every feature over its window ending at `as_of` (timestamps as microseconds)."""
        current = plan.bucket(self.as_of)
        out = []
        for index, feature in enumerate(plan.features):
            oldest = current + plan.tail_us - feature.window_us
            partials = [tile[index] for bucket, tile in self.tiles.items()
                        if bucket >= oldest and tile[index] is not None]
            value = feature.finalize(partials)
            if feature.keep and not partials:
                value = self.kept.get(index)
            elif feature.keep:
                self.kept[index] = value
            out.append(value)
        return out

    def advance(self, plan: WindowPlan, time_us: int) -> bool:
        """Move `as_of` to `time_us` (a tile's leaving time) and drop what no window covers any more;
        returns whether it moved (False when `as_of` was already there or later)."""
        if time_us <= self.as_of:
            return False
        self.as_of = time_us
        oldest = plan.bucket(time_us) + plan.tail_us - max(plan.windows_us)
        self.tiles = {b: t for b, t in self.tiles.items() if b >= oldest}
        for seen in self.items.values():
            for item in [i for i, bucket in seen.items() if bucket < oldest]:
                del seen[item]
        return True

    def catch_up(self, plan: WindowPlan, watermark_us: int) -> bool:
        """Apply every tile departure the watermark has passed, as the timers would have: an event read out
        of file order registers timers behind the watermark, which never fire. Returns whether it moved."""
        if watermark_us <= self.as_of:
            return False  # the usual case, events in order: every departure the watermark passed is applied
        due = self._departures(plan, watermark_us + 1)
        return bool(due) and self.advance(plan, due[-1])

    def departures_before(self, plan: WindowPlan, time_us: int) -> list[int]:
        """The tile departures after `as_of` and before an event at `time_us`, in order. The operator emits
        the values at each before the event's own, as its timers would have had the watermark passed them
        first: what the entity held, and so the streamed history, does not depend on when watermarks come."""
        if plan.bucket(time_us) <= plan.bucket(self.as_of):
            return []  # the usual case: no bucket boundary (all leaving times are one) between the two
        return self._departures(plan, time_us)

    def _departures(self, plan: WindowPlan, before_us: int) -> list[int]:
        """The distinct times after `as_of` and before `before_us` when a tile leaves a window, in order."""
        return sorted({leaving for bucket in self.tiles for leaving in leaving_times(plan, bucket)
                       if self.as_of < leaving < before_us})

    def holds(self, plan: WindowPlan, time_us: int) -> bool:
        """Whether an event at `time_us` falls in a tile the longest window as of `as_of` still covers, so it
        can be merged exactly (an event that late for the watermark is still counted in its windows)."""
        return plan.bucket(time_us) >= plan.bucket(self.as_of) + plan.tail_us - max(plan.windows_us)

    @property
    def empty(self) -> bool:
        return not self.tiles


def leaving_times(plan: WindowPlan, bucket: int) -> list[int]:
    """When a tile starting at `bucket` leaves each window (µs): then the values change by themselves."""
    return [bucket + window for window in plan.windows_us]
