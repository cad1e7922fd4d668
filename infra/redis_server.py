"""A `redis-server` the platform runs itself when no Redis URL is configured.

It binds a free loopback port (never a fixed one: that could reach someone else's server), proves the
server answering is the process we started, and stops it when the caller is done. With `persist=True`
it keeps its data under the platform's data directory (RDB on shutdown), so `featctl demo` and a later
`featctl get` see the same store; a second caller while one is running reuses it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import redis

from infra.errors import PlatformError

STATE_FILE = "server.json"
LOAD_TIMEOUT_S = 120  # a platform server reads its RDB dump before it serves (about 1 s per 100 MB here)


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller retries if it loses a race)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers_as(port: int, pid: int, directory: Path) -> bool:
    """True when the Redis on `port` is process `pid` serving `directory`: ours, not a stranger's."""
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        info = client.info("server")
        served_dir = client.config_get("dir").get("dir")
        client.close()
    except redis.RedisError:
        return False
    return info.get("process_id") == pid and Path(served_dir).resolve() == directory.resolve()


def _wait_loaded(port: int, directory: Path, timeout_s: float = LOAD_TIMEOUT_S) -> None:
    """Until the server on `port` has loaded its dump: before that it answers every read with LOADING."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    deadline = time.monotonic() + timeout_s
    try:
        while client.info("persistence").get("loading"):
            if time.monotonic() > deadline:
                raise PlatformError(f"the online store redis://127.0.0.1:{port}/0 is still loading its data after "
                                    f"{timeout_s:.0f} s", f"see {directory / 'redis.log'}, then run again")
            time.sleep(0.05)
    finally:
        client.close()


def start_server(directory: Path, persist: bool, options: tuple[str, ...] = ()) -> tuple[subprocess.Popen, int]:
    """Start redis-server serving `directory` on a free loopback port (with extra `options`, e.g. cluster mode);
    retries a lost port race. Returns the process and its port once it has loaded its data and serves reads."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise PlatformError("redis-server not found", "run infra/setup.sh (apt-get install redis-server) or set FP_REDIS_URL")
    directory = directory.resolve()  # redis-server changes into --dir before it opens its log file
    directory.mkdir(parents=True, exist_ok=True)
    for _attempt in range(5):
        port = free_loopback_port()
        args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory),
                "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
                "--logfile", str(directory / "redis.log"), "--appendonly", "no"]
        args += ["--save", "300 1", "--dbfilename", "dump.rdb"] if persist else ["--save", ""]
        args += options
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # it logs to redis.log; holding our pipes would block callers
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers_as(port, proc.pid, directory):
                _wait_loaded(port, directory)
                return proc, port
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    raise PlatformError(f"redis-server did not start in {directory}", f"see {directory / 'redis.log'}")


def stop_server(proc: subprocess.Popen, port: int, persist: bool) -> None:
    """Shut the server down, saving its data first when it persists."""
    try:
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=30).shutdown(save=persist, nosave=not persist)
    except redis.ConnectionError:
        pass  # shutdown closes the connection on success
    except redis.RedisError:
        proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def local_redis(directory: Path | None = None, persist: bool = False) -> Iterator[str]:
    """Yield the URL of a platform-run Redis; start it if needed and stop it on exit if this call started it.

    `directory=None` uses a fresh temporary directory (tests); `persist=True` keeps the data across starts.
    """
    owned_tmp = directory is None
    directory = Path(tempfile.mkdtemp(prefix="fp-redis-")) if owned_tmp else directory
    state_path = directory / STATE_FILE
    state = _running_state(directory) if persist else None
    if state is not None:
        yield f"redis://127.0.0.1:{state['port']}/0"
        return
    proc, port = start_server(directory, persist)
    if persist:
        state_path.write_text(json.dumps({"port": port, "pid": proc.pid}))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_server(proc, port, persist)
        if persist:
            state_path.unlink(missing_ok=True)
        if owned_tmp:
            shutil.rmtree(directory, ignore_errors=True)


def _running_state(directory: Path) -> dict | None:
    state_path = directory / STATE_FILE
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if _answers_as(state["port"], state["pid"], directory):
            _wait_loaded(state["port"], directory)
            return state
    return None


def ensure_local_redis(directory: Path) -> str:
    """Start the persistent platform server for `directory` unless it runs, and leave it running.

    For long-lived users such as streaming jobs, which outlive the command that launched them;
    `stop_local_redis` ends it (saving its data).
    """
    state = _running_state(directory)
    if state is None:
        proc, port = start_server(directory, persist=True)
        state = {"port": port, "pid": proc.pid}
        (directory / STATE_FILE).write_text(json.dumps(state))
    return f"redis://127.0.0.1:{state['port']}/0"


def stop_local_redis(directory: Path) -> bool:
    """Stop the persistent platform server for `directory` if it runs; True when one was stopped."""
    state = _running_state(directory)
    if state is None:
        return False
    try:
        redis.Redis(host="127.0.0.1", port=state["port"], socket_timeout=30).shutdown(save=True)
    except redis.ConnectionError:
        pass
    (directory / STATE_FILE).unlink(missing_ok=True)
    return True


@contextmanager
def online_store_url(configured: str | None, local_dir: Path) -> Iterator[str]:
    """The one place that decides where the online store is: the configured URL, or (none configured) the
    platform's persistent server under `local_dir` for the duration of the block."""
    if configured:
        yield configured
        return
    with local_redis(local_dir, persist=True) as url:
        yield url


def lasting_online_store_url(configured: str | None, local_dir: Path) -> str:
    """`online_store_url` for users that outlive their caller (stream jobs): the platform's server is left running."""
    return configured or ensure_local_redis(local_dir)


def redis_url_for(settings) -> AbstractContextManager[str]:
    """The online store of `settings` for the duration of a block (see online_store_url)."""
    return online_store_url(settings.redis_url, settings.data_dir / "redis")


__all__ = ["ensure_local_redis", "free_loopback_port", "lasting_online_store_url", "local_redis", "online_store_url",
           "redis_url_for", "start_server", "stop_local_redis", "stop_server"]
