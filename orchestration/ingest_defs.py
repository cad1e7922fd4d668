"""Dagster pairing of each streamed source's ingest (streaming/ingest.py): the `ingest/<source>` asset that
runs it, and the `<source>_event_log` sensor that turns the days it completes into the day's batch.

The ingest lands every valid event of the stream in the event log's landing area; a day is complete once
its watermark has passed the day's end by the source's `stream.lateness` (Flink's partition commit). The
sensor then requests the day's run of the daily job for `raw/<source>` (which loads the landed day,
eventlog/landing.py) and for the feature tables and publishes that read the source, so the daily features
are computed from exactly the events the streams read. A complete day whose files change after its load
(an event later than the lateness) is loaded and computed again, with the following days whose windows
hold it, up to the newest complete day.
"""

import hashlib
from datetime import date, timedelta

import dagster as dg

from assets.registry import Registry
from assets.specs import Source
from eventlog.landing import LandedDay, landed_days
from infra.settings import Settings
from orchestration.stages import stage_asset
from streaming import ingest, runner
from streaming.status import ingest_status

SENSOR_INTERVAL_S = 30


def ingest_asset(settings: Settings, source: Source) -> dg.AssetsDefinition:
    """`ingest/<source>`: the source's running ingest job; materializing it (re)starts the job."""

    @dg.asset(
        **stage_asset("ingest", source.name, "flink"),
        group_name="sources",
        owners=[source.owner],
        description=f"The Flink job landing every valid {source.name} event in the event log, exactly once "
                    f"(a day is complete {source.stream.lateness} after its end).",
        metadata={"landing": str(ingest.landing_directory(settings, source))},
    )
    def ingest_job(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        process = runner.running_job(settings, source) or ingest.start(settings, source)
        context.log.info(f"{source.name} ingest runs, pid {process.pid}, resumed from {process.restored_from}")
        return dg.MaterializeResult(metadata={"pid": process.pid, "flink_rest": f"http://{process.rest}",
                                              "restored_from": process.restored_from or "nothing (first start)"})

    return ingest_job


def readers_of(registry: Registry, source: Source) -> list[dg.AssetKey]:
    """The daily assets a source's landed day feeds: its raw table and the feature tables and publishes
    of every group that reads it."""
    return [dg.AssetKey(["raw", source.name]), *(dg.AssetKey([layer, g.name]) for g in registry.groups.values()
                                                 if source.name in g.sources for layer in ("features", "online"))]


def ingested_sources(registry: Registry, settings: Settings) -> list[Source]:
    """The sources whose ingest has run: their days are run by their event-log sensors once complete."""
    return [s for s in registry.sources.values() if s.stream and runner.last_job(settings, s) is not None]


def batch_reruns(day: LandedDay, complete: list[str], window_days: int | None) -> list[str]:
    """The days after `day` whose batch windows hold it, up to the newest `complete` day, when `day` is loaded
    again (events landed after its load): `window_days` None reads every earlier day (a lifetime group)."""
    if day.loaded_files is None or not complete:
        return []
    last = date.fromisoformat(max(complete))
    first = date.fromisoformat(day.ds) + timedelta(days=1)
    end = last if window_days is None else min(last, first + timedelta(days=window_days - 2))
    return [(first + timedelta(days=n)).isoformat() for n in range((end - first).days + 1)]


def event_log_sensor(registry: Registry, settings: Settings, source: Source, job: dg.JobDefinition,
                     partitions: dg.PartitionsDefinition) -> dg.SensorDefinition:
    """`<source>_event_log`: runs each landed day's batch once the ingest has completed it (see the module)."""
    raw, *features = readers_of(registry, source)
    windows = [g.sources[source.name].window_days for g in registry.groups.values() if source.name in g.sources]
    window_days = None if "all" in windows else max(windows, default=1)

    @dg.sensor(name=f"{source.name}_event_log", job=job, minimum_interval_seconds=SENSOR_INTERVAL_S,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Loads each day the {source.name} ingest completed into raw/{source.name} and runs "
                           "the day's features from it (again, with the days after, when late events land).")
    def event_log(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        if runner.last_job(settings, source) is None:
            return dg.SkipReason(f"the {source.name} ingest never ran: materialize ingest/{source.name}")
        days = landed_days(settings, source)
        complete = [d.ds for d in days if d.complete]
        waiting = [d for d in days if d.complete and not d.loaded and partitions.has_partition_key(d.ds)]
        requests = []
        for day in waiting:
            landed = hashlib.sha256("\n".join(day.files).encode()).hexdigest()[:16]  # one run per landed content
            requests.append(dg.RunRequest(run_key=f"{source.name}:{day.ds}:{landed}", partition_key=day.ds,
                                          asset_selection=[raw, *features],
                                          tags={"landed_events": str(day.rows)}))
            requests += [dg.RunRequest(run_key=f"{source.name}:{ds}:after:{day.ds}:{landed}", partition_key=ds,
                                       asset_selection=features)
                         for ds in batch_reruns(day, complete, window_days) if partitions.has_partition_key(ds)]
        status = ingest_status(settings, source)
        observation = dg.AssetObservation(asset_key=dg.AssetKey(["ingest", source.name]), metadata={
            "state": status.state, "cause": status.cause or "-", "watermark": str(status.watermark or "-"),
            "lag_seconds": dg.MetadataValue.float(status.lag_seconds if status.lag_seconds is not None else -1.0),
            "dead_letters": status.dead_letters, "complete_days": len(complete),
            "events_by_day": dg.MetadataValue.json({d.ds: d.rows for d in days}),
            "days_to_load": ", ".join(d.ds for d in waiting) or "none"})
        return dg.SensorResult(run_requests=requests, asset_events=[observation])

    return event_log
