"""The cluster profile for real: `featctl cluster up --kafka` (Spark standalone, a Flink session cluster, a 3+3
Redis Cluster, PostgreSQL for the Dagster instance and the Hive metastore, a Kafka-compatible broker, all on
loopback), the demo on it serving exactly what the local profile serves for the same events, two Spark drivers
sharing the catalog at once, a stream on the session cluster reading its source's Kafka topic, and `cluster
down` leaving no process behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
import yaml

from infra.local_cluster import Process
from serving.online_store import connect
from infra.settings import PROJECT_ROOT
from tests.conftest import FEATCTL, featctl_process, served_hashes


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_the_demo_on_the_cluster_profile_serves_what_the_local_profile_serves(tmp_path, tiny_demo):
    cluster_dir = tmp_path / "cluster"
    up = featctl_process("cluster", "up", "--dir", str(cluster_dir), "--kafka", data_dir=tmp_path / "unused",
                         timeout=300)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    state = json.loads((cluster_dir / "state.json").read_text())
    profile_path = cluster_dir / "profile.yaml"
    profile = yaml.safe_load(profile_path.read_text())
    on_cluster = {"FP_PROFILE": str(profile_path)}
    try:
        assert profile["redis_url"].startswith("redis+cluster://127.0.0.1:")
        assert profile["spark_master"].startswith("spark://127.0.0.1:")
        assert profile["kafka_bootstrap_servers"] == state["urls"]["kafka"]  # the streams read its topics
        demo = featctl_process("demo", "--size", "tiny", "--days", "2", "--end", tiny_demo.end.isoformat(),
                               data_dir=cluster_dir / "data", **on_cluster)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]

        with urllib.request.urlopen(f"{state['urls']['spark_ui']}/json/", timeout=5) as response:
            master = json.loads(response.read())
        assert master["aliveworkers"] == 1
        assert [a["name"] for a in master["completedapps"]].count("feature-platform") >= 1  # the jobs ran there

        expected = tiny_demo.served  # the same demo on the local profile
        served = served_hashes(profile["redis_url"])
        assert len(expected) > 500 and served == expected  # every entity, every field, byte for byte

        # Two Spark drivers at once on the one Postgres catalog (Derby allows one process): a Dagster run of a
        # partition and a training set; the run is recorded in the Postgres-backed Dagster instance.
        yesterday = tiny_demo.end
        observations = tmp_path / "observations.parquet"
        pd.DataFrame({"user_id": np.arange(200, dtype="int64"),
                      "event_time": pd.Timestamp(yesterday, tz="UTC") + pd.to_timedelta(np.arange(200) * 400, "s"),
                      "label": np.arange(200) % 2}).to_parquet(observations)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("FP_")}
        environment.update({"FP_DATA_DIR": str(cluster_dir / "data"), "COLUMNS": "200", **on_cluster})
        both = [subprocess.Popen([FEATCTL, *args], cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for args in (
            ("materialize", "--group", "user_upvotes", "--partition", yesterday.isoformat()),
            ("training-set", "--observations", str(observations), "--features", "user_upvotes",
             "--out", str(tmp_path / "training.parquet"), "--engine", "pandas"))]
        outputs = [process.communicate(timeout=600)[0] for process in both]
        assert [process.returncode for process in both] == [0, 0], outputs
        training = pd.read_parquet(tmp_path / "training.parquet")
        assert len(training) == 200 and training["user_upvotes__upvotes_7d"].notna().any(), training.head()
        import psycopg2

        with psycopg2.connect(profile["dagster_postgres_url"].replace("+psycopg2", "")) as connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT status, count(*) FROM runs GROUP BY status")
                assert dict(cursor.fetchall()) == {"SUCCESS": 3}  # the demo's two days, then materialize

        # A stream on the session cluster continues the batch history, then reads live events from its source's
        # Kafka topic, empty when it starts (the connector's jars shipped with the job), and lands them in Redis
        # Cluster.
        started = featctl_process("stream", "run", "user_activity", data_dir=cluster_dir / "data", **on_cluster)
        assert started.returncode == 0 and "user_activity: RUNNING" in started.stdout, started.stdout + started.stderr
        with urllib.request.urlopen(f"http://{profile['flink_rest']}/jobs/overview", timeout=5) as response:
            jobs = json.loads(response.read())["jobs"]
        # Its first start replayed the event log in a job of its own, which handed its state to the live one.
        assert sorted(j["state"] for j in jobs if j["name"] == "feature-platform user_activity v1") == [
            "FINISHED", "RUNNING"]
        live = featctl_process("events", "live", "--rate", "100", "--seconds", "3", data_dir=cluster_dir / "data",
                               **on_cluster)
        assert live.returncode == 0 and "wrote 3 batches" in live.stdout, live.stdout + live.stderr  # to the topics
        client = connect(profile["redis_url"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            progress = client.hgetall("fp:_stream:user_activity:v1")
            if int(progress.get(b"max_event_time", 0)) >= (time.time() - 60) * 1e6:
                break
            time.sleep(1)
        client.close()
        assert int(progress[b"max_event_time"]) >= (time.time() - 120) * 1e6, progress  # the live events landed
        stopped = featctl_process("stream", "shutdown", data_dir=cluster_dir / "data", **on_cluster)
        assert stopped.returncode == 0 and "user_activity: savepoint" in stopped.stdout, stopped.stdout
    finally:
        down = featctl_process("cluster", "down", "--dir", str(cluster_dir), data_dir=tmp_path / "unused", timeout=120)
    assert down.returncode == 0 and f"stopped {len(state['processes'])} processes" in down.stdout, down.stdout
    assert not any(Process(**p).alive() for p in state["processes"])  # gone (or a zombie no parent reaped)
    assert all(_port_free(port) for p in state["processes"] for port in p["ports"].values())
