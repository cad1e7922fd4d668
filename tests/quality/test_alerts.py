"""Schema-change alerts: deduplicated by change, written to the JSON-lines file, POSTed to a webhook."""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.settings import load_settings
from quality.alerts import ALERT_FILE, AlertSinks, SchemaChangeAlert
from quality.schema_diff import ColumnSchema, Retyped, SchemaDiff

RETYPED = SchemaDiff(retyped=(Retyped("post_id", "bigint", "string"),))
RENAMED = SchemaDiff(removed=(ColumnSchema("user_id", "bigint", False),), added=(ColumnSchema("userid", "bigint"),))


def _alert(diff: SchemaDiff, partition: str = "2026-01-10") -> SchemaChangeAlert:
    return SchemaChangeAlert("source", "upvote_events", "raw.upvote_events", partition, diff,
                             ("features/user_upvotes", "online/user_upvotes"))


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def webhook():
    """A local HTTP server on a free loopback port collecting POSTed JSON bodies; stopped afterwards."""
    received = []

    class Collect(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_one_alert_per_distinct_change(tmp_path):
    sinks = AlertSinks(file=tmp_path / ALERT_FILE)
    assert sinks.send(_alert(RETYPED))
    assert not sinks.send(_alert(RETYPED)), "the same change again"
    assert not sinks.send(_alert(RETYPED, partition="2026-01-11")), "the same change in the next partition"
    assert sinks.send(_alert(RENAMED))
    lines = _lines(sinks.file)
    assert [line["changes"] for line in lines] == [["retyped post_id: bigint -> string"],
                                                    ["removed user_id (bigint)", "added userid (bigint)"]]
    assert lines[0]["partition"] == "2026-01-10"
    assert lines[0]["blocked_assets"] == ["features/user_upvotes", "online/user_upvotes"]


def test_the_webhook_receives_each_new_alert_once(tmp_path, webhook):
    url, received = webhook
    settings = load_settings(data_dir=tmp_path, alert_webhook_url=url)
    sinks = AlertSinks.for_settings(settings)
    assert sinks.file == tmp_path / "alerts" / "schema_changes.jsonl"
    sinks.send(_alert(RETYPED))
    sinks.send(_alert(RETYPED))
    assert len(received) == 1
    assert received[0] == _lines(sinks.file)[0]
    assert received[0]["name"] == "upvote_events"
    assert received[0]["diff"]["retyped"] == [{"column": "post_id", "expected": "bigint", "actual": "string"}]


def test_an_unreachable_webhook_is_logged_and_the_alert_kept(tmp_path, caplog):
    with socket.socket() as probe:  # a free port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sinks = AlertSinks(file=tmp_path / ALERT_FILE, webhook_url=f"http://127.0.0.1:{port}/", timeout_seconds=2)
    with caplog.at_level(logging.WARNING, logger="quality.alerts"):
        assert sinks.send(_alert(RETYPED))
    assert len(_lines(sinks.file)) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("schema change in source upvote_events") for m in messages)
    assert any("not delivered to the webhook" in m for m in messages)
