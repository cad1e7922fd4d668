"""The few questions the e2e test asks the webserver's GraphQL API: which runs exist, and how one ended.

Only observation goes through here; the launch itself is a click in the UI.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass

RUNS = """
query Runs {
  runsOrError {
    __typename
    ... on Runs { results { runId status tags { key value } assetSelection { path } } }
    ... on PythonError { message }
  }
}"""

FAILURES = """
query Failures($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection { events { __typename ... on ExecutionStepFailureEvent { stepKey error { message } } } }
  }
}"""

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass(frozen=True)
class Run:
    """A run as the webserver reports it."""

    run_id: str
    status: str
    assets: frozenset[str]
    tags: dict[str, str]

    @property
    def partitions(self) -> tuple[str, str] | None:
        """(first, last) partition the run covers: one partition or a range (single-run backfills)."""
        if "dagster/partition" in self.tags:
            return self.tags["dagster/partition"], self.tags["dagster/partition"]
        first, last = (self.tags.get(f"dagster/asset_partition_range_{end}") for end in ("start", "end"))
        return (first, last) if first and last else None


def graphql(url: str, query: str, **variables) -> dict:
    """POST one query to `<url>/graphql` and return its `data`, raising on GraphQL errors."""
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(f"{url}/graphql", body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


def runs_of(url: str, asset: str) -> list[Run]:
    """Every run whose asset selection includes `asset` (e.g. `features/user_upvotes`), newest first."""
    runs = graphql(url, RUNS)["runsOrError"]
    if runs["__typename"] != "Runs":
        raise RuntimeError(f"runsOrError: {runs}")
    found = [Run(r["runId"], r["status"], frozenset("/".join(a["path"]) for a in r["assetSelection"] or []),
                 {t["key"]: t["value"] for t in r["tags"]}) for r in runs["results"]]
    return [run for run in found if asset in run.assets]


def step_failures(url: str, run_id: str) -> list[str]:
    """`step: error` for each failed step of a run, to explain a failed run in the assertion message."""
    events = graphql(url, FAILURES, runId=run_id)["logsForRun"].get("events", [])
    return [f"{e['stepKey']}: {e['error']['message'].strip()}" for e in events
            if e["__typename"] == "ExecutionStepFailureEvent"]


def wait_for_run(url: str, run_id_prefix: str, asset: str, timeout: float) -> Run:
    """The run whose id starts with `run_id_prefix` (the UI shows 8 characters), once it has ended."""
    deadline = time.monotonic() + timeout
    status = "not found"
    while time.monotonic() < deadline:
        matching = [run for run in runs_of(url, asset) if run.run_id.startswith(run_id_prefix)]
        if matching:
            status = matching[0].status
            if status in TERMINAL:
                return matching[0]
        time.sleep(2)
    raise TimeoutError(f"run {run_id_prefix} of {asset} did not end within {timeout:.0f} s (last seen: {status})")
