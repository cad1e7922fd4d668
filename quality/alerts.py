"""Alerts: one per distinct problem, to the log, a JSON-lines file and a webhook when one is set.

Schema-change alerts come from the quality gate; stream-health alerts (orchestration/streaming_defs.py)
go through the same sinks into their own file. A JSON-lines file (`<data_dir>/alerts/schema_changes.jsonl`,
`<data_dir>/alerts/streams.jsonl`) is also the record of what was already sent: an alert whose
fingerprint (for a schema change: source or group + the change itself, see SchemaDiff.fingerprint) is in
the file is not sent again, so a bad partition re-run, or the same upstream change seen in the next
day's partition, raises nothing new. The file is locked while it is read and appended, so concurrent
checks cannot both send the same alert. A webhook that fails is logged, not retried: the file and the
log still hold the alert.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from infra.settings import Settings
from quality.schema_diff import SchemaDiff

LOGGER = logging.getLogger("quality.alerts")
ALERT_FILE = Path("alerts") / "schema_changes.jsonl"


class Alert(Protocol):
    """What the sinks need of an alert: an identity for deduplication, a line for people, a JSON document."""

    @property
    def fingerprint(self) -> str: ...

    def message(self) -> str: ...

    def payload(self) -> dict: ...


@dataclass(frozen=True)
class SchemaChangeAlert:
    """A schema change seen in a partition of a source's raw table or a group's feature table."""

    kind: str  # "source" or "feature_group"
    name: str
    table: str
    partition: str
    diff: SchemaDiff
    blocked_assets: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        """Identifies the change: who changed and how, not where or when it was seen."""
        return hashlib.sha256(f"{self.kind}:{self.name}:{self.diff.fingerprint()}".encode()).hexdigest()[:16]

    def message(self) -> str:
        """One line for a log or a chat channel."""
        return (f"schema change in {self.kind.replace('_', ' ')} {self.name} ({self.table}, ds={self.partition}): "
                f"{self.diff.summary()}; blocked: {', '.join(self.blocked_assets) or 'nothing downstream'}")

    def payload(self) -> dict:
        """The JSON document written to the file and POSTed to the webhook."""
        return {"fingerprint": self.fingerprint, "kind": self.kind, "name": self.name, "table": self.table,
                "partition": self.partition, "changes": self.diff.lines(), "diff": self.diff.as_dict(),
                "blocked_assets": list(self.blocked_assets), "message": self.message(),
                "detected_at": datetime.now(timezone.utc).isoformat()}


@dataclass(frozen=True)
class AlertSinks:
    """Where alerts go: always the log and `file`, plus `webhook_url` when set."""

    file: Path
    webhook_url: str | None = None
    timeout_seconds: float = 5.0

    @classmethod
    def for_settings(cls, settings: Settings, file: Path = ALERT_FILE) -> AlertSinks:
        """The sinks configured by the active profile for alerts kept in `file` under the data directory.

        FP_ALERT_WEBHOOK_URL adds the webhook.
        """
        return cls(file=settings.data_dir / file, webhook_url=settings.alert_webhook_url)

    def send(self, alert: Alert, log=LOGGER) -> bool:
        """Deliver `alert` unless an alert with its fingerprint was already delivered; True when sent now."""
        payload = self._record_if_new(alert)
        if payload is None:
            return False
        log.warning(alert.message())
        if self.webhook_url:
            self._post(payload, log)
        return True

    def _record_if_new(self, alert: Alert) -> dict | None:
        """Append the alert to the file and return its payload, or None if the file already holds it."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.file, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            if any(json.loads(line)["fingerprint"] == alert.fingerprint for line in handle if line.strip()):
                return None
            payload = alert.payload()
            handle.write(json.dumps(payload) + "\n")
            return payload

    def _post(self, payload: dict, log) -> None:
        request = urllib.request.Request(self.webhook_url, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            log.error(f"alert {payload['fingerprint']} not delivered to the webhook: {exc}; "
                      f"it is recorded in {self.file}")
