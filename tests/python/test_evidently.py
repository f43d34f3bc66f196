"""boto3 conformance suite for edgesplit's CloudWatch Evidently API (restJson1, 2021-02-01).

Contract: ../shared/spec/evidently.md (sections 1-4, 8), ../shared/spec/decisions.md (D5-D7) and the botocore
1.42.50 model ../shared/aws-models/evidently-2021-02-01.json. Every test gets its own edgesplit with an empty
store (conftest.py `es`), talks to it through boto3 with host-prefix injection off (spec 1.1) and uses the
default ARN account/region (000000000000, us-east-1).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from evidently_support import (
    bucket,
    dumps,
    evidently_client,
    experiment_arn,
    feature_arn,
    field_names,
    launch_arn,
    pick,
    project_arn,
    raises,
    raw_request,
    segment_arn,
)


@pytest.fixture
def ev(es):
    """A boto3 Evidently client on a fresh edgesplit."""
    return evidently_client(es)


# --- builders -------------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(timezone.utc)


def svars(*names: str) -> list[dict]:
    """STRING variations: name X has value x (lower case)."""
    return [{"name": n, "value": {"stringValue": n.lower()}} for n in names]


def make_project(ev, name: str = "p", **kw) -> dict:
    return ev.create_project(name=name, **kw)["project"]


def make_feature(ev, project: str = "p", name: str = "f", variations=None, **kw) -> dict:
    return ev.create_feature(project=project, name=name, variations=variations or svars("A", "B", "C"), **kw)["feature"]


def groups_of(feature: str, mapping: list[tuple[str, str]]) -> list[dict]:
    return [{"feature": feature, "name": g, "variation": v} for g, v in mapping]


def make_launch(ev, project: str, name: str, feature: str, groups: list[tuple[str, str]], weights: dict, *,
                overrides=None, start: datetime | None = None, **kw) -> dict:
    step = {"startTime": start or now() - timedelta(hours=1), "groupWeights": weights}
    if overrides is not None:
        step["segmentOverrides"] = overrides
    return ev.create_launch(
        project=project, name=name, groups=groups_of(feature, groups), scheduledSplitsConfig={"steps": [step]}, **kw
    )["launch"]


METRIC = {
    "name": "clicks",
    "entityIdKey": "userDetails.userId",
    "valueKey": "details.clicks",
    "eventPattern": json.dumps({"userDetails.userId": [{"exists": True}], "details.clicks": [{"exists": True}]}),
    "unitLabel": "count",
}


def make_experiment(ev, project: str, name: str, feature: str, treatments: list[tuple[str, str]], weights: dict,
                    sampling: int = 100000, **kw) -> dict:
    return ev.create_experiment(
        project=project,
        name=name,
        treatments=[{"feature": feature, "name": t, "variation": v} for t, v in treatments],
        metricGoals=[{"metricDefinition": METRIC, "desiredChange": "INCREASE"}],
        onlineAbConfig={"controlTreatmentName": treatments[0][0], "treatmentWeights": weights},
        samplingRate=sampling,
        **kw,
    )["experiment"]


def evaluate(ev, entity: str, feature: str = "f", project: str = "p", context=None) -> dict:
    kw = {} if context is None else {"evaluationContext": context if isinstance(context, str) else json.dumps(context)}
    r = ev.evaluate_feature(project=project, feature=feature, entityId=entity, **kw)
    r.pop("ResponseMetadata")
    return r


def details(r: dict) -> dict:
    assert isinstance(r.get("details"), str), f"details must be a JSON string (spec 1.2), got {r.get('details')!r}"
    return json.loads(r["details"])


def ts(t) -> int:
    return int(t.timestamp())


def list_all(call, key: str, **kw) -> list[list[dict]]:
    """Every page of a list operation, following nextToken (bounded)."""
    pages, token = [], None
    for _ in range(200):
        r = call(**kw, **({"nextToken": token} if token else {}))
        pages.append(r[key])
        token = r.get("nextToken")
        if not token:
            return pages
    raise AssertionError("more than 200 pages")


# === 1. projects ====================================================================================


def test_create_and_get_project_by_name_and_by_percent_encoded_arn(es):
    sent: list = []
    ev = evidently_client(es, sent)
    before = now() - timedelta(seconds=5)
    p = make_project(ev, "alpha", description="first project", tags={"team": "edge"})
    assert p["arn"] == project_arn("alpha")
    assert p["name"] == "alpha"
    assert p["description"] == "first project"
    assert p["status"] == "AVAILABLE"
    assert before <= p["createdTime"] <= now() + timedelta(seconds=5)
    assert p["lastUpdatedTime"] >= p["createdTime"]
    for counter in ("featureCount", "launchCount", "activeLaunchCount", "experimentCount", "activeExperimentCount"):
        assert p.get(counter, 0) == 0, (counter, p)
    assert p.get("tags") == {"team": "edge"}

    by_name = ev.get_project(project="alpha")["project"]
    assert by_name["arn"] == p["arn"] and by_name["description"] == "first project"

    sent.clear()
    by_arn = ev.get_project(project=project_arn("alpha"))["project"]
    assert by_arn["arn"] == p["arn"] and by_arn["name"] == "alpha"
    # The ARN really travelled percent-encoded in one path segment (spec 1.2).
    assert sent and "/projects/arn%3Aaws%3Aevidently%3Aus-east-1%3A000000000000%3Aproject%2Falpha" in sent[-1][1], sent


def test_list_projects_pages_with_max_results_1(ev):
    names = {"p1", "p2", "p3"}
    for n in sorted(names):
        make_project(ev, n)
    pages = list_all(ev.list_projects, "projects", maxResults=1)
    assert all(len(page) == 1 for page in pages), pages
    seen = [s["name"] for page in pages for s in page]
    assert sorted(seen) == sorted(names), seen
    assert all(s["arn"] == project_arn(s["name"]) and s["status"] == "AVAILABLE" for page in pages for s in page)
    whole = ev.list_projects()
    assert sorted(s["name"] for s in whole["projects"]) == sorted(names)
    assert not whole.get("nextToken")


def test_update_project_description(ev):
    p = make_project(ev, "alpha", description="old")
    up = ev.update_project(project="alpha", description="new text")["project"]
    assert up["description"] == "new text"
    assert up["lastUpdatedTime"] >= p["lastUpdatedTime"]
    assert up["createdTime"] == p["createdTime"]
    assert ev.get_project(project="alpha")["project"]["description"] == "new text"


def test_update_project_data_delivery(ev):
    make_project(ev, "alpha")
    p = ev.update_project_data_delivery(project="alpha", cloudWatchLogs={"logGroup": "evidently/alpha"})["project"]
    assert p["dataDelivery"] == {"cloudWatchLogs": {"logGroup": "evidently/alpha"}}, p.get("dataDelivery")
    assert ev.get_project(project="alpha")["project"]["dataDelivery"] == {"cloudWatchLogs": {"logGroup": "evidently/alpha"}}

    p = ev.update_project_data_delivery(project="alpha", s3Destination={"bucket": "my-bucket", "prefix": "ev/alpha"})["project"]
    assert p["dataDelivery"] == {"s3Destination": {"bucket": "my-bucket", "prefix": "ev/alpha"}}, p.get("dataDelivery")
    assert ev.get_project(project="alpha")["project"]["dataDelivery"] == {"s3Destination": {"bucket": "my-bucket", "prefix": "ev/alpha"}}

    with raises("ValidationException"):
        ev.update_project_data_delivery(
            project="alpha", cloudWatchLogs={"logGroup": "g"}, s3Destination={"bucket": "my-bucket", "prefix": "x"}
        )
    # The rejected call changed nothing.
    assert ev.get_project(project="alpha")["project"]["dataDelivery"] == {"s3Destination": {"bucket": "my-bucket", "prefix": "ev/alpha"}}


def test_project_counters_follow_features_launches_and_experiments(ev):
    make_project(ev)
    make_feature(ev, name="f1")
    make_feature(ev, name="f2")

    def counters():
        p = ev.get_project(project="p")["project"]
        return {k: p.get(k, 0) for k in ("featureCount", "launchCount", "activeLaunchCount", "experimentCount", "activeExperimentCount")}

    assert counters() == dict(featureCount=2, launchCount=0, activeLaunchCount=0, experimentCount=0, activeExperimentCount=0)
    make_launch(ev, "p", "L", "f1", [("G1", "A"), ("G2", "B")], {"G1": 50000, "G2": 50000})
    assert counters() == dict(featureCount=2, launchCount=1, activeLaunchCount=0, experimentCount=0, activeExperimentCount=0)
    ev.start_launch(project="p", launch="L")
    assert counters() == dict(featureCount=2, launchCount=1, activeLaunchCount=1, experimentCount=0, activeExperimentCount=0)
    make_experiment(ev, "p", "E", "f2", [("control", "A"), ("treat", "B")], {"control": 50000, "treat": 50000})
    assert counters() == dict(featureCount=2, launchCount=1, activeLaunchCount=1, experimentCount=1, activeExperimentCount=0)
    ev.start_experiment(project="p", experiment="E", analysisCompleteTime=now() + timedelta(days=7))
    assert counters() == dict(featureCount=2, launchCount=1, activeLaunchCount=1, experimentCount=1, activeExperimentCount=1)
    # The summaries in ListProjects carry the same counters.
    (summary,) = ev.list_projects()["projects"]
    assert (summary.get("featureCount"), summary.get("activeLaunchCount"), summary.get("activeExperimentCount")) == (2, 1, 1)

    ev.stop_launch(project="p", launch="L", desiredState="COMPLETED")
    ev.stop_experiment(project="p", experiment="E", desiredState="CANCELLED")
    assert counters() == dict(featureCount=2, launchCount=1, activeLaunchCount=0, experimentCount=1, activeExperimentCount=0)
    ev.delete_launch(project="p", launch="L")
    ev.delete_experiment(project="p", experiment="E")
    ev.delete_feature(project="p", feature="f2")
    assert counters() == dict(featureCount=1, launchCount=0, activeLaunchCount=0, experimentCount=0, activeExperimentCount=0)


def test_duplicate_project_is_conflict(ev):
    make_project(ev, "alpha")
    with raises("ConflictException"):
        make_project(ev, "alpha")


def test_missing_project_is_resource_not_found_with_resource_type(ev):
    with raises("ResourceNotFoundException") as err:
        ev.get_project(project="nope")
    assert err.response.get("resourceType") == "project", err.response
    with raises("ResourceNotFoundException") as err:
        ev.update_project(project="nope", description="x")
    assert err.response.get("resourceType") == "project", err.response
    with raises("ResourceNotFoundException") as err:
        ev.delete_project(project="nope")
    assert err.response.get("resourceType") == "project", err.response
    with raises("ResourceNotFoundException") as err:
        ev.create_feature(project="nope", name="f", variations=svars("A"))
    assert err.response.get("resourceType") == "project", err.response


def test_delete_project_with_features_is_conflict_then_works_once_empty(ev):
    make_project(ev)
    make_feature(ev)
    with raises("ConflictException") as err:
        ev.delete_project(project="p")
    assert err.response.get("resourceType") == "project", err.response
    ev.get_project(project="p")
    ev.delete_feature(project="p", feature="f")
    ev.delete_project(project="p")
    with raises("ResourceNotFoundException"):
        ev.get_project(project="p")
    assert ev.list_projects()["projects"] == []


def test_51st_project_is_service_quota_exceeded_402(ev):
    for i in range(50):
        make_project(ev, f"p{i:02d}")
    with raises("ServiceQuotaExceededException") as err:
        make_project(ev, "p50")
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 402
    with raises("ResourceNotFoundException"):
        ev.get_project(project="p50")
    # Deleting one frees a slot.
    ev.delete_project(project="p00")
    make_project(ev, "p50")


# === 2. features ====================================================================================


@pytest.mark.parametrize(
    "value_type, values",
    [
        ("STRING", [{"stringValue": "red"}, {"stringValue": '{"json": "in a string"}'}]),
        ("LONG", [{"longValue": 5}, {"longValue": -9007199254740991}]),
        ("DOUBLE", [{"doubleValue": 1.5}, {"doubleValue": -0.25}]),
        ("BOOLEAN", [{"boolValue": True}, {"boolValue": False}]),
    ],
)
def test_create_feature_of_each_value_type(ev, value_type, values):
    make_project(ev)
    variations = [{"name": f"v{i}", "value": v} for i, v in enumerate(values)]
    f = ev.create_feature(project="p", name="f", variations=variations, description="d")["feature"]
    assert f["arn"] == feature_arn("p", "f")
    assert f["name"] == "f"
    assert f["project"] == project_arn("p")
    assert f["valueType"] == value_type
    assert f["variations"] == variations
    assert f["defaultVariation"] == "v0"  # omitted -> the first listed (spec 2.3)
    assert f["evaluationStrategy"] == "ALL_RULES"
    assert f["status"] == "AVAILABLE"
    assert f["description"] == "d"
    got = ev.get_feature(project="p", feature="f")["feature"]
    assert got["variations"] == variations and got["valueType"] == value_type and got["defaultVariation"] == "v0"


def test_create_feature_with_explicit_default_and_overrides(ev):
    make_project(ev)
    f = make_feature(ev, defaultVariation="B", entityOverrides={"vip": "C"}, evaluationStrategy="DEFAULT_VARIATION")
    assert f["defaultVariation"] == "B"
    assert f["entityOverrides"] == {"vip": "C"}
    assert f["evaluationStrategy"] == "DEFAULT_VARIATION"
    # Also addressable with the project's ARN.
    assert ev.get_feature(project=project_arn("p"), feature="f")["feature"]["arn"] == feature_arn("p", "f")


def test_create_feature_validation(ev):
    make_project(ev)
    with raises("ValidationException"):  # mixed value types
        ev.create_feature(project="p", name="f", variations=[{"name": "A", "value": {"stringValue": "a"}}, {"name": "B", "value": {"longValue": 1}}])
    with raises("ValidationException"):  # 6 variations (max 5); botocore does not check list maximums
        ev.create_feature(project="p", name="f", variations=svars("A", "B", "C", "D", "E", "F"))
    with raises("ValidationException") as err:
        ev.create_feature(project="p", name="f", variations=svars("A"), evaluationStrategy="NOPE")
    assert err.response["reason"] == "fieldValidationFailed"
    assert any("evaluationStrategy" in n for n in field_names(err.response)), err.response
    with raises("ValidationException"):  # entity id over 512 characters
        ev.create_feature(project="p", name="f", variations=svars("A"), entityOverrides={"x" * 600: "A"})
    with raises("ValidationException"):  # the default must be one of the variations
        ev.create_feature(project="p", name="f", variations=svars("A", "B"), defaultVariation="Z")
    with raises("ValidationException"):  # name pattern
        ev.create_feature(project="p", name="bad name!", variations=svars("A"))
    # None of them created anything.
    assert ev.list_features(project="p")["features"] == []
    make_feature(ev)
    with raises("ConflictException"):
        make_feature(ev)


def test_update_feature_variations_overrides_and_default(ev):
    make_project(ev)
    make_feature(ev, variations=svars("A", "B", "C"), entityOverrides={"e1": "B"})

    f = ev.update_feature(
        project="p", feature="f",
        addOrUpdateVariations=[{"name": "B", "value": {"stringValue": "b2"}}, {"name": "D", "value": {"stringValue": "d"}}],
    )["feature"]
    assert f["variations"] == [
        {"name": "A", "value": {"stringValue": "a"}},
        {"name": "B", "value": {"stringValue": "b2"}},
        {"name": "C", "value": {"stringValue": "c"}},
        {"name": "D", "value": {"stringValue": "d"}},
    ]
    assert f["entityOverrides"] == {"e1": "B"}  # untouched when not sent

    f = ev.update_feature(project="p", feature="f", removeVariations=["C", "ZZ"])["feature"]  # unknown name ignored
    assert [v["name"] for v in f["variations"]] == ["A", "B", "D"]

    f = ev.update_feature(project="p", feature="f", entityOverrides={"e2": "D"})["feature"]
    assert f["entityOverrides"] == {"e2": "D"}  # replaced whole (spec 2.3)

    f = ev.update_feature(project="p", feature="f", defaultVariation="B", removeVariations=["A"], description="moved")["feature"]
    assert f["defaultVariation"] == "B"
    assert [v["name"] for v in f["variations"]] == ["B", "D"]
    assert f["description"] == "moved"

    got = ev.get_feature(project="p", feature="f")["feature"]
    assert got["variations"] == [{"name": "B", "value": {"stringValue": "b2"}}, {"name": "D", "value": {"stringValue": "d"}}]
    assert got["defaultVariation"] == "B" and got["entityOverrides"] == {"e2": "D"}

    with raises("ValidationException"):  # a LONG variation in a STRING feature
        ev.update_feature(project="p", feature="f", addOrUpdateVariations=[{"name": "X", "value": {"longValue": 1}}])
    with raises("ValidationException"):
        ev.update_feature(project="p", feature="f", evaluationStrategy="NOPE")
    with raises("ResourceNotFoundException") as err:
        ev.update_feature(project="p", feature="ghost", description="x")
    assert err.response.get("resourceType") == "feature", err.response


def test_list_features_pages_and_delete(ev):
    make_project(ev)
    for n in ("f1", "f2", "f3"):
        make_feature(ev, name=n)
    pages = list_all(ev.list_features, "features", project="p", maxResults=1)
    assert all(len(page) == 1 for page in pages), pages
    summaries = [s for page in pages for s in page]
    assert sorted(s["name"] for s in summaries) == ["f1", "f2", "f3"]
    for s in summaries:
        assert s["arn"] == feature_arn("p", s["name"])
        assert s["evaluationStrategy"] == "ALL_RULES" and s["status"] == "AVAILABLE"
        assert s.get("defaultVariation") == "A"

    ev.delete_feature(project="p", feature="f2")
    with raises("ResourceNotFoundException") as err:
        ev.get_feature(project="p", feature="f2")
    assert err.response.get("resourceType") == "feature", err.response
    with raises("ResourceNotFoundException"):
        ev.delete_feature(project="p", feature="f2")
    assert sorted(s["name"] for s in ev.list_features(project="p")["features"]) == ["f1", "f3"]
    assert ev.get_project(project="p")["project"].get("featureCount") == 2


# === 3. segments ====================================================================================


SPEC_PATTERNS = {
    "null": {"UserID": [None]},
    "empty": {"LastName": [""]},
    "equals": {"Browser": ["Chrome"]},
    "and": {"Country": ["France"], "Device": ["Mobile"]},
    "or-one": {"Browser": ["Chrome", "Firefox"]},
    "or-across": {"$or": [{"Browser": ["Safari"]}, {"Device": ["Tablet"]}]},
    "not": {"Browser": [{"anything-but": ["Safari"]}]},
    "num-eq": {"Price": [{"numeric": ["=", 100]}]},
    "num-range": {"Price": [{"numeric": [">", 10, "<=", 20]}]},
    "exists": {"Age": [{"exists": True}]},
    "not-exists": {"Age": [{"exists": False}]},
    "prefix": {"Region": [{"prefix": "us-"}]},
    "suffix": {"Region": [{"suffix": "West"}]},
    "ug-1": {"Browser": ["Chrome", "Firefox"], "Location": ["US-West"]},
    "ug-2": {"Browser": [{"anything-but": ["Chrome"]}], "Location": [{"prefix": "US"}], "Age": [{"exists": True}]},
    "ug-3": {"Location": ["Japan"], "$or": [{"Browser": ["Safari"]}, {"Device": ["Tablet"]}]},
}


def test_segment_crud(ev):
    pattern = json.dumps(SPEC_PATTERNS["equals"])
    s = ev.create_segment(name="chrome", pattern=pattern, description="Chrome users", tags={"k": "v"})["segment"]
    assert s["arn"] == segment_arn("chrome")
    assert s["name"] == "chrome"
    assert isinstance(s["pattern"], str) and json.loads(s["pattern"]) == SPEC_PATTERNS["equals"]
    assert s["description"] == "Chrome users"
    assert s.get("launchCount", 0) == 0 and s.get("experimentCount", 0) == 0
    assert s.get("tags") == {"k": "v"}

    got = ev.get_segment(segment="chrome")["segment"]
    assert got["arn"] == s["arn"] and json.loads(got["pattern"]) == SPEC_PATTERNS["equals"]
    assert ev.get_segment(segment=segment_arn("chrome"))["segment"]["name"] == "chrome"

    with raises("ConflictException"):
        ev.create_segment(name="chrome", pattern=pattern)
    with raises("ResourceNotFoundException"):
        ev.get_segment(segment="ghost")

    ev.delete_segment(segment="chrome")
    with raises("ResourceNotFoundException"):
        ev.get_segment(segment="chrome")
    with raises("ResourceNotFoundException"):
        ev.delete_segment(segment="chrome")


def test_every_spec_pattern_creates_a_segment_and_lists_with_paging(ev):
    for name, pattern in SPEC_PATTERNS.items():
        s = ev.create_segment(name=name, pattern=json.dumps(pattern))["segment"]
        assert json.loads(s["pattern"]) == pattern, name
    pages = list_all(ev.list_segments, "segments", maxResults=1)
    assert all(len(page) == 1 for page in pages), pages
    assert sorted(s["name"] for page in pages for s in page) == sorted(SPEC_PATTERNS)
    pages = list_all(ev.list_segments, "segments", maxResults=5)
    assert [len(p) for p in pages] == [5, 5, 5, 1]


@pytest.mark.parametrize(
    "pattern",
    [
        "not json",
        '{"Browser": ["Chrome"]',
        "[1, 2]",
        '"Chrome"',
        '{"Browser": "Chrome"}',  # a leaf must be an array of values/operators
        '{"Browser": [{"bogus-operator": 1}]}',
    ],
)
def test_bad_segment_pattern_is_validation(ev, pattern):
    with raises("ValidationException"):
        ev.create_segment(name="bad", pattern=pattern)
    with raises("ValidationException"):
        ev.test_segment_pattern(pattern=pattern, payload="{}")
    assert ev.list_segments()["segments"] == []


# (pattern, payload, expected match), spec 4.1 / 4.2.
PATTERN_CASES = [
    # null
    ("null", {"UserID": None}, True),
    ("null", {"UserID": "u1"}, False),
    ("null", {"UserID": ""}, False),
    ("null", {}, False),
    # empty string
    ("empty", {"LastName": ""}, True),
    ("empty", {"LastName": "Smith"}, False),
    ("empty", {"LastName": None}, False),
    # equals, case sensitive in values and keys
    ("equals", {"Browser": "Chrome"}, True),
    ("equals", {"Browser": "Chrome", "Age": 30, "Extra": "ignored"}, True),
    ("equals", {"Browser": "chrome"}, False),
    ("equals", {"browser": "Chrome"}, False),
    ("equals", {"Browser": "Chrome "}, False),
    ("equals", {}, False),
    # and
    ("and", {"Country": "France", "Device": "Mobile"}, True),
    ("and", {"Country": "France", "Device": "Desktop"}, False),
    ("and", {"Country": "France"}, False),
    # or within one attribute
    ("or-one", {"Browser": "Firefox"}, True),
    ("or-one", {"Browser": "Chrome"}, True),
    ("or-one", {"Browser": "Safari"}, False),
    # $or across attributes
    ("or-across", {"Browser": "Safari"}, True),
    ("or-across", {"Browser": "Chrome", "Device": "Tablet"}, True),
    ("or-across", {"Browser": "Chrome", "Device": "Mobile"}, False),
    ("or-across", {}, False),
    # anything-but
    ("not", {"Browser": "Chrome"}, True),
    ("not", {"Browser": "Safari"}, False),
    # numeric equals and ranges (numeric comparison)
    ("num-eq", {"Price": 100}, True),
    ("num-eq", {"Price": 100.0}, True),
    ("num-eq", {"Price": 101}, False),
    ("num-eq", {"Price": 99.99}, False),
    ("num-range", {"Price": 10}, False),
    ("num-range", {"Price": 10.5}, True),
    ("num-range", {"Price": 15}, True),
    ("num-range", {"Price": 20}, True),
    ("num-range", {"Price": 20.01}, False),
    ("num-range", {"Price": -15}, False),
    ("num-range", {}, False),
    # exists
    ("exists", {"Age": 25}, True),
    ("exists", {"Age": "twenty"}, True),
    ("exists", {}, False),
    ("exists", {"age": 25}, False),
    ("not-exists", {}, True),
    ("not-exists", {"Other": 1}, True),
    ("not-exists", {"Age": 25}, False),
    # prefix / suffix, case sensitive
    ("prefix", {"Region": "us-west-2"}, True),
    ("prefix", {"Region": "us-"}, True),
    ("prefix", {"Region": "US-west-2"}, False),
    ("prefix", {"Region": "eu-west-1"}, False),
    ("suffix", {"Region": "US-West"}, True),
    ("suffix", {"Region": "US-west"}, False),
    ("suffix", {"Region": "West-US"}, False),
    # user-guide examples
    ("ug-1", {"Browser": "Firefox", "Location": "US-West"}, True),
    ("ug-1", {"Browser": "Firefox", "Location": "US-East"}, False),
    ("ug-2", {"Browser": "Firefox", "Location": "US-East", "Age": 30}, True),
    ("ug-2", {"Browser": "Chrome", "Location": "US-East", "Age": 30}, False),
    ("ug-2", {"Browser": "Firefox", "Location": "EU-East", "Age": 30}, False),
    ("ug-2", {"Browser": "Firefox", "Location": "US-East"}, False),
    ("ug-3", {"Location": "Japan", "Device": "Tablet"}, True),
    ("ug-3", {"Location": "Japan", "Browser": "Safari"}, True),
    ("ug-3", {"Location": "US", "Device": "Tablet"}, False),
    ("ug-3", {"Location": "Japan", "Browser": "Chrome"}, False),
]


def test_test_segment_pattern_table(ev):
    wrong = []
    for name, payload, expected in PATTERN_CASES:
        r = ev.test_segment_pattern(pattern=json.dumps(SPEC_PATTERNS[name]), payload=json.dumps(payload))
        if r.get("match") is not expected:
            wrong.append((SPEC_PATTERNS[name], payload, expected, r.get("match")))
    assert not wrong, "pattern, payload, expected, got:\n" + "\n".join(map(repr, wrong))


def test_test_segment_pattern_exact_number_matching_compares_representations(ev):
    # spec 4.2: exact number matching compares the string form: 300 != 300.0.
    pattern = json.dumps({"Price": [300]})
    assert ev.test_segment_pattern(pattern=pattern, payload='{"Price": 300}')["match"] is True
    assert ev.test_segment_pattern(pattern=pattern, payload='{"Price": 300.0}')["match"] is False
    assert ev.test_segment_pattern(pattern=pattern, payload='{"Price": "300"}')["match"] is False


def test_test_segment_pattern_rejects_a_payload_that_is_not_a_json_object(ev):
    pattern = json.dumps(SPEC_PATTERNS["equals"])
    for payload in ("not json", "[1, 2]"):
        with raises("ValidationException"):
            ev.test_segment_pattern(pattern=pattern, payload=payload)


def test_segment_in_use_cannot_be_deleted_and_lists_its_references(ev):
    make_project(ev)
    make_feature(ev)
    make_feature(ev, name="g")
    ev.create_segment(name="chrome", pattern=json.dumps(SPEC_PATTERNS["equals"]))
    ev.create_segment(name="unused", pattern=json.dumps(SPEC_PATTERNS["exists"]))
    make_launch(ev, "p", "L", "f", [("A", "A"), ("B", "B")], {"A": 0, "B": 0},
                overrides=[{"segment": "chrome", "evaluationOrder": 1, "weights": {"B": 100000}}])
    make_experiment(ev, "p", "E", "g", [("control", "A"), ("treat", "B")], {"control": 50000, "treat": 50000},
                    segment="chrome")

    s = ev.get_segment(segment="chrome")["segment"]
    assert (s.get("launchCount"), s.get("experimentCount")) == (1, 1), s

    with raises("ConflictException"):
        ev.delete_segment(segment="chrome")
    ev.get_segment(segment="chrome")

    refs = ev.list_segment_references(segment="chrome", type="LAUNCH")["referencedBy"]
    assert [(r["name"], r.get("arn")) for r in refs] == [("L", launch_arn("p", "L"))], refs
    refs = ev.list_segment_references(segment="chrome", type="EXPERIMENT")["referencedBy"]
    assert [(r["name"], r.get("arn")) for r in refs] == [("E", experiment_arn("p", "E"))], refs
    assert ev.list_segment_references(segment="unused", type="LAUNCH")["referencedBy"] == []
    with raises("ResourceNotFoundException"):
        ev.list_segment_references(segment="ghost", type="LAUNCH")

    ev.delete_launch(project="p", launch="L")
    with raises("ConflictException"):  # the experiment still uses it
        ev.delete_segment(segment="chrome")
    ev.delete_experiment(project="p", experiment="E")
    ev.delete_segment(segment="chrome")


# === 4. tags ========================================================================================


def test_tags_on_projects_features_and_segments(ev):
    make_project(ev, tags={"a": "1"})
    make_feature(ev, tags={"a": "1"})
    ev.create_segment(name="s", pattern=json.dumps(SPEC_PATTERNS["equals"]), tags={"a": "1"})
    for arn in (project_arn("p"), feature_arn("p", "f"), segment_arn("s")):
        assert ev.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "1"}, arn
        ev.tag_resource(resourceArn=arn, tags={"b": "2", "a": "9"})
        assert ev.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "9", "b": "2"}, arn
        ev.tag_resource(resourceArn=arn, tags={"c": "3"})
        assert ev.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "9", "b": "2", "c": "3"}, arn
        ev.untag_resource(resourceArn=arn, tagKeys=["a", "c", "never-there"])
        assert ev.list_tags_for_resource(resourceArn=arn)["tags"] == {"b": "2"}, arn
        with raises("ValidationException"):
            ev.tag_resource(resourceArn=arn, tags={"aws:reserved": "x"})
        assert ev.list_tags_for_resource(resourceArn=arn)["tags"] == {"b": "2"}, arn
    # The resources themselves show the tags too.
    assert ev.get_project(project="p")["project"].get("tags") == {"b": "2"}
    assert ev.get_feature(project="p", feature="f")["feature"].get("tags") == {"b": "2"}
    assert ev.get_segment(segment="s")["segment"].get("tags") == {"b": "2"}
    # Updates never touch tags.
    ev.update_project(project="p", description="x")
    assert ev.list_tags_for_resource(resourceArn=project_arn("p"))["tags"] == {"b": "2"}


def test_tags_validation_and_missing_resources(ev):
    with raises("ValidationException"):
        make_project(ev, "t", tags={"aws:owner": "me"})
    with raises("ResourceNotFoundException"):
        ev.list_tags_for_resource(resourceArn=project_arn("ghost"))
    with raises("ResourceNotFoundException"):
        ev.tag_resource(resourceArn=feature_arn("ghost", "f"), tags={"a": "b"})


# === 5. launches ====================================================================================


def test_launch_lifecycle(ev):
    make_project(ev)
    make_feature(ev)
    ev.create_segment(name="chrome", pattern=json.dumps(SPEC_PATTERNS["equals"]))
    t1 = now() - timedelta(minutes=10)
    t2 = now() + timedelta(days=1)
    launch = ev.create_launch(
        project="p",
        name="L1",
        description="ramp",
        groups=[
            {"feature": "f", "name": "G1", "variation": "A", "description": "control"},
            {"feature": "f", "name": "G2", "variation": "B"},
        ],
        scheduledSplitsConfig={"steps": [
            {"startTime": t1, "groupWeights": {"G1": 90000, "G2": 10000},
             "segmentOverrides": [{"segment": "chrome", "evaluationOrder": 1, "weights": {"G1": 0, "G2": 100000}}]},
            {"startTime": t2, "groupWeights": {"G1": 50000, "G2": 50000}},
        ]},
        metricMonitors=[{"metricDefinition": METRIC}],
        tags={"k": "v"},
    )["launch"]
    assert launch["arn"] == launch_arn("p", "L1")
    assert launch["name"] == "L1"
    assert launch["project"] == project_arn("p")
    assert launch["status"] == "CREATED"
    assert launch["type"] == "aws.evidently.splits"
    assert launch["randomizationSalt"] == "L1"
    assert "execution" not in launch
    assert launch["description"] == "ramp"
    assert [(g["name"], g["featureVariations"]) for g in launch["groups"]] == [("G1", {"f": "A"}), ("G2", {"f": "B"})]
    assert launch["groups"][0].get("description") == "control"
    steps = launch["scheduledSplitsDefinition"]["steps"]
    assert [ts(s["startTime"]) for s in steps] == [ts(t1), ts(t2)]
    assert steps[0]["groupWeights"] == {"G1": 90000, "G2": 10000}
    assert steps[0]["segmentOverrides"] == [{"segment": segment_arn("chrome"), "evaluationOrder": 1, "weights": {"G1": 0, "G2": 100000}}]
    assert steps[1]["groupWeights"] == {"G1": 50000, "G2": 50000}
    md = launch["metricMonitors"][0]["metricDefinition"]
    assert {k: md[k] for k in ("name", "entityIdKey", "valueKey", "unitLabel")} == {k: METRIC[k] for k in ("name", "entityIdKey", "valueKey", "unitLabel")}
    assert json.loads(md["eventPattern"]) == json.loads(METRIC["eventPattern"])
    assert launch.get("tags") == {"k": "v"}
    assert ev.get_launch(project="p", launch="L1")["launch"]["scheduledSplitsDefinition"] == launch["scheduledSplitsDefinition"]

    # The feature lists the launch as an evaluation rule.
    rules = ev.get_feature(project="p", feature="f")["feature"].get("evaluationRules") or []
    assert {"name": "L1", "type": "aws.evidently.splits"} in rules, rules

    before = now() - timedelta(seconds=5)
    started = ev.start_launch(project="p", launch="L1")["launch"]
    assert started["status"] == "RUNNING"
    assert before <= started["execution"]["startedTime"] <= now() + timedelta(seconds=5)
    got = ev.get_launch(project="p", launch="L1")["launch"]
    assert got["status"] == "RUNNING" and ts(got["execution"]["startedTime"]) == ts(started["execution"]["startedTime"])
    assert [l["name"] for l in ev.list_launches(project="p", status="RUNNING")["launches"]] == ["L1"]
    assert ev.list_launches(project="p", status="CREATED")["launches"] == []

    with raises("ConflictException"):  # already running
        ev.start_launch(project="p", launch="L1")
    with raises("ConflictException"):  # running launches cannot be deleted
        ev.delete_launch(project="p", launch="L1")

    # A second launch on the same feature cannot run at the same time (D6).
    make_launch(ev, "p", "L2", "f", [("H1", "A"), ("H2", "C")], {"H1": 50000, "H2": 50000})
    with raises("ConflictException"):
        ev.start_launch(project="p", launch="L2")
    assert ev.get_launch(project="p", launch="L2")["launch"]["status"] == "CREATED"

    ended = ev.stop_launch(project="p", launch="L1", desiredState="CANCELLED", reason="bad metrics")
    assert before <= ended["endedTime"] <= now() + timedelta(seconds=5)
    got = ev.get_launch(project="p", launch="L1")["launch"]
    assert got["status"] == "CANCELLED"
    assert got["statusReason"] == "bad metrics"
    assert ts(got["execution"]["endedTime"]) == ts(ended["endedTime"])
    assert got["execution"]["startedTime"] <= got["execution"]["endedTime"]

    with raises("ConflictException"):  # cannot restart
        ev.start_launch(project="p", launch="L1")
    with raises("ConflictException"):  # a stopped launch cannot be updated
        ev.update_launch(project="p", launch="L1", description="again")

    # Now the second launch can run; stop it COMPLETED.
    assert ev.start_launch(project="p", launch="L2")["launch"]["status"] == "RUNNING"
    ev.stop_launch(project="p", launch="L2", desiredState="COMPLETED", reason="done")
    got = ev.get_launch(project="p", launch="L2")["launch"]
    assert (got["status"], got.get("statusReason")) == ("COMPLETED", "done")
    with raises("ConflictException"):
        ev.update_launch(project="p", launch="L2", groups=groups_of("f", [("H1", "A")]))

    ev.delete_launch(project="p", launch="L1")
    with raises("ResourceNotFoundException"):
        ev.get_launch(project="p", launch="L1")
    assert [l["name"] for l in ev.list_launches(project="p")["launches"]] == ["L2"]


def test_update_launch_before_start(ev):
    make_project(ev)
    make_feature(ev)
    make_launch(ev, "p", "L", "f", [("G1", "A"), ("G2", "B")], {"G1": 50000, "G2": 50000})
    up = ev.update_launch(project="p", launch="L", description="new", randomizationSalt="s2",
                          scheduledSplitsConfig={"steps": [{"startTime": now() - timedelta(hours=2), "groupWeights": {"G1": 0, "G2": 100000}}]})["launch"]
    assert up["description"] == "new"
    assert up["randomizationSalt"] == "s2"
    assert up["status"] == "CREATED"
    assert up["scheduledSplitsDefinition"]["steps"][0]["groupWeights"] == {"G1": 0, "G2": 100000}


def test_launch_validation(ev):
    make_project(ev)
    make_feature(ev)
    with raises("ValidationException"):  # the variation is not one of the feature's
        make_launch(ev, "p", "L", "f", [("G1", "NOPE")], {"G1": 100000})
    with raises("ValidationException"):  # weight over 100000
        make_launch(ev, "p", "L", "f", [("G1", "A")], {"G1": 100001})
    with raises("ValidationException"):  # 6 groups
        make_launch(ev, "p", "L", "f", [(f"G{i}", "A") for i in range(6)], {"G0": 1})
    assert ev.list_launches(project="p")["launches"] == []
    make_launch(ev, "p", "L", "f", [("G1", "A")], {"G1": 100000})
    with raises("ConflictException"):
        make_launch(ev, "p", "L", "f", [("G1", "A")], {"G1": 100000})


# === 6. experiments =================================================================================


def test_experiment_lifecycle(ev):
    make_project(ev)
    make_feature(ev)
    e = make_experiment(ev, "p", "E1", "f", [("control", "A"), ("treat", "B")], {"control": 50000, "treat": 50000},
                        sampling=10000, description="checkout")
    assert e["arn"] == experiment_arn("p", "E1")
    assert e["name"] == "E1"
    assert e["project"] == project_arn("p")
    assert e["status"] == "CREATED"
    assert e["type"] == "aws.evidently.onlineab"
    assert e["randomizationSalt"] == "E1"
    assert e["samplingRate"] == 10000
    assert e["description"] == "checkout"
    assert "execution" not in e or not e["execution"].get("startedTime")
    assert [(t["name"], t["featureVariations"]) for t in e["treatments"]] == [("control", {"f": "A"}), ("treat", {"f": "B"})]
    (goal,) = e["metricGoals"]
    assert goal.get("desiredChange") == "INCREASE"
    md = goal["metricDefinition"]
    assert {k: md[k] for k in ("name", "entityIdKey", "valueKey", "unitLabel")} == {k: METRIC[k] for k in ("name", "entityIdKey", "valueKey", "unitLabel")}
    assert isinstance(md["eventPattern"], str) and json.loads(md["eventPattern"]) == json.loads(METRIC["eventPattern"])
    assert e["onlineAbDefinition"] == {"controlTreatmentName": "control", "treatmentWeights": {"control": 50000, "treat": 50000}}

    got = ev.get_experiment(project="p", experiment="E1")["experiment"]
    assert got["arn"] == e["arn"] and got["treatments"] == e["treatments"] and got["samplingRate"] == 10000
    assert [x["name"] for x in ev.list_experiments(project="p", status="CREATED")["experiments"]] == ["E1"]
    assert ev.list_experiments(project="p", status="RUNNING")["experiments"] == []

    before = now() - timedelta(seconds=5)
    complete = now() + timedelta(days=7)
    started = ev.start_experiment(project="p", experiment="E1", analysisCompleteTime=complete)
    assert before <= started["startedTime"] <= now() + timedelta(seconds=5)
    got = ev.get_experiment(project="p", experiment="E1")["experiment"]
    assert got["status"] == "RUNNING"
    assert ts(got["execution"]["startedTime"]) == ts(started["startedTime"])
    assert ts(got["schedule"]["analysisCompleteTime"]) == ts(complete)
    assert [x["name"] for x in ev.list_experiments(project="p", status="RUNNING")["experiments"]] == ["E1"]
    assert ev.list_experiments(project="p", status="CREATED")["experiments"] == []
    with raises("ConflictException"):
        ev.start_experiment(project="p", experiment="E1", analysisCompleteTime=complete)

    up = ev.update_experiment(project="p", experiment="E1", samplingRate=20000)["experiment"]
    assert up["samplingRate"] == 20000 and up["status"] == "RUNNING"
    with raises("ConflictException"):
        ev.update_experiment(project="p", experiment="E1",
                             treatments=[{"feature": "f", "name": "control", "variation": "A"}, {"feature": "f", "name": "treat", "variation": "C"}])
    assert ev.get_experiment(project="p", experiment="E1")["experiment"]["treatments"] == e["treatments"]
    with raises("ConflictException"):
        ev.delete_experiment(project="p", experiment="E1")

    ended = ev.stop_experiment(project="p", experiment="E1", desiredState="COMPLETED", reason="enough data")
    assert before <= ended["endedTime"] <= now() + timedelta(seconds=5)
    got = ev.get_experiment(project="p", experiment="E1")["experiment"]
    assert got["status"] == "COMPLETED"
    assert got.get("statusReason") == "enough data"
    assert ts(got["execution"]["endedTime"]) == ts(ended["endedTime"])
    with raises("ConflictException"):
        ev.start_experiment(project="p", experiment="E1", analysisCompleteTime=complete)
    ev.delete_experiment(project="p", experiment="E1")
    with raises("ResourceNotFoundException"):
        ev.get_experiment(project="p", experiment="E1")


def test_update_experiment_before_start_and_validation(ev):
    make_project(ev)
    make_feature(ev)
    make_experiment(ev, "p", "E", "f", [("control", "A"), ("treat", "B")], {"control": 50000, "treat": 50000})
    up = ev.update_experiment(project="p", experiment="E", description="d2",
                              treatments=[{"feature": "f", "name": "control", "variation": "A"}, {"feature": "f", "name": "treat", "variation": "C"}],
                              onlineAbConfig={"controlTreatmentName": "control", "treatmentWeights": {"control": 20000, "treat": 80000}})["experiment"]
    assert up["description"] == "d2"
    assert [(t["name"], t["featureVariations"]) for t in up["treatments"]] == [("control", {"f": "A"}), ("treat", {"f": "C"})]
    assert up["onlineAbDefinition"]["treatmentWeights"] == {"control": 20000, "treat": 80000}
    with raises("ValidationException"):  # samplingRate over 100000 (botocore does not check it)
        ev.update_experiment(project="p", experiment="E", samplingRate=200000)
    with raises("ValidationException"):  # unknown variation
        make_experiment(ev, "p", "E2", "f", [("control", "A"), ("treat", "NOPE")], {"control": 50000, "treat": 50000})
    with raises("ConflictException"):
        make_experiment(ev, "p", "E", "f", [("control", "A"), ("treat", "B")], {"control": 50000, "treat": 50000})


# === 7. evaluation ==================================================================================


def test_entity_override_default_and_launch_rule(ev):
    make_project(ev)
    make_feature(ev, entityOverrides={"vip": "C"})

    r = evaluate(ev, "vip")
    assert (r["variation"], r["value"], r["reason"]) == ("C", {"stringValue": "c"}, "ENTITY_OVERRIDES_MATCH")
    assert details(r) == {}

    r = evaluate(ev, "user-1")
    assert (r["variation"], r["value"], r["reason"]) == ("A", {"stringValue": "a"}, "DEFAULT")
    assert details(r) == {}

    make_launch(ev, "p", "L", "f", [("G1", "B")], {"G1": 100000})
    assert evaluate(ev, "user-1")["reason"] == "DEFAULT"  # created, not running
    ev.start_launch(project="p", launch="L")
    for entity in ("user-1", "user-2", "someone else"):
        r = evaluate(ev, entity)
        assert (r["variation"], r["value"], r["reason"]) == ("B", {"stringValue": "b"}, "LAUNCH_RULE_MATCH"), r
        assert details(r) == {"launch": "L", "group": "G1"}
    assert evaluate(ev, "vip")["reason"] == "ENTITY_OVERRIDES_MATCH"  # overrides first (D6)

    # DEFAULT_VARIATION serves the default to everyone but the overrides (D6).
    ev.update_feature(project="p", feature="f", evaluationStrategy="DEFAULT_VARIATION")
    r = evaluate(ev, "user-1")
    assert (r["variation"], r["reason"]) == ("A", "DEFAULT") and details(r) == {}
    r = evaluate(ev, "vip")
    assert (r["variation"], r["reason"]) == ("C", "ENTITY_OVERRIDES_MATCH")
    ev.update_feature(project="p", feature="f", evaluationStrategy="ALL_RULES")
    assert evaluate(ev, "user-1")["reason"] == "LAUNCH_RULE_MATCH"

    # A stopped launch is no rule any more.
    ev.stop_launch(project="p", launch="L", desiredState="COMPLETED")
    r = evaluate(ev, "user-1")
    assert (r["variation"], r["reason"]) == ("A", "DEFAULT")


def test_experiment_rule(ev):
    make_project(ev)
    make_feature(ev)
    make_experiment(ev, "p", "E", "f", [("control", "A"), ("treat", "B")], {"control": 50000, "treat": 50000}, sampling=100000)
    assert evaluate(ev, "user-1")["reason"] == "DEFAULT"  # created, not running
    ev.start_experiment(project="p", experiment="E", analysisCompleteTime=now() + timedelta(days=3))
    variation_of = {"control": ("A", {"stringValue": "a"}), "treat": ("B", {"stringValue": "b"})}
    seen = set()
    for i in range(40):
        r = evaluate(ev, f"user-{i}")
        assert r["reason"] == "EXPERIMENT_RULE_MATCH", r
        d = details(r)
        assert set(d) == {"experiment", "treatment"} and d["experiment"] == "E", d
        assert (r["variation"], r["value"]) == variation_of[d["treatment"]], r
        # D5: enrolment and treatment follow the documented buckets.
        assert d["treatment"] == pick([("control", 50000), ("treat", 50000)], bucket("E", "experiment-treatment", f"user-{i}")), (i, d)
        seen.add(d["treatment"])
    assert seen == {"control", "treat"}

    ev.stop_experiment(project="p", experiment="E", desiredState="CANCELLED")
    assert evaluate(ev, "user-1")["reason"] == "DEFAULT"


def test_launch_takes_its_share_before_the_experiment(ev):
    make_project(ev)
    make_feature(ev)
    make_launch(ev, "p", "L", "f", [("G1", "C")], {"G1": 50000})
    make_experiment(ev, "p", "E", "f", [("control", "A"), ("treat", "B")], {"control": 50000, "treat": 50000}, sampling=100000)
    ev.start_launch(project="p", launch="L")
    ev.start_experiment(project="p", experiment="E", analysisCompleteTime=now() + timedelta(days=3))
    for i in range(30):
        entity = f"user-{i}"
        r = evaluate(ev, entity)
        if bucket("L", "launch", entity) < 50000:
            assert (r["reason"], r["variation"], details(r)) == ("LAUNCH_RULE_MATCH", "C", {"launch": "L", "group": "G1"}), (entity, r)
        else:
            assert r["reason"] == "EXPERIMENT_RULE_MATCH", (entity, r)


def test_segment_override_in_a_launch(ev):
    make_project(ev)
    make_feature(ev, variations=svars("OFF", "ON"))
    ev.create_segment(name="chrome", pattern=json.dumps({"Browser": ["Chrome"]}))
    make_launch(ev, "p", "L", "f", [("A", "OFF"), ("B", "ON")], {"A": 0, "B": 0},
                overrides=[{"segment": "chrome", "evaluationOrder": 1, "weights": {"B": 100000}}])
    ev.start_launch(project="p", launch="L")
    for i in range(20):
        r = evaluate(ev, f"user-{i}", context={"Browser": "Chrome", "Age": i})
        assert (r["variation"], r["value"], r["reason"]) == ("ON", {"stringValue": "on"}, "LAUNCH_RULE_MATCH"), r
        assert details(r) == {"launch": "L", "group": "B"}
        for ctx in ({"Browser": "Firefox"}, {"Browser": "chrome"}, {}, None):
            r = evaluate(ev, f"user-{i}", context=ctx)
            assert (r["variation"], r["reason"]) == ("OFF", "DEFAULT"), (ctx, r)
            assert details(r) == {}


def test_evaluation_context_must_be_a_json_object(ev):
    make_project(ev)
    make_feature(ev)
    for ctx in ("[1, 2]", '"Chrome"', "42", "not json"):
        with raises("ValidationException"):
            evaluate(ev, "user-1", context=ctx)
    with raises("ValidationException"):  # entity id over 512 characters
        evaluate(ev, "x" * 600)
    assert evaluate(ev, "user-1", context="{}")["reason"] == "DEFAULT"


def test_evaluate_unknown_project_or_feature_is_not_found(ev):
    with raises("ResourceNotFoundException"):
        evaluate(ev, "user-1", project="ghost")
    with raises("ResourceNotFoundException"):
        ev.batch_evaluate_feature(project="ghost", requests=[{"feature": "f", "entityId": "u"}])
    make_project(ev)
    with raises("ResourceNotFoundException"):
        evaluate(ev, "user-1", feature="ghost")


def test_batch_evaluate_feature(ev):
    make_project(ev)
    make_feature(ev, entityOverrides={"vip": "C"})
    results = ev.batch_evaluate_feature(project="p", requests=[
        {"feature": "f", "entityId": "vip"},
        {"feature": "ghost", "entityId": "u1"},
        {"feature": "f", "entityId": "u2", "evaluationContext": json.dumps({"Browser": "Chrome"})},
    ])["results"]
    assert len(results) == 3, results
    first, unknown, third = results

    assert first["entityId"] == "vip"
    assert first["feature"] == feature_arn("p", "f") and first["project"] == project_arn("p")
    assert (first["variation"], first["value"], first["reason"]) == ("C", {"stringValue": "c"}, "ENTITY_OVERRIDES_MATCH")
    assert details(first) == {}

    assert unknown["entityId"] == "u1"
    assert unknown["feature"] == feature_arn("p", "ghost")
    assert unknown.get("project") == project_arn("p")
    assert "does not exist" in unknown.get("reason", ""), unknown
    assert "variation" not in unknown and "value" not in unknown and "details" not in unknown, unknown

    assert third["entityId"] == "u2"
    assert (third["variation"], third["value"], third["reason"]) == ("A", {"stringValue": "a"}, "DEFAULT")

    with raises("ValidationException"):  # 21 requests (max 20)
        ev.batch_evaluate_feature(project="p", requests=[{"feature": "f", "entityId": f"u{i}"} for i in range(21)])
    assert len(ev.batch_evaluate_feature(project="p", requests=[{"feature": "f", "entityId": f"u{i}"} for i in range(20)])["results"]) == 20


def test_evaluation_is_stable_and_splits_by_weight(ev):
    make_project(ev)
    make_feature(ev)
    make_launch(ev, "p", "L", "f", [("G1", "A"), ("G2", "B")], {"G1": 30000, "G2": 70000})
    ev.start_launch(project="p", launch="L")
    for entity in ("user-7", "user-8", "alice@example.com"):
        first = evaluate(ev, entity)
        for _ in range(4):
            assert evaluate(ev, entity) == first
    groups = {"G1": 0, "G2": 0}
    mismatches = []
    for i in range(1000):
        entity = f"user-{i}"
        r = evaluate(ev, entity)
        assert r["reason"] == "LAUNCH_RULE_MATCH", r
        g = details(r)["group"]
        groups[g] += 1
        expected = pick([("G1", 30000), ("G2", 70000)], bucket("L", "launch", entity))
        if g != expected:
            mismatches.append((entity, g, expected))
    assert 250 <= groups["G1"] <= 350, groups
    assert groups["G1"] + groups["G2"] == 1000
    assert not mismatches, f"groups differ from D5 bucketing for {len(mismatches)} entities, e.g. {mismatches[:5]}"


def test_segment_override_buckets_follow_d5(ev):
    make_project(ev)
    make_feature(ev)
    ev.create_segment(name="chrome", pattern=json.dumps({"Browser": ["Chrome"]}))
    make_launch(ev, "p", "L", "f", [("G1", "A"), ("G2", "B")], {"G1": 0, "G2": 0},
                overrides=[{"segment": "chrome", "evaluationOrder": 3, "weights": {"G1": 40000, "G2": 40000}}],
                randomizationSalt="salty")
    ev.start_launch(project="p", launch="L")
    for i in range(60):
        entity = f"user-{i}"
        r = evaluate(ev, entity, context={"Browser": "Chrome"})
        expected = pick([("G1", 40000), ("G2", 40000)], bucket("salty", "launch-segment-3", entity))
        if expected is None:  # past the override's 80 %: falls through, the default split gives nothing
            assert r["reason"] == "DEFAULT", (entity, r)
        else:
            assert r["reason"] == "LAUNCH_RULE_MATCH" and details(r)["group"] == expected, (entity, expected, r)


# === 8. errors ======================================================================================


def test_validation_exception_carries_reason_and_field_list(ev):
    with raises("ValidationException") as err:
        make_project(ev, "bad name!")
    r = err.response
    assert r["reason"] == "fieldValidationFailed"
    assert r.get("fieldList") and any("name" in f["name"] for f in r["fieldList"]), r
    assert r["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid") == r["ResponseMetadata"]["RequestId"]


def test_every_error_has_a_request_id(ev):
    make_project(ev)
    calls = [
        ("ResourceNotFoundException", lambda: ev.get_project(project="ghost")),
        ("ConflictException", lambda: make_project(ev)),
        ("ValidationException", lambda: ev.list_projects(maxResults=500)),
        ("ValidationException", lambda: ev.create_feature(project="p", name="f", variations=svars("A"), evaluationStrategy="NOPE")),
    ]
    ids = set()
    for code, call in calls:
        with raises(code) as err:
            call()
        ids.add(err.response["ResponseMetadata"]["RequestId"])
    assert len(ids) == len(calls), ids  # one per request


def test_malformed_json_body_is_400_validation(es):
    status, headers, body = raw_request(es, "POST", "/projects", b'{"name":')
    assert status == 400, (status, body)
    assert headers.get("x-amzn-errortype", "").split(":")[0] == "ValidationException", headers
    assert headers.get("x-amzn-requestid"), headers
    doc = json.loads(body)
    assert doc.get("message"), doc
    assert doc.get("reason") == "cannotParse", doc
    # Nothing was created.
    status, _, body = raw_request(es, "GET", "/projects")
    assert status == 200 and json.loads(body)["projects"] == []


def test_wrong_json_types_are_400_not_500(es):
    status, headers, body = raw_request(es, "POST", "/projects", dumps({"name": 5}).encode())
    assert status == 400 and headers.get("x-amzn-errortype", "").split(":")[0] == "ValidationException", (status, body)


# === 9. durability ==================================================================================


def test_resources_survive_a_restart_on_the_same_store(launcher):
    first = launcher.start()
    ev = evidently_client(first)
    make_project(ev, "alpha", description="kept")
    make_feature(ev, "alpha", "f", entityOverrides={"vip": "B"}, tags={"k": "v"})
    ev.create_segment(name="chrome", pattern=json.dumps({"Browser": ["Chrome"]}))
    assert first.stop() == 0, first.log()

    second = launcher.start()
    ev = evidently_client(second)
    p = ev.get_project(project="alpha")["project"]
    assert p["description"] == "kept" and p.get("featureCount") == 1
    f = ev.get_feature(project="alpha", feature="f")["feature"]
    assert [v["name"] for v in f["variations"]] == ["A", "B", "C"]
    assert f["entityOverrides"] == {"vip": "B"} and f.get("tags") == {"k": "v"}
    assert json.loads(ev.get_segment(segment="chrome")["segment"]["pattern"]) == {"Browser": ["Chrome"]}
    r = evaluate(ev, "vip", project="alpha")
    assert (r["variation"], r["reason"]) == ("B", "ENTITY_OVERRIDES_MATCH")


# === wire details ===================================================================================


def test_wire_timestamps_are_epoch_numbers_and_details_a_json_string(es, ev):
    # spec 1.2: restJson1 timestamps as JSON numbers (typed SDKs expect them); JsonValue members double-encoded.
    make_project(ev)
    make_feature(ev)
    status, _, body = raw_request(es, "GET", "/projects/p/features/f")
    assert status == 200, body
    feature = json.loads(body)["feature"]
    assert isinstance(feature["createdTime"], (int, float)) and not isinstance(feature["createdTime"], bool), feature
    assert isinstance(feature["lastUpdatedTime"], (int, float)), feature
    status, _, body = raw_request(es, "POST", "/projects/p/evaluations/f", dumps({"entityId": "u1", "evaluationContext": '{"a": 1}'}).encode())
    assert status == 200, body
    doc = json.loads(body)
    assert doc["details"] == "{}" or (isinstance(doc["details"], str) and json.loads(doc["details"]) == {}), doc
    assert doc["value"] == {"stringValue": "a"} and doc["reason"] == "DEFAULT", doc


def test_admin_listener_ignores_a_dataplane_host_header(es, ev):
    # D7: clients that cannot turn the host prefix off reach edgesplit under dataplane.<name>.
    make_project(ev)
    make_feature(ev)
    status, _, body = raw_request(es, "POST", "/projects/p/evaluations/f", dumps({"entityId": "u1"}).encode(),
                                  headers={"Host": f"dataplane.{es.admin}"})
    assert status == 200, body
    assert json.loads(body)["variation"] == "A"
