"""What a generated run.py calls: the Flink environment, the injection sink, the contract check, UDFs.

The generated job holds the author's SQL; everything platform-owned lives here so that a fix to
injection or dead-lettering reaches every job on its next build without touching feature folders.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
from pyflink.table.udf import ScalarFunction, TableFunction, udf, udtf

FLINK_TYPES = {"int32": DataTypes.INT(), "int64": DataTypes.BIGINT(), "float64": DataTypes.DOUBLE(),
               "string": DataTypes.STRING(), "bool": DataTypes.BOOLEAN(), "timestamp": DataTypes.TIMESTAMP(6),
               "date": DataTypes.DATE()}


@dataclass(frozen=True)
class JobArgs:
    """Run-time arguments of a job: where Redis is, which REST port to serve, what state to resume."""

    redis_url: str
    rest_port: int | None
    restore: str | None
    cluster_redis: bool


def parse_args(argv: list[str]) -> JobArgs:
    """Arguments the runner passes to run.py (see streaming/runner.py)."""
    parser = argparse.ArgumentParser(description="A feature group's streaming job.")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--rest-port", type=int, default=None, help="local mini-cluster REST port")
    parser.add_argument("--restore", default=None, help="savepoint or retained checkpoint to resume from")
    parser.add_argument("--redis-cluster", action="store_true")
    ns = parser.parse_args(argv)
    return JobArgs(ns.redis_url, ns.rest_port, ns.restore, ns.redis_cluster)


def table_environment(name: str, args: JobArgs, checkpoint_dir: Path, checkpoint_seconds: int, flush_ms: int,
                      flink_rest: str | None) -> TableEnvironment:
    """A streaming TableEnvironment: checkpoints retained on cancel, resumed from `args.restore` if given.

    Locally it is a mini-cluster inside this process serving Flink's REST API on 127.0.0.1:`rest_port`;
    with `flink_rest` (host:port) the job is submitted to that cluster instead.
    """
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    settings = {
        "pipeline.name": name,
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "table.local-time-zone": "UTC",
        "execution.checkpointing.interval": f"{checkpoint_seconds}s",
        "execution.checkpointing.dir": checkpoint_dir.resolve().as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        "python.fn-execution.bundle.time": str(flush_ms),
        "python.fn-execution.bundle.size": "5000",
        "python.fn-execution.arrow.batch.size": "5000",
        "metrics.fetcher.update-interval": "1000",  # REST metrics (records, watermarks) at most 1 s old
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "3",
        "restart-strategy.fixed-delay.delay": "2s",
    }
    if flink_rest:
        host, _, port = flink_rest.partition(":")
        settings.update({"execution.target": "remote", "rest.address": host, "rest.port": port or "8081"})
    else:
        settings.update({"parallelism.default": "1", "rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1",
                         "rest.port": str(args.rest_port or 0)})
    if args.restore:
        settings["execution.state-recovery.path"] = args.restore
    for key, value in settings.items():
        conf.set(key, value)
    return t_env


class InjectFeatures(ScalarFunction):
    """Injection: writes each Arrow batch of feature rows to Redis through the guarded batched writer.

    A vectorized UDF in front of a primary-keyed blackhole sink, so the planner hands it inserts and
    update-afters only. Flink finishes the Python bundle before a checkpoint barrier passes, so every
    row before a completed checkpoint is in Redis; rows after it are replayed on restore and the
    event-time guard makes the replay idempotent.
    """

    def __init__(self, plan, redis_url: str, cluster: bool):
        self.plan = plan
        self.redis_url = redis_url
        self.cluster = cluster
        self.store = None

    def open(self, function_context):
        from serving.online_store import OnlineStore, connect

        self.store = OnlineStore(connect(self.redis_url, self.cluster))

    def eval(self, *columns):
        import pandas as pd
        import pyarrow as pa

        from serving.codec import encode_column
        from serving.online_store import EVENT_TIME_COLUMN

        names = [self.plan.key_column, *(name for name, _ in self.plan.features), EVENT_TIME_COLUMN]
        batch = pa.Table.from_pandas(pd.DataFrame(dict(zip(names, columns))), preserve_index=False)
        landed = self.store.write(self.plan, batch)
        newest = max((v for v in encode_column("timestamp", batch.column(EVENT_TIME_COLUMN)) if isinstance(v, int)),
                     default=0)
        self.store.record_progress(self.plan, batch.num_rows, landed, newest, int(time.time() * 1000))
        return pd.Series([landed] * batch.num_rows, dtype="int64")

    def close(self):
        if self.store is not None:
            self.store.client.close()


def injector(plan, redis_url: str, cluster: bool):
    """The injection UDF for `plan`'s group version (see InjectFeatures)."""
    return udf(InjectFeatures(plan, redis_url, cluster), result_type=DataTypes.BIGINT(), func_type="pandas")


class ContractViolations(TableFunction):
    """Emits the reason a raw stream record breaks its source contract, or nothing when it is valid."""

    def __init__(self, source):
        self.source = source

    def eval(self, line: str):
        from quality.contracts import record_violation

        reason = record_violation(self.source, line)
        if reason is not None:
            yield reason


def contract_violations(source):
    """The dead-letter check UDTF for one source contract."""
    return udtf(ContractViolations(source), result_types=[DataTypes.STRING()])


def group_udf(udf_path: str, name: str, returns: str):
    """A function from a group's udf.py as a Flink scalar UDF, registered by its name."""
    spec = importlib.util.spec_from_file_location(f"feature_udfs_{Path(udf_path).parent.name}", udf_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return udf(getattr(module, name), result_type=FLINK_TYPES[returns])
