"""The registry loads the example folders and rejects malformed ones naming the file and the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assets.registry import DEFAULT_ROOT, RegistryError, load_registry, render_batch_sql


def test_examples_load_into_typed_specs(registry):
    assert sorted(registry.groups) == ["post_popularity", "subreddit_activity", "user_activity", "user_upvotes"]
    assert sorted(registry.sources) == ["post_events", "upvote_events"]
    user = registry.groups["user_upvotes"]
    assert user.entity == "user" and user.version == 1 and user.ttl.days == 30
    assert [(f.name, f.dtype) for f in user.features] == [
        ("upvotes_7d", "int64"), ("distinct_items_7d", "int64"), ("upvotes_1d", "int64"),
        ("last_upvote_at", "timestamp")]
    assert user.sources["upvote_events"].window_days == 7
    assert [(f.declares_empty_value, f.empty_value) for f in user.features] == [(True, 0)] * 3 + [(True, None)]
    assert user.expires_absent_entities and not registry.groups["user_activity"].expires_absent_entities
    assert registry.groups["post_popularity"].udfs[0].name == "hot_score"
    assert registry.sources["upvote_events"].table == "raw.upvote_events"


def test_render_batch_sql_fills_the_partition(registry):
    sql = render_batch_sql(registry.groups["subreddit_activity"], "2026-03-04")
    assert "u.ds = '2026-03-04'" in sql and "{{" not in sql


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the example registry to break."""
    root = tmp_path / "assets"
    shutil.copytree(DEFAULT_ROOT, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    shutil.copy(DEFAULT_ROOT / "features/post_popularity/udf.py", root / "features/post_popularity/udf.py")
    for module in DEFAULT_ROOT.rglob("on_demand.py"):  # the on-demand functions feature.yaml and services name
        shutil.copy(module, root / module.relative_to(DEFAULT_ROOT))
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


CASES = [
    ("features/user_upvotes/feature.yaml", "dtype: int64", "dtype: integer",
     "features/user_upvotes/feature.yaml: features[0].dtype: Input should be"),
    ("features/user_upvotes/feature.yaml", "owner: team:ranking", "ownr: team:ranking",
     "features/user_upvotes/feature.yaml: owner: Field required"),
    ("features/user_upvotes/feature.yaml", "version: 1", "version: 1\ncolour: blue",
     "features/user_upvotes/feature.yaml: colour: Extra inputs are not permitted"),
    ("features/user_upvotes/feature.yaml", "entity: user", "entity: customer",
     "features/user_upvotes/feature.yaml: entity: unknown entity 'customer'"),
    ("features/user_upvotes/feature.yaml", "ttl: 30d", "ttl: 30 days",
     "features/user_upvotes/feature.yaml: ttl: '30 days' is not a duration"),
    ("features/subreddit_activity/feature.yaml", "  upvote_events:", "  upvote_event:",
     "features/subreddit_activity/feature.yaml: sources.upvote_event: unknown source"),
    ("features/user_upvotes/feature.yaml", "version: 1", "version: [1",
     "features/user_upvotes/feature.yaml: line"),
    ("features/post_popularity/feature.yaml", "- name: hot_score\n    returns", "- name: cold_score\n    returns",
     "features/post_popularity/feature.yaml: udfs[0].name: 'cold_score' is not a function in udf.py"),
    ("features/post_popularity/batch.sql", "'{{ ds }}' THEN", "'{{ day }}' THEN",
     "features/post_popularity/batch.sql: line 6: unknown template variable {{ day }}"),
    ("sources/upvote_events.yaml", "event_time: event_time", "event_time: user_id",
     "sources/upvote_events.yaml: event_time: 'user_id' must name a timestamp column"),
    ("entities.yaml", "dtype: int64", "dtype: float64",
     "entities.yaml: user.dtype: Input should be"),
    ("features/subreddit_activity/feature.yaml", "empty_value: 0", "empty_value: none",
     "features/subreddit_activity/feature.yaml: features[1]: empty_value: none is not a int64 value (it can be a int64 "),
    ("features/user_activity/feature.yaml", "latest upvote.", "latest upvote.\n    empty_value: 2026-01-01",
     "features/user_activity/feature.yaml: features[2]: empty_value: 2026-01-01 is not a timestamp value (it can be null)"),
    # Declared windowed features (aggregations:):
    ("features/user_upvotes/feature.yaml", "{operation: count, window: 7d}", "{operation: count, window: 36h}",
     "features/user_upvotes/feature.yaml: features[0].aggregate.window: '36h' is not a whole number of days"),
    ("features/user_upvotes/feature.yaml", "{operation: count, window: 7d}", "{operation: sum, window: 7d}",
     "features/user_upvotes/feature.yaml: features[0].aggregate: input: a sum needs an input column"),
    ("features/subreddit_activity/feature.yaml", "  tail: 1h\n", "  source: upvote_events\n  tail: 1h\n",
     "features/subreddit_activity/feature.yaml: aggregations: give either source"),
    ("features/post_popularity/feature.yaml", "{name: upvotes_1d, operation: count,", "{name: upvotes_7d, operation: count,",
     "features/post_popularity/feature.yaml: aggregations: aggregates: upvotes_7d named twice"),
    ("features/user_upvotes/feature.yaml", "input: post_id, window: 7d", "input: post, window: 7d",
     "features/user_upvotes/feature.yaml: features[1].aggregate.input: 'post' is not a column of upvote_events"),
    ("features/user_upvotes/feature.yaml", "operation: max, input: event_time", "operation: max, input: post_id",
     "features/user_upvotes/feature.yaml: features[3].dtype: a max of post_id is int64, not timestamp"),
    ("features/user_upvotes/feature.yaml", "operation: max, input: event_time", "operation: avg, input: event_time",
     "features/user_upvotes/feature.yaml: features[3].aggregate: avg needs a numeric column, event_time is timestamp"),
    ("features/user_upvotes/feature.yaml", "operation: count_distinct, input: post_id", "operation: avg, input: post_id",
     "features/user_upvotes/feature.yaml: features[1].dtype: a avg of post_id is float64, not int64"),
    ("features/user_upvotes/feature.yaml", "tail: 1h ", "tail: 7h ",
     "features/user_upvotes/feature.yaml: aggregations.tail: 7h does not divide a day"),
    ("features/user_upvotes/feature.yaml", "{operation: count, window: 7d}", "{operation: count, window: 14d}",
     "features/user_upvotes/batch.sql: (file): differs from what feature.yaml `aggregations:` renders"),
    ("features/user_upvotes/stream/transform.sql", "FROM upvote_events", "FROM upvote_events WHERE post_id > 0",
     "features/user_upvotes/stream/transform.sql: (file): differs from what feature.yaml `aggregations:` renders"),
]


@pytest.mark.parametrize("file, old, new, message", CASES, ids=[c[3].split(": ")[1] for c in CASES])
def test_malformed_folder_names_file_and_field(tree, file, old, new, message):
    _edit(tree / file, old, new)
    with pytest.raises(RegistryError) as caught:
        load_registry(tree)
    assert message in str(caught.value)
    assert "fix:" in str(caught.value)


def test_missing_batch_sql_is_named(tree):
    (tree / "features/user_upvotes/batch.sql").unlink()
    with pytest.raises(RegistryError, match=r"features/user_upvotes/batch.sql: \(file\): missing"):
        load_registry(tree)


def test_a_new_folder_is_the_whole_change(tree):
    folder = tree / "features/user_upvotes_copy"
    shutil.copytree(tree / "features/user_upvotes", folder)
    registry = load_registry(tree)
    assert registry.groups["user_upvotes_copy"].table == "features.user_upvotes_copy_v1"


def test_each_table_of_a_multi_source_stream_is_its_own_ddl(tree):
    """source.sql may separate its tables with `;` and comments: each table's DDL ends with its connector
    clause, so the platform registers each alone."""
    source = tree / "features/subreddit_activity/stream/source.sql"
    _edit(source, ") WITH ({{ connector }});\n", ") WITH ({{ connector }});  -- the upvotes; the posts follow\n\n")
    stream = load_registry(tree).groups["subreddit_activity"].stream
    assert stream.source_tables == ("upvote_events", "post_events")
    for table, ddl in stream.source_ddls.items():
        assert ddl.startswith(f"CREATE TABLE {table} (") and ddl.endswith("WITH ({{ connector }})"), ddl
