"""The daily schedule: yesterday's (UTC) partition of every group, at the configured hour and time zone."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from assets.registry import DEFAULT_ROOT, load_registry
from infra.errors import PlatformError
from infra.settings import load_settings
from orchestration.factory import DAILY_JOB, DAILY_SCHEDULE, build_definitions
from orchestration.runs import dagster_instance


@pytest.fixture(scope="module")
def instance(settings):
    """The session's persistent instance (a schedule context needs one)."""
    return dagster_instance(settings)


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, when: datetime):
    schedule = defs.resolve_schedule_def(DAILY_SCHEDULE)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                        repository_def=defs.get_repository_def())
    return schedule.evaluate_tick(context)


def _request(defs: dg.Definitions, instance: dg.DagsterInstance, when: datetime) -> dg.RunRequest:
    data = _tick(defs, instance, when)
    assert data.skip_message is None, data.skip_message
    [request] = data.run_requests
    return request


def _targeted(defs: dg.Definitions, request: dg.RunRequest) -> set[str]:
    job = defs.resolve_job_def(request.job_name or DAILY_JOB)
    keys = request.asset_selection or job.asset_layer.executable_asset_keys
    return {k.to_user_string() for k in keys}


def test_the_run_request_targets_every_groups_previous_day(registry, settings, instance):
    defs = build_definitions(registry, settings)
    schedule = defs.resolve_schedule_def(DAILY_SCHEDULE)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "UTC")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    request = _request(defs, instance, datetime(2026, 1, 10, 2, 0, tzinfo=timezone.utc))
    assert request.partition_key == "2026-01-09"
    expected = {f"{kind}/{g}" for g in registry.groups for kind in ("features", "online")}
    expected |= {f"raw/{s}" for s in registry.sources} | {f"served/{s}" for s in registry.services}
    assert _targeted(defs, request) == expected


def test_hour_and_time_zone_come_from_settings_and_partitions_stay_utc_days(registry, settings, instance):
    auckland = settings.model_copy(update={"schedule_hour": 1, "schedule_timezone": "Pacific/Auckland"})
    defs = build_definitions(registry, auckland)
    schedule = defs.resolve_schedule_def(DAILY_SCHEDULE)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 1 * * *", "Pacific/Auckland")
    # 01:00 on 10 January in Auckland is 12:00 UTC on 9 January: the last whole UTC day is the 8th.
    request = _request(defs, instance, datetime(2026, 1, 10, 1, 0, tzinfo=ZoneInfo("Pacific/Auckland")))
    assert request.partition_key == "2026-01-08"


def test_the_days_of_an_ingested_source_are_left_to_its_event_log_sensor(registry, settings, instance, tmp_path):
    """Once upvote_events has an ingest (its job record stands in for a run of it here), the schedule leaves
    raw/upvote_events and every group reading it to the sensor that runs a day when the ingest completes it;
    with both sources ingested it has nothing left but the served logs."""
    from dataclasses import asdict

    from streaming.codegen import job_dir
    from streaming.runner import JobProcess

    own = settings.model_copy(update={"data_dir": tmp_path})
    for name in ("upvote_events", "post_events"):
        directory = job_dir(own, registry.sources[name])
        directory.mkdir(parents=True)
        (directory / "job.json").write_text(json.dumps(asdict(JobProcess(name, 1, "127.0.0.1:1", None, 0.0, None))))
        request = _request(build_definitions(registry, own), instance, datetime(2026, 1, 10, 2, tzinfo=timezone.utc))
        readers = {g for g, spec in registry.groups.items() if name in spec.sources}
        assert not {f"raw/{name}", *(f"{kind}/{g}" for g in readers for kind in ("features", "online"))} & _targeted(
            build_definitions(registry, own), request)
    assert _targeted(build_definitions(registry, own), request) == {f"served/{s}" for s in registry.services}


def test_a_tick_before_the_first_partition_is_skipped(registry, settings, instance):
    data = _tick(build_definitions(registry, settings), instance, datetime(2026, 1, 1, 2, tzinfo=timezone.utc))
    assert data.run_requests == [] and "before the first partition (2026-01-01)" in data.skip_message


def test_a_new_group_folder_is_scheduled_without_code_changes(settings, instance, tmp_path):
    root = tmp_path / "assets"
    shutil.copytree(DEFAULT_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "features" / "user_upvotes", root / "features" / "user_upvotes_daily")
    defs = build_definitions(load_registry(root), settings)
    request = _request(defs, instance, datetime(2026, 1, 10, 2, tzinfo=timezone.utc))
    assert {"features/user_upvotes_daily", "online/user_upvotes_daily"} <= _targeted(defs, request)


def test_an_unknown_time_zone_is_a_settings_error(monkeypatch):
    monkeypatch.setenv("FP_SCHEDULE_TIMEZONE", "Mars/Olympus")
    with pytest.raises(PlatformError, match="schedule_timezone: 'Mars/Olympus' is not an IANA time zone"):
        load_settings()
