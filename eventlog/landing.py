"""What a source's ingest landed (streaming/ingest.py), and loading a landed day into `raw.<source>`.

The ingest's landing area holds one `ds=YYYY-MM-DD` directory per event day: the JSON-lines files Flink
committed (each valid line exactly once) and `_SUCCESS` once the day is complete. Loading a day makes the
raw table's partition hold them, beside whatever else the partition holds (history written by
`featctl events generate`), as one Parquet file of its own, `landed.parquet`, replaced whole on every load:
loading a day again (late events landed after it was loaded, or a retry after a crash) never counts a line
twice. `_LOADED` in the landing day lists the files the raw partition holds and their events, so a day whose
files changed since (a late event) shows as not loaded, and a loaded day's events are not counted again on
every look; the Dagster sensor loads it again (orchestration/ingest_defs.py).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from assets.dtypes import SPARK_TYPES
from assets.offline_layout import PARTITION_COLUMN, ensure_raw_table
from assets.specs import Source
from infra.errors import PlatformError
from infra.settings import Settings
from streaming.ingest import landing_directory

COMPLETE_MARKER = "_SUCCESS"  # Flink's partition commit: the watermark passed the day's end by the lateness
LOADED_MARKER = "_LOADED"     # the committed files the raw partition holds and their events, as of the last load
LANDED_FILE = "landed.parquet"


@dataclass(frozen=True)
class LandedDay:
    """One event day of a source's landing area."""

    ds: str
    files: tuple[str, ...]   # committed files, by name
    rows: int                # events in them
    complete: bool           # the ingest's watermark passed the day's end by the source's lateness
    loaded_files: tuple[str, ...] | None  # the files raw.<source> holds, as of the day's last load (None: never)

    @property
    def loaded(self) -> bool:
        """Whether raw.<source> holds exactly the day's committed files (no event landed since its last load)."""
        return self.loaded_files == self.files


def _committed(directory: Path) -> list[Path]:
    """The committed files of a landing day: Flink keeps files in progress hidden (`.part-...inprogress`)."""
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith((".", "_")))


def _loaded(directory: Path) -> tuple[tuple[str, ...] | None, int]:
    """The files of a landing day its last load put in the raw table, and their events (None, 0: never loaded)."""
    marker = directory / LOADED_MARKER
    if not marker.exists():
        return None, 0
    loaded = json.loads(marker.read_text())
    return tuple(loaded["files"]), loaded["rows"]


def _rows(files: list[Path]) -> int:
    rows = 0
    for path in files:
        with open(path, "rb") as f:
            rows += sum(1 for _ in f)
    return rows


def landed_days(settings: Settings, source: Source) -> list[LandedDay]:
    """Every day the source's ingest landed events for, oldest first."""
    root = landing_directory(settings, source)
    days = []
    for directory in sorted(root.glob(f"{PARTITION_COLUMN}=*")) if root.exists() else ():
        files = _committed(directory)
        if not files:
            continue
        names = tuple(p.name for p in files)
        loaded_files, loaded_rows = _loaded(directory)
        rows = loaded_rows if loaded_files == names else _rows(files)  # a loaded day was counted when it loaded
        days.append(LandedDay(directory.name.split("=", 1)[1], names, rows, (directory / COMPLETE_MARKER).exists(),
                              loaded_files))
    return days


def _partition_location(spark, source: Source, ds: str) -> Path:
    """The raw partition's directory (created, with the partition, if the day has none yet)."""
    spark.sql(f"ALTER TABLE {source.table} ADD IF NOT EXISTS PARTITION ({PARTITION_COLUMN} = '{ds}')")
    rows = spark.sql(f"DESCRIBE FORMATTED {source.table} PARTITION ({PARTITION_COLUMN} = '{ds}')").collect()
    location = next(r.data_type for r in rows if r.col_name.strip() == "Location")
    if not location.startswith("file:"):
        raise PlatformError(f"{source.table} partition {ds} is at {location}, not on a local or mounted filesystem",
                            "point warehouse_dir at a path every Spark and ingest host mounts")
    return Path(location.removeprefix("file:"))


def load_landed_day(spark, settings: Settings, source: Source, ds: str) -> int:
    """Make `raw.<source>` partition `ds` hold every event the ingest has landed for that day (replacing what an
    earlier load put there, leaving the partition's other files alone); returns the events loaded."""
    directory = landing_directory(settings, source) / f"{PARTITION_COLUMN}={ds}"
    files = _committed(directory) if directory.exists() else []
    if not files:
        return 0
    # Timestamps and dates are read as text and cast by Spark: Flink writes as many fraction digits as needed.
    read_as = {c.name: "STRING" if c.dtype in ("timestamp", "date") else SPARK_TYPES[c.dtype] for c in source.columns}
    frame = (spark.read.schema(", ".join(f"`{name}` {kind}" for name, kind in read_as.items()))
             .option("mode", "FAILFAST").json([str(p) for p in files])
             .selectExpr(*(f"CAST(`{c.name}` AS {SPARK_TYPES[c.dtype]}) AS `{c.name}`" for c in source.columns)))
    ensure_raw_table(spark, source)
    partition = _partition_location(spark, source, ds)
    staging = partition / "_landed_staging"  # hidden from readers of the partition (a leading underscore)
    frame.coalesce(1).write.mode("overwrite").parquet(str(staging))
    (written,) = staging.glob("part-*.parquet")
    os.replace(written, partition / LANDED_FILE)  # one rename: a reader sees the old file or the new one
    shutil.rmtree(staging)
    spark.sql(f"REFRESH TABLE {source.table}")
    rows = spark.read.parquet(str(partition / LANDED_FILE)).count()
    (directory / LOADED_MARKER).write_text(json.dumps({"files": [p.name for p in files], "rows": rows}))
    return rows
