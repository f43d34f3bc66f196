"""End to end with boto3: an experiment, entities evaluated through the API and through the proxy,
events put, and results whose winner is the treatment the test made better; plus PutProjectEvents'
per-event errors and attribution rules."""

import http.client
import json
from datetime import datetime, timedelta, timezone

from evidently_support import evidently_client, raises

EDGE = """
[distribution.evidently]
project = "shop"
entity = ["header:x-user-id"]
features = [{ feature = "price" }]
"""


def start_experiment(ev, sampling=100000):
    ev.create_project(name="shop")
    ev.create_feature(project="shop", name="price", variations=[
        {"name": "low", "value": {"longValue": 9}}, {"name": "high", "value": {"longValue": 12}}])
    ev.create_experiment(
        project="shop", name="pricing",
        treatments=[{"name": "control", "feature": "price", "variation": "low"},
                    {"name": "up", "feature": "price", "variation": "high"}],
        metricGoals=[{"metricDefinition": {"name": "spend", "entityIdKey": "userDetails.userId",
                                           "valueKey": "details.spend",
                                           "eventPattern": json.dumps({"details.spend": [{"exists": True}]})},
                      "desiredChange": "INCREASE"}],
        onlineAbConfig={"controlTreatmentName": "control", "treatmentWeights": {"control": 50000, "up": 50000}},
        samplingRate=sampling)
    ev.start_experiment(project="shop", experiment="pricing",
                        analysisCompleteTime=datetime.now(timezone.utc) + timedelta(days=7))


def proxy_get(es, user):
    conn = http.client.HTTPConnection(es.proxy, timeout=10)
    conn.request("GET", "/", headers={"Host": "blog.test", "x-user-id": user})
    conn.getresponse().read()
    conn.close()


def event(user, spend, ts=None):
    data = {"userDetails": {"userId": user}, "details": {"spend": spend}}
    return {"timestamp": ts or datetime.now(timezone.utc), "type": "aws.evidently.custom", "data": json.dumps(data)}


def test_results_name_the_better_treatment(launcher):
    es = launcher.start(launcher.config() + EDGE)
    ev = evidently_client(es)
    start_experiment(ev)
    assigned = {}
    for i in range(600):
        user = f"user-{i}"
        if i % 2:
            proxy_get(es, user)  # the edge records the exposure
        r = ev.evaluate_feature(project="shop", feature="price", entityId=user)
        assert r["reason"] == "EXPERIMENT_RULE_MATCH"
        assigned[user] = json.loads(r["details"])["treatment"]
    # "up" spends 20 % more; deterministic values with some spread.
    events = [event(u, (12.0 if t == "up" else 10.0) + (i % 7) - 3) for i, (u, t) in enumerate(assigned.items())]
    for chunk in range(0, len(events), 50):
        out = ev.put_project_events(project="shop", events=events[chunk:chunk + 50])
        assert out["failedEventCount"] == 0
        assert all(len(r["eventId"]) == 36 for r in out["eventResults"])

    res = ev.get_experiment_results(
        project="shop", experiment="pricing", metricNames=["spend"], treatmentNames=["control", "up"],
        resultStats=["BaseStat", "TreatmentEffect", "ConfidenceInterval", "PValue"],
        reportNames=["BayesianInference"], period=300,
        startTime=datetime.now(timezone.utc) - timedelta(minutes=10), endTime=datetime.now(timezone.utc) + timedelta(minutes=5))
    assert "details" not in res or "Not enough" not in res["details"], res.get("details")
    series = {(d["treatmentName"], d["resultStat"]): d["values"] for d in res["resultsData"]}
    assert len(res["timestamps"]) >= 1
    last = lambda k: series[k][-1]  # noqa: E731
    assert abs(last(("control", "Mean")) - 10.0) < 0.5
    assert abs(last(("up", "Mean")) - 12.0) < 0.5
    assert 0.15 < last(("up", "TreatmentEffect")) < 0.25
    assert last(("up", "ConfidenceIntervalLowerBound")) > 0.1
    assert last(("up", "PValue")) < 1e-6
    report = json.loads(res["reports"][0]["content"])
    assert res["reports"][0]["treatmentName"] == "up"
    assert report["probabilityIncrease"] > 0.99


def test_put_project_events_reports_per_event_errors(launcher):
    es = launcher.start()
    ev = evidently_client(es)
    start_experiment(ev)
    out = ev.put_project_events(project="shop", events=[
        event("nobody", 1.0),
        {"timestamp": datetime.now(timezone.utc), "type": "aws.evidently.custom", "data": "not json"},
        {"timestamp": datetime.now(timezone.utc), "type": "aws.evidently.custom", "data": "[1]"},
        {"timestamp": datetime.now(timezone.utc), "type": "aws.evidently.evaluation", "data": "{}"},
    ])
    assert out["failedEventCount"] == 2
    codes = [r.get("errorCode") for r in out["eventResults"]]
    assert codes == [None, "ValidationException", "ValidationException", None]
    with raises("ValidationException"):
        ev.put_project_events(project="shop", events=[event("u", 1.0)] * 51)
    with raises("ResourceNotFoundException"):
        ev.put_project_events(project="nope", events=[])
    # No attributed events: results say so and carry no statistics.
    res = ev.get_experiment_results(project="shop", experiment="pricing", metricNames=["spend"], treatmentNames=["control", "up"])
    assert "Not enough events" in res["details"]
    assert res["resultsData"] == []
    with raises("ValidationException"):
        ev.get_experiment_results(project="shop", experiment="pricing", metricNames=["other"], treatmentNames=["control"])


def test_events_before_the_evaluation_or_over_an_hour_later_are_not_attributed(launcher):
    es = launcher.start()
    ev = evidently_client(es)
    start_experiment(ev)
    now = datetime.now(timezone.utc)
    users = [f"u{i}" for i in range(20)]
    for u in users:
        ev.evaluate_feature(project="shop", feature="price", entityId=u)
    events = [event(u, v) for u in users for v in (5.0, 7.0)]
    # Outliers that must not count: before the evaluation, and more than an hour after it.
    events += [event("u0", 1000.0, now - timedelta(minutes=5)), event("u1", 1000.0, now + timedelta(minutes=61))]
    for chunk in range(0, len(events), 50):
        ev.put_project_events(project="shop", events=events[chunk:chunk + 50])
    res = ev.get_experiment_results(project="shop", experiment="pricing", metricNames=["spend"],
                                    treatmentNames=["control", "up"], resultStats=["BaseStat"],
                                    startTime=now - timedelta(minutes=30), endTime=now + timedelta(minutes=90))
    means = {d["treatmentName"]: d["values"][-1] for d in res["resultsData"] if d["resultStat"] == "Mean"}
    assert means == {"control": 6.0, "up": 6.0}, res


def test_launch_metric_monitors_show_on_metrics(launcher):
    es = launcher.start()
    ev = evidently_client(es)
    ev.create_project(name="shop")
    ev.create_feature(project="shop", name="banner", variations=[
        {"name": "a", "value": {"stringValue": "A"}}, {"name": "b", "value": {"stringValue": "B"}}])
    ev.create_launch(
        project="shop", name="rollout",
        groups=[{"name": "ga", "feature": "banner", "variation": "a"}, {"name": "gb", "feature": "banner", "variation": "b"}],
        scheduledSplitsConfig={"steps": [{"startTime": datetime.now(timezone.utc) - timedelta(minutes=1),
                                          "groupWeights": {"ga": 50000, "gb": 50000}}]},
        metricMonitors=[{"metricDefinition": {"name": "latency", "entityIdKey": "userDetails.userId",
                                              "valueKey": "details.ms"}}])
    ev.start_launch(project="shop", launch="rollout")
    groups = {}
    for i in range(40):
        r = ev.evaluate_feature(project="shop", feature="banner", entityId=f"v{i}")
        groups[f"v{i}"] = json.loads(r["details"])["group"]
    events = [{"timestamp": datetime.now(timezone.utc), "type": "aws.evidently.custom",
               "data": json.dumps({"userDetails": {"userId": u}, "details": {"ms": 100.0 if g == "ga" else 200.0}})}
              for u, g in groups.items()]
    ev.put_project_events(project="shop", events=events)
    conn = http.client.HTTPConnection(es.admin, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    counts = {g: sum(1 for x in groups.values() if x == g) for g in ("ga", "gb")}
    for g, mean in (("ga", 100), ("gb", 200)):
        labels = f'project="shop",launch="rollout",metric="latency",group="{g}"'
        assert f"edgesplit_launch_metric_events_total{{{labels}}} {counts[g]}" in text, text
        assert f"edgesplit_launch_metric_mean{{{labels}}} {mean}" in text, text
