#!/usr/bin/env bash
# Idempotent setup for a fresh machine: checks Java 17, installs redis-server (and PostgreSQL for the cluster
# profile) from apt when it is missing
# (and apt is allowed: root, FP_NO_APT unset), creates .venv and installs the project with the pinned
# constraints; `--with-tests` (make test) also installs the `test` extra. Safe to run again: every step
# checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

can_apt() { [ -z "${FP_NO_APT:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Java 17: Spark 4.1 and Flink 2.3 are run on it, and its javac builds the platform's Flink classes
# (streaming/extensions.py). infra/java.py finds the same JDK at run time.
java_home="$(bash infra/java_home.sh || true)"
if [ -z "$java_home" ] || [ ! -x "$java_home/bin/javac" ]; then
  if can_apt; then
    say "installing openjdk-17-jdk-headless"; apt_install openjdk-17-jdk-headless
    java_home="$(bash infra/java_home.sh)" || die "Java 17 still not found after apt install"
  else
    die "a Java 17 JDK (with javac) not found: install one and set JAVA_HOME to it"
  fi
fi
say "Java 17 at $java_home"

# redis-server: the local profile starts its own server on a free loopback port.
if ! command -v redis-server >/dev/null; then
  if can_apt; then say "installing redis-server"; apt_install redis-server
  else die "redis-server not found: apt-get install redis-server (or set FP_REDIS_URL to a server)"; fi
fi
say "$(redis-server --version | cut -d' ' -f1-3)"

# The cluster profile on this machine (featctl cluster up): PostgreSQL for the Dagster instance and the Hive
# metastore, and its JDBC driver for Spark. Needed by `make cluster-up` and the test that runs it.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ ! -f /usr/share/java/postgresql.jar ]; then
  if can_apt; then say "installing postgresql and libpostgresql-jdbc-java"; apt_install postgresql libpostgresql-jdbc-java
  else say "warning: PostgreSQL or its JDBC driver is missing: featctl cluster up needs apt-get install postgresql libpostgresql-jdbc-java"; fi
fi

# Python environment, pinned: never resolve this stack unpinned (shared/STACK-NOTES.md).
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || die "Python 3.11 is required ($python is $("$python" --version))"
[ -x .venv/bin/python ] || { say "creating .venv"; "$python" -m venv .venv; }
# `--with-tests` (make test) adds the `test` extra; an install with it also satisfies a plain setup.
target=. stamps=.venv/.installed what=""
if [ "${1:-}" = "--with-tests" ]; then
  target=".[test]" stamps=".venv/.installed-test .venv/.installed" what=" and its test extra"
fi
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ "$(cat "${stamps%% *}" 2>/dev/null)" != "$want" ]; then
  say "installing the project${what} with its pinned dependencies into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e "$target" 2> >(grep -v "is ignored: it is neither" >&2)
  .venv/bin/pip check >/dev/null || die "pip check failed: $(.venv/bin/pip check)"
  for stamp in $stamps; do echo "$want" > "$stamp"; done
fi
# Flink's Kafka connector, for streams that read Kafka topics (kafka_bootstrap_servers): its two jars, taken out
# of the shigawire-apache-flink-libraries wheel (a redistribution built for Flink 2.0 that loads in our 2.3, pinned
# in constraints.txt). The wheel itself is never installed: it would overwrite apache-flink-libraries' files.
connectors=build/flink-connectors
if [ ! -f "$connectors/flink-connector-kafka.jar" ] || [ ! -f "$connectors/kafka-clients.jar" ]; then
  say "fetching Flink's Kafka connector jars into $connectors"
  wheel_dir="$(mktemp -d)"
  .venv/bin/pip download -q --disable-pip-version-check --no-deps -c constraints.txt -d "$wheel_dir" \
    shigawire-apache-flink-libraries 2> >(grep -v "is ignored: it is neither" >&2)
  mkdir -p "$connectors"
  .venv/bin/python - "$wheel_dir"/*.whl "$connectors" <<'PY'
import sys, zipfile
from pathlib import Path
wheel, target = sys.argv[1], Path(sys.argv[2])
with zipfile.ZipFile(wheel) as archive:
    for name in ("flink-connector-kafka.jar", "kafka-clients.jar"):
        (target / f".{name}").write_bytes(archive.read(f"pyflink/lib/{name}"))
        (target / f".{name}").replace(target / name)
PY
  rm -rf "$wheel_dir"
fi
say "ready: .venv ($(.venv/bin/python --version))"
