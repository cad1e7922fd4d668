"""Dagster pairing of each group's streaming job: a `stream/<group>` asset with its consistency check, the
`history/<group>` asset, and a health sensor.

Materializing `stream/<group>` makes sure the group's Flink job runs: it starts or resumes it as its own
process (never inside Dagster). The sensor reads Flink's REST API and the injector's progress markers on
every tick, records an observation on the asset (state, lag, rows/s, watermark, checkpoint, problems), raises
one alert per incident through the platform's alert sinks (log, `<data_dir>/alerts/streams.jsonl`, webhook)
when the job failed (with its cause), stopped, restarts, or is staler than the group's freshness target,
and requests a run of the asset to restart a job that failed (one stopped on purpose stays stopped), until
MAX_CRASHES_WITHOUT_PROGRESS launches in a row failed without getting further: then it alerts and waits.
"""

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
from dagster_pyspark import PySparkResource

from assets.offline_layout import streamed_table
from assets.registry import Registry
from assets.specs import FeatureGroup
from infra.redis_server import lasting_online_store_url
from infra.settings import Settings
from offline.streamed_history import load_streamed_history
from orchestration.resources import OnlineStoreResource
from orchestration.stages import stage_asset
from quality.alerts import AlertSinks
from streaming import runner
from streaming.status import StreamStatus, stream_status

SENSOR_INTERVAL_S = 30
MAX_CRASHES_WITHOUT_PROGRESS = 3  # then the sensor stops restarting the job and raises a `gave_up` alert
CRASH_KEYS = ("crashes", "crash_reached", "crashed_start")
STREAM_ALERT_FILE = Path("alerts") / "streams.jsonl"


def _redis_url(online_store: OnlineStoreResource) -> str:
    return lasting_online_store_url(online_store.url, Path(online_store.local_dir))


def stream_asset(registry: Registry, settings: Settings, group: FeatureGroup) -> dg.AssetsDefinition:
    """`stream/<group>`: the group's running Flink job; materializing it (re)starts the job."""

    @dg.asset(
        **stage_asset("stream", group.name, "flink", "redis"),
        deps=[dg.AssetKey(["raw", table]) for table in group.stream.source_tables],
        group_name=group.name,
        owners=[group.owner],
        tags={"entity": group.entity, **group.tags},
        description=f"The Flink job keeping {group.name} v{group.version} fresh in Redis between batch runs.",
        metadata={"transform.sql": dg.MetadataValue.md(f"```sql\n{group.stream.transform_sql.strip()}\n```"),
                  "freshness_target": str(group.freshness or "none")},
    )
    def stream(context: dg.AssetExecutionContext, online_store: OnlineStoreResource,
               spark: PySparkResource) -> dg.MaterializeResult:
        process = runner.running_job(settings, group)
        if process is None:  # a first start replays the event log through Spark (streaming/bootstrap.py)
            first = runner.latest_restore_point(settings, group) is None
            process = runner.start(registry, settings, group, _redis_url(online_store),
                                   spark=spark.spark_session if first else None)
            context.log.info(f"started {group.name} stream, pid {process.pid}, resumed from {process.restored_from}")
        return dg.MaterializeResult(metadata={"pid": process.pid, "flink_rest": f"http://{process.rest}",
                                              "restored_from": process.restored_from or "nothing (first start)"})

    return stream


def stream_repair_job(registry: Registry, settings: Settings, group: FeatureGroup) -> dg.JobDefinition:
    """`<group>_stream_repair`: `featctl stream repair <group>` as a job the UI launches (streaming/repair.py):
    the group's online values and streamed history derived again from the event log and the batch tables."""

    @dg.op(name=f"{group.name}_repair", description=f"Derive {group.name}'s online values again; other groups untouched.")
    def repair_group(context: dg.OpExecutionContext, online_store: OnlineStoreResource,
                     spark: PySparkResource) -> dg.Output:
        from streaming.repair import repair

        result = repair(spark.spark_session, registry, settings, group, _redis_url(online_store))
        context.log.info(f"{group.name}: {result.changed} of {result.entities} entities changed")
        return dg.Output(None, metadata={"entities": result.entities, "changed": result.changed,
                                         "republished": result.republished or "none"})

    @dg.job(name=f"{group.name}_stream_repair",
            description=f"Repair {group.name} v{group.version} after its online values were corrupted: republish "
                        "its newest batch partition and restart its stream from the event log.")
    def repair_job():
        repair_group()

    return repair_job


def stream_consistency_check(registry: Registry, settings: Settings, group: FeatureGroup) -> dg.AssetChecksDefinition:
    """`consistency` on `stream/<group>`: the event log's newest day through batch.sql and through a fresh
    copy of the Flink job (streaming/consistency.py), with the differing values as metadata, so the asset
    page shows the latest diff. It runs when the asset is materialized from the UI, not on restarts."""

    @dg.asset_check(asset=dg.AssetKey(["stream", group.name]), name="consistency", blocking=False,
                    description=f"Batch and stream of {group.name} give the same values for the event log's newest day.")
    def consistency(spark: PySparkResource) -> dg.AssetCheckResult:
        from assets.offline_layout import table_partitions
        from streaming.consistency import check_consistency

        days = table_partitions(spark.spark_session, registry.sources[group.stream.source_tables[0]].table)
        if not days:
            return dg.AssetCheckResult(passed=False, metadata={"reason": "the event log has no partition to replay yet"})
        report = check_consistency(spark.spark_session, registry, settings, group, days[-1])
        shown = "\n".join(f"- {line}" for line in report.differences[:20]) or "none"
        return dg.AssetCheckResult(passed=report.consistent, metadata={
            "ds": days[-1], "entities": report.entities, "events": report.events,
            "differing_values": len(report.differences), "differences": dg.MetadataValue.md(shown)})

    return consistency


def stream_history_asset(registry: Registry, group: FeatureGroup) -> dg.AssetsDefinition:
    """`history/<group>`: the values the group's stream landed in Redis, loaded into the offline history
    that training sets join (materializing it moves what was landed since the last load)."""
    table = streamed_table(group)

    @dg.asset(
        **stage_asset("history", group.name, "redis", "spark", "hive"),
        deps=[dg.AssetKey(["stream", group.name])],
        group_name=group.name,
        owners=[group.owner],
        tags={"entity": group.entity, **group.tags},
        description=f"Every value the {group.name} v{group.version} stream landed in Redis, in {table} "
                    "(training sets join it with the batch history).",
        metadata={"table": table},
    )
    def history(context: dg.AssetExecutionContext, online_store: OnlineStoreResource,
                spark: PySparkResource) -> dg.MaterializeResult:
        rows = load_streamed_history(spark.spark_session, registry, group, _redis_url(online_store),
                                     online_store.prefix)
        context.log.info(f"loaded {rows} streamed rows of {group.name} into {table}")
        return dg.MaterializeResult(metadata={"rows_loaded": rows, "table": table})

    return history


@dataclass(frozen=True)
class StreamAlert:
    """A problem with a group's Flink job, raised once per problem kind and job start (not per sensor tick)."""

    group: str
    problem: str  # "down", "state" or "lagging"
    job_started_at: float
    text: str
    state: str
    lag_seconds: float | None

    @property
    def fingerprint(self) -> str:
        """Identifies the incident: the same problem of the same running job is one alert."""
        return hashlib.sha256(f"stream:{self.group}:{self.problem}:{self.job_started_at}".encode()).hexdigest()[:16]

    def message(self) -> str:
        """One line for a log or a chat channel."""
        return self.text

    def payload(self) -> dict:
        """The JSON document written to the alert file and POSTed to the webhook."""
        return {"fingerprint": self.fingerprint, "kind": "stream", "name": self.group, "problem": self.problem,
                "message": self.text, "state": self.state, "lag_seconds": self.lag_seconds,
                "job_started_at": datetime.fromtimestamp(self.job_started_at, timezone.utc).isoformat(),
                "detected_at": datetime.now(timezone.utc).isoformat()}


def stream_alerts(group: FeatureGroup, job: runner.JobProcess, status: StreamStatus,
                  gave_up: bool = False) -> list[StreamAlert]:
    """What is wrong with the group's job right now: failed (and whether restarts gave up), stopped,
    not running, or lagging past the freshness target."""
    def alert(problem: str, text: str) -> StreamAlert:
        return StreamAlert(group.name, problem, job.started_at, text, status.state, status.lag_seconds)

    if status.state == "FAILED" and gave_up:
        return [alert("gave_up", f"{group.name} stream FAILED {MAX_CRASHES_WITHOUT_PROGRESS} times in a row without "
                                 f"writing a row, not restarting it again: {status.cause} (fix the cause, then "
                                 f"materialize stream/{group.name})")]
    if status.state == "FAILED":
        return [alert("down", f"{group.name} stream FAILED: {status.cause}")]
    if status.state == "STOPPED":
        return [alert("down", f"{group.name} stream is down: stopped on purpose")]
    if status.state == "BOOTSTRAPPING":  # a first start replaying the event log: readers get the batch values
        return []
    if status.state != "RUNNING":
        return [alert("state", f"{group.name} stream is {status.state}"
                               + (f": {status.cause}" if status.cause else ""))]
    if group.freshness and status.lag_seconds is not None and status.lag_seconds > group.freshness.total_seconds():
        return [alert("lagging", f"{group.name} stream is lagging: input has waited {status.lag_seconds:.0f} s for "
                                 f"Redis, freshness target {group.freshness.total_seconds():.0f} s")]
    return []


def crash_count(previous: dict, job: runner.JobProcess, status: StreamStatus) -> dict:
    """The sensor's crash record after this tick: how many launches in a row failed without the stream
    getting past the newest event time it had written (a crash loop on the same input; a restored job
    replays what came after its checkpoint, so rows written alone would look like progress). Each
    failed launch is counted once, however many ticks see it."""
    kept = {k: previous[k] for k in CRASH_KEYS if k in previous}
    if status.state != "FAILED" or kept.get("crashed_start") == job.started_at:
        return kept
    reached = status.max_event_time.isoformat() if status.max_event_time else None
    in_a_row = kept.get("crashes", 0) + 1 if "crashes" in kept and kept.get("crash_reached") == reached else 1
    return {"crashes": in_a_row, "crash_reached": reached, "crashed_start": job.started_at}


def stream_sensor(registry: Registry, settings: Settings, group: FeatureGroup) -> dg.SensorDefinition:
    """The health sensor paired with `stream/<group>`."""
    asset_key = dg.AssetKey(["stream", group.name])
    sinks = AlertSinks.for_settings(settings, STREAM_ALERT_FILE)

    @dg.sensor(name=f"{group.name}_stream_health", minimum_interval_seconds=SENSOR_INTERVAL_S,
               asset_selection=[asset_key], default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Watches the {group.name} Flink job: observations, alerts, restart after a crash.")
    def health(context: dg.SensorEvaluationContext, online_store: OnlineStoreResource) -> dg.SensorResult:
        last = runner.last_job(settings, group)
        if last is None:
            return dg.SensorResult(skip_reason=f"{group.name} stream never started: materialize {asset_key.to_user_string()}")
        status = stream_status(registry, settings, group, _redis_url(online_store))
        previous = json.loads(context.cursor) if context.cursor else {}
        now = time.time()
        elapsed = now - previous.get("at", now)
        rate = (status.rows_written - previous.get("rows", 0)) / elapsed if elapsed > 0 else None
        crashes = crash_count(previous, last, status)
        gave_up = status.state == "FAILED" and crashes.get("crashes", 0) >= MAX_CRASHES_WITHOUT_PROGRESS
        alerts = stream_alerts(group, last, status, gave_up)
        metadata = {
            "state": status.state, "rows_written": status.rows_written, "rows_landed": status.rows_landed,
            "dead_letters": status.dead_letters,
            "lag_seconds": dg.MetadataValue.float(status.lag_seconds if status.lag_seconds is not None else -1.0),
            "rows_per_second": dg.MetadataValue.float(rate if rate is not None else 0.0),
            "watermark": str(status.watermark or "-"), "last_checkpoint": str(status.last_checkpoint or "-"),
            "max_event_time": str(status.max_event_time or "-"), "healthy": not alerts,
            "problems": "; ".join(a.message() for a in alerts) or "none", "cause": status.cause or "-",
            "crashes_in_a_row": crashes.get("crashes", 0) if status.state == "FAILED" else 0,
            "replayed": status.bootstrap_progress() or "-",
        }
        for alert in alerts:
            sinks.send(alert, context.log)
        context.update_cursor(json.dumps({"at": now, "rows": status.rows_written, **crashes}))
        # One restart per failed launch (the run key names the launch), none once restarts gave up.
        restart = [dg.RunRequest(run_key=f"restart-{group.name}-{last.started_at}", asset_selection=[asset_key],
                                 asset_check_keys=[])  # a restart is not a consistency run
                   ] if status.state == "FAILED" and not gave_up else []
        return dg.SensorResult(asset_events=[dg.AssetObservation(asset_key=asset_key, metadata=metadata)],
                               run_requests=restart)

    return health
