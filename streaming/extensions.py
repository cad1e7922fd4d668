"""The jars a job loads (`pipeline.jars`): the platform's own Flink classes (streaming/java/), compiled into one
jar, and Flink's Kafka connector when the streams read Kafka.

Today one class: NameOrderSplitAssigner, which makes a watched directory of stream files read as a log, in the
order of the files' names. The jar is built with the JDK's javac against the Flink jars PyFlink ships, when it
is missing or older than a source file, under a temporary name then renamed (jobs starting at once may race).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pyflink

from infra.errors import PlatformError
from infra.java import ensure_java_home
from infra.settings import PROJECT_ROOT, Settings

SOURCES = PROJECT_ROOT / "streaming" / "java"
JAR = PROJECT_ROOT / "build" / "feature-platform-flink.jar"
# Flink's Kafka connector and the Kafka client it drives, which infra/setup.sh takes out of a wheel.
KAFKA_JARS = tuple(PROJECT_ROOT / "build" / "flink-connectors" / name
                   for name in ("flink-connector-kafka.jar", "kafka-clients.jar"))


def job_jars(settings: Settings) -> list[str]:
    """Every jar a job of this profile loads: the platform's classes, and Flink's Kafka connector when the
    streams read Kafka (sent with the job, so a session cluster needs no connector of its own)."""
    jars = [platform_jar()]
    if settings.kafka_bootstrap_servers:
        missing = [jar.name for jar in KAFKA_JARS if not jar.exists()]
        if missing:
            raise PlatformError(f"Flink's Kafka connector is missing ({', '.join(missing)} under "
                                f"{KAFKA_JARS[0].parent}): the streams read Kafka (kafka_bootstrap_servers)",
                                "run infra/setup.sh (make setup), which fetches it")
        jars += KAFKA_JARS
    return [str(jar) for jar in jars]


def platform_jar() -> Path:
    """The jar of the platform's Flink classes, built first if it is missing or stale."""
    sources = sorted(SOURCES.rglob("*.java"))
    if JAR.exists() and JAR.stat().st_mtime >= max(s.stat().st_mtime for s in sources):
        return JAR
    java_home = Path(ensure_java_home())
    flink_jars = os.pathsep.join(str(p) for p in sorted((Path(pyflink.__file__).parent / "lib").glob("*.jar")))
    JAR.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=JAR.parent) as work:
        classes, jar = Path(work) / "classes", Path(work) / JAR.name
        for command in ([str(java_home / "bin" / "javac"), "--release", "17", "-cp", flink_jars, "-d", str(classes),
                         *map(str, sources)],
                        [str(java_home / "bin" / "jar"), "--create", "--file", str(jar), "-C", str(classes), "."]):
            try:
                done = subprocess.run(command, capture_output=True, text=True)
            except FileNotFoundError:
                raise PlatformError(f"{command[0]} not found: building the platform's Flink classes needs a JDK",
                                    "install openjdk-17-jdk-headless (make setup does)") from None
            if done.returncode != 0:
                raise PlatformError(f"building {JAR.name} failed: {(done.stderr or done.stdout).strip()[:300]}")
        jar.replace(JAR)
    return JAR
