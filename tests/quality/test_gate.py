"""The quality gate end to end: real Spark, Great Expectations, Dagster runs and Redis.

A clean partition passes and publishes. An upstream that renames a column, writes a string where the
contract has an integer, or leaves entity keys null is stopped at `raw/<source>`; a feature query that
produces a negative count is stopped at `features/<group>`, and a bad day also stops every later window
that reads it. Either way `online/<group>` does not run
for that partition, Redis stays byte-identical, and each schema change raises exactly one alert.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import dagster as dg
import pytest
import redis

from infra.errors import PlatformError
from orchestration.factory import build_definitions
from orchestration.runs import run_partition
from quality.gate import check_source_partition
from quality.alerts import ALERT_FILE
from tests.quality.conftest import QA_GROUP, run_daily, upstream_rewrite
from tests.reference import user_upvotes

pytestmark = pytest.mark.usefixtures("qa_event_log")

CLEAN, BAD = "2026-01-09", "2026-01-10"
ASSETS = ["raw/upvote_events", f"features/{QA_GROUP}", f"online/{QA_GROUP}"]
RAW_CHECK, FEATURE_CHECK = "raw/upvote_events:contract", f"features/{QA_GROUP}:expectations"


def _renamed(table: pa.Table) -> pa.Table:
    return table.rename_columns(["userid" if n == "user_id" else n for n in table.column_names])


def _post_id_as_string(table: pa.Table) -> pa.Table:
    index = table.schema.get_field_index("post_id")
    return table.set_column(index, "post_id", table.column(index).cast(pa.string()))


def _null_user_ids(table: pa.Table) -> pa.Table:
    ids = table.column("user_id").to_pylist()
    ids[::100] = [None] * len(ids[::100])
    return table.set_column(table.schema.get_field_index("user_id"), "user_id", pa.array(ids, pa.int64()))


def _split_files_one_with_string_post_ids(table: pa.Table) -> list[pa.Table]:
    return [table.slice(0, 1000), _post_id_as_string(table.slice(1000))]


def _added_client_column(table: pa.Table) -> pa.Table:
    return table.append_column("client", pa.array(["ios"] * table.num_rows))


def _events_a_day_late(table: pa.Table) -> pa.Table:
    index = table.schema.get_field_index("event_time")
    late = pc.add(table.column(index), pa.scalar(86_400_000_000, pa.duration("us")))
    return table.set_column(index, "event_time", late)


INJECTIONS = {
    "renamed column": (_renamed, ["removed user_id (bigint)", "added userid (bigint)"],
                       "expect_table_columns_to_match_set"),
    "int to string": (_post_id_as_string, ["retyped post_id: bigint -> string"],
                      "expect_column_values_to_be_of_type"),
    "nulls in the entity key": (_null_user_ids, ["nullability changed user_id: declared non-null, found 30 nulls"],
                                "expect_column_values_to_not_be_null"),
}


# Reported by the contract check alone: (change, problem, schema changes, failed expectations).
PARTITION_CASES = {
    "files that disagree": (_split_files_one_with_string_post_ids,
                            "the files of qa_raw.upvote_events ds=2026-01-10 disagree on column types",
                            ["retyped post_id: bigint -> bigint|string"], set()),
    "an added column": (_added_client_column, None, ["added client (string)"], {"expect_table_columns_to_match_set"}),
    "events of another day": (_events_a_day_late, None, [], {"expect_column_values_to_be_between"}),
}


@pytest.fixture(scope="module")
def defs(qa_registry, settings):
    return build_definitions(qa_registry, settings)


@pytest.fixture(scope="module")
def store(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture(scope="module")
def clean_run(defs, store):
    """The clean partition CLEAN through the gate: what Redis holds before any bad partition arrives."""
    return run_daily(defs, CLEAN, ASSETS)


def _snapshot(client) -> dict:
    return {key: client.hgetall(key) for key in sorted(client.keys("*"))}


def _alerts(settings) -> list[dict]:
    path = settings.data_dir / ALERT_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _metadata(evaluation) -> dict:
    return {key: value.value for key, value in evaluation.metadata.items()}


def test_a_clean_partition_passes_and_publishes(clean_run, store, sample, settings):
    assert clean_run.success
    assert set(clean_run.checks) == {RAW_CHECK, FEATURE_CHECK, f"online/{QA_GROUP}:freshness"}
    assert all(evaluation.passed for evaluation in clean_run.checks.values())
    assert clean_run.materialized == set(ASSETS)
    users = user_upvotes(sample, CLEAN)
    published = [k for k in store.keys(f"{settings.redis_prefix}:user:*") if store.hexists(k, f"{QA_GROUP}:v1:upvotes_7d")]
    assert len(published) == len(users) > 10
    features = _metadata(clean_run.checks[FEATURE_CHECK])
    assert features["dagster/row_count"] == len(users)
    assert features["failed"] == 0 and features["expectations"] >= 10
    assert features["schema_changes"] == "none"


@pytest.mark.parametrize("injection", sorted(INJECTIONS))
def test_a_bad_raw_partition_is_blocked_and_alerted_once(injection, clean_run, defs, spark, qa_registry, sample,
                                                         store, settings):
    change, expected_changes, failed_expectation = INJECTIONS[injection]
    before, alerts_before = _snapshot(store), _alerts(settings)
    with upstream_rewrite(spark, qa_registry, sample, "upvote_events", BAD, change):
        outcomes = [run_daily(defs, BAD, ASSETS) for _ in range(2)]  # the same bad partition, run twice

    for outcome in outcomes:
        assert not outcome.success
        assert outcome.materialized == {"raw/upvote_events"}, "features and online must not run"
        contract = outcome.checks[RAW_CHECK]
        assert not contract.passed
        metadata = _metadata(contract)
        assert failed_expectation in {f["expectation"] for f in metadata["failed_expectations"]}
        assert "\n".join(f"- {line}" for line in expected_changes) == metadata["schema_changes"]
        assert contract.description.startswith("; ".join(expected_changes) + f"; failed: {failed_expectation}")
        assert metadata["sample_rows"].count("\n") >= 3, "a header, a separator and offending rows"
    assert _snapshot(store) == before

    new_alerts = _alerts(settings)[len(alerts_before):]
    assert len(new_alerts) == 1
    alert = new_alerts[0]
    assert (alert["kind"], alert["name"], alert["partition"]) == ("source", "upvote_events", BAD)
    assert alert["changes"] == expected_changes
    assert alert["blocked_assets"] == [f"features/{QA_GROUP}", f"online/{QA_GROUP}"]


def test_a_negative_count_blocks_the_publish_without_an_alert(clean_run, qa_registry, settings, store):
    group = qa_registry.groups[QA_GROUP]  # a bug no render would write, so the query is changed in memory
    negative = group.model_copy(update={"batch_sql": group.batch_sql.replace(
        "THEN 1 END) AS `upvotes_1d`", "THEN 1 END) - 2 * COUNT(*) AS `upvotes_1d`")})
    buggy = build_definitions(replace(qa_registry, groups={**qa_registry.groups, QA_GROUP: negative}), settings)
    before, alerts_before = _snapshot(store), _alerts(settings)

    outcome = run_daily(buggy, BAD, ASSETS)

    assert not outcome.success
    assert outcome.checks[RAW_CHECK].passed
    assert not outcome.checks[FEATURE_CHECK].passed
    assert f"online/{QA_GROUP}" not in outcome.materialized
    failures = _metadata(outcome.checks[FEATURE_CHECK])["failed_expectations"]
    negative = next(f for f in failures if f["column"] == "upvotes_1d")
    assert negative["expectation"] == "expect_column_values_to_be_between"
    assert negative["declared"]["min_value"] == 0
    assert negative["unexpected_count"] > 0 and all(v < 0 for v in negative["observed"])
    assert all(row["upvotes_1d"] < 0 for row in negative["sample_rows"]) and len(negative["sample_rows"]) == 10
    assert outcome.checks[FEATURE_CHECK].description == (
        f"failed: expect_column_values_to_be_between on upvotes_1d ({negative['unexpected_count']} rows)")
    with pytest.raises(PlatformError, match=rf"failed checks: features/{QA_GROUP}:expectations ds={BAD}: failed: "
                                            r"expect_column_values_to_be_between on upvotes_1d \(\d+ rows\)"):
        run_partition(buggy, BAD, assets=ASSETS)  # what featctl materialize prints
    assert _snapshot(store) == before
    assert _alerts(settings) == alerts_before


@pytest.mark.parametrize("case", sorted(PARTITION_CASES))
def test_the_contract_check_reads_what_the_files_say(case, spark, qa_registry, sample):
    change, problem, changes, failed = PARTITION_CASES[case]
    source = qa_registry.sources["upvote_events"]
    with upstream_rewrite(spark, qa_registry, sample, "upvote_events", BAD, change):
        report = check_source_partition(spark, source, BAD)
    assert not report.passed
    assert report.problem == problem
    assert report.schema_diff.lines() == changes
    assert {f.expectation for f in report.failures} == failed


def test_a_bad_source_day_blocks_every_window_that_reads_it(clean_run, defs, spark, qa_registry, sample, store):
    """The group's 7-day window for CLEAN reads the day before it: while that day fails its contract, CLEAN's
    features are not computed even though CLEAN's own raw partition passes; its repair and check unblock it."""
    bad_day = "2026-01-08"
    before = _snapshot(store)
    with dg.instance_for_test() as instance:
        with upstream_rewrite(spark, qa_registry, sample, "upvote_events", bad_day, _renamed):
            assert not run_daily(defs, bad_day, ASSETS, instance).success
            later = run_daily(defs, CLEAN, ASSETS, instance)
        assert not later.success
        assert later.checks[RAW_CHECK].passed
        assert later.materialized == {"raw/upvote_events"}
        error = later.errors[f"features__{QA_GROUP}"]
        assert f"ds={CLEAN} reads raw/upvote_events ds={bad_day}" in error
        assert _snapshot(store) == before

        assert not run_daily(defs, CLEAN, [f"features/{QA_GROUP}"], instance).success, "repaired, not yet checked"
        assert run_daily(defs, bad_day, ["raw/upvote_events"], instance).checks[RAW_CHECK].passed
        assert run_daily(defs, CLEAN, ASSETS, instance).success
    assert _snapshot(store) == before, "the same values again: the republished partition changes nothing"


def _every_kind_of_bad_row(table: pa.Table) -> pa.Table:
    """The stream's bad kinds that a typed raw partition can hold, in separate rows: a missing or null
    id, event id or event time (a null in Parquet), and an event time outside the partition's day."""
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for column, rows in BAD_ROWS.items():
        for row in rows:
            if column == "late event_time":
                columns["event_time"][row] = columns["event_time"][row].replace(year=2027)
            else:
                columns[column][row] = None
    return pa.table({name: pa.array(values, table.schema.field(name).type) for name, values in columns.items()})


BAD_ROWS = {"user_id": range(0, 3), "post_id": range(3, 8), "event_id": range(8, 9), "event_time": range(9, 13),
            "late event_time": range(13, 20)}


def test_the_contract_check_counts_every_kind_of_bad_row_and_publishes_nothing(clean_run, defs, spark, qa_registry,
                                                                             sample, store):
    source = qa_registry.sources["upvote_events"]
    before = _snapshot(store)
    with upstream_rewrite(spark, qa_registry, sample, "upvote_events", BAD, _every_kind_of_bad_row):
        report = check_source_partition(spark, source, BAD)
        outcome = run_daily(defs, BAD, ASSETS)
    counts = {(f.expectation, f.column): f.unexpected_count for f in report.failures}
    assert counts == {
        ("expect_column_values_to_not_be_null", "user_id"): 3,
        ("expect_column_values_to_not_be_null", "post_id"): 5,
        ("expect_column_values_to_not_be_null", "event_id"): 1,
        ("expect_column_values_to_not_be_null", "event_time"): 4,
        ("expect_column_values_to_be_between", "event_time"): 7,
    }
    assert not outcome.success and outcome.materialized == {"raw/upvote_events"}
    assert _snapshot(store) == before


def _first_rows_delivered_twice(table: pa.Table) -> pa.Table:
    return pa.concat_tables([table, table.slice(0, DUPLICATES)])


DUPLICATES = 10


def test_an_exact_duplicate_event_passes_the_contract_and_counts_again(clean_run, spark, qa_registry, sample):
    """The platform's rule for a repeated event_id, the same as the stream's: another delivery, counted again
    (tests/test_streaming.py checks the stream side); deduplication is the producer's or the query's choice."""
    from batch.feature_job import feature_query

    source, group = qa_registry.sources["upvote_events"], qa_registry.groups[QA_GROUP]
    events = sample.events("upvote_events", date.fromisoformat(BAD))
    repeated = events.head(DUPLICATES)["user_id"].value_counts()
    with upstream_rewrite(spark, qa_registry, sample, "upvote_events", BAD, _first_rows_delivered_twice):
        assert check_source_partition(spark, source, BAD).passed
        counted = feature_query(spark, qa_registry, group, BAD).toPandas().set_index("user_id")["upvotes_1d"]
    once = events["user_id"].value_counts()
    assert counted.sum() == len(events) + DUPLICATES
    for user, extra in repeated.items():
        assert counted[user] == once[user] + extra
