"""featctl training-set and rebuild as a user runs them, in a fresh data directory with its own Redis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from infra.redis_server import local_redis
from tests.test_cli import _featctl


@pytest.mark.slow  # seven featctl processes, one after another, each with its own Spark JVM (minutes)
def test_training_set_and_rebuild_commands(tmp_path):
    with local_redis() as url:
        env = {"FP_REDIS_URL": url, "FP_PARTITIONS_START": "2026-01-01"}
        assert _featctl("events", "generate", "--start", "2026-01-01", "--end", "2026-01-04", "--size", "tiny",
                        data_dir=tmp_path, **env).returncode == 0
        for day in ("2026-01-02", "2026-01-03"):
            done = _featctl("materialize", "--group", "user_upvotes", "--partition", day, data_dir=tmp_path, **env)
            assert done.returncode == 0, done.stdout + done.stderr

        observations = tmp_path / "obs.parquet"
        times = pd.date_range("2026-01-02", "2026-01-05", periods=40, tz="UTC").astype("datetime64[us, UTC]")
        pd.DataFrame({"user_id": np.arange(40) % 10, "event_time": times, "label": np.arange(40) % 2}).to_parquet(
            observations)
        out = tmp_path / "train.parquet"
        made = _featctl("training-set", "--observations", str(observations), "--features", "user_upvotes",
                        "--out", str(out), data_dir=tmp_path, **env)
        assert made.returncode == 0, made.stdout + made.stderr
        assert "joining 40 observations (pandas)" in made.stdout and "training set" in made.stdout
        train = pd.read_parquet(out)
        spark_out = tmp_path / "train_spark.parquet"
        assert _featctl("training-set", "--observations", str(observations), "--features", "user_upvotes",
                        "--out", str(spark_out), "--engine", "spark", data_dir=tmp_path, **env).returncode == 0
        assert pd.read_parquet(spark_out).equals(train)
        assert len(train) == 40 and train["user_upvotes__feature_ts"].notna().any()
        assert (train["user_upvotes__feature_ts"].dropna() <= train.loc[train["user_upvotes__feature_ts"].notna(),
                                                                         "event_time"]).all()

        missing = _featctl("training-set", "--observations", str(observations), "--features", "post_popularity",
                           "--out", str(out), data_dir=tmp_path, **env)
        assert missing.returncode == 1 and "no column 'post_id'" in missing.stdout

        rebuilt = _featctl("rebuild", "--yes", data_dir=tmp_path, **env)
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert "dropped 1 tables" in rebuilt.stdout and "user_upvotes (2 days)" in rebuilt.stdout
        again = _featctl("training-set", "--observations", str(observations), "--features", "user_upvotes",
                         "--out", str(tmp_path / "again.parquet"), data_dir=tmp_path, **env)
        assert again.returncode == 0
        assert pd.read_parquet(tmp_path / "again.parquet").equals(train)
