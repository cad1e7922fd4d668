"""featctl training-set and rebuild as a user runs them, on the session's workspace (in this process, with the
session's Spark): a registry copy whose groups are renamed `cli_*` and a Redis key prefix of its own keep
this test's tables and keys apart from every other test's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.quality.conftest import copy_registry


@pytest.fixture
def cli_registry(tmp_path):
    """The registry with user_upvotes and post_popularity renamed cli_user_upvotes and cli_post_popularity."""
    root = copy_registry(tmp_path / "assets", ("user_upvotes", "post_popularity"))
    for name in ("user_upvotes", "post_popularity"):
        (root / "features" / name).rename(root / "features" / f"cli_{name}")
    return root


@pytest.mark.usefixtures("event_log")
def test_training_set_and_rebuild_commands(workspace_featctl, cli_registry, tmp_path):
    env = {"FP_REGISTRY_DIR": str(cli_registry), "FP_REDIS_PREFIX": "cli"}

    def featctl(*args: str) -> tuple[int, str]:
        return workspace_featctl(*args, **env)

    for day in ("2026-01-02", "2026-01-03"):
        code, out = featctl("materialize", "--group", "cli_user_upvotes", "--partition", day)
        assert code == 0, out

    observations = tmp_path / "obs.parquet"
    times = pd.date_range("2026-01-02", "2026-01-05", periods=40, tz="UTC").astype("datetime64[us, UTC]")
    pd.DataFrame({"user_id": np.arange(40) % 10, "event_time": times, "label": np.arange(40) % 2}).to_parquet(
        observations)
    out = tmp_path / "train.parquet"
    code, made = featctl("training-set", "--observations", str(observations), "--features", "cli_user_upvotes",
                         "--out", str(out))
    assert code == 0, made
    assert "joining 40 observations (pandas)" in made and "training set" in made
    train = pd.read_parquet(out)
    spark_out = tmp_path / "train_spark.parquet"
    assert featctl("training-set", "--observations", str(observations), "--features", "cli_user_upvotes",
                   "--out", str(spark_out), "--engine", "spark")[0] == 0
    assert pd.read_parquet(spark_out).equals(train)
    assert len(train) == 40 and train["cli_user_upvotes__feature_ts"].notna().any()
    assert (train["cli_user_upvotes__feature_ts"].dropna() <= train.loc[train["cli_user_upvotes__feature_ts"].notna(),
                                                                         "event_time"]).all()

    code, missing = featctl("training-set", "--observations", str(observations), "--features", "cli_post_popularity",
                            "--out", str(out))
    assert code == 1 and "no column 'post_id'" in missing

    code, rebuilt = featctl("rebuild", "--yes")
    assert code == 0, rebuilt
    assert "dropped 1 tables" in rebuilt and "cli_user_upvotes (2 days)" in rebuilt
    assert featctl("training-set", "--observations", str(observations), "--features", "cli_user_upvotes",
                   "--out", str(tmp_path / "again.parquet"))[0] == 0
    assert pd.read_parquet(tmp_path / "again.parquet").equals(train)
