"""A Redis Cluster the platform runs itself: masters and replicas on free loopback ports under one directory.

For the tests of the cluster code paths and for `make cluster-up`. Each node is a `redis-server` in
cluster mode (started like the single server, infra/redis_server.py), the cluster is formed by
`redis-cli --cluster create`, and it is ready when every node reports `cluster_state:ok`. A short node
timeout makes a replica take over a killed master within about two seconds.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from infra.errors import PlatformError
from infra.redis_server import free_loopback_port, start_server, stop_server

NODE_TIMEOUT_MS = 1000
READY_TIMEOUT_S = 30


@dataclass
class ClusterNode:
    """One redis-server of the cluster."""

    process: subprocess.Popen
    port: int
    directory: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        """A plain client of this node alone (cluster commands, INFO, a kill in a failover test)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class LocalRedisCluster:
    """A running cluster: its nodes and the online-store URL that reaches it."""

    nodes: list[ClusterNode]

    @property
    def url(self) -> str:
        """`redis+cluster://` at the first node that is up; the client discovers the rest from it."""
        node = next(n for n in self.nodes if n.alive())
        return f"redis+cluster://{node.address}/0"

    def masters(self) -> list[ClusterNode]:
        """The nodes that are masters now (a failover changes which)."""
        return [n for n in self.nodes if n.alive() and n.client().info("replication")["role"] == "master"]

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL one node, as a crashed host would disappear."""
        node.process.send_signal(signal.SIGKILL)
        node.process.wait()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until every live node sees all 16384 slots served, by live masters only (after creation, or after a
        failover: a node may report `ok` while its slot map still names the dead master)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.alive()]
            try:
                if all(n.client().cluster("info")["cluster_state"] == "ok" and self._masters_seen_by(n) <=
                       {m.port for m in live} for n in live):
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise PlatformError(f"the Redis Cluster under {self.nodes[0].directory.parent} did not become ready "
                            f"in {timeout_s:g} s", f"see the redis.log of each node there")

    @staticmethod
    def _masters_seen_by(node: ClusterNode) -> set[int]:
        """The ports of the masters that `node`'s slot map (CLUSTER SLOTS) names."""
        return {int(entry[2][1]) for entry in node.client().execute_command("CLUSTER SLOTS")}

    def stop(self) -> None:
        """Stop every node (their data is not kept)."""
        for node in self.nodes:
            if node.alive():
                stop_server(node.process, node.port, persist=False)


def start_cluster(directory: Path, masters: int = 3, replicas: int = 1) -> LocalRedisCluster:
    """Start `masters` x (1 + `replicas`) nodes under `directory` and form them into one cluster."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise PlatformError("redis-cli not found", "run infra/setup.sh (apt-get install redis-server)")
    options = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
               "--cluster-node-timeout", str(NODE_TIMEOUT_MS))
    nodes: list[ClusterNode] = []
    try:
        for index in range(masters * (1 + replicas)):
            node_dir = directory / f"node-{index}"
            shutil.rmtree(node_dir, ignore_errors=True)  # a node keeps its identity in nodes.conf: start fresh
            # The bus port is its own free port: the default, port + 10000, can be taken or above 65535.
            bus = ("--cluster-port", str(free_loopback_port()))
            process, port = start_server(node_dir, persist=False, options=options + bus)
            nodes.append(ClusterNode(process, port, node_dir))
        created = subprocess.run([cli, "--cluster", "create", *(n.address for n in nodes),
                                  "--cluster-replicas", str(replicas), "--cluster-yes"],
                                 capture_output=True, text=True, timeout=60)
        if created.returncode != 0:
            raise PlatformError(f"redis-cli --cluster create failed: {created.stdout[-500:]}{created.stderr[-500:]}",
                                "see the redis.log of each node under " + str(directory))
        cluster = LocalRedisCluster(nodes)
        cluster.wait_ready()
        _wait_replicas_synced(cluster, masters * replicas)
        return cluster
    except BaseException:
        LocalRedisCluster(nodes).stop()
        raise


def _wait_replicas_synced(cluster: LocalRedisCluster, expected: int) -> None:
    """Until every replica has finished its first sync with its master, so a failover has a copy to promote."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        replicas = [n.client().info("replication") for n in cluster.nodes]
        synced = [r for r in replicas if r["role"] == "slave" and r.get("master_link_status") == "up"]
        if len(synced) == expected:
            return
        time.sleep(0.1)
    raise PlatformError("the Redis Cluster's replicas did not sync", "see the redis.log of each node")


@contextmanager
def local_redis_cluster(directory: Path | None = None, masters: int = 3, replicas: int = 1) -> Iterator[LocalRedisCluster]:
    """A cluster for the duration of the block; `directory=None` uses (and removes) a temporary one."""
    owned = directory is None
    directory = Path(tempfile.mkdtemp(prefix="fp-redis-cluster-")) if owned else directory
    cluster = start_cluster(directory, masters, replicas)
    try:
        yield cluster
    finally:
        cluster.stop()
        if owned:
            shutil.rmtree(directory, ignore_errors=True)


__all__ = ["ClusterNode", "LocalRedisCluster", "local_redis_cluster", "start_cluster"]
