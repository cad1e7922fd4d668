"""`featctl check`, as CI runs it: folders load, batch.sql analyses on Spark, stream SQL validates on Flink,
and a group version's output schema cannot change without a version bump or `--update-lock`.

Runs the real CLI entry point in this process (its Spark is the session's), on copies of the registry.
"""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import run_featctl
from tests.quality.conftest import copy_registry

pytestmark = pytest.mark.usefixtures("spark")  # the CLI's Spark is the session's, started by the fixture


@pytest.fixture
def featctl(monkeypatch, capsys):
    """Run `featctl <args>` on a registry folder; returns (exit code, output lines)."""
    def run(*args: str, registry_dir=None) -> tuple[int, list[str]]:
        if registry_dir is not None:
            monkeypatch.setenv("FP_REGISTRY_DIR", str(registry_dir))
        code, out = run_featctl(monkeypatch, capsys, *args)
        return code, out.splitlines()

    return run


def _problems(lines: list[str]) -> list[str]:
    """The error lines naming a problem (without the closing count)."""
    return [line for line in lines if line.startswith("error:") and "featctl check found" not in line]


def test_the_projects_registry_passes(featctl):
    code, lines = featctl("check")
    assert code == 0, "\n".join(lines)
    assert lines[-1] == "ok: every folder is valid"


def test_a_changed_output_schema_needs_a_version_bump_or_an_updated_lock(featctl, tmp_path):
    root = copy_registry(tmp_path / "assets", ("subreddit_activity",))
    folder = root / "features" / "subreddit_activity"
    spec = folder / "feature.yaml"
    spec.write_text(spec.read_text().replace("    dtype: int64\n    description: Upvotes on the subreddit's posts",
                                             "    dtype: int32\n    description: Upvotes on the subreddit's posts"))
    sql = folder / "batch.sql"
    sql.write_text(sql.read_text().replace("COUNT(*)                                          AS upvotes_1d",
                                           "CAST(COUNT(*) AS INT)                             AS upvotes_1d"))
    features = folder / "stream" / "features.sql"  # the stream outputs the new type too
    features.write_text(features.read_text().replace("  upvotes_1d,\n", "  CAST(upvotes_1d AS INT) AS upvotes_1d,\n"))

    code, lines = featctl("check", registry_dir=root)
    assert code == 1
    (error,) = _problems(lines)
    assert error.startswith(f"error: {spec}: version: the output schema of subreddit_activity@v1 changed without a version "
                            "bump: retyped upvotes_1d: int64 -> int32 (fix: bump `version:` to 2")
    assert "featctl check --update-lock" in error
    assert lines[-1].startswith("error: featctl check found 1 problem(s)")

    spec.write_text(spec.read_text().replace("version: 1", "version: 2"))
    code, lines = featctl("check", registry_dir=root)
    assert code == 1, "a bumped version is new: CI must see its schema recorded in the lock"
    assert _problems(lines) == [f"error: {spec}: version: subreddit_activity@v2 is not in {root}/registry.lock, so its "
                                "output schema is not protected against changes (fix: featctl check --update-lock)"]

    spec.write_text(spec.read_text().replace("version: 2", "version: 1"))
    code, lines = featctl("check", "--update-lock", registry_dir=root)
    assert code == 0, "\n".join(lines)
    locked = yaml.safe_load((root / "registry.lock").read_text())
    assert locked["subreddit_activity@v1"]["features"]["upvotes_1d"] == "int32"
    assert "post_popularity@v1" in locked, "versions not in the registry stay locked"
    assert featctl("check", registry_dir=root)[0] == 0


def test_a_group_missing_from_the_lock_fails_until_it_is_recorded(featctl, tmp_path):
    root = copy_registry(tmp_path / "assets", ("user_upvotes", "post_popularity"))
    lock = root / "registry.lock"
    locked = yaml.safe_load(lock.read_text())
    del locked["post_popularity@v1"]
    lock.write_text(yaml.safe_dump(locked, sort_keys=False))

    code, lines = featctl("check", registry_dir=root)
    assert code == 1
    spec = root / "features" / "post_popularity" / "feature.yaml"
    assert _problems(lines) == [f"error: {spec}: version: post_popularity@v1 is not in {lock}, so its output "
                                "schema is not protected against changes (fix: featctl check --update-lock)"]
    assert featctl("check", "--update-lock", registry_dir=root)[0] == 0
    assert "post_popularity@v1" in yaml.safe_load(lock.read_text())
    assert featctl("check", registry_dir=root)[0] == 0


@pytest.mark.parametrize("file, old, new, where", [
    ("feature.yaml", "dtype: int64", "dtype: integer", "feature.yaml: features[0].dtype: Input should be"),
    ("feature.yaml", "description: Time of the user's latest upvote in the last 7 days (null once the window holds none).",
     "description: Time of the user's latest upvote in the last 7 days (null once the window holds none).\n    min: 0",
     "feature.yaml: features[3]: min: ranges apply to numeric dtypes"),
    ("feature.yaml", "  min_ratio: 0.5", "  min_ratio: -1", "feature.yaml: row_count_vs_previous.min_ratio:"),
    ("feature.yaml", "{operation: count, window: 1d}", "{operation: count, window: 3d}",
     "batch.sql: (file): differs from what feature.yaml `aggregations:` renders"),
])
def test_a_malformed_folder_fails_with_file_and_field(featctl, tmp_path, file, old, new, where):
    root = copy_registry(tmp_path / "assets", ("user_upvotes",))
    path = root / "features" / "user_upvotes" / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    code, lines = featctl("check", registry_dir=root)
    assert code == 1
    assert any(line.startswith(f"error: {root}/features/user_upvotes/{where}") for line in _problems(lines)), lines


@pytest.mark.parametrize("old, new, where", [
    ("COUNT(DISTINCT u.post_id)                         AS upvoted_posts_1d", "COUNT(DISTINCT u.item_id) AS upvoted_posts_1d",
     "(query): Spark cannot analyse it:"),
])
def test_a_query_spark_cannot_analyse_is_named(featctl, tmp_path, old, new, where):
    root = copy_registry(tmp_path / "assets", ("subreddit_activity",))
    sql = root / "features" / "subreddit_activity" / "batch.sql"
    assert old in sql.read_text()
    sql.write_text(sql.read_text().replace(old, new))
    code, lines = featctl("check", registry_dir=root)
    assert code == 1
    (error,) = _problems(lines)
    assert error.startswith(f"error: {sql}: {where}"), error


def test_a_feature_missing_from_the_select_says_to_add_the_column_or_remove_the_feature(featctl, tmp_path):
    root = copy_registry(tmp_path / "assets", ("subreddit_activity",))
    sql = root / "features" / "subreddit_activity" / "batch.sql"
    sql.write_text(sql.read_text().replace("AS upvoted_posts_1d", "AS posts_1d"))
    code, lines = featctl("check", registry_dir=root)
    assert code == 1
    (error,) = _problems(lines)
    assert error.startswith(f"error: {sql}: features[3].upvoted_posts_1d: the query has no output column")
    assert error.endswith("(fix: add the column to the SELECT or remove the feature from feature.yaml)")


def test_stream_sql_is_validated_by_flink_naming_file_and_line(featctl, tmp_path):
    root = copy_registry(tmp_path / "assets", ("user_activity",))
    transform = root / "features" / "user_activity" / "stream" / "transform.sql"
    transform.write_text(transform.read_text().replace("COUNT(DISTINCT post_id)", "COUNT(DISTINCT postid)"))
    code, lines = featctl("check", registry_dir=root)
    assert code == 1
    (error,) = _problems(lines)
    assert error.startswith(f"error: {transform}: line 6, column 18: Flink rejects the query: SQL validation failed.")
    assert "Column 'postid' not found" in error
