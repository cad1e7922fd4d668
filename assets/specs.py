"""Typed specs: the only shape sources, entities and feature groups take once loaded.

Everything downstream (Spark jobs, Dagster factories, the online store, quality suites) consumes these;
nothing reads the YAML again. `extra="forbid"` everywhere, so a misspelt key is an error, not a silence.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from assets.dtypes import DTYPES, INT_RANGES, NUMERIC_DTYPES, Dtype
from assets.offline_layout import feature_table
from assets.operations import OPERATION_NAMES, OPERATIONS

NAME = r"^[a-z][a-z0-9_]*$"
# A feature ref: `group`, `group.feature`, `group@vN`, `group@vN.feature` (serving/feature_refs.py resolves them).
FEATURE_REF = re.compile(r"^(?P<group>[a-z][a-z0-9_]*)(?:@v(?P<version>[0-9]+))?(?:\.(?P<feature>[a-z][a-z0-9_]*))?$")
REQUEST_TIME = "request.time"  # the on-demand input that is the request time (a training set's observation time)
OWNER = r"^([^@\s]+@[^@\s]+\.[^@\s]+|team:[a-z0-9_-]+)$"
DURATION = re.compile(r"^(\d+)([smhdw])$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DURATION_SECONDS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))  # largest unit first


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '90m', '2w' as a timedelta; the one duration syntax of feature folders."""
    match = DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 90m or 2w")
    return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})


def format_duration(value: timedelta) -> str:
    """A duration the way feature.yaml writes it, in its largest whole unit: 26h, 2m, 1w (parse_duration's inverse)."""
    seconds = int(value.total_seconds())
    unit, size = next(((u, n) for u, n in DURATION_SECONDS if seconds and seconds % n == 0), ("s", 1))
    return f"{seconds // size}{unit}"


class Column(Strict):
    """One column of a source contract."""

    name: str = Field(pattern=NAME)
    dtype: Dtype
    nullable: bool = False
    description: str = ""


class Entity(Strict):
    """A thing features describe (user, post, ...), identified by one key column."""

    name: str = Field(pattern=NAME)
    key: str = Field(pattern=NAME)
    dtype: Literal["int64", "string"]
    description: str


class Stream(Strict):
    """Where a source's events arrive as a stream (a local directory, or a topic on a cluster) and how late
    they may come: the event log holds a day as complete once the stream's event time has passed the day's
    end by `lateness` (a later event still lands in its day, which is then loaded again)."""

    path: str
    topic: str
    lateness: timedelta = timedelta(hours=1)

    @field_validator("lateness", mode="before")
    @classmethod
    def _duration(cls, value):
        return parse_duration(value) if isinstance(value, str) else value

    @field_serializer("lateness")
    def _duration_text(self, value: timedelta) -> str:
        return format_duration(value)  # as written, so a dumped source loads again (generated jobs do)


class Source(Strict):
    """A raw event source: its schema contract, its event-log table and its stream."""

    name: str = Field(pattern=NAME)
    description: str
    owner: str = Field(pattern=OWNER)
    table: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    event_time: str
    entity_keys: dict[str, str] = {}
    columns: tuple[Column, ...] = Field(min_length=1)
    stream: Stream | None = None
    file: Path = Field(exclude=True)

    @model_validator(mode="after")
    def _columns_consistent(self) -> Source:
        names = [c.name for c in self.columns]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"columns: duplicate names {sorted(duplicates)}")
        by_name = {c.name: c for c in self.columns}
        if self.event_time not in by_name or by_name[self.event_time].dtype != "timestamp":
            raise ValueError(f"event_time: {self.event_time!r} must name a timestamp column")
        for entity, column in self.entity_keys.items():
            if column not in by_name:
                raise ValueError(f"entity_keys.{entity}: {column!r} is not a column")
        return self

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def event_time_index(self) -> int:
        """The event-time column's position among the columns (the order of a contract's typed values)."""
        return [c.name for c in self.columns].index(self.event_time)


class Aggregate(Strict):
    """How a declared windowed feature is computed: `operation` over `input` (a column of the group's
    aggregations source) in the `window` ending at the value's time (whole days, so every batch partition
    is one window). A count without input counts events (COUNT(*)), with one the events where it is not
    null (COUNT(x)); null inputs are skipped by every operation, as in SQL."""

    operation: Literal[OPERATION_NAMES]  # a row of assets/operations.py
    input: str | None = Field(default=None, pattern=NAME)
    window: timedelta

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value):
        window = parse_duration(value)
        if window.total_seconds() % 86400 or window.total_seconds() <= 0:
            raise ValueError(f"{value!r} is not a whole number of days (batch partitions are days)")
        return window

    @model_validator(mode="after")
    def _input_given(self) -> Aggregate:
        if self.input is None and OPERATIONS[self.operation].needs_input:
            raise ValueError(f"input: a {self.operation} needs an input column (only count can go without)")
        return self


class WindowAggregate(Aggregate):
    """One named aggregate of a hand-written windowed stream (`aggregations.aggregates`): the window operator
    computes it per entity over stream/transform.sql's rows, and stream/features.sql reads it by `name`.

    `keep`: once the window holds no input for it, the aggregate keeps its last value instead of
    becoming empty, as the batch publish carries a feature that declares no `empty_value`.
    """

    name: str = Field(pattern=NAME)
    keep: bool = False


class Feature(Strict):
    """One feature: a column of the group's query output, one field of the online hash.

    `nullable`, `min`, `max` and `allowed_values` are expectations the quality gate checks on every
    partition before it reaches the online store; they are not part of the schema (no version bump).
    `empty_value` (a value of the dtype, or null) is what the feature is in a windowed group for an entity
    with no events left in the window (0 for a count); without it the entity keeps its last value.
    """

    name: str = Field(pattern=NAME)
    dtype: Dtype
    description: str
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed_values: tuple[str | int | bool, ...] | None = Field(default=None, min_length=1)
    empty_value: Any = None  # checked against the dtype below (a YAML date is refused with that reason)
    aggregate: Aggregate | None = None  # a declared windowed feature (the group's `aggregations:`)

    @model_validator(mode="before")
    @classmethod
    def _aggregate_empty_value(cls, data):
        """A declared aggregate's empty value is its operation's (0 for counts and sums, else null)."""
        if isinstance(data, dict) and isinstance(data.get("aggregate"), dict):
            operation = OPERATIONS.get(data["aggregate"].get("operation"))
            empty = operation.empty if operation else None
            if "empty_value" in data and data["empty_value"] != empty:
                raise ValueError(f"empty_value: a {data['aggregate'].get('operation')} over an empty window is "
                                 f"{'null' if empty is None else empty}; leave empty_value out")
            data = {**data, "empty_value": empty}
        return data

    @property
    def declares_empty_value(self) -> bool:
        """Whether feature.yaml says what the feature is once its window holds no events (null included)."""
        return "empty_value" in self.model_fields_set

    @model_validator(mode="after")
    def _expectations_fit_the_dtype(self) -> Feature:
        if (self.min is not None or self.max is not None) and self.dtype not in NUMERIC_DTYPES:
            raise ValueError(f"min: ranges apply to numeric dtypes ({', '.join(NUMERIC_DTYPES)}), not {self.dtype}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min: {self.min} is greater than max {self.max}")
        if self.allowed_values is not None:
            python_type = DTYPES[self.dtype].allowed_value_type
            if python_type is None or any(type(v) is not python_type for v in self.allowed_values):
                raise ValueError(f"allowed_values: must be {self.dtype} values (sets apply to string, integer "
                                 f"and bool features)")
        if self.empty_value is not None and not _is_value_of(self.dtype, self.empty_value):
            allowed = "null" if self.dtype in ("timestamp", "date") else f"a {self.dtype} literal or null"
            raise ValueError(f"empty_value: {self.empty_value} is not a {self.dtype} value (it can be {allowed})")
        return self


def _is_value_of(dtype: str, value) -> bool:
    """Whether a YAML scalar is a literal of `dtype` (timestamps and dates have no empty literal but null)."""
    if dtype in INT_RANGES:
        low, high = INT_RANGES[dtype]
        return type(value) is int and low <= value <= high
    return {"float64": type(value) in (int, float), "string": type(value) is str,
            "bool": type(value) is bool}.get(dtype, False)


class RowCountBounds(Strict):
    """How a partition's row count may move against the previous partition's: a ratio window."""

    min_ratio: float = Field(default=0.0, ge=0)
    max_ratio: float | None = Field(default=None, gt=0)


class SourceInput(Strict):
    """How many daily partitions of a source one partition of the group reads (`all` for full history)."""

    window_days: int | Literal["all"] = 1

    @field_validator("window_days")
    @classmethod
    def _positive(cls, value):
        if value != "all" and value < 1:
            raise ValueError("must be a positive number of days or 'all'")
        return value


class Udf(Strict):
    """A Python function from the group's udf.py, registered by name in Spark (and Flink)."""

    name: str = Field(pattern=NAME)
    returns: Dtype


class OnDemandFeature(Strict):
    """A request-time feature: a function of the folder's on_demand.py over stored features and request fields.

    `inputs` maps each argument of the function to what it receives, as a pandas Series with one value per
    row: a stored feature (`group.feature`, `group@vN.feature`; in a group's feature.yaml a bare name is a
    feature of that group), the request time (`request.time`, UTC), or a request field (`request.<field>`,
    typed by `request_fields`). The same function runs in the service over
    the ids of one call and in training sets over the observation rows, so there is one implementation.
    """

    name: str = Field(pattern=NAME)
    dtype: Dtype
    description: str
    function: str = Field(pattern=NAME)
    inputs: dict[str, str] = Field(min_length=1)
    request_fields: dict[str, Dtype] = {}

    @model_validator(mode="after")
    def _inputs_well_formed(self) -> OnDemandFeature:
        used = set()
        for argument, source in self.inputs.items():
            if not re.match(NAME, argument):
                raise ValueError(f"inputs: {argument!r} is not a Python argument name (snake_case)")
            if source.startswith("request."):
                field = source.removeprefix("request.")
                if source != REQUEST_TIME and field not in self.request_fields:
                    raise ValueError(f"inputs: {argument}: request field {field!r} is not declared under "
                                     f"request_fields (with its dtype)")
                used.add(field)
                continue
            match = FEATURE_REF.match(source)
            if match is None or (match["feature"] is None and "@" in source):
                raise ValueError(f"inputs: {argument}: {source!r} is neither a feature (group.feature, "
                                 f"group@vN.feature, or a feature of the same group by its name) nor "
                                 f"request.time / request.<field>")
        unused = sorted(set(self.request_fields) - used)
        if unused:
            raise ValueError(f"request_fields: {', '.join(unused)} not read by any input")
        if "time" in self.request_fields:
            raise ValueError("request_fields: time is the request time itself (request.time); do not declare it")
        return self

    def feature_inputs(self, group: str | None = None) -> dict[str, str]:
        """Arguments that receive stored features, with their refs (a bare name: a feature of `group`)."""
        return {a: s if "." in s or group is None else f"{group}.{s}"
                for a, s in self.inputs.items() if not s.startswith("request.")}


class Aggregations(Strict):
    """How a group's stream computes windowed values, in one of two forms.

    Declared (`source`): every feature is an `aggregate` of one source, grouped by the entity's key
    column; the platform renders batch.sql and stream/ from it (assets/aggregations.py), so both agree by
    construction. Hand-written (`aggregates`): for joins, several sources and derived features, the author
    writes batch.sql and stream/ (transform.sql: one row per event with the entity key, `event_time` and
    the aggregates' inputs; features.sql: the features from the view `windowed` of those aggregates); the
    platform's window operator sits between the two, and the consistency check guards that batch agrees.

    `tail` is the granularity of window boundaries: the value at time t counts the events of the window
    whose oldest tail bucket is the one after t's bucket minus the window, up to t (a 7d window with a
    1h tail spans between 6d23h and 7d). `allowed_lateness`: how late an event may be (behind the stream's
    watermark) and still be counted online, by default the longest window: an event that late is merged into
    its tile, unless its hour has left every window the job holds for its entity. Later ones are dead-lettered
    with the reason (the batch still counts them from the event log)."""

    source: str | None = Field(default=None, pattern=NAME)
    aggregates: tuple[WindowAggregate, ...] = ()
    tail: timedelta = timedelta(hours=1)
    allowed_lateness: timedelta | None = None  # None: the longest window

    @model_validator(mode="after")
    def _one_form(self) -> Aggregations:
        if (self.source is None) == (not self.aggregates):
            raise ValueError("give either source (features declare their aggregate; SQL is rendered) or "
                             "aggregates (for a hand-written stream/transform.sql and features.sql), not both")
        names = [a.name for a in self.aggregates]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"aggregates: {', '.join(repeated)} named twice")
        return self

    @property
    def rendered(self) -> bool:
        """Whether batch.sql and stream/ are rendered from the features' aggregates (the declared form)."""
        return self.source is not None

    @field_validator("tail", "allowed_lateness", mode="before")
    @classmethod
    def _duration(cls, value):
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("tail")
    @classmethod
    def _divides_a_day(cls, value):
        seconds = value.total_seconds()
        if seconds <= 0 or 86400 % seconds:
            raise ValueError(f"{format_duration(value)} does not divide a day into whole buckets (e.g. 1h, 15m)")
        return value


class StreamQueries(Strict):
    """The group's Flink SQL: the input tables' DDL (source.sql, one CREATE TABLE per source it reads),
    the feature query (transform.sql) and, for a hand-written windowed stream, features.sql."""

    source_sql: str
    transform_sql: str
    source_ddls: dict[str, str]  # each table source.sql creates (a source of the registry): its statement
    features_sql: str | None = None  # the features from the window operator's view `windowed`

    @property
    def source_tables(self) -> tuple[str, ...]:
        """The sources the stream reads, in source.sql's order."""
        return tuple(self.source_ddls)


class FeatureGroup(Strict):
    """A feature group folder: metadata, features and its batch (and stream) queries."""

    name: str = Field(pattern=NAME)
    entity: str
    owner: str = Field(pattern=OWNER)
    description: str
    version: int = Field(ge=1)
    ttl: timedelta | None = None
    # How old the online values may get before the group counts as stale. Required in feature.yaml (the
    # registry loader refuses a folder without it); groups built in code (benchmarks) may leave it out.
    freshness: timedelta | None = None
    tags: dict[str, str] = {}
    sources: dict[str, SourceInput] = Field(min_length=1)
    udfs: tuple[Udf, ...] = ()
    features: tuple[Feature, ...] = Field(min_length=1)
    folder: Path = Field(exclude=True)
    batch_sql: str = Field(exclude=True)
    stream: StreamQueries | None = Field(default=None, exclude=True)
    row_count_vs_previous: RowCountBounds | None = None  # expectation of the quality gate
    on_demand: tuple[OnDemandFeature, ...] = ()  # request-time features of on_demand.py (not stored)
    aggregations: Aggregations | None = None  # declared windowed features: batch.sql and stream/ are rendered

    @model_validator(mode="before")
    @classmethod
    def _sources_of_aggregations(cls, data):
        """A declared group reads its aggregations source over its longest window (written or not)."""
        if (isinstance(data, dict) and isinstance(data.get("aggregations"), dict) and "sources" not in data
                and data["aggregations"].get("source") is not None):
            windows = [parse_duration(f["aggregate"]["window"]).days for f in data.get("features", ())
                       if isinstance(f, dict) and isinstance(f.get("aggregate"), dict)
                       and isinstance(f["aggregate"].get("window"), str)]
            data = {**data, "sources": {data["aggregations"].get("source"): {"window_days": max(windows, default=1)}}}
        return data

    @field_validator("ttl", "freshness", mode="before")
    @classmethod
    def _duration(cls, value):
        return None if value in (None, "none") else parse_duration(value)

    @field_validator("features")
    @classmethod
    def _unique_features(cls, features):
        names = [f.name for f in features]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"duplicate feature names {sorted(duplicates)}")
        return features

    @model_validator(mode="after")
    def _on_demand_names_free(self) -> FeatureGroup:
        stored = {f.name for f in self.features}
        for index, feature in enumerate(self.on_demand):
            if feature.name in stored:
                raise ValueError(f"on_demand[{index}].name: {feature.name!r} is also a stored feature")
        return self

    @model_validator(mode="after")
    def _aggregations_complete(self) -> FeatureGroup:
        declared = [f.name for f in self.features if f.aggregate is not None]
        if self.aggregations is None or not self.aggregations.rendered:
            if declared:
                raise ValueError(f"features: {', '.join(declared)} declare an aggregate, but the group has no "
                                 f"aggregations: source (the declared form, whose SQL is rendered)")
            return self
        missing = [f.name for f in self.features if f.aggregate is None]
        if missing:
            raise ValueError(f"features: {', '.join(missing)} have no aggregate: every feature of a group with "
                             f"aggregations: is one (write batch.sql and stream/ by hand for anything else)")
        longest = max(f.aggregate.window.days for f in self.features)
        if set(self.sources) != {self.aggregations.source} or self.sources[self.aggregations.source].window_days != longest:
            raise ValueError(f"sources: a declared group reads {self.aggregations.source} over its longest window "
                             f"({longest} days); leave sources out and the platform writes it")
        return self

    @property
    def ref(self) -> str:
        """The group's versioned name, e.g. `user_upvotes@v1`, as feature refs pin a version."""
        return f"{self.name}@v{self.version}"

    @property
    def table(self) -> str:
        """The offline feature table (Hive), one per group version so versions coexist."""
        return feature_table(self.name, self.version)

    @property
    def batch_sql_path(self) -> Path:
        return self.folder / "batch.sql"

    @property
    def udf_path(self) -> Path:
        return self.folder / "udf.py"

    @property
    def on_demand_path(self) -> Path:
        return self.folder / "on_demand.py"

    @property
    def stream_dir(self) -> Path:
        return self.folder / "stream"

    @property
    def expires_absent_entities(self) -> bool:
        """Whether a partition also gives empty values to entities that left the window: the group reads
        a source over a finite window and declares what at least one feature is once it is empty."""
        return (any(s.window_days != "all" for s in self.sources.values())
                and any(f.declares_empty_value for f in self.features))

    def feature(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)


class FeatureServiceSpec(Strict):
    """A model's inputs by one name (`assets/services/<name>.yaml`): feature refs in order, plus on-demand
    features computed by the functions of `assets/services/on_demand.py`. `entity` is not written in the
    YAML: the registry sets it from the features, which must all describe one entity."""

    name: str = Field(pattern=NAME)
    owner: str = Field(pattern=OWNER)
    description: str
    version: int = Field(ge=1)
    features: tuple[str, ...] = Field(min_length=1)
    on_demand: tuple[OnDemandFeature, ...] = ()
    entity: str = Field(default="", exclude=True)
    file: Path = Field(exclude=True)

    @field_validator("features")
    @classmethod
    def _refs(cls, features):
        for index, ref in enumerate(features):
            if not isinstance(ref, str) or not FEATURE_REF.match(ref):
                raise ValueError(f"[{index}] {ref!r} is not a feature ref (group, group.feature, group@vN.feature)")
        duplicates = sorted({r for r in features if features.count(r) > 1})
        if duplicates:
            raise ValueError(f"listed twice: {', '.join(duplicates)}")
        return features

    @field_validator("on_demand")
    @classmethod
    def _unique_on_demand(cls, features):
        names = [f.name for f in features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate on-demand feature names {duplicates}")
        return features

    @property
    def on_demand_path(self) -> Path:
        return self.file.with_name("on_demand.py")
