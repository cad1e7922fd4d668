"""What a generated run.py calls: the Flink environment, the injection sink, the contract check, UDFs.

The generated job holds the author's SQL; everything platform-owned lives here so that a fix to
injection or dead-lettering reaches every job on its next build without touching feature folders.
"""

from __future__ import annotations

import argparse
import re
import sys
import sysconfig
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyflink.common import Configuration, Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, StreamExecutionEnvironment
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.table import DataTypes, Schema, StreamTableEnvironment
from pyflink.table.udf import ScalarFunction, TableFunction, udf, udtf

from assets.aggregations import WindowPlan, stream_value_time
from assets.dtypes import FLINK_TYPES, dtype_of_flink_column
from assets.offline_layout import EVENT_TIME_COLUMN
from assets.udfs import load_udf_module
from infra.flink_sql import describe
from streaming.windows import EntityWindows, from_us, leaving_times, to_us


@dataclass(frozen=True)
class JobArgs:
    """Run-time arguments of a job: where Redis is, which REST port to serve, what state to resume."""

    redis_url: str | None  # None for an ingest job (streaming/ingest.py), which writes the event log only
    rest_port: int | None
    restore: str | None
    handover: bool = False  # `restore` is a replay phase's savepoint: state no operator here reads is dropped


def parse_args(argv: list[str]) -> JobArgs:
    """Arguments the runner passes to run.py (see streaming/runner.py)."""
    parser = argparse.ArgumentParser(description="A feature group's streaming job.")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--rest-port", type=int, default=None, help="local mini-cluster REST port")
    parser.add_argument("--restore", default=None, help="savepoint or retained checkpoint to resume from")
    parser.add_argument("--handover", action="store_true",
                        help="--restore is the replay phase's savepoint (its live input, an empty directory, has no "
                             "reader in a job reading Kafka)")
    ns = parser.parse_args(argv)
    return JobArgs(ns.redis_url, ns.rest_port, ns.restore, ns.handover)


def table_environment(name: str, args: JobArgs, checkpoint_dir: Path, checkpoint_seconds: int, flush_ms: int,
                      flink_rest: str | None, python_files: list[str] = (), jars: list[str] = ()) -> StreamTableEnvironment:
    """A streaming TableEnvironment: checkpoints retained on cancel, resumed from `args.restore` if given.

    Locally it is a mini-cluster inside this process serving Flink's REST API on 127.0.0.1:`rest_port`;
    with `flink_rest` (host:port) the job is submitted to that cluster instead, and its TaskManagers import
    the platform and the group's UDFs from `python_files`. `jars` (extensions.job_jars: the platform's Flink
    classes, and Kafka's connector on a profile with Kafka) go with it.
    """
    settings = {
        "pipeline.name": name,
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "table.local-time-zone": "UTC",
        "execution.checkpointing.interval": f"{checkpoint_seconds}s",
        "execution.checkpointing.dir": checkpoint_dir.resolve().as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        # The contract, the window operator and the group's UDFs run in the TaskManager's JVM (PEMJA), each
        # record handed over in-process instead of crossing to a Python worker over gRPC (issue 23 measured
        # the crossings as most of a windowed job's cost). Flink runs the pandas injector in a worker
        # whatever this says. The embedded interpreter imports pemja, pandas and the rest from this
        # interpreter's site-packages (`python.pythonpath`), which a cluster's TaskManagers share on this
        # host and install alike on others.
        "python.execution-mode": "thread",
        "python.pythonpath": sysconfig.get_paths()["purelib"],
        "python.fn-execution.bundle.time": str(flush_ms),  # the injector's batches: at most this old, this big
        "python.fn-execution.bundle.size": "5000",
        "python.fn-execution.arrow.batch.size": "5000",
        # A job reading several sources follows the slowest one's watermark (the other's events are not late
        # for it); one without new lines for a minute (the posts, while only upvotes arrive) stops holding it
        # back, so windows still close on the others' event time.
        "table.exec.source.idle-timeout": "60 s",
        # Every SQL operator's state is found by a uid of its own (its plan node's id and kind), not by a hash
        # of the graph upstream of it: a job whose live input is Kafka restores the state of its replay phase,
        # whose live input was an empty directory (runner.start).
        "table.exec.uid.generation": "ALWAYS",
        "metrics.fetcher.update-interval": "1000",  # REST metrics (records, watermarks) at most 1 s old
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "3",
        "restart-strategy.fixed-delay.delay": "2s",
    }
    if jars:
        settings["pipeline.jars"] = ";".join(Path(jar).resolve().as_uri() for jar in jars)
    if flink_rest:
        host, _, port = flink_rest.partition(":")
        settings.update({"execution.target": "remote", "rest.address": host, "rest.port": port or "8081",
                         "python.files": ",".join(python_files)})
    else:
        settings.update({"parallelism.default": "1", "rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1",
                         "rest.port": str(args.rest_port or 0)})
    if args.restore:
        settings["execution.state-recovery.path"] = args.restore
    if args.handover:
        settings["execution.state-recovery.ignore-unclaimed-state"] = "true"
    conf = Configuration()
    for key, value in settings.items():
        conf.set_string(key, value)
    t_env = StreamTableEnvironment.create(StreamExecutionEnvironment.get_execution_environment(conf))
    for key, value in settings.items():  # table options (time zone, Python bundles) are read from here
        t_env.get_config().set(key, value)
    return t_env


class InjectFeatures(ScalarFunction):
    """Injection: writes each Arrow batch of feature rows to Redis through the guarded batched writer.

    A vectorized UDF in front of a primary-keyed blackhole sink, so the planner hands it inserts and
    update-afters only. Flink finishes the Python bundle before a checkpoint barrier passes, so every
    row before a completed checkpoint is in Redis; rows after it are replayed on restore and the
    event-time guard makes the replay idempotent.
    """

    def __init__(self, plan, redis_url: str):
        self.plan = plan
        self.redis_url = redis_url
        self.store = None

    def open(self, function_context):
        from serving.online_store import OnlineStore, connect

        self.store = OnlineStore(connect(self.redis_url))

    def eval(self, *columns):
        import pandas as pd
        import pyarrow as pa

        from assets.offline_layout import EVENT_TIME_COLUMN
        import pyarrow.compute as pc

        from serving.codec import timestamp_micros

        names = [self.plan.key_column, *(name for name, _ in self.plan.features), EVENT_TIME_COLUMN]
        batch = pa.Table.from_pandas(pd.DataFrame(dict(zip(names, columns))), preserve_index=False)
        # Every row has its time (a feature row is emitted as of an event): stamped past a batch day's own end.
        micros = pa.array(stream_value_time(timestamp_micros(batch.column(EVENT_TIME_COLUMN)).to_numpy()))
        batch = batch.set_column(len(names) - 1, EVENT_TIME_COLUMN, micros.cast(pa.timestamp("us")))
        refused_before = self.store.refused_ahead
        landed = self.store.write(self.plan, batch, history=True)  # landed rows also go to the history stream
        # The newest event time among rows the clock guard lets through: a refused row must not move it either.
        latest = int((time.time() + self.plan.max_ahead_seconds) * 1_000_000) if self.plan.max_ahead_seconds is not None else None
        newest = pc.max(micros if latest is None else pc.filter(micros, pc.less_equal(micros, latest))).as_py() or 0
        self.store.record_progress(self.plan, batch.num_rows, landed, newest, int(time.time() * 1000),
                                   self.store.refused_ahead - refused_before)
        return pd.Series([landed] * batch.num_rows, dtype="int64")

    def close(self):
        if self.store is not None:
            self.store.client.close()


def injector(plan, redis_url: str):
    """The injection UDF for `plan`'s group version (see InjectFeatures)."""
    return udf(InjectFeatures(plan, redis_url), result_type=DataTypes.BIGINT(), func_type="pandas")


class ContractCheck(TableFunction):
    """The source contract in front of the typed stream: one row per raw line, either its typed values
    (reason NULL) or its reason and the record as the dead-letter place keeps it (values NULL).

    Lines arrive as bytes cut to one byte past the size limit by the SQL that calls this, so an
    oversized line never reaches this worker whole (quality.contracts decides everything else).
    """

    def __init__(self, source, max_bytes: int, cutoff: str | None, max_clock_skew_seconds: int):
        from quality.contracts import ClockGuard

        self.source = source
        self.max_bytes = max_bytes
        self.clock = ClockGuard(max_clock_skew_seconds)
        self.cutoff = datetime.fromisoformat(cutoff) if cutoff else None
        self.event_time = source.event_time_index
        self.empty = (None,) * len(source.columns)

    def eval(self, line: bytes, replayed: bool):
        from quality.contracts import check_line, shown_record

        reason, values = check_line(self.source, line, self.max_bytes, self.clock)
        if reason is None and not replayed and self.cutoff and values[self.event_time] < self.cutoff:
            reason = (f"event time {values[self.event_time]} is before the stream's cutoff {self.cutoff}: the job "
                      "counts the events before the cutoff from the event log (raw tables) it replayed, and live "
                      "lines only from the cutoff on, so this line is not counted online; the batch counts it "
                      "only if it is in the event log")
        if reason is None:
            yield (None, None, *values)
        else:
            yield (reason, shown_record(line, self.max_bytes), *self.empty)


def contract_check(source, max_bytes: int, cutoff: str | None, max_clock_skew_seconds: int):
    """The contract UDTF of one source: (reason, record, <the contract's columns, typed>) per line, for
    live lines (`replayed` false) and lines replayed from the event log alike; live lines older than the
    bootstrap `cutoff` are refused (see streaming/bootstrap.py), and so are lines dated more than
    `max_clock_skew_seconds` ahead of the job's clock."""
    types = ["STRING", "STRING", *(FLINK_TYPES[c.dtype] for c in source.columns)]
    return udtf(ContractCheck(source, max_bytes, cutoff, max_clock_skew_seconds), result_types=types)


def create_file_lines(t_env: StreamTableEnvironment, name: str, directory: str, watch_seconds: float | None) -> None:
    """Register `name` (`line BYTES`): every line of the files in `directory`, file after file in the order of
    their names, so a backlog of stream files is read as the log it is (Flink's filesystem table source reads
    waiting files in listing order, which is no order, and a later file's event would be counted before an
    earlier one's). Watched for new files every `watch_seconds`, or read once (None). Lines cross as
    ISO-8859-1 text and are encoded back, byte for byte: the contract judges the bytes as they were written."""
    from pyflink.common import Duration
    from pyflink.datastream.connectors.file_system import FileSource, FileSplitAssignerProvider, StreamFormat
    from pyflink.util.java_utils import load_java_class

    provider = load_java_class("platform.flink.NameOrderSplitAssigner$Provider").newInstance()
    builder = FileSource.for_record_stream_format(StreamFormat.text_line_format("ISO-8859-1"), directory)
    if watch_seconds is not None:
        builder.monitor_continuously(Duration.of_millis(int(watch_seconds * 1000)))
    source = builder.set_split_assigner(FileSplitAssignerProvider(provider)).build()
    _register_lines(t_env, name, source, name)


def create_kafka_lines(t_env: StreamTableEnvironment, name: str, servers: str, topic: str, group_id: str,
                       start_millis: int | None, discovery_seconds: int) -> None:
    """Register `name` (`line BYTES`): the messages of a Kafka topic, from `start_millis` (a bootstrap's
    cutoff: what came before is replayed from the event log) or else from the consumer group's committed
    offsets (the topic's beginning for a new group); a restored job resumes from its checkpoint's offsets.
    A topic still empty starts at its beginning instead of the cutoff: nothing in it can be older, and a
    broker that answers a timestamp lookup in an empty topic wrongly (tansu: timestamp -1) cannot fail the start.
    The same shape as create_file_lines, so a job plans alike on either; its source's uid is its own
    (`<name>__kafka`), so the replay phase's empty file source hands over no state to it (see runner.start)."""
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource
    from pyflink.java_gateway import get_gateway

    from streaming.connectors import topic_is_empty

    if start_millis is not None and not topic_is_empty(servers, topic):
        start = KafkaOffsetsInitializer.timestamp(start_millis)
    else:  # PyFlink's own wrapper names the reset strategy by the SQL connector's shaded class; ours is not shaded
        jvm = get_gateway().jvm
        start = KafkaOffsetsInitializer(jvm.org.apache.flink.connector.kafka.source.enumerator.initializer
                                        .OffsetsInitializer.committedOffsets(
                                            jvm.org.apache.kafka.clients.consumer.OffsetResetStrategy.EARLIEST))
    source = (KafkaSource.builder().set_bootstrap_servers(servers).set_topics(topic).set_group_id(group_id)
              .set_starting_offsets(start).set_value_only_deserializer(SimpleStringSchema("ISO-8859-1"))
              .set_property("partition.discovery.interval.ms", str(discovery_seconds * 1000))
              .set_property("commit.offsets.on.checkpoint", "true").build())
    _register_lines(t_env, name, source, f"{name}__kafka")


def _register_lines(t_env: StreamTableEnvironment, name: str, source, uid: str) -> None:
    """Register `name` (`line BYTES`) from a source of ISO-8859-1 text lines (the bytes as they came)."""
    from pyflink.common import WatermarkStrategy

    env = StreamExecutionEnvironment(t_env._j_tenv.execEnv())
    lines = env.from_source(source, WatermarkStrategy.no_watermarks(), name, type_info=Types.STRING()).uid(uid)
    t_env.create_temporary_view(f"{name}__text", t_env.from_data_stream(lines))
    t_env.create_temporary_view(name, t_env.sql_query(f"SELECT ENCODE(f0, 'ISO-8859-1') AS line FROM `{name}__text`"))


def create_view_read_once(t_env: StreamTableEnvironment, name: str, query: str) -> None:
    """Register `query` as the view `name` whose rows are computed once however many statements read it.

    Flink plans a view again for every INSERT that reads it, so the raw lines would be read and checked
    twice (once for the typed stream, once for the dead letters); passing them through one DataStream
    makes both branches consumers of the same rows.
    """
    t_env.create_temporary_view(name, t_env.from_data_stream(t_env.to_data_stream(t_env.sql_query(query))))


def create_typed_source(t_env: StreamTableEnvironment, name: str, declared_ddl: str, checked_view: str) -> None:
    """Register `name`, the typed stream transform.sql reads, from the contract-checked lines.

    `declared_ddl` is the author's source.sql: its physical columns, computed columns and watermark are
    kept exactly as declared (Flink's DESCRIBE reads them back), while its rows are the valid lines of
    `checked_view` instead of what a JSON format would coerce. A watermark can only be declared on a
    table, so the valid rows pass through a DataStream once, where the declared schema is put on them.
    """
    declared = f"{name}__declared"
    t_env.execute_sql(re.sub(r"(CREATE\s+TABLE\s+`?)" + re.escape(name) + r"(`?\s*\()", rf"\g<1>{declared}\g<2>",
                             declared_ddl, count=1, flags=re.IGNORECASE))
    columns = describe(t_env, declared)
    t_env.execute_sql(f"DROP TABLE `{declared}`")
    physical = [c for c in columns if c.physical]
    valid = t_env.sql_query("SELECT " + ", ".join(f"CAST(`{c.name}` AS {c.type}) AS `{c.name}`" for c in physical)
                            + f" FROM `{checked_view}` WHERE reason IS NULL")
    schema = Schema.new_builder()
    for column in physical:
        schema.column(column.name, column.type)
    for column in columns:
        if column.extras and column.expression is None:
            raise ValueError(f"source.sql: {column.name}: only physical and computed columns can be declared, "
                             f"not {column.extras!r} (the platform reads the lines)")
        if column.expression:
            schema.column_by_expression(column.name, column.expression)
    for column in columns:
        if column.watermark:
            schema.watermark(column.name, column.watermark)
    t_env.create_temporary_view(name, t_env.from_data_stream(t_env.to_data_stream(valid), schema.build()))


def group_udf(udf_path: str, group_name: str, name: str, returns: str):
    """A function from a group's udf.py as a Flink scalar UDF, registered by its name.

    The function travels to the TaskManager's interpreter by value (its code, not a reference to the module
    `feature_udfs_<group>`, which only this process can import: udf.py is a feature folder's file).
    """
    import cloudpickle

    module = load_udf_module(udf_path, group_name)
    cloudpickle.register_pickle_by_value(module)
    return udf(getattr(module, name), result_type=FLINK_TYPES[returns])


LATE = OutputTag("late", Types.ROW_NAMED(["reason", "record"], [Types.STRING(), Types.STRING()]))
_DATASTREAM_TYPES = {"int32": Types.INT(), "int64": Types.LONG(), "float64": Types.DOUBLE(), "string": Types.STRING(),
                     "bool": Types.BOOLEAN(), "date": Types.SQL_DATE()}


class WindowOperator(KeyedProcessFunction):
    """Declared windowed features per entity (streaming/windows.py): emits on every event and when a
    tile leaves a window; events too far behind the watermark go to the LATE side output."""

    def __init__(self, plan: WindowPlan, complete_before: str | None, end_of_input: str | None,
                 timestamp_columns: list[int]):
        self.plan = plan
        self.end_of_input_us = to_us(datetime.fromisoformat(end_of_input)) if end_of_input else None
        self.timestamp_columns = set(timestamp_columns)  # of the input rows, as text (microseconds kept)
        self.complete_before_us = to_us(datetime.fromisoformat(complete_before)) if complete_before else None
        self.state = None

    def open(self, runtime_context):
        # One value per entity: EntityWindows.to_state, plain values with a format version (Flink pickles them).
        self.state = runtime_context.get_state(ValueStateDescriptor("windows", Types.PICKLED_BYTE_ARRAY()))

    def _record(self, value) -> str:
        """A late event as the dead-letter place keeps it: its key and the columns the features read."""
        import json

        return json.dumps(dict(zip([self.plan.key, *self.plan.inputs], value)), default=str)

    def _emit(self, key, windows: EntityWindows):
        return Row(key, *windows.values(self.plan), windows.as_of)

    def process_element(self, value, ctx):
        value = [datetime.fromisoformat(v) if i in self.timestamp_columns and v is not None else v
                 for i, v in enumerate(value)]
        key, time, inputs = value[0], value[1], tuple(value[1:])  # key, event time, the other inputs
        time_us = to_us(time)
        watermark = ctx.timer_service().current_watermark()
        behind_ms = watermark - time_us // 1000
        complete = self.complete_before_us is not None and time_us < self.complete_before_us
        stored = self.state.value()
        windows = EntityWindows(self.plan) if stored is None else EntityWindows.from_state(stored)
        if not complete and watermark > -2 ** 62:
            if behind_ms > self.plan.allowed_lateness_ms:
                refused = f"more than the allowed lateness of {self.plan.allowed_lateness_ms / 1000:.0f} s"
            elif stored is not None and not windows.holds(self.plan, time_us):
                refused = "and its hour has left every window the job holds for this entity"
            else:
                refused = None  # merged exactly into its tile, however late: the value as of the entity's newest event counts it
            if refused:
                yield LATE, Row(f"late: event time {time} is {behind_ms / 1000:.0f} s behind the stream's watermark "
                                f"{from_us(watermark * 1000)}, {refused}: not counted online; the event log keeps it "
                                "where the source's ingest runs, and the batch counts it there", self._record(value))
                return
        for leaving in windows.departures_before(self.plan, time_us):  # timers the watermark has not fired yet
            windows.advance(self.plan, leaving)
            yield self._emit(key, windows)
        new_tile = self.plan.bucket(time_us) not in windows.tiles
        bucket = windows.add(self.plan, time_us, inputs)
        windows.catch_up(self.plan, watermark * 1000)
        for leaving in leaving_times(self.plan, bucket) if new_tile else ():  # one timer per tile and window
            ctx.timer_service().register_event_time_timer(leaving // 1000)
        yield self._emit(key, windows)
        self._keep(windows)

    def on_timer(self, timestamp, ctx):
        if self.end_of_input_us is not None and timestamp * 1000 >= self.end_of_input_us:
            return  # a bounded job's input ended: the last watermark fires every timer, time stops at the cutoff
        stored = self.state.value()
        windows = None if stored is None else EntityWindows.from_state(stored)
        if windows is None or not windows.advance(self.plan, timestamp * 1000):
            return
        yield self._emit(ctx.get_current_key(), windows)
        self._keep(windows)

    def _keep(self, windows: EntityWindows) -> None:
        """Store the entity's state, or drop it once no window holds anything (its empty values are out)."""
        if windows.empty:
            self.state.clear()
        else:
            self.state.update(windows.to_state())


def create_windowed_features(t_env: StreamTableEnvironment, name: str, events_view: str, plan: WindowPlan,
                             key_dtype: str, complete_before: str | None, end_of_input: str | None = None) -> None:
    """Register `name` (key, aggregates, feature_ts) from the events of `events_view` (the key, the event time
    and the plan's inputs by name) through the window operator, and `<name>__late` (reason, record) with the
    events it refused as late. Events older than `complete_before` are replayed from the event log or were
    waiting at start: never judged late. A bounded job passes `end_of_input`: the departures from then on
    are not applied when its input ends."""
    declared = {c.name: c for c in describe(t_env, events_view)}
    plan = plan.typed({c.name: dtype_of_flink_column(c) for c in declared.values()})
    columns = [declared[plan.key], *(declared[name] for name in plan.inputs)]
    # Timestamps cross as text both ways: the DataStream conversion would cut them to milliseconds.
    texts = [i for i, c in enumerate(columns) if c.type_name == "TIMESTAMP"]
    events = t_env.to_data_stream(t_env.sql_query("SELECT " + ", ".join(
        f"CAST(`{c.name}` AS STRING) AS `{c.name}`" if i in texts else f"`{c.name}`" for i, c in enumerate(columns))
        + f" FROM `{events_view}`"))
    names = [plan.key, *(f.name for f in plan.features), EVENT_TIME_COLUMN]
    dtypes = [key_dtype, *(f.dtype for f in plan.features), "timestamp"]
    types = [Types.LONG() if dtype == "timestamp" else _DATASTREAM_TYPES[dtype] for dtype in dtypes]
    features = (events.key_by(lambda row: row[0], key_type=_DATASTREAM_TYPES[key_dtype])
                .process(WindowOperator(plan, complete_before, end_of_input, texts), output_type=Types.ROW_NAMED(names, types))
                # Its state maps by this name, whatever the graph around it. The name changed when the operator
                # moved into the JVM (thread mode): a savepoint of the worker-process operator keeps its entities
                # in a layout the new one does not read, so restoring one fails with the repair as its fix
                # (runner._fix_for) instead of resuming from empty windows.
                .uid(f"{name}__window_operator_in_jvm"))
    t_env.create_temporary_view(f"{name}__emitted", t_env.from_data_stream(features))
    t_env.create_temporary_view(name, t_env.sql_query("SELECT " + ", ".join(
        f"CAST(TO_TIMESTAMP_LTZ(`{column}`, 6) AS TIMESTAMP(6)) AS `{column}`" if dtype == "timestamp" else f"`{column}`"
        for column, dtype in zip(names, dtypes)) + f" FROM `{name}__emitted`"))
    t_env.create_temporary_view(f"{name}__late", t_env.from_data_stream(features.get_side_output(LATE)))
