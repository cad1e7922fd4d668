"""The Dagster UI in a real browser: the registry's lineage is on screen, and a click publishes to Redis.

`dagster dev` runs as a user starts it (fresh instance, tiny event log, its own Redis); headless chromium
opens the asset graph, checks every group's raw -> features -> online path and that each node names its
stage, then materializes one feature
group's partition from the UI and checks the values that land in Redis against the pandas reference.
Screenshots of every step: .data/test-artifacts/e2e/<test name>/.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import redis
from playwright.sync_api import expect

from serving.get_features import build_read_plan, get_features
from serving.layout import event_time_field, feature_field
from serving.online_store import OnlineStore
from tests.conftest import PARTITION, UI_REDIS_PREFIX
from tests.e2e.dagster_graphql import step_failures, wait_for_run
from tests.e2e.graph_page import asset_node, expand_all_groups, launch_partition, open_lineage, visible_asset_keys
from tests.reference import EXPECTED

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GROUP = "user_upvotes"
RUN_SECONDS = 900  # the run starts Spark in fresh JVMs (a step each) on 2 shared cores


def group_path(group) -> set[str]:
    """The asset keys of a group's path: its raw sources, its feature table, its online publish."""
    return {f"raw/{source}" for source in group.sources} | {f"features/{group.name}", f"online/{group.name}"}


def test_the_asset_graph_shows_every_groups_raw_features_online_path(page, screens, registry):
    boxes = [*registry.groups, "sources", *(["services"] if registry.services else [])]
    # The whole graph on screen at a zoom where Dagster still draws nodes in full (with their links).
    page.set_viewport_size({"width": 2400, "height": 500 * len(boxes)})
    open_lineage(page)
    expand_all_groups(page, boxes)
    screens.take(page, "global-asset-graph")
    # The platform's instance settings turn off the dialog a fresh instance greets every page with.
    expect(page.get_by_role("dialog").filter(has_text="Join the Dagster community")).to_have_count(0)
    on_screen = visible_asset_keys(page)
    for group in registry.groups.values():
        assert group_path(group) <= on_screen, f"{group.name}: {sorted(group_path(group) - on_screen)} not on the graph"

    page.set_viewport_size({"width": 2200, "height": 1000})  # a source's ingest, raw table, features, online
    for group in registry.groups.values():
        path = group_path(group)
        upstream_of_features = path - {f"online/{group.name}"}
        for asset, upstream in ((f"features/{group.name}", upstream_of_features), (f"online/{group.name}", path)):
            open_lineage(page, f'+key:"{asset}"')  # the asset and everything upstream of it
            expand_all_groups(page, [group.name, "sources"])
            for key in sorted(upstream):
                asset_node(page, key).wait_for()
            assert visible_asset_keys(page) == upstream, f"upstream of {asset} differs"
        screens.take(page, f"path-{group.name}")


def test_each_node_of_a_group_names_its_stage_on_the_graph(page, screens, registry):
    """Dagster labels a node with its key's last part only, so the batch table, the Redis publish, the stream
    job and its history all read `user_upvotes`; each node also shows its stage (orchestration/stages.py),
    so they are told apart at a glance, as are a source's raw table and its ingest."""
    group = registry.groups[GROUP]
    stages = {f"{stage}/{group.name}": stage for stage in ("features", "online", "stream", "history")}
    stages |= {f"{stage}/{source}": stage for source in group.sources
               for stage in ("raw", "ingest") if stage == "raw" or registry.sources[source].stream}
    page.set_viewport_size({"width": 2200, "height": 1000})
    open_lineage(page, " or ".join(f'key:"{key}"' for key in sorted(stages)))
    expand_all_groups(page, [group.name, "sources"])
    nodes = page.locator("foreignObject", has=page.locator("[class*=assetNodeContainer]"))
    for key, stage in sorted(stages.items()):  # the one node titled with the key's last part and its stage
        node = nodes.filter(has=page.get_by_text(key.split("/")[-1], exact=True)).filter(
            has=page.get_by_text(stage, exact=True))
        expect(node).to_have_count(1)
        expect(node.get_by_text(stage, exact=True)).to_be_visible()
    expect(nodes).to_have_count(len(stages))
    screens.take(page, f"stages-{group.name}")


def _published(client: redis.Redis) -> dict:
    return {key: client.hgetall(key) for key in client.scan_iter(f"{UI_REDIS_PREFIX}:*")}


def test_materializing_a_partition_from_the_ui_publishes_the_reference_values(page, screens, dagster_ui, ui_redis,
                                                                              registry, sample):
    client = redis.Redis.from_url(ui_redis)
    client.flushdb()  # what lands is this run's alone
    group = registry.groups[GROUP]

    page.goto(f"/assets/features/{GROUP}")
    page.get_by_text(group.description).wait_for()
    screens.take(page, "feature-asset")
    # The feature table and its publish on the lineage graph (the feature services reading them stay out of view).
    page.set_viewport_size({"width": 2000, "height": 1000})
    open_lineage(page, f'key:"features/{GROUP}" or key:"online/{GROUP}"')  # one group: drawn open
    asset_node(page, f"online/{GROUP}").wait_for()
    page.get_by_role("button", name=re.compile(r"Materialize all")).first.click()  # the two on the graph (the run is checked)
    launch_partition(page, PARTITION)
    screens.take(page, "materialize-dialog")
    page.get_by_role("dialog").get_by_role("button", name=re.compile(r"Launch (\d+ runs?|backfill)")).click()

    toast = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}"))
    toast.wait_for()
    screens.take(page, "launched")
    run_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group(0)
    run = wait_for_run(dagster_ui.url, run_id, f"features/{GROUP}", RUN_SECONDS)
    page.goto(f"/runs/{run.run_id}")
    page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first.wait_for()
    screens.take(page, "run")
    assert run.status == "SUCCESS", f"run {run.run_id} ended {run.status}: {step_failures(dagster_ui.url, run.run_id)}"
    assert run.assets == {f"features/{GROUP}", f"online/{GROUP}"}
    assert run.partitions == (PARTITION, PARTITION)

    expected = EXPECTED[GROUP](sample, PARTITION)
    page.goto(f"/assets/online/{GROUP}")
    page.get_by_text(PARTITION).first.wait_for()  # the latest materialization names its partition
    expect(page.get_by_role("row").filter(has_text="rows_landed")).to_contain_text(str(len(expected)))
    screens.take(page, "online-asset")

    published = _published(client)
    assert set(published) == {f"{UI_REDIS_PREFIX}:user:{user}".encode() for user in expected.index}
    fields = {feature_field(GROUP, group.version, f.name) for f in group.features} | {event_time_field(GROUP, group.version)}
    assert {field.decode() for hash_ in published.values() for field in hash_} == fields

    plan = build_read_plan(registry, UI_REDIS_PREFIX, "user", [GROUP])
    as_of = datetime.fromisoformat(PARTITION).replace(tzinfo=timezone.utc) + timedelta(days=1)
    for row in get_features(OnlineStore(client), plan, [int(user) for user in expected.index]):
        for feature in group.features:
            wanted = expected.loc[row.entity_id, feature.name]
            if feature.dtype == "timestamp":
                wanted = wanted.to_pydatetime().replace(tzinfo=timezone.utc)
            assert row.values[f"{GROUP}.{feature.name}"] == wanted, (row.entity_id, feature.name)
        assert set(row.event_times.values()) == {as_of}
    client.close()
