"""The platform's code as one zip for remote workers: Spark executors (`spark.submit.pyFiles`) and Flink
TaskManagers (`python.files`) import `serving.*`, `assets.*` and the feature folders' UDFs from it.

Built from the project's own packages (the ones pyproject.toml installs) with their SQL, YAML and Lua
files, named by a hash of what it holds, so a worker never runs stale code and an unchanged tree is
not rebuilt. Local engines (local[N], the Flink mini-cluster) import the installed project directly.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from infra.settings import PROJECT_ROOT, Settings

PACKAGES = ("assets", "batch", "eventlog", "infra", "offline", "orchestration", "quality", "serving", "streaming")
SUFFIXES = {".py", ".sql", ".yaml", ".lua", ".properties"}


def _files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (PROJECT_ROOT / package).rglob("*")
                  if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts)


def code_package(settings: Settings) -> Path:
    """The zip of the platform's packages under `<data dir>/code/`, built if this tree's version is missing."""
    files = _files()
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0" + path.read_bytes())
    target = settings.data_dir.resolve() / "code" / f"feature_platform-{digest.hexdigest()[:16]}.zip"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.relative_to(PROJECT_ROOT))
        partial.replace(target)  # a reader never sees half a zip
    return target


def ships_code(engine_address: str | None) -> bool:
    """Whether an engine at this address (a Spark master, a Flink REST endpoint) needs the code shipped."""
    return bool(engine_address) and not engine_address.startswith("local")


__all__ = ["code_package", "ships_code"]
