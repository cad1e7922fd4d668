"""Platform settings: one profile YAML (infra/profiles/<name>.yaml) overlaid by FP_* environment variables.

Switching from embedded engines to a cluster is configuration only: a Spark master URL, a metastore URI,
a Redis URL. Every component reads the same `Settings`.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from infra.errors import PlatformError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


class Settings(BaseModel):
    """Where data lives and which engines to use; `extra="forbid"` so a typo in a profile is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str = "local"
    data_dir: Path = PROJECT_ROOT / ".data"
    registry_dir: Path = PROJECT_ROOT / "assets"
    spark_master: str = "local[2]"
    spark_conf: dict[str, str] = {}
    hive_metastore_uri: str | None = None  # thrift://host:9083 of a metastore service
    hive_metastore_jdbc_url: str | None = None  # or the metastore database itself (jdbc:postgresql://...); unset: Derby
    warehouse_dir: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "fp"
    redis_batch_rows: int = 500
    serving_host: str = "127.0.0.1"  # `featctl serve` listens on <host>:<port>; 0.0.0.0 for every interface
    serving_port: int = 8600
    serving_workers: int | None = Field(default=None, ge=1)  # `featctl serve` processes; None: one per core
    serving_api_token: str | None = None  # set: POST /features needs `Authorization: Bearer <token>`
    serving_max_ids: int = 1000  # ids one GetFeatures request may ask for; more is a 422
    serving_redis_timeout_seconds: float = 1.0  # a Redis that does not answer in time makes a 503
    serving_log_dir: Path | None = None  # set: the service logs responses there (serving/response_log.py)
    serving_log_sample: float = Field(default=1.0, ge=0.0, le=1.0)  # share of responses logged
    serving_log_queue: int = Field(default=10_000, ge=1)  # lines waiting for the writer; more are dropped, counted
    serving_log_flush_seconds: float = Field(default=1.0, gt=0)  # what a crash may lose at most
    partitions_start: date = date(2026, 1, 1)
    alert_webhook_url: str | None = None  # set: schema-change alerts are also POSTed there as JSON
    dagster_postgres_url: str | None = None  # set: the Dagster instance stores runs/events/schedules there, not SQLite
    flink_rest: str | None = None  # host:port of a Flink cluster's REST endpoint; unset = local mini-cluster
    kafka_bootstrap_servers: str | None = None  # set: streams read Kafka topics; unset: local directories
    stream_checkpoint_seconds: int = 5
    stream_flush_ms: int = 200
    stream_max_line_bytes: int = Field(default=65_536, ge=64)  # a longer stream line is dead-lettered, cut to 1 KiB
    max_clock_skew_seconds: int = Field(default=300, ge=0)  # a stream event dated further ahead is dead-lettered
    schedule_hour: int = Field(default=2, ge=0, le=23)  # the daily run starts at this hour of schedule_timezone
    schedule_timezone: str = "UTC"  # IANA name; partitions stay UTC days whatever the schedule's clock

    @field_validator("schedule_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone like UTC or Europe/Berlin") from None
        return value

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance directory (SQLite storage in the local profile)."""
        return self.data_dir / "dagster"


def load_settings(**overrides) -> Settings:
    """Build settings from the profile named by FP_PROFILE (default `local`), then FP_<FIELD> variables.

    FP_PROFILE is a profile's name under infra/profiles/ or the path of a profile file (`*.yaml`), such as
    the one `featctl cluster up` writes.

    `overrides` win over both; tests use them to point the platform at temporary directories.
    """
    profile = overrides.pop("profile", None) or os.environ.get("FP_PROFILE", "local")
    path = Path(profile) if profile.endswith((".yaml", ".yml")) else PROFILES_DIR / f"{profile}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
        raise PlatformError(f"unknown profile {profile!r}", f"set FP_PROFILE to one of: {known}, or a profile file's path")
    values = yaml.safe_load(path.read_text()) or {}
    values["profile"] = profile
    for field in Settings.model_fields:
        env = os.environ.get(f"FP_{field.upper()}")
        if env is not None and field != "spark_conf":
            values[field] = env or None
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise PlatformError(f"{path}: {field}: {err['msg'].removeprefix('Value error, ')}", "correct the profile or the FP_* variable") from None
