"""Locate the Java 17 runtime Spark and Flink run on, the same way infra/setup.sh does."""

from __future__ import annotations

import os
import subprocess
from functools import cache

from infra.errors import PlatformError
from infra.settings import PROJECT_ROOT


@cache
def ensure_java_home() -> str:
    """Set JAVA_HOME to a Java 17 runtime (the machine may also carry newer JDKs) and return it."""
    found = subprocess.run(
        ["bash", str(PROJECT_ROOT / "infra" / "java_home.sh")], capture_output=True, text=True
    ).stdout.strip()
    if not found:
        raise PlatformError("Java 17 not found", "install a JDK 17 (infra/setup.sh does) and set JAVA_HOME to it")
    os.environ["JAVA_HOME"] = found
    return found
