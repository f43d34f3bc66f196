//! Evidently's rules, one test per rule: states are built by the rules themselves (each result written
//! with `EvResources::put`, as the plane commits), inputs decoded from JSON bodies through `evidently::input`.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::config::EvidentlyQuotas;
use crate::domain::error::{DomainError, DomainResult, QuotaScope, ResourceId, ResourceKind};
use crate::evidently::arn::Arns;
use crate::evidently::input::{
    ExperimentBody, ExperimentPatch, ExperimentPatchBody, FeatureBody, FeaturePatch, FeaturePatchBody, LaunchBody,
    LaunchPatch, LaunchPatchBody, NewExperiment, NewFeature, NewLaunch, ProjectBody, ProjectPatchBody, SegmentBody,
    Stop, StopBody,
};
use crate::evidently::model::{EvResources, Experiment, Feature, Launch, Resource, RunStatus, Tags, VariableValue};
use crate::limits::evidently as aws;

const T0: f64 = 1_000.0;
const DAY: f64 = 24.0 * 3600.0;
const P: &str = "shop";

fn quotas() -> EvidentlyQuotas {
    EvidentlyQuotas {
        projects: 2,
        segments: 2,
        features_per_project: 3,
        launches_per_project: 4,
        running_launches_per_project: 2,
        experiments_per_project: 3,
        running_experiments_per_project: 2,
        exposures: 100,
    }
}

fn arns() -> Arns {
    Arns::new("us-east-1", "000000000000")
}

fn parse<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn weights(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

// === inputs ===

/// Variations whose values are their names (STRING).
fn strings(names: &[&str]) -> Value {
    Value::Array(names.iter().map(|n| json!({ "name": n, "value": { "stringValue": n } })).collect())
}

fn new_feature(body: Value) -> NewFeature {
    parse::<FeatureBody>(body).decode().unwrap()
}

fn feature_patch(body: Value) -> FeaturePatch {
    parse::<FeaturePatchBody>(body).decode().unwrap()
}

/// A launch of `feature` with one group per variation (named after it), all in one step at equal weights.
fn launch_body(name: &str, feature: &str, variations: &[&str]) -> Value {
    let groups: Vec<Value> =
        variations.iter().map(|v| json!({ "name": v, "feature": feature, "variation": v })).collect();
    let weights: serde_json::Map<String, Value> = variations.iter().map(|v| (v.to_string(), json!(1000))).collect();
    json!({
        "name": name,
        "groups": groups,
        "scheduledSplitsConfig": { "steps": [{ "startTime": 0, "groupWeights": weights }] },
    })
}

fn new_launch(body: Value) -> NewLaunch {
    parse::<LaunchBody>(body).decode(&arns()).unwrap()
}

fn launch_patch(body: Value) -> LaunchPatch {
    parse::<LaunchPatchBody>(body).decode(&arns()).unwrap()
}

/// An experiment on `feature` with the treatments (name, variation) and one metric goal.
fn experiment_body(name: &str, feature: &str, treatments: &[(&str, &str)]) -> Value {
    let treatments: Vec<Value> =
        treatments.iter().map(|(t, v)| json!({ "name": t, "feature": feature, "variation": v })).collect();
    json!({
        "name": name,
        "treatments": treatments,
        "metricGoals": [{
            "metricDefinition": { "name": "spend", "entityIdKey": "userDetails.userId", "valueKey": "details.spend" },
        }],
    })
}

fn new_experiment(body: Value) -> NewExperiment {
    parse::<ExperimentBody>(body).decode(&arns()).unwrap()
}

fn experiment_patch(body: Value) -> ExperimentPatch {
    parse::<ExperimentPatchBody>(body).decode(&arns()).unwrap()
}

fn stop_input<R: Run>(body: Value) -> Stop {
    let desired = match R::KIND {
        ResourceKind::Experiment => &aws::EXPERIMENT_STOP_DESIRED_STATE,
        _ => &aws::LAUNCH_STOP_DESIRED_STATE,
    };
    parse::<StopBody>(body).decode(desired).unwrap()
}

// === states, built by the rules ===

fn add_project(ev: &mut EvResources, body: Value) {
    let p = parse::<ProjectBody>(body).decode().unwrap();
    let p = create_project(ev, &quotas(), p, T0).unwrap();
    ev.put(Resource::Project(p));
}

fn add_feature(ev: &mut EvResources, project: &str, body: Value) -> Feature {
    let f = create_feature(ev, &quotas(), project, new_feature(body), T0).unwrap();
    ev.put(Resource::Feature(f.clone()));
    f
}

fn add_segment(ev: &mut EvResources, name: &str) {
    let s = parse::<SegmentBody>(json!({ "name": name, "pattern": r#"{"Country":["US"]}"# })).decode().unwrap();
    let s = create_segment(ev, &quotas(), s, T0).unwrap();
    ev.put(Resource::Segment(s));
}

fn add_launch(ev: &mut EvResources, project: &str, body: Value) -> Launch {
    let l = create_launch(ev, &quotas(), project, new_launch(body), T0).unwrap();
    ev.put(Resource::Launch(l.clone()));
    l
}

fn add_experiment(ev: &mut EvResources, project: &str, body: Value) -> Experiment {
    let x = create_experiment(ev, &quotas(), project, new_experiment(body), T0).unwrap();
    ev.put(Resource::Experiment(x.clone()));
    x
}

fn commit<R: Run>(ev: &mut EvResources, r: R) -> R {
    ev.put(r.clone().into_resource());
    r
}

/// Starts the launch `name` of project `project` at `t`, as StartLaunch does.
fn run_launch(ev: &mut EvResources, project: &str, name: &str, t: f64) -> Launch {
    let l = find::<Launch>(ev, project, name).unwrap().clone();
    let l = start(ev, &quotas(), l, t).unwrap();
    commit(ev, l)
}

/// Starts the experiment `name` of project `project` at `t`, its analysis a day later.
fn run_experiment(ev: &mut EvResources, project: &str, name: &str, t: f64) -> Experiment {
    let x = start_experiment(ev, &quotas(), project, name, t + DAY, t).unwrap();
    commit(ev, x)
}

fn stopped<R: Run>(ev: &mut EvResources, project: &str, name: &str, body: Value, t: f64) -> R {
    let r = find::<R>(ev, project, name).unwrap().clone();
    let r = stop(r, stop_input::<R>(body), t).unwrap();
    commit(ev, r)
}

/// Project `shop` with features `color` (red, blue, green: strings) and `size` (s, m: longs), and
/// segment `beta`.
fn shop() -> EvResources {
    let mut ev = EvResources::default();
    add_project(&mut ev, json!({ "name": P }));
    add_feature(&mut ev, P, json!({ "name": "color", "variations": strings(&["red", "blue", "green"]) }));
    add_feature(
        &mut ev,
        P,
        json!({
            "name": "size",
            "variations": [{ "name": "s", "value": { "longValue": 1 } }, { "name": "m", "value": { "longValue": 2 } }],
        }),
    );
    add_segment(&mut ev, "beta");
    ev
}

fn launch_id(name: &str) -> ResourceId {
    ResourceId::Launch(P.into(), name.into())
}

fn experiment_id(name: &str) -> ResourceId {
    ResourceId::Experiment(P.into(), name.into())
}

fn feature_id(name: &str) -> ResourceId {
    ResourceId::Feature(P.into(), name.into())
}

// === error matchers ===

/// The message of the conflict on `id` that `r` must be.
#[track_caller]
fn conflict_on<T: Debug>(r: DomainResult<T>, id: ResourceId) -> String {
    match r {
        Err(DomainError::Conflict { resource, message }) => {
            assert_eq!(resource, id, "{message}");
            message
        }
        other => panic!("expected a conflict on {id}, got {other:?}"),
    }
}

/// The message of the invalid `field` that `r` must be.
#[track_caller]
fn invalid_on<T: Debug>(r: DomainResult<T>, field: &str) -> String {
    match r {
        Err(DomainError::Invalid { field: f, message }) => {
            assert_eq!(f, field, "{message}");
            message
        }
        other => panic!("expected {field} to be invalid, got {other:?}"),
    }
}

#[track_caller]
fn not_found<T: Debug>(r: DomainResult<T>, id: ResourceId) {
    assert_eq!(r.unwrap_err(), DomainError::NotFound(id));
}

// === projects ===

#[test]
fn a_taken_project_name_exists_and_projects_are_an_account_quota() {
    let mut ev = shop();
    let q = quotas();
    let again = parse::<ProjectBody>(json!({ "name": P })).decode().unwrap();
    assert_eq!(create_project(&ev, &q, again.clone(), T0), Err(DomainError::Exists(ResourceId::Project(P.into()))));
    add_project(&mut ev, json!({ "name": "other" }));
    let third = parse::<ProjectBody>(json!({ "name": "third" })).decode().unwrap();
    assert_eq!(
        create_project(&ev, &q, third, T0),
        Err(DomainError::Quota { kind: ResourceKind::Project, scope: QuotaScope::Account, limit: 2 })
    );
    // A taken name is reported as such even when the quota is full.
    assert_eq!(create_project(&ev, &q, again, T0), Err(DomainError::Exists(ResourceId::Project(P.into()))));
}

#[test]
fn a_new_project_takes_what_was_sent_at_the_time() {
    let ev = EvResources::default();
    let n =
        parse::<ProjectBody>(json!({ "name": "p", "description": "d", "tags": { "team": "web" } })).decode().unwrap();
    let p = create_project(&ev, &quotas(), n, T0).unwrap();
    assert_eq!((p.name.as_str(), p.description.as_deref()), ("p", Some("d")));
    assert_eq!((p.created_time, p.last_updated_time), (T0, T0));
    assert_eq!(p.tags, tags(&[("team", "web")]));
}

#[test]
fn updating_a_project_needs_it_and_moves_its_update_time() {
    let ev = shop();
    let patch = || parse::<ProjectPatchBody>(json!({ "description": "new" })).decode().unwrap();
    not_found(update_project(&ev, "nope", patch(), 2.0 * T0), ResourceId::Project("nope".into()));
    not_found(set_data_delivery(&ev, "nope", None, 2.0 * T0), ResourceId::Project("nope".into()));
    let p = update_project(&ev, P, patch(), 2.0 * T0).unwrap();
    assert_eq!(p.description.as_deref(), Some("new"));
    assert_eq!((p.created_time, p.last_updated_time), (T0, 2.0 * T0));
}

#[test]
fn a_project_with_sub_resources_is_not_deleted() {
    let mut ev = shop();
    not_found(delete_project(&ev, "nope"), ResourceId::Project("nope".into()));
    let bare = || ResourceId::Project("bare".into());
    // Its features.
    let m = conflict_on(delete_project(&ev, P), ResourceId::Project(P.into()));
    assert_eq!(m, "Project has sub-resources");
    add_project(&mut ev, json!({ "name": "bare" }));
    assert_eq!(delete_project(&ev, "bare"), Ok("project/bare".into()));
    // An ended launch alone, its feature gone.
    let f = || json!({ "name": "f", "variations": strings(&["a", "b"]) });
    add_feature(&mut ev, "bare", f());
    add_launch(&mut ev, "bare", launch_body("l", "f", &["a", "b"]));
    run_launch(&mut ev, "bare", "l", 2.0 * T0);
    stopped::<Launch>(&mut ev, "bare", "l", json!({}), 3.0 * T0);
    ev.remove(&delete_feature(&ev, "bare", "f").unwrap());
    conflict_on(delete_project(&ev, "bare"), bare());
    ev.remove(&delete::<Launch>(&ev, "bare", "l").unwrap());
    assert_eq!(delete_project(&ev, "bare"), Ok("project/bare".into()));
    // An ended experiment alone.
    add_feature(&mut ev, "bare", f());
    add_experiment(&mut ev, "bare", experiment_body("x", "f", &[("a", "a"), ("b", "b")]));
    run_experiment(&mut ev, "bare", "x", 2.0 * T0);
    stopped::<Experiment>(&mut ev, "bare", "x", json!({ "desiredState": "CANCELLED" }), 3.0 * T0);
    ev.remove(&delete_feature(&ev, "bare", "f").unwrap());
    conflict_on(delete_project(&ev, "bare"), bare());
    ev.remove(&delete::<Experiment>(&ev, "bare", "x").unwrap());
    assert_eq!(delete_project(&ev, "bare"), Ok("project/bare".into()));
}

// === features ===

#[test]
fn a_taken_feature_name_exists_and_features_are_a_project_quota() {
    let mut ev = shop();
    let q = quotas();
    let color = || new_feature(json!({ "name": "color", "variations": strings(&["x"]) }));
    assert_eq!(create_feature(&ev, &q, P, color(), T0), Err(DomainError::Exists(feature_id("color"))));
    not_found(create_feature(&ev, &q, "nope", color(), T0), ResourceId::Project("nope".into()));
    add_feature(&mut ev, P, json!({ "name": "shape", "variations": strings(&["round"]) }));
    let fourth = new_feature(json!({ "name": "weight", "variations": strings(&["light"]) }));
    assert_eq!(
        create_feature(&ev, &q, P, fourth.clone(), T0),
        Err(DomainError::Quota { kind: ResourceKind::Feature, scope: QuotaScope::Project, limit: 3 })
    );
    // Another project counts its own.
    add_project(&mut ev, json!({ "name": "other" }));
    assert!(create_feature(&ev, &q, "other", fourth, T0).is_ok());
}

#[test]
fn a_new_feature_defaults_to_its_first_variation_and_all_rules() {
    let ev = shop();
    let n = new_feature(json!({ "name": "shape", "variations": strings(&["round", "square"]) }));
    let f = create_feature(&ev, &quotas(), P, n, T0).unwrap();
    assert_eq!((f.project.as_str(), f.name.as_str()), (P, "shape"));
    assert_eq!((f.default_variation.as_str(), f.evaluation_strategy.as_str()), ("round", "ALL_RULES"));
    assert_eq!((f.created_time, f.last_updated_time), (T0, T0));
}

#[test]
fn the_default_variation_must_be_a_variation_of_the_feature() {
    let ev = shop();
    let q = quotas();
    let n = new_feature(json!({ "name": "shape", "variations": strings(&["round"]), "defaultVariation": "square" }));
    let m = invalid_on(create_feature(&ev, &q, P, n, T0), "defaultVariation");
    assert!(m.contains("`square`"), "{m}");
    let patch = feature_patch(json!({ "defaultVariation": "purple" }));
    invalid_on(update_feature(&ev, P, "color", patch, T0), "defaultVariation");
    // Removing the default variation leaves none.
    let patch = feature_patch(json!({ "removeVariations": ["red"] }));
    invalid_on(update_feature(&ev, P, "color", patch, T0), "defaultVariation");
    let patch = feature_patch(json!({ "removeVariations": ["red"], "defaultVariation": "blue" }));
    let f = update_feature(&ev, P, "color", patch, T0).unwrap();
    assert_eq!(f.default_variation, "blue");
}

#[test]
fn the_variations_of_a_feature_have_one_value_type() {
    let ev = shop();
    let mixed = json!([{ "name": "a", "value": { "stringValue": "a" } }, { "name": "b", "value": { "longValue": 1 } }]);
    let n = new_feature(json!({ "name": "shape", "variations": mixed }));
    let m = invalid_on(create_feature(&ev, &quotas(), P, n, T0), "variations");
    assert!(m.contains("same value type"), "{m}");
    let add = feature_patch(json!({ "addOrUpdateVariations": [{ "name": "on", "value": { "boolValue": true } }] }));
    invalid_on(update_feature(&ev, P, "color", add, T0), "variations");
    let retype = feature_patch(json!({ "addOrUpdateVariations": [{ "name": "red", "value": { "longValue": 7 } }] }));
    invalid_on(update_feature(&ev, P, "color", retype, T0), "variations");
}

#[test]
fn a_feature_holds_at_most_5_variations_after_an_update_too() {
    let ev = shop();
    let patch = feature_patch(json!({ "addOrUpdateVariations": strings(&["v1", "v2", "v3"]) }));
    match update_feature(&ev, P, "color", patch, T0) {
        Err(DomainError::Constraint(v)) => {
            assert_eq!((v.member.as_str(), v.shape), ("variations", "VariationConfigsList"))
        }
        other => panic!("expected a constraint on variations, got {other:?}"),
    }
    let patch = feature_patch(json!({ "addOrUpdateVariations": strings(&["v1", "v2"]) }));
    assert_eq!(update_feature(&ev, P, "color", patch, T0).unwrap().variations.len(), 5);
}

#[test]
fn entity_overrides_name_variations_of_the_feature() {
    let ev = shop();
    let n = new_feature(
        json!({ "name": "shape", "variations": strings(&["round"]), "entityOverrides": { "u1": "square" } }),
    );
    invalid_on(create_feature(&ev, &quotas(), P, n, T0), "entityOverrides");
    let patch = feature_patch(json!({ "entityOverrides": { "u1": "blue" } }));
    let f = update_feature(&ev, P, "color", patch, T0).unwrap();
    assert_eq!(f.entity_overrides, tags(&[("u1", "blue")]));
    // A variation an override names is not removed from under it.
    let mut ev = ev;
    ev.put(Resource::Feature(f));
    let patch = feature_patch(json!({ "removeVariations": ["blue"] }));
    invalid_on(update_feature(&ev, P, "color", patch, T0), "entityOverrides");
}

#[test]
fn updating_a_feature_needs_it_and_moves_its_update_time() {
    let ev = shop();
    let patch = || feature_patch(json!({ "description": "d" }));
    not_found(update_feature(&ev, P, "ghost", patch(), T0), feature_id("ghost"));
    not_found(update_feature(&ev, "nope", "color", patch(), T0), ResourceId::Project("nope".into()));
    let patch = feature_patch(json!({
        "addOrUpdateVariations": [
            { "name": "red", "value": { "stringValue": "crimson" } },
            { "name": "pink", "value": { "stringValue": "pink" } },
        ],
    }));
    let f = update_feature(&ev, P, "color", patch, 2.0 * T0).unwrap();
    let names: Vec<&str> = f.variations.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["red", "blue", "green", "pink"]);
    assert_eq!(f.variations[0].value, VariableValue::String("crimson".into()));
    assert_eq!((f.created_time, f.last_updated_time), (T0, 2.0 * T0));
}

#[test]
fn a_variation_a_live_launch_or_experiment_uses_is_not_removed() {
    let mut ev = shop();
    add_launch(&mut ev, P, launch_body("l", "color", &["red", "blue"]));
    add_experiment(&mut ev, P, experiment_body("x", "color", &[("c", "red"), ("t", "green")]));
    let remove = |v: &str| feature_patch(json!({ "removeVariations": [v] }));
    // Created.
    let m = conflict_on(update_feature(&ev, P, "color", remove("blue"), T0), feature_id("color"));
    assert!(m.contains("`blue`"), "{m}");
    let m = conflict_on(update_feature(&ev, P, "color", remove("green"), T0), feature_id("color"));
    assert!(m.contains("`green`"), "{m}");
    // Running.
    run_launch(&mut ev, P, "l", 2.0 * T0);
    conflict_on(update_feature(&ev, P, "color", remove("blue"), T0), feature_id("color"));
    // Ended: the launch no longer holds it.
    stopped::<Launch>(&mut ev, P, "l", json!({}), 3.0 * T0);
    let f = update_feature(&ev, P, "color", remove("blue"), 4.0 * T0).unwrap();
    let names: Vec<&str> = f.variations.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["red", "green"]);
}

#[test]
fn a_feature_a_live_launch_or_experiment_uses_is_not_deleted() {
    let mut ev = shop();
    not_found(delete_feature(&ev, P, "ghost"), feature_id("ghost"));
    add_launch(&mut ev, P, launch_body("l", "color", &["red", "blue"]));
    let m = conflict_on(delete_feature(&ev, P, "color"), feature_id("color"));
    assert_eq!(m, "Feature is used by a launch or an experiment that has not ended.");
    run_launch(&mut ev, P, "l", 2.0 * T0);
    conflict_on(delete_feature(&ev, P, "color"), feature_id("color"));
    stopped::<Launch>(&mut ev, P, "l", json!({}), 3.0 * T0);
    assert_eq!(delete_feature(&ev, P, "color"), Ok("feature/shop/color".into()));

    add_experiment(&mut ev, P, experiment_body("x", "size", &[("small", "s"), ("medium", "m")]));
    conflict_on(delete_feature(&ev, P, "size"), feature_id("size"));
    run_experiment(&mut ev, P, "x", 2.0 * T0);
    conflict_on(delete_feature(&ev, P, "size"), feature_id("size"));
    stopped::<Experiment>(&mut ev, P, "x", json!({}), 3.0 * T0);
    assert_eq!(delete_feature(&ev, P, "size"), Ok("feature/shop/size".into()));
}

// === segments ===

#[test]
fn a_taken_segment_name_exists_and_segments_are_an_account_quota() {
    let mut ev = shop();
    let q = quotas();
    let segment = |name: &str| {
        parse::<SegmentBody>(json!({ "name": name, "pattern": r#"{"Country":["CA"]}"# })).decode().unwrap()
    };
    assert_eq!(
        create_segment(&ev, &q, segment("beta"), T0),
        Err(DomainError::Exists(ResourceId::Segment("beta".into())))
    );
    let gamma = create_segment(&ev, &q, segment("gamma"), 2.0 * T0).unwrap();
    assert_eq!((gamma.created_time, gamma.last_updated_time), (2.0 * T0, 2.0 * T0));
    ev.put(Resource::Segment(gamma));
    assert_eq!(
        create_segment(&ev, &q, segment("delta"), T0),
        Err(DomainError::Quota { kind: ResourceKind::Segment, scope: QuotaScope::Account, limit: 2 })
    );
    assert_eq!(
        create_segment(&ev, &q, segment("beta"), T0),
        Err(DomainError::Exists(ResourceId::Segment("beta".into())))
    );
}

#[test]
fn a_segment_a_launch_or_experiment_uses_is_not_deleted() {
    let mut ev = shop();
    add_segment(&mut ev, "gamma");
    not_found(delete_segment(&ev, "ghost"), ResourceId::Segment("ghost".into()));
    let mut body = launch_body("l", "color", &["red", "blue"]);
    body["scheduledSplitsConfig"]["steps"][0]["segmentOverrides"] =
        json!([{ "segment": "beta", "evaluationOrder": 1, "weights": { "red": 100000 } }]);
    add_launch(&mut ev, P, body);
    let mut body = experiment_body("x", "size", &[("small", "s"), ("medium", "m")]);
    body["segment"] = json!(arns().segment("beta"));
    add_experiment(&mut ev, P, body);

    let (launches, experiments) = segment_users(&ev, "beta");
    let launches: Vec<&str> = launches.iter().map(|l| l.name.as_str()).collect();
    let experiments: Vec<&str> = experiments.iter().map(|x| x.name.as_str()).collect();
    assert_eq!((launches, experiments), (vec!["l"], vec!["x"]));
    let (launches, experiments) = segment_users(&ev, "gamma");
    assert!(launches.is_empty() && experiments.is_empty());

    let beta = || ResourceId::Segment("beta".into());
    let m = conflict_on(delete_segment(&ev, "beta"), beta());
    assert_eq!(m, "Segment is in use by a launch or an experiment.");
    assert_eq!(delete_segment(&ev, "gamma"), Ok("segment/gamma".into()));
    // Ended, still used (AWS: even if the launch or experiment is not running).
    run_launch(&mut ev, P, "l", 2.0 * T0);
    stopped::<Launch>(&mut ev, P, "l", json!({}), 3.0 * T0);
    conflict_on(delete_segment(&ev, "beta"), beta());
    ev.remove(&delete::<Launch>(&ev, P, "l").unwrap());
    conflict_on(delete_segment(&ev, "beta"), beta());
    ev.remove(&delete::<Experiment>(&ev, P, "x").unwrap());
    assert_eq!(delete_segment(&ev, "beta"), Ok("segment/beta".into()));
}

#[test]
fn a_segment_a_launch_or_experiment_names_must_exist() {
    let mut ev = shop();
    let q = quotas();
    let ghost = || ResourceId::Segment("ghost".into());
    let mut body = launch_body("l", "color", &["red", "blue"]);
    body["scheduledSplitsConfig"]["steps"][0]["segmentOverrides"] =
        json!([{ "segment": "ghost", "evaluationOrder": 1, "weights": { "red": 1 } }]);
    not_found(create_launch(&ev, &q, P, new_launch(body), T0), ghost());
    let mut body = experiment_body("x", "color", &[("c", "red"), ("t", "blue")]);
    body["segment"] = json!("ghost");
    not_found(create_experiment(&ev, &q, P, new_experiment(body), T0), ghost());
    add_experiment(&mut ev, P, experiment_body("x", "color", &[("c", "red"), ("t", "blue")]));
    let patch = experiment_patch(json!({ "segment": "ghost" }));
    not_found(update_experiment(&ev, P, "x", patch, T0), ghost());
}

// === launches ===

#[test]
fn a_taken_launch_name_exists_and_launches_are_a_project_quota() {
    let mut ev = shop();
    let q = quotas();
    let body = |name: &str| new_launch(launch_body(name, "color", &["red", "blue"]));
    not_found(create_launch(&ev, &q, "nope", body("l1"), T0), ResourceId::Project("nope".into()));
    for name in ["l1", "l2", "l3", "l4"] {
        add_launch(&mut ev, P, launch_body(name, "color", &["red", "blue"]));
    }
    assert_eq!(create_launch(&ev, &q, P, body("l1"), T0), Err(DomainError::Exists(launch_id("l1"))));
    assert_eq!(
        create_launch(&ev, &q, P, body("l5"), T0),
        Err(DomainError::Quota { kind: ResourceKind::Launch, scope: QuotaScope::Project, limit: 4 })
    );
}

#[test]
fn a_new_launch_is_created_salted_with_its_name() {
    let ev = shop();
    let l = create_launch(&ev, &quotas(), P, new_launch(launch_body("l", "color", &["red", "blue"])), T0).unwrap();
    assert_eq!((l.project.as_str(), l.name.as_str(), l.randomization_salt.as_str()), (P, "l", "l"));
    assert_eq!(l.status, RunStatus::Created);
    assert_eq!((l.started_time, l.ended_time, l.status_reason.as_deref()), (None, None, None));
    assert_eq!((l.created_time, l.last_updated_time), (T0, T0));
    assert_eq!(l.groups[1].feature_variations, tags(&[("color", "blue")]));
    assert_eq!(l.steps[0].group_weights, weights(&[("red", 1000), ("blue", 1000)]));
    let mut body = launch_body("l", "color", &["red"]);
    body["randomizationSalt"] = json!("pepper");
    let l = create_launch(&ev, &quotas(), P, new_launch(body), T0).unwrap();
    assert_eq!(l.randomization_salt, "pepper");
}

#[test]
fn a_launch_names_features_and_variations_that_exist() {
    let mut ev = shop();
    let q = quotas();
    not_found(create_launch(&ev, &q, P, new_launch(launch_body("l", "ghost", &["a"])), T0), feature_id("ghost"));
    let body = json!({
        "name": "l",
        "groups": [
            { "name": "red", "feature": "color", "variation": "red" },
            { "name": "pink", "feature": "color", "variation": "pink" },
        ],
    });
    let m = invalid_on(create_launch(&ev, &q, P, new_launch(body), T0), "groups[1].variation");
    assert!(m.contains("`pink`") && m.contains("`color`"), "{m}");
    // The same on update.
    add_launch(&mut ev, P, launch_body("l", "color", &["red", "blue"]));
    let patch = launch_patch(json!({
        "groups": [
            { "name": "red", "feature": "color", "variation": "red" },
            { "name": "blue", "feature": "color", "variation": "teal" },
        ],
    }));
    invalid_on(update_launch(&ev, P, "l", patch, T0), "groups[1].variation");
    let patch = launch_patch(json!({
        "groups": [
            { "name": "red", "feature": "ghost", "variation": "red" },
            { "name": "blue", "feature": "color", "variation": "blue" },
        ],
    }));
    not_found(update_launch(&ev, P, "l", patch, T0), feature_id("ghost"));
    let patch = || launch_patch(json!({ "description": "d" }));
    not_found(update_launch(&ev, P, "ghost", patch(), T0), launch_id("ghost"));
    not_found(update_launch(&ev, "nope", "l", patch(), T0), ResourceId::Project("nope".into()));
}

#[test]
fn step_weights_name_groups_of_the_launch() {
    let mut ev = shop();
    let q = quotas();
    let mut body = launch_body("l", "color", &["red", "blue"]);
    body["scheduledSplitsConfig"]["steps"] = json!([
        { "startTime": 0, "groupWeights": { "red": 1, "blue": 1 } },
        { "startTime": 100, "groupWeights": { "red": 1, "purple": 2 } },
    ]);
    let m = invalid_on(create_launch(&ev, &q, P, new_launch(body), T0), "scheduledSplitsConfig.steps[1].groupWeights");
    assert!(m.contains("`purple`"), "{m}");
    let mut body = launch_body("l", "color", &["red", "blue"]);
    body["scheduledSplitsConfig"]["steps"][0]["segmentOverrides"] =
        json!([{ "segment": "beta", "evaluationOrder": 1, "weights": { "nope": 5 } }]);
    let m = invalid_on(
        create_launch(&ev, &q, P, new_launch(body), T0),
        "scheduledSplitsConfig.steps[0].segmentOverrides[0].weights",
    );
    assert!(m.contains("`nope`"), "{m}");
    // New groups alone leave the steps naming the old ones.
    add_launch(&mut ev, P, launch_body("l", "color", &["red", "blue"]));
    let green = json!([{ "name": "green", "feature": "color", "variation": "green" }]);
    let patch = launch_patch(json!({ "groups": green }));
    let m = invalid_on(update_launch(&ev, P, "l", patch, T0), "scheduledSplitsConfig.steps[0].groupWeights");
    assert!(m.contains("`blue`"), "{m}");
    let steps = json!({ "steps": [{ "startTime": 0, "groupWeights": { "green": 1 } }] });
    let patch = launch_patch(json!({ "groups": green, "scheduledSplitsConfig": steps }));
    let l = update_launch(&ev, P, "l", patch, 2.0 * T0).unwrap();
    assert_eq!(l.steps[0].group_weights, weights(&[("green", 1)]));
    assert_eq!(l.last_updated_time, 2.0 * T0);
}

// === the lifecycle ===

#[test]
fn a_launch_starts_only_from_created_and_stops_only_from_running() {
    let mut ev = shop();
    let q = quotas();
    add_launch(&mut ev, P, launch_body("l", "color", &["red", "blue"]));
    let l = find::<Launch>(&ev, P, "l").unwrap().clone();
    let m = conflict_on(stop(l, stop_input::<Launch>(json!({})), 2.0 * T0), launch_id("l"));
    assert!(m.contains("CREATED"), "{m}");

    let l = run_launch(&mut ev, P, "l", 2.0 * T0);
    assert_eq!(l.status, RunStatus::Running);
    assert_eq!((l.started_time, l.ended_time), (Some(2.0 * T0), None));
    assert_eq!((l.created_time, l.last_updated_time), (T0, 2.0 * T0));
    let m = conflict_on(start(&ev, &q, l, 3.0 * T0), launch_id("l"));
    assert!(m.contains("RUNNING"), "{m}");

    let l = stopped::<Launch>(&mut ev, P, "l", json!({ "desiredState": "CANCELLED", "reason": "broke" }), 4.0 * T0);
    assert_eq!((l.status, l.status_reason.as_deref()), (RunStatus::Cancelled, Some("broke")));
    assert_eq!((l.started_time, l.ended_time), (Some(2.0 * T0), Some(4.0 * T0)));
    assert_eq!(l.last_updated_time, 4.0 * T0);
    let m = conflict_on(start(&ev, &q, l.clone(), 5.0 * T0), launch_id("l"));
    assert!(m.contains("CANCELLED"), "{m}");
    let m = conflict_on(stop(l, stop_input::<Launch>(json!({})), 5.0 * T0), launch_id("l"));
    assert!(m.contains("CANCELLED"), "{m}");
}

#[test]
fn stopping_completes_by_default() {
    let mut ev = shop();
    add_launch(&mut ev, P, launch_body("l", "color", &["red", "blue"]));
    run_launch(&mut ev, P, "l", 2.0 * T0);
    let l = stopped::<Launch>(&mut ev, P, "l", json!({}), 3.0 * T0);
    assert_eq!((l.status, l.status_reason.as_deref(), l.ended_time), (RunStatus::Completed, None, Some(3.0 * T0)));
}

#[test]
fn an_experiment_starts_only_from_created_and_stops_only_from_running() {
    let mut ev = shop();
    let q = quotas();
    add_experiment(&mut ev, P, experiment_body("x", "color", &[("c", "red"), ("t", "blue")]));
    let x = find::<Experiment>(&ev, P, "x").unwrap().clone();
    conflict_on(stop(x, stop_input::<Experiment>(json!({})), 2.0 * T0), experiment_id("x"));

    let x = run_experiment(&mut ev, P, "x", 2.0 * T0);
    assert_eq!(x.status, RunStatus::Running);
    assert_eq!((x.started_time, x.analysis_complete_time), (Some(2.0 * T0), Some(2.0 * T0 + DAY)));
    assert_eq!((x.created_time, x.last_updated_time), (T0, 2.0 * T0));
    let m = conflict_on(start_experiment(&ev, &q, P, "x", 3.0 * T0 + DAY, 3.0 * T0), experiment_id("x"));
    assert!(m.contains("RUNNING"), "{m}");

    let body = json!({ "desiredState": "COMPLETED", "reason": "enough data" });
    let x = stopped::<Experiment>(&mut ev, P, "x", body, 4.0 * T0);
    assert_eq!((x.status, x.status_reason.as_deref()), (RunStatus::Completed, Some("enough data")));
    assert_eq!((x.started_time, x.ended_time, x.last_updated_time), (Some(2.0 * T0), Some(4.0 * T0), 4.0 * T0));
    conflict_on(start_experiment(&ev, &q, P, "x", 5.0 * T0 + DAY, 5.0 * T0), experiment_id("x"));
    conflict_on(stop(x, stop_input::<Experiment>(json!({})), 5.0 * T0), experiment_id("x"));
}

#[test]
fn a_running_launch_or_experiment_is_not_deleted() {
    let mut ev = shop();
    add_launch(&mut ev, P, launch_body("l", "color", &["red", "blue"]));
    add_launch(&mut ev, P, launch_body("idle", "color", &["red", "blue"]));
    add_experiment(&mut ev, P, experiment_body("x", "color", &[("c", "red"), ("t", "blue")]));
    run_launch(&mut ev, P, "l", 2.0 * T0);
    run_experiment(&mut ev, P, "x", 2.0 * T0);
    let m = conflict_on(delete::<Launch>(&ev, P, "l"), launch_id("l"));
    assert!(m.contains("running"), "{m}");
    conflict_on(delete::<Experiment>(&ev, P, "x"), experiment_id("x"));
    // Created or ended: deleted.
    assert_eq!(delete::<Launch>(&ev, P, "idle"), Ok("launch/shop/idle".into()));
    stopped::<Launch>(&mut ev, P, "l", json!({}), 3.0 * T0);
    stopped::<Experiment>(&mut ev, P, "x", json!({}), 3.0 * T0);
    assert_eq!(delete::<Launch>(&ev, P, "l"), Ok("launch/shop/l".into()));
    assert_eq!(delete::<Experiment>(&ev, P, "x"), Ok("experiment/shop/x".into()));
}

#[test]
fn find_names_the_missing_project_launch_or_experiment() {
    let ev = shop();
    not_found(find::<Launch>(&ev, P, "ghost"), launch_id("ghost"));
    not_found(find::<Experiment>(&ev, P, "ghost"), experiment_id("ghost"));
    not_found(find::<Launch>(&ev, "nope", "l"), ResourceId::Project("nope".into()));
    not_found(delete::<Launch>(&ev, P, "ghost"), launch_id("ghost"));
    not_found(delete::<Experiment>(&ev, P, "ghost"), experiment_id("ghost"));
    not_found(start_experiment(&ev, &quotas(), P, "ghost", T0 + DAY, T0), experiment_id("ghost"));
}

#[test]
fn an_ended_launch_or_experiment_is_not_updated() {
    let mut ev = shop();
    add_launch(&mut ev, P, launch_body("l", "color", &["red", "blue"]));
    add_experiment(&mut ev, P, experiment_body("x", "color", &[("c", "red"), ("t", "blue")]));
    // Running: updates are allowed (a launch's whole spec; an experiment's description).
    run_launch(&mut ev, P, "l", 2.0 * T0);
    run_experiment(&mut ev, P, "x", 2.0 * T0);
    let l = update_launch(&ev, P, "l", launch_patch(json!({ "description": "d" })), 3.0 * T0).unwrap();
    assert_eq!((l.description.as_deref(), l.last_updated_time), (Some("d"), 3.0 * T0));
    update_experiment(&ev, P, "x", experiment_patch(json!({ "description": "d" })), 3.0 * T0).unwrap();
    stopped::<Launch>(&mut ev, P, "l", json!({}), 4.0 * T0);
    stopped::<Experiment>(&mut ev, P, "x", json!({ "desiredState": "CANCELLED" }), 4.0 * T0);
    let m = conflict_on(update_launch(&ev, P, "l", launch_patch(json!({ "description": "e" })), T0), launch_id("l"));
    assert!(m.contains("COMPLETED"), "{m}");
    let patch = experiment_patch(json!({ "description": "e" }));
    let m = conflict_on(update_experiment(&ev, P, "x", patch, T0), experiment_id("x"));
    assert!(m.contains("CANCELLED"), "{m}");
}

#[test]
fn running_launches_and_experiments_are_a_running_quota() {
    let mut ev = shop();
    let q = quotas();
    add_feature(&mut ev, P, json!({ "name": "shape", "variations": strings(&["round", "square"]) }));
    for (n, f, v) in [("1", "color", ["red", "blue"]), ("2", "size", ["s", "m"]), ("3", "shape", ["round", "square"])] {
        add_launch(&mut ev, P, launch_body(&format!("l{n}"), f, &v));
        add_experiment(&mut ev, P, experiment_body(&format!("x{n}"), f, &[("a", v[0]), ("b", v[1])]));
    }
    for n in ["1", "2"] {
        run_launch(&mut ev, P, &format!("l{n}"), 2.0 * T0);
        run_experiment(&mut ev, P, &format!("x{n}"), 2.0 * T0);
    }
    let l3 = find::<Launch>(&ev, P, "l3").unwrap().clone();
    assert_eq!(
        start(&ev, &q, l3, 3.0 * T0),
        Err(DomainError::Quota { kind: ResourceKind::Launch, scope: QuotaScope::Running, limit: 2 })
    );
    assert_eq!(
        start_experiment(&ev, &q, P, "x3", 3.0 * T0 + DAY, 3.0 * T0),
        Err(DomainError::Quota { kind: ResourceKind::Experiment, scope: QuotaScope::Running, limit: 2 })
    );
    // An ended one frees its place.
    stopped::<Launch>(&mut ev, P, "l1", json!({}), 4.0 * T0);
    run_launch(&mut ev, P, "l3", 5.0 * T0);
}

// === one running launch and one running experiment per feature (D6) ===

#[test]
fn a_feature_runs_one_launch_at_a_time() {
    let mut ev = shop();
    let q = quotas();
    add_launch(&mut ev, P, launch_body("l1", "color", &["red", "blue"]));
    add_launch(&mut ev, P, launch_body("l2", "color", &["green"]));
    run_launch(&mut ev, P, "l1", 2.0 * T0);
    let l2 = find::<Launch>(&ev, P, "l2").unwrap().clone();
    let m = conflict_on(start(&ev, &q, l2, 3.0 * T0), launch_id("l2"));
    assert!(m.contains("`color`") && m.contains("`l1`"), "{m}");
    // Another project's launch on a feature of the same name is no rival.
    add_project(&mut ev, json!({ "name": "other" }));
    add_feature(&mut ev, "other", json!({ "name": "color", "variations": strings(&["red"]) }));
    add_launch(&mut ev, "other", launch_body("l2", "color", &["red"]));
    run_launch(&mut ev, "other", "l2", 3.0 * T0);
    // Once l1 ends, l2 runs.
    stopped::<Launch>(&mut ev, P, "l1", json!({}), 4.0 * T0);
    run_launch(&mut ev, P, "l2", 5.0 * T0);
}

#[test]
fn a_feature_runs_one_experiment_at_a_time() {
    let mut ev = shop();
    let q = quotas();
    add_experiment(&mut ev, P, experiment_body("x1", "color", &[("c", "red"), ("t", "blue")]));
    add_experiment(&mut ev, P, experiment_body("x2", "color", &[("c", "red"), ("t", "green")]));
    run_experiment(&mut ev, P, "x1", 2.0 * T0);
    let m = conflict_on(start_experiment(&ev, &q, P, "x2", 3.0 * T0 + DAY, 3.0 * T0), experiment_id("x2"));
    assert!(m.contains("`color`") && m.contains("`x1`"), "{m}");
    stopped::<Experiment>(&mut ev, P, "x1", json!({}), 4.0 * T0);
    run_experiment(&mut ev, P, "x2", 5.0 * T0);
}

#[test]
fn a_launch_and_an_experiment_may_run_on_one_feature() {
    let mut ev = shop();
    add_launch(&mut ev, P, launch_body("l", "color", &["red", "blue"]));
    add_experiment(&mut ev, P, experiment_body("x", "color", &[("c", "red"), ("t", "blue")]));
    run_launch(&mut ev, P, "l", 2.0 * T0);
    run_experiment(&mut ev, P, "x", 2.0 * T0);
}

#[test]
fn a_running_launch_cannot_take_the_feature_of_another_running_launch() {
    let mut ev = shop();
    add_launch(&mut ev, P, launch_body("l1", "color", &["red", "blue"]));
    add_launch(&mut ev, P, launch_body("l2", "size", &["s", "m"]));
    add_launch(&mut ev, P, launch_body("l3", "size", &["s"]));
    run_launch(&mut ev, P, "l1", 2.0 * T0);
    run_launch(&mut ev, P, "l2", 2.0 * T0);
    let to_color = || {
        let mut body = launch_body("_", "color", &["green"]);
        body.as_object_mut().unwrap().remove("name");
        launch_patch(body)
    };
    let m = conflict_on(update_launch(&ev, P, "l2", to_color(), 3.0 * T0), launch_id("l2"));
    assert!(m.contains("`color`") && m.contains("`l1`"), "{m}");
    // A launch that does not run may take it; it is checked when it starts.
    let l3 = update_launch(&ev, P, "l3", to_color(), 3.0 * T0).unwrap();
    assert_eq!(l3.groups[0].feature_variations, tags(&[("color", "green")]));
    // Once l1 ends, l2 may take it.
    stopped::<Launch>(&mut ev, P, "l1", json!({}), 4.0 * T0);
    update_launch(&ev, P, "l2", to_color(), 5.0 * T0).unwrap();
}

// === experiments ===

#[test]
fn a_taken_experiment_name_exists_and_experiments_are_a_project_quota() {
    let mut ev = shop();
    let q = quotas();
    let body = |name: &str| new_experiment(experiment_body(name, "color", &[("c", "red"), ("t", "blue")]));
    not_found(create_experiment(&ev, &q, "nope", body("x1"), T0), ResourceId::Project("nope".into()));
    for name in ["x1", "x2", "x3"] {
        add_experiment(&mut ev, P, experiment_body(name, "color", &[("c", "red"), ("t", "blue")]));
    }
    assert_eq!(create_experiment(&ev, &q, P, body("x1"), T0), Err(DomainError::Exists(experiment_id("x1"))));
    assert_eq!(
        create_experiment(&ev, &q, P, body("x4"), T0),
        Err(DomainError::Quota { kind: ResourceKind::Experiment, scope: QuotaScope::Project, limit: 3 })
    );
}

#[test]
fn an_experiment_names_features_and_variations_that_exist() {
    let ev = shop();
    let q = quotas();
    let body = experiment_body("x", "ghost", &[("c", "red"), ("t", "blue")]);
    not_found(create_experiment(&ev, &q, P, new_experiment(body), T0), feature_id("ghost"));
    let body = experiment_body("x", "color", &[("c", "red"), ("t", "pink")]);
    let m = invalid_on(create_experiment(&ev, &q, P, new_experiment(body), T0), "treatments[1].variation");
    assert!(m.contains("`pink`"), "{m}");
    let patch = experiment_patch(json!({ "description": "d" }));
    not_found(update_experiment(&ev, P, "ghost", patch, T0), experiment_id("ghost"));
}

#[test]
fn a_new_experiment_samples_10_percent_with_the_first_treatment_as_control_and_equal_weights() {
    let ev = shop();
    let q = quotas();
    let body = experiment_body("x", "color", &[("a", "red"), ("b", "blue"), ("c", "green")]);
    let x = create_experiment(&ev, &q, P, new_experiment(body), T0).unwrap();
    assert_eq!(x.sampling_rate, 10_000);
    assert_eq!(x.control_treatment.as_deref(), Some("a"));
    assert_eq!(x.treatment_weights, weights(&[("a", 33_334), ("b", 33_333), ("c", 33_333)]));
    assert_eq!(x.treatment_weights.values().sum::<i64>(), 100_000);
    assert_eq!((x.status, x.randomization_salt.as_str(), x.segment.as_deref()), (RunStatus::Created, "x", None));
    assert_eq!((x.started_time, x.ended_time, x.analysis_complete_time), (None, None, None));
    assert_eq!((x.created_time, x.last_updated_time), (T0, T0));
    let body = experiment_body("x", "color", &[("a", "red"), ("b", "blue")]);
    let x = create_experiment(&ev, &q, P, new_experiment(body), T0).unwrap();
    assert_eq!(x.treatment_weights, weights(&[("a", 50_000), ("b", 50_000)]));
}

#[test]
fn a_new_experiment_keeps_the_online_ab_config_it_was_sent() {
    let ev = shop();
    let q = quotas();
    let mut body = experiment_body("x", "color", &[("a", "red"), ("b", "blue")]);
    body["onlineAbConfig"] = json!({ "controlTreatmentName": "b", "treatmentWeights": { "a": 1, "b": 3 } });
    body["samplingRate"] = json!(500);
    let x = create_experiment(&ev, &q, P, new_experiment(body), T0).unwrap();
    assert_eq!((x.control_treatment.as_deref(), x.sampling_rate), (Some("b"), 500));
    assert_eq!(x.treatment_weights, weights(&[("a", 1), ("b", 3)]));
    // Weights alone: the first treatment is control.
    let mut body = experiment_body("x", "color", &[("a", "red"), ("b", "blue")]);
    body["onlineAbConfig"] = json!({ "treatmentWeights": { "b": 100000 } });
    let x = create_experiment(&ev, &q, P, new_experiment(body), T0).unwrap();
    assert_eq!(x.control_treatment.as_deref(), Some("a"));
    assert_eq!(x.treatment_weights, weights(&[("b", 100_000)]));
}

#[test]
fn the_sampling_rate_is_a_split_weight() {
    let ev = shop();
    let mut body = experiment_body("x", "color", &[("a", "red"), ("b", "blue")]);
    body["samplingRate"] = json!(100_001);
    match create_experiment(&ev, &quotas(), P, new_experiment(body), T0) {
        Err(DomainError::Constraint(v)) => assert_eq!((v.member.as_str(), v.shape), ("samplingRate", "SplitWeight")),
        other => panic!("expected a constraint on samplingRate, got {other:?}"),
    }
}

#[test]
fn online_ab_config_names_treatments_of_the_experiment() {
    let mut ev = shop();
    let q = quotas();
    let with = |online: Value| {
        let mut body = experiment_body("x", "color", &[("a", "red"), ("b", "blue")]);
        body["onlineAbConfig"] = online;
        new_experiment(body)
    };
    let r = create_experiment(&ev, &q, P, with(json!({ "controlTreatmentName": "z" })), T0);
    let m = invalid_on(r, "onlineAbConfig.controlTreatmentName");
    assert!(m.contains("`z`"), "{m}");
    let r = create_experiment(&ev, &q, P, with(json!({ "treatmentWeights": { "a": 1, "z": 1 } })), T0);
    invalid_on(r, "onlineAbConfig.treatmentWeights");
    add_experiment(&mut ev, P, experiment_body("x", "color", &[("a", "red"), ("b", "blue")]));
    let patch = experiment_patch(json!({ "onlineAbConfig": { "controlTreatmentName": "z" } }));
    invalid_on(update_experiment(&ev, P, "x", patch, T0), "onlineAbConfig.controlTreatmentName");
    // Treatments that drop a control that was sent with them.
    let patch = experiment_patch(json!({
        "treatments": [{ "name": "c", "feature": "color", "variation": "red" }, { "name": "d", "feature": "color", "variation": "blue" }],
        "onlineAbConfig": { "controlTreatmentName": "a" },
    }));
    invalid_on(update_experiment(&ev, P, "x", patch, T0), "onlineAbConfig.controlTreatmentName");
}

/// Treatments for an update: (name, variation) on `color`.
fn treatments(pairs: &[(&str, &str)]) -> Value {
    Value::Array(pairs.iter().map(|(t, v)| json!({ "name": t, "feature": "color", "variation": v })).collect())
}

#[test]
fn an_update_keeps_the_control_and_weights_that_still_fit_the_treatments() {
    let mut ev = shop();
    let mut body = experiment_body("x", "color", &[("ctl", "red"), ("alt", "blue")]);
    body["onlineAbConfig"] =
        json!({ "controlTreatmentName": "alt", "treatmentWeights": { "ctl": 30000, "alt": 70000 } });
    add_experiment(&mut ev, P, body);
    let update =
        |ev: &EvResources, patch: Value| update_experiment(ev, P, "x", experiment_patch(patch), 2.0 * T0).unwrap();

    // No new treatments: everything kept.
    let x = update(&ev, json!({ "samplingRate": 2000 }));
    assert_eq!((x.control_treatment.as_deref(), x.sampling_rate), (Some("alt"), 2000));
    assert_eq!(x.treatment_weights, weights(&[("ctl", 30_000), ("alt", 70_000)]));
    assert_eq!(x.last_updated_time, 2.0 * T0);
    // The same names, other variations: control and weights kept.
    let x = update(&ev, json!({ "treatments": treatments(&[("ctl", "green"), ("alt", "blue")]) }));
    assert_eq!(x.control_treatment.as_deref(), Some("alt"));
    assert_eq!(x.treatment_weights, weights(&[("ctl", 30_000), ("alt", 70_000)]));
    // The control still a treatment, the weights no longer naming exactly the treatments.
    let x = update(&ev, json!({ "treatments": treatments(&[("new", "green"), ("alt", "blue")]) }));
    assert_eq!(x.control_treatment.as_deref(), Some("alt"));
    assert_eq!(x.treatment_weights, weights(&[("new", 50_000), ("alt", 50_000)]));
    let x = update(&ev, json!({ "treatments": treatments(&[("ctl", "red"), ("alt", "blue"), ("new", "green")]) }));
    assert_eq!(x.treatment_weights, weights(&[("ctl", 33_334), ("alt", 33_333), ("new", 33_333)]));
    // The control gone: the first treatment.
    let x = update(&ev, json!({ "treatments": treatments(&[("b", "blue"), ("a", "red")]) }));
    assert_eq!(x.control_treatment.as_deref(), Some("b"));
    assert_eq!(x.treatment_weights, weights(&[("b", 50_000), ("a", 50_000)]));
    // What is sent wins over what is kept.
    let x = update(
        &ev,
        json!({
            "treatments": treatments(&[("ctl", "red"), ("alt", "blue")]),
            "onlineAbConfig": { "controlTreatmentName": "ctl" },
        }),
    );
    assert_eq!(x.control_treatment.as_deref(), Some("ctl"));
    assert_eq!(x.treatment_weights, weights(&[("ctl", 30_000), ("alt", 70_000)]));
    let x = update(&ev, json!({ "onlineAbConfig": { "treatmentWeights": { "ctl": 1, "alt": 1 } } }));
    assert_eq!(x.control_treatment.as_deref(), Some("alt"));
    assert_eq!(x.treatment_weights, weights(&[("ctl", 1), ("alt", 1)]));
}

#[test]
fn an_update_of_a_created_experiment_sets_or_removes_what_was_sent() {
    let mut ev = shop();
    add_experiment(&mut ev, P, experiment_body("x", "color", &[("c", "red"), ("t", "blue")]));
    let goals = json!([{ "metricDefinition": { "name": "clicks", "entityIdKey": "u", "valueKey": "v" } }]);
    let patch = experiment_patch(json!({ "segment": "beta", "randomizationSalt": "pepper", "metricGoals": goals }));
    let x = update_experiment(&ev, P, "x", patch, 2.0 * T0).unwrap();
    assert_eq!((x.segment.as_deref(), x.randomization_salt.as_str()), (Some("beta"), "pepper"));
    let goals: Vec<&str> = x.metric_goals.iter().map(|g| g.metric_definition.name.as_str()).collect();
    assert_eq!(goals, ["clicks"]);
    assert_eq!((x.created_time, x.last_updated_time), (T0, 2.0 * T0));
    commit(&mut ev, x);
    let x = update_experiment(&ev, P, "x", experiment_patch(json!({ "removeSegment": false })), 3.0 * T0).unwrap();
    assert_eq!(x.segment.as_deref(), Some("beta"));
    let x = update_experiment(&ev, P, "x", experiment_patch(json!({ "removeSegment": true })), 3.0 * T0).unwrap();
    assert_eq!(x.segment, None);
}

#[test]
fn a_running_experiment_changes_only_its_sampling_rate_and_description() {
    let mut ev = shop();
    let mut body = experiment_body("x", "color", &[("c", "red"), ("t", "blue")]);
    body["segment"] = json!("beta");
    add_experiment(&mut ev, P, body);
    run_experiment(&mut ev, P, "x", 2.0 * T0);
    let goals = json!([{ "metricDefinition": { "name": "clicks", "entityIdKey": "u", "valueKey": "v" } }]);
    for (field, patch) in [
        ("treatments", json!({ "treatments": treatments(&[("c", "red"), ("t", "green")]) })),
        ("metricGoals", json!({ "metricGoals": goals })),
        ("onlineAbConfig", json!({ "onlineAbConfig": { "controlTreatmentName": "t" } })),
        ("randomizationSalt", json!({ "randomizationSalt": "pepper" })),
        ("segment", json!({ "segment": "beta" })),
        ("removeSegment", json!({ "removeSegment": true })),
    ] {
        let m = conflict_on(update_experiment(&ev, P, "x", experiment_patch(patch), 3.0 * T0), experiment_id("x"));
        assert!(m.contains(&format!("`{field}`")), "{field}: {m}");
    }
    let patch = experiment_patch(json!({ "samplingRate": 500, "description": "d", "removeSegment": false }));
    let x = update_experiment(&ev, P, "x", patch, 3.0 * T0).unwrap();
    assert_eq!((x.sampling_rate, x.description.as_deref(), x.segment.as_deref()), (500, Some("d"), Some("beta")));
    assert_eq!((x.status, x.last_updated_time), (RunStatus::Running, 3.0 * T0));
}

#[test]
fn the_analysis_completes_in_the_next_30_days() {
    let mut ev = shop();
    let q = quotas();
    add_experiment(&mut ev, P, experiment_body("x", "color", &[("c", "red"), ("t", "blue")]));
    let t = 2.0 * T0;
    for at in [t - 1.0, t] {
        let m = invalid_on(start_experiment(&ev, &q, P, "x", at, t), "analysisCompleteTime");
        assert!(m.contains("future"), "{m}");
    }
    let m = invalid_on(start_experiment(&ev, &q, P, "x", t + 30.0 * DAY + 1.0, t), "analysisCompleteTime");
    assert!(m.contains("30 days"), "{m}");
    let x = start_experiment(&ev, &q, P, "x", t + 30.0 * DAY, t).unwrap();
    assert_eq!(
        (x.status, x.analysis_complete_time, x.started_time),
        (RunStatus::Running, Some(t + 30.0 * DAY), Some(t))
    );
}

// === tags ===

#[test]
fn retag_merges_then_removes() {
    let mut ev = shop();
    add_project(&mut ev, json!({ "name": "tagged", "tags": { "a": "1", "b": "2" } }));
    let id = ResourceId::Project("tagged".into());
    let r = retag(&ev, &id, tags(&[("b", "3"), ("c", "4")]), &["a".into(), "absent".into()]).unwrap();
    let Resource::Project(p) = r else { panic!("a project is retagged as a project: {r:?}") };
    assert_eq!(p.tags, tags(&[("b", "3"), ("c", "4")]));
    assert_eq!(p.last_updated_time, T0);
    // Each kind, nothing but its tags changed.
    add_launch(&mut ev, P, launch_body("l", "color", &["red"]));
    add_experiment(&mut ev, P, experiment_body("x", "color", &[("c", "red"), ("t", "blue")]));
    for id in [feature_id("color"), launch_id("l"), experiment_id("x"), ResourceId::Segment("beta".into())] {
        let before = resource(&ev, &id).unwrap();
        let mut after = retag(&ev, &id, tags(&[("k", "v")]), &[]).unwrap();
        assert_eq!(tags_mut(&mut after), &tags(&[("k", "v")]), "{id}");
        *tags_mut(&mut after) = Tags::new();
        assert_eq!(after, before, "{id}");
    }
}

fn tags_mut(r: &mut Resource) -> &mut Tags {
    match r {
        Resource::Project(p) => &mut p.tags,
        Resource::Feature(f) => &mut f.tags,
        Resource::Launch(l) => &mut l.tags,
        Resource::Experiment(x) => &mut x.tags,
        Resource::Segment(s) => &mut s.tags,
    }
}

#[test]
fn a_resource_holds_at_most_50_tags() {
    let mut ev = shop();
    add_project(&mut ev, json!({ "name": "tagged", "tags": { "a": "1", "b": "2" } }));
    let id = ResourceId::Project("tagged".into());
    let many = |n: usize| (0..n).map(|i| (format!("k{i:02}"), "v".to_string())).collect::<Tags>();
    invalid_on(retag(&ev, &id, many(49), &[]), "tags");
    // Counted after the removal.
    let r = retag(&ev, &id, many(49), &["a".into()]).unwrap();
    let Resource::Project(p) = r else { panic!("{r:?}") };
    assert_eq!(p.tags.len(), 50);
    assert!(retag(&ev, &id, many(48), &[]).is_ok());
}

#[test]
fn retagging_a_missing_resource_is_not_found() {
    let ev = shop();
    for id in [
        ResourceId::Project("nope".into()),
        feature_id("ghost"),
        launch_id("ghost"),
        experiment_id("ghost"),
        ResourceId::Segment("ghost".into()),
        ResourceId::Feature("nope".into(), "color".into()),
    ] {
        not_found(retag(&ev, &id, tags(&[("k", "v")]), &[]), id.clone());
    }
}

// === what the read side reports ===

#[test]
fn counts_are_the_projects_launches_and_those_running() {
    let mut ev = shop();
    assert_eq!(counts::<Launch>(&ev, P), (0, 0));
    add_launch(&mut ev, P, launch_body("running", "color", &["red"]));
    add_launch(&mut ev, P, launch_body("created", "color", &["blue"]));
    add_launch(&mut ev, P, launch_body("ended", "size", &["s"]));
    run_launch(&mut ev, P, "running", 2.0 * T0);
    run_launch(&mut ev, P, "ended", 2.0 * T0);
    stopped::<Launch>(&mut ev, P, "ended", json!({}), 3.0 * T0);
    add_project(&mut ev, json!({ "name": "other" }));
    add_feature(&mut ev, "other", json!({ "name": "color", "variations": strings(&["red"]) }));
    add_launch(&mut ev, "other", launch_body("l", "color", &["red"]));
    run_launch(&mut ev, "other", "l", 2.0 * T0);
    assert_eq!(counts::<Launch>(&ev, P), (3, 1));
    assert_eq!(counts::<Launch>(&ev, "other"), (1, 1));
    assert_eq!(counts::<Experiment>(&ev, P), (0, 0));
    add_experiment(&mut ev, P, experiment_body("x", "color", &[("c", "red"), ("t", "blue")]));
    run_experiment(&mut ev, P, "x", 2.0 * T0);
    assert_eq!(counts::<Experiment>(&ev, P), (1, 1));
    assert_eq!(counts::<Launch>(&ev, P), (3, 1));
}

#[test]
fn rules_of_a_feature_are_its_projects_launches_and_experiments_not_ended() {
    let mut ev = shop();
    add_launch(&mut ev, P, launch_body("running", "color", &["red"]));
    add_launch(&mut ev, P, launch_body("created", "color", &["blue"]));
    add_launch(&mut ev, P, launch_body("ended", "color", &["green"]));
    add_launch(&mut ev, P, launch_body("sized", "size", &["s"]));
    run_launch(&mut ev, P, "ended", 2.0 * T0);
    stopped::<Launch>(&mut ev, P, "ended", json!({}), 3.0 * T0);
    run_launch(&mut ev, P, "running", 4.0 * T0);
    add_experiment(&mut ev, P, experiment_body("live", "color", &[("c", "red"), ("t", "blue")]));
    add_experiment(&mut ev, P, experiment_body("cancelled", "color", &[("c", "red"), ("t", "green")]));
    add_experiment(&mut ev, P, experiment_body("sized", "size", &[("c", "s"), ("t", "m")]));
    run_experiment(&mut ev, P, "cancelled", 2.0 * T0);
    stopped::<Experiment>(&mut ev, P, "cancelled", json!({ "desiredState": "CANCELLED" }), 3.0 * T0);
    add_project(&mut ev, json!({ "name": "other" }));
    add_feature(&mut ev, "other", json!({ "name": "color", "variations": strings(&["red"]) }));
    add_launch(&mut ev, "other", launch_body("elsewhere", "color", &["red"]));

    let (launches, experiments) = rules_of(&ev, P, "color");
    let launches: Vec<&str> = launches.iter().map(|l| l.name.as_str()).collect();
    let experiments: Vec<&str> = experiments.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(launches, ["created", "running"]);
    assert_eq!(experiments, ["live"]);
    let (launches, experiments) = rules_of(&ev, P, "size");
    assert_eq!((launches.len(), experiments.len()), (1, 1));
    assert_eq!((launches[0].name.as_str(), experiments[0].name.as_str()), ("sized", "sized"));
    let (launches, experiments) = rules_of(&ev, P, "ghost");
    assert!(launches.is_empty() && experiments.is_empty());
}
