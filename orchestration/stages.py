"""How each asset's stage shows on Dagster's lineage graph.

Every asset key is `<stage>/<name>` (raw, ingest, features, online, stream, history, service, served), and the
graph labels a node with the key's last part only, so the four nodes of a group would all read
`user_upvotes`. Each asset therefore also carries its stage as a kind: the badge Dagster draws on the node
beside the engines it runs on, and a filter (`kind:online`). The keys themselves stay as they were, so an
instance keeps every asset's history and partition status.
"""

from __future__ import annotations


def stage_asset(stage: str, name: str, *engines: str) -> dict:
    """The `key` and `kinds` arguments of an asset of `stage` named `name` that runs on `engines`."""
    return {"key": [stage, name], "kinds": {*engines, stage}}
