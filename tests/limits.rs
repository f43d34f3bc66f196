//! The generated constraint tables agree with the AWS service models in `models/`, shape by shape, and
//! every constrained member the admin API takes is checked somewhere in `src/` with its shape's constant
//! (issue 15, item 6: no hand-copies). Reads the model files and the sources; runs nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use edgesplit::limits::{self, Limit};
use serde_json::{Map, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const EVIDENTLY: &str = "models/evidently/2021-02-01/service-2.json";
const CLOUDFRONT: &str = "models/cloudfront/2020-05-31/service-2.json";

/// The CloudFront operations edgesplit serves (src/admin/cloudfront.rs); it serves all of Evidently's.
const CLOUDFRONT_OPERATIONS: &[&str] = &[
    "CreateContinuousDeploymentPolicy",
    "GetContinuousDeploymentPolicy",
    "GetContinuousDeploymentPolicyConfig",
    "UpdateContinuousDeploymentPolicy",
    "DeleteContinuousDeploymentPolicy",
    "ListContinuousDeploymentPolicies",
];

fn shapes(path: &str) -> Map<String, Value> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap();
    let model: Value = serde_json::from_str(&text).unwrap();
    model["shapes"].as_object().unwrap().clone()
}

fn operations(path: &str) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap();
    let model: Value = serde_json::from_str(&text).unwrap();
    model["operations"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn constrained(def: &Value) -> bool {
    ["min", "max", "pattern", "enum"].iter().any(|k| def.get(k).is_some())
}

#[path = "../build/naming.rs"]
mod naming;
use naming::constant_name;

fn usize_of(v: &Value) -> Option<usize> {
    v.as_u64().map(|n| usize::try_from(n).unwrap())
}

/// Every field of every generated constant against the raw JSON, and no constrained shape left out.
fn same_as_model(path: &str, table: &[(&str, Limit)]) {
    let shapes = shapes(path);
    let want: BTreeMap<&str, &Value> =
        shapes.iter().filter(|(_, d)| constrained(d)).map(|(k, d)| (k.as_str(), d)).collect();
    let got: BTreeMap<&str, &Limit> = table.iter().map(|(k, l)| (*k, l)).collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{path}: shapes");
    assert_eq!(table.len(), want.len(), "{path}: a shape listed twice");
    for (name, def) in want {
        let limit = got[name];
        assert_eq!(limit.shape(), name);
        let (min, max) = (def.get("min"), def.get("max"));
        match limit {
            Limit::Text(t) => {
                assert_eq!(def["type"], "string", "{name}");
                assert_eq!(t.min, min.and_then(usize_of), "{name} min");
                assert_eq!(t.max, max.and_then(usize_of), "{name} max");
                assert_eq!(t.pattern.map(|p| p.source()), def.get("pattern").and_then(Value::as_str), "{name} pattern");
                let values: Vec<&str> = def
                    .get("enum")
                    .map(|e| e.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect())
                    .unwrap_or_default();
                assert_eq!(t.values, values.as_slice(), "{name} enum");
            }
            Limit::Int(r) => {
                assert!(["integer", "long"].contains(&def["type"].as_str().unwrap()), "{name}");
                assert_eq!(r.min, min.and_then(Value::as_i64), "{name} min");
                assert_eq!(r.max, max.and_then(Value::as_i64), "{name} max");
            }
            Limit::Float(r) => {
                assert!(["float", "double"].contains(&def["type"].as_str().unwrap()), "{name}");
                assert_eq!(r.min, min.and_then(Value::as_f64), "{name} min");
                assert_eq!(r.max, max.and_then(Value::as_f64), "{name} max");
            }
            Limit::Count(c) => {
                assert!(["list", "map", "blob"].contains(&def["type"].as_str().unwrap()), "{name}");
                assert_eq!(c.min, min.and_then(usize_of), "{name} min");
                assert_eq!(c.max, max.and_then(usize_of), "{name} max");
            }
        }
    }
}

#[test]
fn the_tables_are_the_models() {
    same_as_model(EVIDENTLY, limits::evidently::ALL);
    same_as_model(CLOUDFRONT, limits::cloudfront::ALL);
    // The models as shipped (botocore 1.42.50): a model update that changes these is worth a look.
    assert_eq!(limits::evidently::ALL.len(), 89);
    assert_eq!(limits::cloudfront::ALL.len(), 72);
}

#[test]
fn spot_checks_in_plain_numbers() {
    use limits::cloudfront as cf;
    use limits::evidently as ev;
    assert_eq!((ev::PROJECT_NAME.min, ev::PROJECT_NAME.max), (Some(1), Some(127)));
    assert_eq!(ev::PROJECT_NAME.pattern.unwrap().source(), "^[-a-zA-Z0-9._]*$");
    assert_eq!((ev::SEGMENT_NAME.min, ev::SEGMENT_NAME.max), (Some(1), Some(64)));
    assert_eq!(ev::TAG_KEY.pattern.unwrap().source(), "^(?!aws:)[a-zA-Z+-=._:/]+$");
    assert_eq!((ev::TAG_VALUE.max, ev::DESCRIPTION.max, ev::ENTITY_ID.max), (Some(256), Some(160), Some(512)));
    assert_eq!((ev::SPLIT_WEIGHT.min, ev::SPLIT_WEIGHT.max), (Some(0), Some(100_000)));
    assert_eq!((ev::RESULTS_PERIOD.min, ev::RESULTS_PERIOD.max), (Some(300), Some(90_000)));
    assert_eq!((ev::TREATMENT_CONFIG_LIST.min, ev::TREATMENT_LIST.min), (Some(0), Some(2)));
    assert_eq!((ev::SCHEDULED_SPLIT_CONFIG_LIST.max, ev::EVENT_LIST.max), (Some(6), Some(50)));
    assert_eq!(ev::EVENT_TYPE.values, ["aws.evidently.evaluation", "aws.evidently.custom"]);
    assert_eq!(cf::CONTINUOUS_DEPLOYMENT_POLICY_TYPE.values, ["SingleWeight", "SingleHeader"]);
    assert_eq!((cf::SAMPLING_RATE.min, cf::SAMPLING_RATE.max), (Some(0.0), Some(100.0)));
    assert_eq!((cf::FUNCTION_BLOB.min, cf::FUNCTION_BLOB.max), (Some(1), Some(40_960)));
    // The regression that started this (issue 15, item 6).
    assert!(ev::TAG_KEY.check("tags", "env2").is_ok());
    assert!(ev::TAG_KEY.check("tags", "aws:x").is_err());
}

/// `(member path, shape)` of every constrained member reachable from an operation's input.
fn constrained_inputs(path: &str, only: Option<&[&str]>) -> BTreeSet<(String, String)> {
    fn walk(shapes: &Map<String, Value>, shape: &str, at: String, depth: usize, out: &mut BTreeSet<(String, String)>) {
        let def = &shapes[shape];
        if constrained(def) {
            out.insert((at.clone(), shape.to_string()));
        }
        if depth > 12 {
            return;
        }
        match def["type"].as_str().unwrap() {
            "structure" => {
                for (member, m) in def["members"].as_object().unwrap() {
                    walk(shapes, m["shape"].as_str().unwrap(), format!("{at}.{member}"), depth + 1, out);
                }
            }
            "list" => walk(shapes, def["member"]["shape"].as_str().unwrap(), format!("{at}[]"), depth + 1, out),
            "map" => {
                walk(shapes, def["key"]["shape"].as_str().unwrap(), format!("{at}{{key}}"), depth + 1, out);
                walk(shapes, def["value"]["shape"].as_str().unwrap(), format!("{at}{{value}}"), depth + 1, out);
            }
            _ => {}
        }
    }
    let shapes = shapes(path);
    let mut out = BTreeSet::new();
    for (name, op) in operations(path) {
        if only.is_some_and(|ops| !ops.contains(&name.as_str())) {
            continue;
        }
        if let Some(input) = op.get("input").and_then(|i| i["shape"].as_str()) {
            walk(&shapes, input, name.clone(), 0, &mut out);
        }
    }
    out
}

/// The Rust sources under `src/`, but the module that defines the constants.
fn sources() -> String {
    fn read(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                read(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("src/limits.rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = String::new();
    read(&Path::new(ROOT).join("src"), &mut out);
    out
}

fn checked_with_its_constant(path: &str, only: Option<&[&str]>, expected_shapes: usize) {
    let src = sources();
    let inputs = constrained_inputs(path, only);
    let by_shape: BTreeMap<&str, Vec<&str>> = inputs.iter().fold(BTreeMap::new(), |mut m, (at, shape)| {
        m.entry(shape.as_str()).or_insert_with(Vec::new).push(at.as_str());
        m
    });
    let mut missing = Vec::new();
    for (shape, members) in &by_shape {
        let used = regex::Regex::new(&format!(r"::{}\b", constant_name(shape))).unwrap();
        if !used.is_match(&src) {
            missing.push(format!("{shape} ({})", members.join(", ")));
        }
    }
    assert!(missing.is_empty(), "{path}: constrained input shapes no source checks with their constant:\n{missing:#?}");
    assert_eq!(by_shape.len(), expected_shapes, "{path}: {:#?}", by_shape.keys());
}

#[test]
fn every_constrained_input_is_checked_with_its_shapes_constant() {
    // All 38 Evidently operations are served; 64 constrained shapes reach their inputs.
    assert_eq!(operations(EVIDENTLY).len(), 38);
    checked_with_its_constant(EVIDENTLY, None, 64);
    // Of CloudFront's, the continuous deployment policy operations: one, the traffic `Type`.
    checked_with_its_constant(CLOUDFRONT, Some(CLOUDFRONT_OPERATIONS), 1);
}
