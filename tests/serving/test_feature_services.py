"""Feature services and on-demand features: registry errors, requests by service over real HTTP and in
process against a real Redis, on-demand values against a hand computation, and the same values from
training sets (both engines, real Spark) as from the service for the same (id, time)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from assets.dtypes import INT_RANGES
from assets.registry import DEFAULT_ROOT, Registry, RegistryError, load_registry
from assets.specs import FeatureServiceSpec, OnDemandFeature
from infra.errors import PlatformError
from offline.training_set import write_training_set
from serving.client import HttpClient, InProcessClient
from serving.feature_refs import InvalidRequest, UnknownName
from serving.on_demand import Selection, compute, request_values, select, select_service
from serving.online_store import OnlineStore, WritePlan
from serving.service import FeatureService
from tests.conftest import run_featctl
from tests.serving.conftest import HISTORY_DAYS, ServerThread
from tests.serving.test_service import _post

PREFIX = "fsvc"
UTC = timezone.utc
NOW = datetime.now(UTC).replace(microsecond=0)
FRESH = NOW - timedelta(days=1)
TS = pa.timestamp("us", tz="UTC")
LAST_UPVOTE = FRESH - timedelta(hours=2, microseconds=7)
ASKED_AT = NOW + timedelta(hours=1, seconds=3)  # a request time the tests choose, sent as request.time
EQUIVALENT_REFS = ["user_upvotes.upvotes_7d", "user_upvotes.distinct_items_7d",
                   "user_upvotes.hours_since_last_upvote", "user_activity.upvotes_total"]

FEED_FUNCTIONS = '''
import pandas as pd


def upvoted_since(last_upvote_at: pd.Series, since: pd.Series) -> pd.Series:
    """Whether the latest upvote is at or after the request's `since`; null without an upvote."""
    return (last_upvote_at >= since).astype("boolean").mask(last_upvote_at.isna())


def as_text(upvotes_7d: pd.Series) -> pd.Series:
    """Deliberately mistyped: text for a feature declared float64."""
    return upvotes_7d.astype(str)
'''


def _feed_service(tmp_path: Path) -> FeatureServiceSpec:
    """A service built in code with a request field (`since`), its function in a temporary on_demand.py."""
    (tmp_path / "on_demand.py").write_text(FEED_FUNCTIONS)
    return FeatureServiceSpec(
        name="feed", owner="team:feed", description="Test service with a request field.", version=1,
        features=("user_upvotes.upvotes_7d",), entity="user", file=tmp_path / "feed.yaml",
        on_demand=(OnDemandFeature(name="upvoted_since", dtype="bool", description="Upvoted since `since`.",
                                   function="upvoted_since", request_fields={"since": "timestamp"},
                                   inputs={"last_upvote_at": "user_upvotes.last_upvote_at",
                                           "since": "request.since"}),))


@pytest.fixture(scope="module")
def services_registry(registry, tmp_path_factory) -> Registry:
    """The example registry (with its `ranking` service) plus the `feed` test service."""
    feed = _feed_service(tmp_path_factory.mktemp("feed"))
    return Registry(root=registry.root, entities=registry.entities, sources=registry.sources,
                    groups=registry.groups, services={**registry.services, "feed": feed})


@pytest.fixture(scope="module")
def online(services_registry, redis_url):
    """Users 1 (upvotes) and 2 (no upvote in the week) in the session's Redis under this module's prefix."""
    store = OnlineStore(redis.Redis.from_url(redis_url))
    for name, columns in {
        "user_upvotes": {"user_id": [1, 2], "upvotes_7d": [12, 0], "distinct_items_7d": [9, 0], "upvotes_1d": [3, 0],
                         "last_upvote_at": pa.array([LAST_UPVOTE, None], TS)},
        "user_activity": {"user_id": [1, 2], "upvotes_total": [40, 5], "distinct_posts_total": [30, 5],
                          "last_upvote_at": pa.array([LAST_UPVOTE, FRESH - timedelta(days=9)], TS)},
    }.items():
        group = services_registry.groups[name]
        plan = WritePlan.for_group(group, services_registry.entity_of(group), PREFIX)
        store.write(plan, pa.table({**columns, "feature_ts": pa.array([FRESH, FRESH], TS)}))
    store.client.close()
    return redis_url


@pytest.fixture(scope="module")
def clients(services_registry, online):
    with ServerThread(FeatureService(services_registry, online, PREFIX)) as server:
        in_process = InProcessClient.connect(services_registry, online, PREFIX)
        over_http = HttpClient(server.url)
        yield in_process, over_http, server.url
        in_process.close()
        over_http.close()


# --- registry -------------------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "assets"
    shutil.copytree(DEFAULT_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


SERVICE_CASES = [
    ("  - user_upvotes.upvotes_7d\n", "  - user_clicks.upvotes_7d\n", "features[0]", "no feature group 'user_clicks'"),
    ("  - user_upvotes.upvotes_7d\n", "  - user_upvotes.upvotes_30d\n", "features[0]", "has no feature 'upvotes_30d'"),
    ("  - user_upvotes.upvotes_7d\n", "  - user_upvotes@v2.upvotes_7d\n", "features[0]", "v2 is retired or unknown"),
    ("  - user_activity.upvotes_total\n", "  - post_popularity.hot_score\n", "features[3]",
     "describes 'post', the service's earlier features 'user'"),
    ("on_demand:", "ondemand:", "ondemand", "Extra inputs are not permitted"),
    ("function: upvotes_1d_share", "function: upvotes_share", "on_demand[0].function", "'upvotes_share' is not a function"),
    ("upvotes_7d: user_upvotes.upvotes_7d", "upvotes_7d: request.week", "on_demand[0]",
     "inputs: upvotes_7d: request field 'week' is not declared under request_fields"),
    ("upvotes_1d: user_upvotes.upvotes_1d", "upvotes_1d: post_popularity.upvotes_1d", "on_demand[0].inputs.upvotes_1d",
     "describes 'post', not 'user'"),
    ("upvotes_7d: user_upvotes.upvotes_7d", "upvotes_7d: user_upvotes.hours_since_last_upvote",
     "on_demand[0].inputs.upvotes_7d", "'user_upvotes.hours_since_last_upvote' is itself on-demand"),
]


def test_a_service_named_like_a_group_is_refused(tree):
    (tree / "services/ranking.yaml").rename(tree / "services/user_upvotes.yaml")
    with pytest.raises(RegistryError, match=r"services/user_upvotes\.yaml: \(file name\): 'user_upvotes' is also a "
                                            r"feature group"):
        load_registry(tree)


@pytest.mark.parametrize(("old", "new", "field", "message"), SERVICE_CASES)
def test_a_broken_service_is_refused_naming_file_and_field(tree, old, new, field, message):
    path = tree / "services/ranking.yaml"
    _edit(path, old, new)
    with pytest.raises(RegistryError) as caught:
        load_registry(tree)
    assert str(caught.value).startswith(f"{path}: {field}: "), str(caught.value)
    assert message in str(caught.value)
    assert caught.value.fix


def test_a_broken_group_on_demand_feature_is_refused_naming_file_and_field(tree):
    path = tree / "features/user_upvotes/feature.yaml"
    _edit(path, "last_upvote_at: last_upvote_at ", "last_upvote_at: last_click_at ")
    with pytest.raises(RegistryError, match=r"feature\.yaml: on_demand\[0\]\.inputs\.last_upvote_at: "
                                            r"'user_upvotes\.last_click_at': group 'user_upvotes' has no feature"):
        load_registry(tree)


def test_a_service_naming_an_on_demand_feature_by_its_group_loads(registry):
    service = registry.services["ranking"]
    assert service.entity == "user" and service.owner == "team:ranking" and service.version == 1
    entity, selection = select_service(registry, "ranking")
    assert entity == "user"
    assert selection.outputs == (*EQUIVALENT_REFS, "ranking.upvotes_1d_share")
    assert selection.inputs == ("user_upvotes.last_upvote_at", "user_upvotes.upvotes_1d")


def test_featctl_list_shows_services(monkeypatch, capsys):
    code, out = run_featctl(monkeypatch, capsys, "list")
    assert code == 0
    assert "ranking v1" in out and "team:ranking" in out
    assert "hours_since_last_upvote" in out and "upvotes_1d_share" in out


# --- online ---------------------------------------------------------------------------------------------

def test_a_service_answers_its_features_in_order_with_the_values_of_the_equivalent_refs(clients):
    in_process, over_http, _ = clients
    for client in (in_process, over_http):
        by_service = client.get_service("ranking", [1, 2, 3], request={"time": ASKED_AT})
        by_refs = client.get_features("user", [1, 2, 3], EQUIVALENT_REFS, request={"time": ASKED_AT})
        assert [list(row.values) for row in by_service] == [[*EQUIVALENT_REFS, "ranking.upvotes_1d_share"]] * 3
        for service_row, refs_row in zip(by_service, by_refs):
            assert {r: service_row.values[r] for r in EQUIVALENT_REFS} == refs_row.values
            assert {r: service_row.event_times[r] for r in EQUIVALENT_REFS} == refs_row.event_times
    assert (over_http.get_service("ranking", [1, 2], request={"time": ASKED_AT})
            == in_process.get_service("ranking", [1, 2], request={"time": ASKED_AT}))


def test_on_demand_values_equal_the_hand_computation(clients):
    in_process, over_http, _ = clients
    for client in (in_process, over_http):
        one, two, unknown = client.get_service("ranking", [1, 2, 3], request={"time": ASKED_AT})
        assert one.values["user_upvotes.hours_since_last_upvote"] == (ASKED_AT - LAST_UPVOTE).total_seconds() / 3600
        assert one.values["ranking.upvotes_1d_share"] == 3 / 12
        assert one.event_times["ranking.upvotes_1d_share"] == FRESH
        assert two.values["user_upvotes.hours_since_last_upvote"] is None  # no upvote in the window
        assert two.values["ranking.upvotes_1d_share"] is None              # 0 upvotes in the week
        assert unknown.values["ranking.upvotes_1d_share"] is None and unknown.event_times["ranking.upvotes_1d_share"] is None


def test_the_request_time_defaults_to_now(clients):
    in_process, _, _ = clients
    before = datetime.now(UTC)
    hours = in_process.get_service("ranking", [1])[0].values["user_upvotes.hours_since_last_upvote"]
    after = datetime.now(UTC)
    assert (before - LAST_UPVOTE).total_seconds() / 3600 <= hours <= (after - LAST_UPVOTE).total_seconds() / 3600


def test_request_fields_reach_the_function_and_bad_ones_are_422(clients):
    in_process, over_http, url = clients
    since = LAST_UPVOTE - timedelta(hours=1)
    for client in (in_process, over_http):
        rows = client.get_service("feed", [1, 2], request={"since": since.isoformat()})
        assert [row.values["feed.upvoted_since"] for row in rows] == [True, None]
        assert client.get_service("feed", [1], request={"since": LAST_UPVOTE + timedelta(seconds=1)}
                                  )[0].values["feed.upvoted_since"] is False
    for request, reason in [(None, "request field 'since' (timestamp) is missing: feed.upvoted_since read(s) it"),
                            ({"since": 42}, "request.since = 42 is not a timestamp value"),
                            ({"since": "yesterday"}, "request.since = 'yesterday' is not a timestamp value"),
                            ({"since": since.isoformat(), "viewer": 7}, "unknown request field(s) viewer"),
                            ({"time": "soon", "since": since.isoformat()}, "request.time = 'soon' is not a timestamp")]:
        body = {"service": "feed", "ids": [1], **({} if request is None else {"request": request})}
        status, _, payload = _post(url, orjson.dumps(body))
        assert status == 422, payload
        assert reason in orjson.loads(payload)["error"] and orjson.loads(payload)["fix"]
        with pytest.raises(InvalidRequest, match="request"):
            in_process.get_service("feed", [1], request=request)


@pytest.mark.parametrize(("dtype", "value"), [("int32", 2 ** 31), ("int32", -(2 ** 31) - 1), ("int64", 2 ** 63)])
def test_an_integer_request_field_outside_its_dtype_range_is_refused(dtype, value):
    """The 422 names the range, instead of the value reaching pyarrow; the range's own ends are accepted."""
    selection = Selection(outputs=(), dtypes=(), stored=(), inputs=(), steps=(), request_fields={"n": dtype})
    low, high = INT_RANGES[dtype]
    with pytest.raises(InvalidRequest, match=rf"request.n = {value} is out of the {dtype} range {low}..{high}"):
        request_values(selection, {"n": value}, NOW)
    assert [request_values(selection, {"n": end}, NOW)["n"] for end in (low, high)] == [low, high]


def test_an_unknown_service_is_a_404_with_the_fix(clients):
    in_process, over_http, url = clients
    status, _, payload = _post(url, orjson.dumps({"service": "rankin", "ids": [1]}))
    assert status == 404
    assert orjson.loads(payload) == {"error": "unknown feature service 'rankin'", "fix": "use one of: feed, ranking"}
    for client in (in_process, over_http):
        with pytest.raises(UnknownName, match="unknown feature service 'rankin'"):
            client.get_service("rankin", [1])
    status, _, payload = _post(url, orjson.dumps({"service": "ranking", "ids": [1], "features": ["user_upvotes"]}))
    assert status == 400 and "unknown ['features']" in orjson.loads(payload)["error"]


def test_a_mistyped_on_demand_output_names_the_function(services_registry, online):
    feed = services_registry.services["feed"]
    wrong = feed.on_demand[0].model_copy(update={"name": "as_text", "function": "as_text", "dtype": "float64",
                                                 "inputs": {"upvotes_7d": "user_upvotes.upvotes_7d"},
                                                 "request_fields": {}})
    registry = Registry(root=services_registry.root, entities=services_registry.entities,
                        sources=services_registry.sources, groups=services_registry.groups,
                        services={"feed": feed.model_copy(update={"on_demand": (wrong,)})})
    _, selection = select_service(registry, "feed")
    with pytest.raises(PlatformError, match=r"on_demand\.py: as_text\(\) for feed\.as_text: returned string values, "
                                            r"but it is declared float64"):
        compute(selection.steps, {"user_upvotes.upvotes_7d": pa.array([1, 2])}, {}, 2)
    with ServerThread(FeatureService(registry, online, PREFIX)) as server:
        status, _, payload = _post(server.url, orjson.dumps({"service": "feed", "ids": [1]}))
    assert status == 500 and "returned string values, but it is declared float64" in orjson.loads(payload)["error"]


def test_featctl_get_by_service(monkeypatch, capsys, online, settings):
    monkeypatch.setenv("FP_REDIS_URL", online)
    monkeypatch.setenv("FP_REDIS_PREFIX", PREFIX)
    code, out = run_featctl(monkeypatch, capsys, "get", "--service", "ranking", "1,2")
    assert code == 0, out
    assert "ranking.upvotes_1d_share" in out and "0.25" in out and "user_upvotes.upvotes_7d" in out
    code, out = run_featctl(monkeypatch, capsys, "get", "--service", "rankin", "1")
    assert code != 0 and "unknown feature service 'rankin'" in out


# --- training sets --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pit_services(feature_history) -> Registry:
    """The renamed pit_ groups (their on-demand feature included) and a service over them."""
    service = FeatureServiceSpec(
        name="pit_ranking", owner="team:ranking", description="The ranking service over the pit_ groups.",
        version=1, features=("pit_user_upvotes.upvotes_7d", "pit_user_upvotes.hours_since_last_upvote"),
        entity="user", file=DEFAULT_ROOT / "services/pit_ranking.yaml",
        on_demand=(load_registry().services["ranking"].on_demand[0].model_copy(update={"inputs": {
            "upvotes_1d": "pit_user_upvotes.upvotes_1d", "upvotes_7d": "pit_user_upvotes.upvotes_7d"}}),))
    return Registry(root=feature_history.root, entities=feature_history.entities, sources=feature_history.sources,
                    groups=feature_history.groups, services={"pit_ranking": service})


def test_training_sets_give_the_services_values_for_the_same_id_and_time(spark, pit_services, redis_url, tmp_path):
    from batch.publish import publish_range

    last = HISTORY_DAYS[-1].isoformat()
    group = pit_services.groups["pit_user_upvotes"]
    publish_range(spark, pit_services, group, last, last, redis_url, "pitsvc")
    users = [r.user_id for r in spark.table(group.table).where(f"ds = '{last}'").select("user_id").limit(40).collect()]
    asked_at = datetime.combine(HISTORY_DAYS[-1] + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=5)
    client = InProcessClient.connect(pit_services, redis_url, "pitsvc")
    rows = client.get_service("pit_ranking", users, request={"time": asked_at})
    client.close()
    served = {name: [row.values[name] for row in rows] for name in rows[0].values}
    assert any(v is not None for v in served["pit_user_upvotes.hours_since_last_upvote"])

    observations = tmp_path / "obs.parquet"
    pq.write_table(pa.table({"user_id": pa.array(users, pa.int64()), "event_time": pa.array([asked_at] * len(users), TS),
                             "label": list(range(len(users)))}), observations)
    _, selection = select_service(pit_services, "pit_ranking")
    for engine in ("pandas", "spark"):
        out = tmp_path / f"train_{engine}.parquet"
        write_training_set(spark, pit_services, observations, selection, out, engine=engine)
        table = pq.read_table(out).to_pandas().sort_values("label")
        assert list(table.columns) == ["user_id", "event_time", "label", "pit_user_upvotes__upvotes_7d",
                                       "pit_user_upvotes__feature_ts", "pit_user_upvotes__hours_since_last_upvote",
                                       "pit_ranking__upvotes_1d_share"], engine
        for name, values in served.items():
            column = name.replace(".", "__")
            trained = [None if pd.isna(v) else v for v in table[column].tolist()]
            assert trained == values, (engine, name)


def test_on_demand_in_training_sets_equals_the_hand_computation(spark, feature_history, generated_observations,
                                                                tmp_path):
    observations = tmp_path / "obs.parquet"
    frame = generated_observations
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), observations)
    refs = ["pit_user_upvotes.last_upvote_at", "pit_user_upvotes.hours_since_last_upvote"]
    results = {}
    for engine in ("pandas", "spark"):
        out = tmp_path / f"{engine}.parquet"
        write_training_set(spark, feature_history, observations, select(feature_history, refs), out, engine=engine)
        results[engine] = pq.read_table(out).to_pandas().sort_values("obs_id").reset_index(drop=True)
    pandas_set = results["pandas"]
    by_hand = (pandas_set["event_time"] - pandas_set["pit_user_upvotes__last_upvote_at"]).dt.total_seconds() / 3600
    assert pandas_set["pit_user_upvotes__hours_since_last_upvote"].notna().sum() > 100
    pd.testing.assert_series_equal(pandas_set["pit_user_upvotes__hours_since_last_upvote"], by_hand, check_names=False)
    pd.testing.assert_frame_equal(results["spark"][list(pandas_set.columns)], pandas_set, check_dtype=False)


def test_a_training_set_without_a_request_field_column_names_it(spark, services_registry, tmp_path):
    observations = tmp_path / "obs.parquet"
    pq.write_table(pa.table({"user_id": [1], "event_time": pa.array([ASKED_AT], TS)}), observations)
    _, selection = select_service(services_registry, "feed")
    with pytest.raises(PlatformError, match="no column 'since': the request field \\(timestamp\\) feed.upvoted_since"):
        write_training_set(spark, services_registry, observations, selection, tmp_path / "out.parquet",
                           engine="pandas")


def test_openapi_describes_requests_by_service(clients):
    _, _, url = clients
    status, _, document = _post(url, b"", method="GET", path="/openapi.json")
    schemas = orjson.loads(document)["components"]["schemas"]
    assert status == 200 and schemas["ServiceRequest"]["properties"]["service"]["enum"] == ["feed", "ranking"]
    assert "ranking.upvotes_1d_share" in schemas["ServiceRequest"]["properties"]["service"]["description"]
    assert "hours_since_last_upvote (float64, on demand)" in schemas["FeaturesRequest"]["properties"]["features"][
        "description"]


@pytest.mark.usefixtures("event_log")
def test_featctl_training_set_by_service(workspace_featctl, tmp_path):
    """`featctl training-set --service` on the session's workspace gives the service's columns, with the
    on-demand values computed from the same refs' training set."""
    env = {"FP_REDIS_PREFIX": "clisvc"}
    code, done = workspace_featctl("materialize", "--group", "user_upvotes", "--group", "user_activity",
                                   "--partition", "2026-01-02", **env)
    assert code == 0, done
    observations = tmp_path / "obs.parquet"
    times = pd.date_range("2026-01-03", "2026-01-04", periods=30, tz="UTC").astype("datetime64[us, UTC]")
    pd.DataFrame({"user_id": [i % 10 for i in range(30)], "event_time": times}).to_parquet(observations)
    by_service, by_refs = tmp_path / "service.parquet", tmp_path / "refs.parquet"
    code, made = workspace_featctl("training-set", "--observations", str(observations), "--service", "ranking",
                                   "--out", str(by_service), **env)
    assert code == 0, made
    refs = "user_upvotes.upvotes_7d,user_upvotes.upvotes_1d,user_upvotes.last_upvote_at"
    assert workspace_featctl("training-set", "--observations", str(observations), "--features", refs,
                             "--out", str(by_refs), **env)[0] == 0
    service, plain = pd.read_parquet(by_service), pd.read_parquet(by_refs)
    assert list(service.columns) == [
        "user_id", "event_time", "user_upvotes__upvotes_7d", "user_upvotes__distinct_items_7d",
        "user_upvotes__feature_ts", "user_activity__upvotes_total", "user_activity__feature_ts",
        "user_upvotes__hours_since_last_upvote", "ranking__upvotes_1d_share"]
    hours = (plain["event_time"] - plain["user_upvotes__last_upvote_at"]).dt.total_seconds() / 3600
    share = plain["user_upvotes__upvotes_1d"] / plain["user_upvotes__upvotes_7d"].where(plain["user_upvotes__upvotes_7d"] > 0)
    assert service["user_upvotes__hours_since_last_upvote"].notna().sum() > 10
    pd.testing.assert_series_equal(service["user_upvotes__hours_since_last_upvote"], hours, check_names=False)
    pd.testing.assert_series_equal(service["ranking__upvotes_1d_share"], share.astype("float64"), check_names=False)
    code, missing = workspace_featctl("training-set", "--observations", str(observations), "--service", "rankin",
                                      "--out", str(by_service), **env)
    assert code == 1 and "unknown feature service 'rankin'" in missing
