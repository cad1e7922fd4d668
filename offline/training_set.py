"""Point-in-time-correct training sets: observations as-of joined with the offline feature history.

An observation is a row with the entity key columns of the requested groups (`user_id`, `post_id`, ...),
an event time, a label and any other columns. For each requested group version it gets the group's latest
values whose `feature_ts` is at or before the observation's time, or nulls when there are none or when the
latest is older than the group's TTL (observation time - feature_ts > TTL): never a value from after the
observation. Each group adds its features as `<group>__<feature>` (`<group>_v<n>__<feature>` for a
versioned ref) and the event time of the joined values as `<group>__feature_ts`, so leakage can be audited
on the training set itself.

Two engines give identical rows. Spark scales: feature rows and observations are unioned, partitioned by
entity and ordered by time, and each observation carries forward the last feature row before it (a window,
not a range join, so no entity's history is multiplied by its observations). pandas is for inputs that fit
in memory: `merge_asof` over index columns only, then Arrow `take` of the matched history rows, so values
keep their exact types and nulls. History comes from offline/offline_history.py in both.

On-demand features (a group's `on_demand:`, a feature service's) run after the join with the same
functions as the service (serving/on_demand.py), over the observation rows with the observation time as
the request time and request fields read from the observation columns of the same names (pandas engine:
one call over the whole table; Spark: `mapInPandas`, one call per Arrow batch). Their stored inputs are
joined as of the observation time and dropped unless asked for.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets.dtypes import SPARK_TYPES, arrow_type
from assets.offline_layout import EVENT_TIME_COLUMN
from assets.registry import Registry
from assets.specs import FeatureGroup
from infra.errors import PlatformError
from offline.offline_history import batch_history_files, offline_history, read_history_files
from serving.feature_refs import resolve_refs
from serving.on_demand import Selection, compute, select

TIME_COLUMN = "event_time"
ROW_COLUMN = "_fp_observation_row"
LOCAL_MAX_ROWS = 2_000_000  # `auto` joins observations up to this many rows in pandas, more with Spark
ENGINES = ("auto", "pandas", "spark")

Step = Callable[[str], None]


def _no_steps(_step: str) -> None:
    """Default progress callback: report nothing."""


@dataclass(frozen=True)
class GroupJoin:
    """One group version's part of a training set: which features, keyed how, named how, valid how long."""

    group: FeatureGroup
    key: str                      # the entity key column, in observations and in the history
    key_dtype: str
    features: tuple[str, ...]     # feature names in the history
    columns: tuple[str, ...]      # their output column names
    event_time_column: str        # output column: the event time the joined values hold as of
    ttl_micros: int | None


def output_column(ref_name: str) -> str:
    """Training-set column of a ref: `user_upvotes.upvotes_7d` -> `user_upvotes__upvotes_7d`."""
    return ref_name.replace("@v", "_v").replace(".", "__")


def plan_joins(registry: Registry, refs: Sequence[str]) -> list[GroupJoin]:
    """Resolve refs (groups, features, versions) into one join per group version and naming stem."""
    by_stem: dict[str, list] = {}
    for ref in resolve_refs(registry, refs):
        by_stem.setdefault(ref.name.rsplit(".", 1)[0], []).append(ref)
    joins = []
    for stem, resolved in by_stem.items():
        group = resolved[0].group
        entity = registry.entity_of(group)
        joins.append(GroupJoin(
            group=group, key=entity.key, key_dtype=entity.dtype,
            features=tuple(r.feature.name for r in resolved), columns=tuple(output_column(r.name) for r in resolved),
            event_time_column=f"{output_column(stem)}__{EVENT_TIME_COLUMN}",
            ttl_micros=None if group.ttl is None else int(group.ttl.total_seconds() * 1_000_000)))
    return joins


def check_observations(columns: Sequence[str], joins: Sequence[GroupJoin], time_column: str, where: str) -> None:
    """Refuse observations without the time or key columns the joins need, or with a column a join would add."""
    if time_column not in columns:
        raise PlatformError(f"{where}: no time column {time_column!r} (columns: {', '.join(columns)})",
                            "name the observation time column with --time-column")
    for join in joins:
        if join.key not in columns:
            raise PlatformError(f"{where}: no column {join.key!r}, the {join.group.entity} key {join.group.name} "
                                f"is joined on", f"add {join.key} to the observations or drop {join.group.name}")
        for column in (*join.columns, join.event_time_column):
            if column in columns:
                raise PlatformError(f"{where}: column {column!r} is also a training-set output column",
                                    "rename it in the observations")


def as_selection(registry: Registry, features: Sequence[str] | Selection) -> Selection:
    """Feature refs (or a feature service's selection, serving.on_demand.select_service) as a Selection."""
    return features if isinstance(features, Selection) else select(registry, features)


def check_request_fields(columns: Sequence[str], selection: Selection, where: str) -> None:
    """Refuse observations without a column for each request field the on-demand features read."""
    for field, dtype in selection.request_fields.items():
        if field not in columns:
            readers = ", ".join(s.name for s in selection.steps if field in s.feature.request_fields)
            raise PlatformError(f"{where}: no column {field!r}: the request field ({dtype}) {readers} read(s)",
                                f"add {field} to the observations, one value per row")


def _hidden_columns(selection: Selection, joins: Sequence[GroupJoin]) -> list[str]:
    """Output columns joined only as on-demand inputs: the inputs, and event times of joins with no output."""
    shown = {output_column(name) for name in selection.stored}
    hidden = [output_column(name) for name in selection.inputs]
    return hidden + [j.event_time_column for j in joins if not shown & set(j.columns)]


# --- pandas -----------------------------------------------------------------------------------------

def _utc_micros(column: pa.ChunkedArray, where: str) -> pa.ChunkedArray:
    """A timestamp column as timestamp[us, UTC] (naive times are UTC; nanoseconds are truncated)."""
    if not pa.types.is_timestamp(column.type):
        raise PlatformError(f"{where} is {column.type}, not a timestamp", "write the observation times as timestamps")
    return pc.cast(column, arrow_type("timestamp"), safe=False)


def _asof_rows(keys: pa.ChunkedArray, times: pa.ChunkedArray, history_keys: pa.ChunkedArray,
               history_times: pa.ChunkedArray, ttl_micros: int | None) -> pa.Array:
    """Per observation, the index of its history row (latest feature_ts <= time, within TTL), or null."""
    valid = pc.and_(pc.is_valid(keys), pc.is_valid(times)).to_numpy(zero_copy_only=False)
    left = pd.DataFrame({"t": pc.cast(times, pa.int64()).to_numpy(zero_copy_only=False)[valid],
                         "k": keys.to_numpy(zero_copy_only=False)[valid],
                         "r": np.flatnonzero(valid)}).sort_values("t", kind="stable")
    right = pd.DataFrame({"t": pc.cast(history_times, pa.int64()).to_numpy(zero_copy_only=False),
                          "k": history_keys.to_numpy(zero_copy_only=False),
                          "h": np.arange(len(history_keys))}).sort_values("t", kind="stable")
    matched = pd.merge_asof(left, right, on="t", by="k", direction="backward", allow_exact_matches=True,
                            tolerance=ttl_micros)
    rows = np.full(len(keys), -1, dtype=np.int64)
    rows[matched["r"].to_numpy()] = matched["h"].fillna(-1).to_numpy(dtype=np.int64)
    return pa.array(rows, mask=rows < 0)


def join_pandas(observations: pa.Table, joins: Sequence[GroupJoin], histories: Mapping[str, pa.Table],
                time_column: str = TIME_COLUMN, where: str = "observations") -> pa.Table:
    """The training set of `observations` (Arrow) against each join's history (Arrow, from offline_history)."""
    check_observations(observations.column_names, joins, time_column, where)
    times = _utc_micros(observations[time_column], f"{where}: {time_column}")
    result = observations.set_column(observations.column_names.index(time_column), time_column, times)
    for join in joins:
        history = histories[join.group.name]
        keys = pc.cast(observations[join.key], arrow_type(join.key_dtype))
        rows = _asof_rows(keys, times, history[join.key], history[EVENT_TIME_COLUMN], join.ttl_micros)
        taken = history.select([*join.features, EVENT_TIME_COLUMN]).take(rows)
        for name, column in zip((*join.columns, join.event_time_column), taken.columns):
            result = result.append_column(name, column)
    return result


def _history_for(spark, registry: Registry, group: FeatureGroup, keys: pa.Array, until) -> pa.Table:
    """The history rows of `group` for these entity keys up to `until`, as Arrow (what the pandas engine joins):
    read by Arrow from the batch table's Parquet files when that table is the whole history, else by Spark."""
    from pyspark.sql import functions as F

    files = batch_history_files(spark, registry, group)
    if files is not None:
        return read_history_files(registry, group, files, keys.unique(), until)
    key = registry.entity_of(group).key
    wanted = spark.createDataFrame(pa.table({key: keys.unique()}).to_pandas())
    history = offline_history(spark, registry, group).join(F.broadcast(wanted), key, "left_semi")
    return history.where(F.col(EVENT_TIME_COLUMN) <= F.lit(until)).toArrow()


def on_demand_pandas(table: pa.Table, selection: Selection, joins: Sequence[GroupJoin],
                     time_column: str = TIME_COLUMN) -> pa.Table:
    """The joined table with each on-demand feature computed over its rows, input-only columns dropped."""
    if not selection.steps:
        return table
    columns = {name: table[output_column(name)] for name in selection.reads}
    request = {"time": table[time_column],
               **{f: pc.cast(table[f], arrow_type(d)) for f, d in selection.request_fields.items()}}
    computed = compute(selection.steps, columns, request, table.num_rows)
    table = table.drop_columns(_hidden_columns(selection, joins))
    for name, values in computed.items():
        table = table.append_column(output_column(name), values)
    return table


def training_set_pandas(spark, registry: Registry, observations: pa.Table | pd.DataFrame,
                        refs: Sequence[str] | Selection, time_column: str = TIME_COLUMN, on_step: Step = _no_steps,
                        where: str = "observations") -> pa.Table:
    """The training set joined in pandas; Spark only reads the (key-filtered) history out of the tables."""
    if isinstance(observations, pd.DataFrame):
        observations = pa.Table.from_pandas(observations, preserve_index=False)
    selection = as_selection(registry, refs)
    joins = plan_joins(registry, selection.reads)
    check_observations(observations.column_names, joins, time_column, where)
    check_request_fields(observations.column_names, selection, where)
    until = pc.max(_utc_micros(observations[time_column], f"{where}: {time_column}")).as_py()
    histories = {}
    for join in joins:
        if join.group.name not in histories:
            on_step(f"reading the history of {join.group.name} v{join.group.version}")
            keys = pc.drop_null(pc.cast(observations[join.key], arrow_type(join.key_dtype))).combine_chunks()
            histories[join.group.name] = _history_for(spark, registry, join.group, keys, until)
    on_step(f"joining {observations.num_rows:,} observations (pandas)")
    return on_demand_pandas(join_pandas(observations, joins, histories, time_column, where), selection, joins,
                            time_column)


# --- Spark ------------------------------------------------------------------------------------------

def _quoted(column: str) -> str:
    return f"`{column}`"


def _join_group_spark(observations, join: GroupJoin, history, time_column: str):
    """`observations` with `join`'s features as of each row's time: union, window by entity, carry forward."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    outputs = [*join.columns, join.event_time_column]
    feature_rows = history.select(
        F.col(join.key).alias("_key"), F.col(EVENT_TIME_COLUMN).alias("_t"), F.lit(0).alias("_kind"),
        F.struct(*(F.col(f).alias(c) for f, c in zip((*join.features, EVENT_TIME_COLUMN), outputs))).alias("_feature"))
    observation_rows = observations.select(
        F.col(_quoted(join.key)).cast(SPARK_TYPES[join.key_dtype]).alias("_key"),
        F.col(_quoted(time_column)).alias("_t"), F.lit(1).alias("_kind"),
        F.struct(*(F.col(_quoted(c)) for c in observations.columns)).alias("_observation"))
    rows = feature_rows.unionByName(observation_rows, allowMissingColumns=True)
    up_to_here = (Window.partitionBy("_key").orderBy("_t", "_kind")
                  .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    carried = rows.withColumn("_last", F.last("_feature", ignorenulls=True).over(up_to_here)).where("_kind = 1")
    valid_from = F.col(f"_last.{_quoted(join.event_time_column)}")
    fresh = valid_from.isNotNull()
    if join.ttl_micros is not None:
        fresh = fresh & (F.unix_micros(F.col("_t")) - F.unix_micros(valid_from) <= join.ttl_micros)
    return carried.select("_observation.*", *(F.when(fresh, F.col(f"_last.{_quoted(c)}")).alias(c) for c in outputs))


def join_spark(observations, joins: Sequence[GroupJoin], histories: Mapping[str, object],
               time_column: str = TIME_COLUMN, where: str = "observations"):
    """The training set of `observations` (a DataFrame) against each join's history, in observation order."""
    from pyspark.sql import functions as F

    check_observations(observations.columns, joins, time_column, where)
    if dict(observations.dtypes)[time_column] not in ("timestamp", "timestamp_ntz"):
        raise PlatformError(f"{where}: {time_column} is {dict(observations.dtypes)[time_column]}, not a timestamp",
                            "write the observation times as timestamps")
    result = (observations.withColumn(time_column, F.col(_quoted(time_column)).cast("timestamp"))
              .withColumn(ROW_COLUMN, F.monotonically_increasing_id()))
    for join in joins:
        result = _join_group_spark(result, join, histories[join.group.name], time_column)
    return result.orderBy(ROW_COLUMN).drop(ROW_COLUMN)


def on_demand_spark(frame, selection: Selection, joins: Sequence[GroupJoin], time_column: str = TIME_COLUMN):
    """`frame` with each on-demand feature computed by `mapInPandas` (the same functions as the service).

    Spark hands timestamps to pandas as naive times in the session time zone, which the platform's
    sessions set to UTC (infra/spark.py); each column is typed through Arrow as the pandas engine's are.
    """
    if not selection.steps:
        return frame
    from pyspark import cloudpickle

    functions = {step.name: step.function() for step in selection.steps}
    for function in functions.values():  # executors get the code, not an import they cannot do
        cloudpickle.register_pickle_by_value(sys.modules[function.__module__])
    column_dtypes = {column: join.group.feature(feature).dtype
                     for join in joins for column, feature in zip(join.columns, join.features)}
    inputs = {name: column_dtypes[output_column(name)]
              for step in selection.steps for _, name in step.inputs if not name.startswith("request.")}
    fields = {"time": (time_column, "timestamp"), **{f: (f, d) for f, d in selection.request_fields.items()}}
    steps, outputs = selection.steps, [(output_column(s.name), s.dtype) for s in selection.steps]

    def add_on_demand(batches):
        for batch in batches:
            columns = {name: pa.Array.from_pandas(batch[output_column(name)], type=arrow_type(dtype), safe=False)
                       for name, dtype in inputs.items()}
            request = {field: pa.Array.from_pandas(batch[column], type=arrow_type(dtype), safe=False)
                       for field, (column, dtype) in fields.items()}
            computed = compute(steps, columns, request, len(batch), functions)
            for (column, _), values in zip(outputs, computed.values()):
                batch[column] = values.to_pandas()
            yield batch

    schema = ", ".join([f"{_quoted(f.name)} {f.dataType.simpleString()}" for f in frame.schema.fields]
                       + [f"{_quoted(column)} {SPARK_TYPES[dtype]}" for column, dtype in outputs])
    return frame.mapInPandas(add_on_demand, schema).drop(*_hidden_columns(selection, joins))


def training_set_spark(spark, registry: Registry, observations, refs: Sequence[str] | Selection,
                       time_column: str = TIME_COLUMN, on_step: Step = _no_steps, where: str = "observations"):
    """The training set as a (lazy) Spark DataFrame over the offline tables."""
    selection = as_selection(registry, refs)
    joins = plan_joins(registry, selection.reads)
    check_request_fields(observations.columns, selection, where)
    histories = {join.group.name: offline_history(spark, registry, join.group) for join in joins}
    on_step(f"planning the Spark join of {len(joins)} group version(s)")
    return on_demand_spark(join_spark(observations, joins, histories, time_column, where), selection, joins,
                           time_column)


# --- files ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingSetSummary:
    """What `write_training_set` wrote: rows, engine, seconds, and per output group the rows it filled."""

    rows: int
    engine: str
    seconds: float
    filled: dict[str, int]


@contextmanager
def _session_conf(spark, key: str, value: str):
    """Set a Spark SQL option for the duration of the block, then put the previous value back."""
    previous = spark.conf.get(key)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        spark.conf.set(key, previous)


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth a Parquet dictionary: strings, whose few distinct values (categories, names) shrink to
    small indices. Numbers and times of a training set rarely repeat, so a dictionary there is built only to
    be abandoned at its size limit: writing without one cuts a third of the write (1M rows: 0.74 s -> 0.48 s) for
    files about 7% larger."""
    return [field.name for field in schema if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)]


def _observation_rows(path: Path) -> int:
    try:
        return pq.ParquetDataset(path).read(columns=[]).num_rows
    except (OSError, pa.ArrowInvalid) as exc:
        raise PlatformError(f"cannot read observations {path}: {exc}", "pass a Parquet file or directory") from None


def write_training_set(spark, registry: Registry, observations: Path, refs: Sequence[str] | Selection, out: Path,
                       engine: str = "auto", time_column: str = TIME_COLUMN, on_step: Step = _no_steps
                       ) -> TrainingSetSummary:
    """Join the observations in a Parquet file (or directory) and write the training set to `out` as Parquet.

    `auto` picks pandas up to LOCAL_MAX_ROWS observations, Spark above. pandas writes one file; Spark writes a
    directory of part files in observation order. Both read back with pandas.read_parquet or spark.read.parquet.
    """
    if engine not in ENGINES:
        raise PlatformError(f"unknown engine {engine!r}", f"use one of {', '.join(ENGINES)}")
    started = time.perf_counter()
    selection = as_selection(registry, refs)
    joins = plan_joins(registry, selection.reads)
    hidden = _hidden_columns(selection, joins)
    joins = [join for join in joins if join.event_time_column not in hidden]  # the ones the output shows
    on_step(f"reading observations {observations}")
    count = _observation_rows(observations)
    engine = engine if engine != "auto" else ("pandas" if count <= LOCAL_MAX_ROWS else "spark")
    where = str(observations)
    if engine == "pandas":
        table = training_set_pandas(spark, registry, pq.read_table(observations), refs, time_column, on_step, where)
        on_step(f"writing {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out, use_dictionary=_dictionary_columns(table.schema))
        filled = {join.event_time_column: len(table[join.event_time_column]) - table[join.event_time_column].null_count
                  for join in joins}
    else:
        frame = training_set_spark(spark, registry, spark.read.parquet(str(observations)), refs, time_column,
                                   on_step, where)
        on_step(f"joining and writing {out} (Spark)")
        with _session_conf(spark, "spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS"):
            frame.write.mode("overwrite").parquet(str(out))  # UTC microseconds, as the pandas engine writes them
        from pyspark.sql import functions as F

        written = spark.read.parquet(str(out))
        counts = written.select(*(F.count(_quoted(j.event_time_column)) for j in joins), F.count(F.lit(1))).first()
        filled = {join.event_time_column: counts[i] for i, join in enumerate(joins)}
        count = counts[-1]
    return TrainingSetSummary(rows=count, engine=engine, seconds=time.perf_counter() - started, filled=filled)
